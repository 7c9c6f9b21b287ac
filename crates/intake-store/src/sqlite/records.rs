//! The stored versions: the current state and history reads (over both key tiers), and the
//! purge of a deleted integration's data.

use std::collections::HashMap;

use intake_model::ObjectType;

use super::tiers::{self, MAIN, RECENT};
use super::SqliteStore;
use crate::{IntegrationId, Result, Version};

/// One step of upkeep: the look-up keys of the versions stored since the last request
/// first (they cannot wait: see `crate::lookups`), then a merge of the key tiers if due.
pub(super) async fn maintain(store: &SqliteStore, idle: bool) -> Result<bool> {
    if super::lookups::key_versions(store).await? > 0 {
        return Ok(true);
    }
    tiers::maintain(store, idle).await
}

pub(super) async fn current_objects(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    ids: &[String],
) -> Result<HashMap<String, Option<String>>> {
    let mut conn = store.pool.acquire().await?;
    let mut found = HashMap::with_capacity(ids.len());
    for id in ids {
        let row: Option<(bool, String)> = sqlx::query_as(
            "SELECT deleted, body FROM record_versions WHERE id = \
             (SELECT version_id FROM all_version_keys WHERE integration_id = ? \
              AND object_type = ? AND object_id = ? ORDER BY modified DESC, seq DESC LIMIT 1)",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let body = row.and_then(|(deleted, body)| (!deleted).then_some(body));
        found.insert(id.clone(), body);
    }
    Ok(found)
}

pub(super) async fn versions(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    object_id: &str,
) -> Result<Vec<Version>> {
    Ok(sqlx::query_as(
        "SELECT v.modified, v.seq, v.line, v.deleted, v.body \
         FROM all_version_keys k JOIN record_versions v ON v.id = k.version_id \
         WHERE k.integration_id = ? AND k.object_type = ? AND k.object_id = ? \
         ORDER BY k.modified, k.seq",
    )
    .bind(integration)
    .bind(object_type.code())
    .bind(object_id)
    .fetch_all(&store.pool)
    .await?)
}

/// In steps, so that neither memory nor the WAL grows with the integration; a purge cut
/// short is finished when its request is taken up again.
pub(super) async fn purge_integration(
    store: &SqliteStore,
    integration: IntegrationId,
) -> Result<()> {
    for tier in [RECENT, MAIN] {
        while tiers::purge_step(store, integration, tier).await? > 0 {}
    }
    while super::lookups::purge_step(store, integration).await? > 0 {}
    while super::board::purge_step(store, integration).await? > 0 {}
    sqlx::query("DELETE FROM schema_fields WHERE integration_id = ?")
        .bind(integration)
        .execute(&store.writer)
        .await?;
    Ok(())
}
