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

/// Rows of a chunk of [`for_each_current`]: few enough that a chunk of the largest bodies
/// (a line is at most 1 MiB) stays far below SQLite's 1 GB limit on a text.
pub(super) const CHUNK: i64 = 500;

/// Every record current and not deleted at `as_of`: both key tiers scanned in key order
/// and merged by SQLite (`MERGE (UNION ALL)`, no sort), each key joined to its body, and
/// the last version of each objectId kept. Earlier versions' bodies are read and dropped,
/// which costs far less than probing for a later key per version while records have few
/// versions. The rows come [`CHUNK`] at a time as one text each (fields separated by
/// U+001F, rows by U+001E, which no objectId and no JSON body holds), keyset-paged on the
/// key: handing sqlx one row per version costs several times SQLite's own work.
pub(super) async fn for_each_current(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    as_of: i64,
    each: &mut EachRecord<'_>,
) -> Result<()> {
    let tier = |keys: &str| {
        format!(
            "SELECT k.object_id, k.modified, k.seq, v.deleted, v.body FROM {keys} k \
             JOIN record_versions v ON v.id = k.version_id \
             WHERE k.integration_id = ?1 AND k.object_type = ?2 AND k.modified <= ?3 \
             AND (k.object_id, k.modified, k.seq) > (?4, ?5, ?6)"
        )
    };
    let sql = format!(
        "SELECT count(*), group_concat(object_id || char(31) || modified || char(31) || seq \
         || char(31) || deleted || char(31) || body, char(30)) \
         FROM ({} UNION ALL {} ORDER BY 1, 2, 3 LIMIT ?7)",
        tier(MAIN),
        tier(RECENT)
    );
    let chunk = store
        .current_chunk
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut conn = store.pool.acquire().await?;
    let mut last = crate::rows::LastVersions::new(each);
    let (mut after_id, mut after_modified, mut after_seq) = (String::new(), i64::MIN, i64::MIN);
    loop {
        let (count, text): (i64, Option<String>) = sqlx::query_as(&sql)
            .bind(integration)
            .bind(object_type.code())
            .bind(as_of)
            .bind(&after_id)
            .bind(after_modified)
            .bind(after_seq)
            .bind(chunk)
            .fetch_one(&mut *conn)
            .await?;
        let Some(text) = text else { break };
        for row in text.split('\u{1e}') {
            let mut fields = row.splitn(5, '\u{1f}');
            let mut next = || {
                fields
                    .next()
                    .ok_or_else(|| crate::StoreError::Corrupt(format!("board row: {row:.80}")))
            };
            let (id, modified, seq, deleted, body) = (next()?, next()?, next()?, next()?, next()?);
            let number = |text: &str| {
                text.parse::<i64>()
                    .map_err(|_| crate::StoreError::Corrupt(format!("board row: {row:.80}")))
            };
            after_modified = number(modified)?;
            after_seq = number(seq)?;
            after_id.clear();
            after_id.push_str(id);
            last.push((id.to_owned(), deleted == "1", body.to_owned()));
        }
        if count < chunk {
            break;
        }
    }
    last.finish();
    Ok(())
}
