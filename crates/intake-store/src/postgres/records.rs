//! The stored versions: the current state and history reads, and the purge of a deleted
//! integration's data. Versions are in the main table and two recent tiers (`tiers.rs`);
//! reads go through the view `all_versions` over the three.

use std::collections::HashMap;

use intake_model::ObjectType;

use super::PgStore;
use crate::{IntegrationId, Result, Version};

pub(super) async fn current_objects(
    store: &PgStore,
    integration: IntegrationId,
    object_type: ObjectType,
    ids: &[String],
) -> Result<HashMap<String, Option<String>>> {
    // Each id's latest version by a backward scan of each tier's primary key, merged: only
    // that version's body is read, however long the record's history.
    let rows: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT i.id, v.deleted, v.body FROM UNNEST($3::text[]) AS i(id) \
         CROSS JOIN LATERAL ( \
             SELECT deleted, body FROM all_versions \
             WHERE integration_id = $1 AND object_type = $2 AND object_id = i.id \
             ORDER BY modified DESC, seq DESC LIMIT 1 \
         ) v",
    )
    .bind(integration)
    .bind(object_type.code())
    .bind(ids)
    .fetch_all(&store.pool)
    .await?;
    let mut found: HashMap<String, Option<String>> =
        ids.iter().map(|id| (id.clone(), None)).collect();
    for (id, deleted, body) in rows {
        if !deleted {
            found.insert(id, Some(body));
        }
    }
    Ok(found)
}

pub(super) async fn versions(
    store: &PgStore,
    integration: IntegrationId,
    object_type: ObjectType,
    object_id: &str,
) -> Result<Vec<Version>> {
    // A version replayed across a swap is in two tiers, the same row: shown once.
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (modified, seq) modified, seq, line, deleted, body \
         FROM all_versions \
         WHERE integration_id = $1 AND object_type = $2 AND object_id = $3 \
         ORDER BY modified, seq",
    )
    .bind(integration)
    .bind(object_type.code())
    .bind(object_id)
    .fetch_all(&store.pool)
    .await?)
}

pub(super) async fn purge_integration(store: &PgStore, integration: IntegrationId) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    super::tiers::exclude_merge(&mut tx).await?;
    let tables = super::tiers::VERSION_TABLES;
    for table in tables.iter().chain(&["schema_fields"]) {
        sqlx::query(&format!("DELETE FROM {table} WHERE integration_id = $1"))
            .bind(integration)
            .execute(&mut *tx)
            .await?;
    }
    super::lookups::purge(&mut tx, integration).await?;
    super::board::purge(&mut tx, integration).await?;
    tx.commit().await?;
    Ok(())
}

/// One step of upkeep: the look-up keys of the lines stored since the last request first
/// (they cannot wait: see `crate::lookups`), then the merge of a recent tier when one is
/// due (see `tiers.rs`).
pub(super) async fn maintain(store: &PgStore, idle: bool) -> Result<bool> {
    if super::lookups::key_uploads(&store.pool, None).await? > 0 {
        return Ok(true);
    }
    super::tiers::maintain(store, idle).await
}
