//! Integrations and their custom-field schemas.

use intake_model::{FieldDef, ObjectType, SchemaPlan};

use super::{now_secs, SqliteStore};
use crate::rows::{self, SchemaRow};
use crate::{
    conflict_on_unique, random_integration_id, CompanyId, Integration, IntegrationId, Result,
    StoreError,
};

pub(super) async fn register_integration(
    store: &SqliteStore,
    company: CompanyId,
    name: &str,
    owner_email: &str,
) -> Result<Integration> {
    sqlx::query_as(
        "INSERT INTO integrations (id, company_id, name, owner_email, created_at) \
         VALUES (?, ?, ?, ?, ?) RETURNING id, company_id, name, owner_email",
    )
    .bind(random_integration_id())
    .bind(company)
    .bind(name)
    .bind(owner_email)
    .bind(now_secs())
    .fetch_one(&store.writer)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::IntegrationActive))
}

/// Marks the integration deleted and queues the purge of its data, in one transaction.
pub(super) async fn request_integration_delete(
    store: &SqliteStore,
    company: CompanyId,
    id: IntegrationId,
    client_request_id: &str,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let marked = sqlx::query(
        "UPDATE integrations SET deleted = 1 WHERE company_id = ? AND id = ? AND deleted = 0",
    )
    .bind(company)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::UnknownIntegration(id));
    }
    let queued = sqlx::query(
        "INSERT INTO requests (company_id, client_request_id, integration_id, kind, status, \
         accepted_at) VALUES (?, ?, ?, 'DELETE_INTEGRATION', 'PENDING', ?)",
    )
    .bind(company)
    .bind(client_request_id)
    .bind(id)
    .bind(now_secs())
    .execute(&mut *tx)
    .await;
    if let Err(err) = queued {
        tx.rollback().await?;
        return Err(conflict_on_unique(err, StoreError::ClientRequestIdUsed));
    }
    tx.commit().await?;
    store.new_work.notify_one();
    Ok(())
}

pub(super) async fn get_schema(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: Option<ObjectType>,
) -> Result<Vec<(ObjectType, FieldDef)>> {
    let rows: Vec<SchemaRow> = sqlx::query_as(
        "SELECT object_type, definition FROM schema_fields WHERE integration_id = ? \
         AND (? IS NULL OR object_type = ?) ORDER BY object_type, unique_name",
    )
    .bind(integration)
    .bind(object_type.map(ObjectType::code))
    .bind(object_type.map(ObjectType::code))
    .fetch_all(&store.pool)
    .await?;
    rows::schema(rows)
}

/// Replaces one type's fields and removes the dropped fields' values from every stored
/// version of the type (in both key tiers), in one transaction. `json_remove` leaves the
/// rest of each body as it was.
pub(super) async fn replace_schema(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    plan: &SchemaPlan,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM schema_fields WHERE integration_id = ? AND object_type = ?")
        .bind(integration)
        .bind(object_type.code())
        .execute(&mut *tx)
        .await?;
    for field in &plan.keep {
        sqlx::query(
            "INSERT INTO schema_fields (integration_id, object_type, unique_name, definition) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(&field.unique_name)
        .bind(serde_json::to_string(field).expect("field definitions serialize"))
        .execute(&mut *tx)
        .await?;
    }
    for name in &plan.drop_values_of {
        let path = json_path(name);
        sqlx::query(
            "UPDATE record_versions SET body = json_remove(body, ?) \
             WHERE id IN (SELECT version_id FROM all_version_keys \
                          WHERE integration_id = ? AND object_type = ?) \
             AND json_type(body, ?) IS NOT NULL",
        )
        .bind(&path)
        .bind(integration)
        .bind(object_type.code())
        .bind(&path)
        .execute(&mut *tx)
        .await?;
    }
    super::board::drop_facts(&mut tx, integration, object_type, &plan.drop_values_of).await?;
    tx.commit().await?;
    Ok(())
}

/// SQLite JSON path of a top-level key, quoted so that dots and brackets are literal.
fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('"', "\\\""))
}

crate::same_sql::integration_statements!(SqliteStore, read: pool);
