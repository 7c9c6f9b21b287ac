//! Records as of a time, page by page, and where their versions came from.

use std::collections::HashMap;

use intake_model::ObjectType;

use super::tiers::{MAIN, RECENT};
use super::SqliteStore;
use crate::{EachRecord, IntegrationId, RecordState, RequestOrigin, RequestSeq, Result};

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

/// Every record current and not deleted at `as_of`, one query per key tier: a version is
/// a record's current one when no key of either tier, up to `as_of`, comes after it
/// (a probe of each tier's primary key per version; bodies are read only for those).
pub(super) async fn for_each_current(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    as_of: i64,
    each: &mut EachRecord<'_>,
) -> Result<()> {
    use futures_util::TryStreamExt;
    let mut conn = store.pool.acquire().await?;
    for tier in [MAIN, RECENT] {
        let later = |other: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM {other} n WHERE n.integration_id = ?1 \
                 AND n.object_type = ?2 AND n.object_id = k.object_id AND n.modified <= ?3 \
                 AND (n.modified, n.seq) > (k.modified, k.seq))"
            )
        };
        let sql = format!(
            "SELECT k.object_id, v.body FROM {tier} k JOIN record_versions v ON v.id = k.version_id \
             WHERE k.integration_id = ?1 AND k.object_type = ?2 AND k.modified <= ?3 \
             AND {} AND {} AND v.deleted = 0",
            later(MAIN),
            later(RECENT)
        );
        let mut rows = sqlx::query_as::<_, (String, String)>(&sql)
            .bind(integration)
            .bind(object_type.code())
            .bind(as_of)
            .fetch(&mut *conn);
        while let Some((id, body)) = rows.try_next().await? {
            each(&id, &body);
        }
    }
    Ok(())
}
