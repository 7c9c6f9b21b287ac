//! Records as of a time, page by page, and where their versions came from.

use std::collections::HashMap;

use intake_model::ObjectType;

use super::PgStore;
use crate::{EachRecord, IntegrationId, RecordState, RequestOrigin, RequestSeq, Result};

/// A record id with the columns of its version, when it has one by then.
type IdWithVersion = (String, Option<i64>, Option<bool>, Option<String>);

pub(super) async fn records_after(
    store: &PgStore,
    integration: IntegrationId,
    object_type: ObjectType,
    after: &str,
    count: usize,
    as_of: i64,
) -> Result<Vec<(String, Option<RecordState>)>> {
    // The ids by a forward scan of the primary keys of the tiers, merged (object_id is
    // COLLATE "C": byte order), each one's latest version up to `as_of` by a backward scan
    // of its own keys.
    let rows: Vec<IdWithVersion> = sqlx::query_as(
        "SELECT d.object_id, v.modified, v.deleted, v.body FROM ( \
             SELECT DISTINCT object_id FROM all_versions \
             WHERE integration_id = $1 AND object_type = $2 AND object_id > $3 \
             ORDER BY object_id LIMIT $4 \
         ) d LEFT JOIN LATERAL ( \
             SELECT modified, deleted, body FROM all_versions \
             WHERE integration_id = $1 AND object_type = $2 AND object_id = d.object_id \
             AND modified <= $5 ORDER BY modified DESC, seq DESC LIMIT 1 \
         ) v ON true ORDER BY d.object_id",
    )
    .bind(integration)
    .bind(object_type.code())
    .bind(after)
    .bind(count as i64)
    .bind(as_of)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, modified, deleted, body)| {
            let state = match (modified, deleted, body) {
                (Some(modified), Some(deleted), Some(body)) => Some(RecordState {
                    modified,
                    deleted,
                    body,
                }),
                _ => None,
            };
            (id, state)
        })
        .collect())
}

pub(super) async fn request_origins(
    store: &PgStore,
    seqs: &[RequestSeq],
) -> Result<HashMap<RequestSeq, RequestOrigin>> {
    let rows: Vec<RequestOrigin> = sqlx::query_as(
        "SELECT seq, client_request_id, accepted_at FROM requests WHERE seq = ANY($1)",
    )
    .bind(seqs)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r)).collect())
}

/// Every record current and not deleted at `as_of`: one forward scan of the primary key
/// over the type's versions up to `as_of` (no sort), the last version of each objectId
/// kept. Earlier versions' bodies are read and dropped, which costs less than a sort or
/// an anti-join while records have few versions.
pub(super) async fn for_each_current(
    store: &PgStore,
    integration: IntegrationId,
    object_type: ObjectType,
    as_of: i64,
    each: &mut EachRecord<'_>,
) -> Result<()> {
    use futures_util::TryStreamExt;
    let mut rows = sqlx::query_as::<_, (String, bool, String)>(
        "SELECT object_id, deleted, body FROM all_versions \
         WHERE integration_id = $1 AND object_type = $2 AND modified <= $3 \
         ORDER BY object_id, modified, seq",
    )
    .bind(integration)
    .bind(object_type.code())
    .bind(as_of)
    .fetch(&store.pool);
    let mut last = crate::rows::LastVersions::new(each);
    while let Some(row) = rows.try_next().await? {
        last.push(row);
    }
    last.finish();
    Ok(())
}
