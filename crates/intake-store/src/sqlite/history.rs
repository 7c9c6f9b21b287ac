//! Records as of a time, page by page, and where their versions came from.

use std::collections::HashMap;

use intake_model::ObjectType;

use super::tiers::{MAIN, RECENT};
use super::SqliteStore;
use crate::{IntegrationId, RecordState, RequestOrigin, RequestSeq, Result};

pub(super) async fn records_after(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    after: &str,
    count: usize,
    as_of: i64,
) -> Result<Vec<(String, Option<RecordState>)>> {
    let mut conn = store.pool.acquire().await?;
    // The first `count` ids of each tier, in index order, merged: the first `count` of the
    // union are among them.
    let mut ids: Vec<String> = Vec::with_capacity(2 * count);
    for tier in [MAIN, RECENT] {
        let sql = format!(
            "SELECT DISTINCT object_id FROM {tier} \
             WHERE integration_id = ? AND object_type = ? AND object_id > ? \
             ORDER BY object_id LIMIT ?"
        );
        let tier_ids: Vec<(String,)> = sqlx::query_as(&sql)
            .bind(integration)
            .bind(object_type.code())
            .bind(after)
            .bind(count as i64)
            .fetch_all(&mut *conn)
            .await?;
        ids.extend(tier_ids.into_iter().map(|(id,)| id));
    }
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(count);
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let state: Option<RecordState> = sqlx::query_as(
            "SELECT modified, deleted, body FROM record_versions WHERE id = \
             (SELECT version_id FROM all_version_keys WHERE integration_id = ? \
              AND object_type = ? AND object_id = ? AND modified <= ? \
              ORDER BY modified DESC, seq DESC LIMIT 1)",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(&id)
        .bind(as_of)
        .fetch_optional(&mut *conn)
        .await?;
        found.push((id, state));
    }
    Ok(found)
}

pub(super) async fn request_origins(
    store: &SqliteStore,
    seqs: &[RequestSeq],
) -> Result<HashMap<RequestSeq, RequestOrigin>> {
    let list = serde_json::to_string(seqs).expect("integers serialize");
    let rows: Vec<RequestOrigin> = sqlx::query_as(
        "SELECT seq, client_request_id, accepted_at FROM requests \
         WHERE seq IN (SELECT value FROM json_each(?))",
    )
    .bind(list)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r)).collect())
}
