//! Integrations and their custom-field schemas.

use intake_model::json::without_key;
use intake_model::{FieldDef, ObjectType, SchemaPlan};

use super::notify::WORK_CHANNEL;
use super::PgStore;
use crate::rows::{self, SchemaRow};
use crate::{
    conflict_on_unique, random_integration_id, CompanyId, Integration, IntegrationId, Result,
    StoreError,
};

/// Versions read and rewritten per round trip when a schema change drops field values.
const DROP_VALUES_PAGE: i64 = 2_000;

pub(super) async fn register_integration(
    store: &PgStore,
    company: CompanyId,
    name: &str,
    owner_email: &str,
) -> Result<Integration> {
    sqlx::query_as(
        "INSERT INTO integrations (id, company_id, name, owner_email) VALUES ($1, $2, $3, $4) \
         RETURNING id, company_id, name, owner_email",
    )
    .bind(random_integration_id())
    .bind(company)
    .bind(name)
    .bind(owner_email)
    .fetch_one(&store.pool)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::IntegrationActive))
}

/// Marks the integration deleted and queues the purge of its data, in one transaction
/// whose commit also tells the other instances.
pub(super) async fn request_integration_delete(
    store: &PgStore,
    company: CompanyId,
    id: IntegrationId,
    client_request_id: &str,
) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    let marked = sqlx::query(
        "UPDATE integrations SET deleted = true \
         WHERE company_id = $1 AND id = $2 AND NOT deleted",
    )
    .bind(company)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() == 0 {
        return Err(StoreError::UnknownIntegration(id));
    }
    sqlx::query(
        "INSERT INTO requests (company_id, client_request_id, integration_id, kind, status) \
         VALUES ($1, $2, $3, 'DELETE_INTEGRATION', 'PENDING')",
    )
    .bind(company)
    .bind(client_request_id)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
    // Delivered to the listeners when the transaction commits.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get_schema(
    store: &PgStore,
    integration: IntegrationId,
    object_type: Option<ObjectType>,
) -> Result<Vec<(ObjectType, FieldDef)>> {
    let rows: Vec<SchemaRow> = sqlx::query_as(
        "SELECT object_type, definition FROM schema_fields WHERE integration_id = $1 \
         AND ($2::smallint IS NULL OR object_type = $2) ORDER BY object_type, unique_name",
    )
    .bind(integration)
    .bind(object_type.map(ObjectType::code))
    .fetch_all(&store.pool)
    .await?;
    rows::schema(rows)
}

pub(super) async fn replace_schema(
    store: &PgStore,
    integration: IntegrationId,
    object_type: ObjectType,
    plan: &SchemaPlan,
) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    // Two replacements of one integration's schema run one after the other, as they do
    // behind SQLite's write lock (integration ids are random 63-bit values: no other
    // advisory lock key of ours comes near them).
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(integration)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM schema_fields WHERE integration_id = $1 AND object_type = $2")
        .bind(integration)
        .bind(object_type.code())
        .execute(&mut *tx)
        .await?;
    if !plan.keep.is_empty() {
        let names: Vec<&str> = plan.keep.iter().map(|f| f.unique_name.as_str()).collect();
        let definitions: Vec<String> = plan
            .keep
            .iter()
            .map(|f| serde_json::to_string(f).expect("field definitions serialize"))
            .collect();
        sqlx::query(
            "INSERT INTO schema_fields (integration_id, object_type, unique_name, definition) \
             SELECT $1, $2, f.unique_name, f.definition \
             FROM UNNEST($3::text[], $4::text[]) AS f(unique_name, definition)",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(names)
        .bind(definitions)
        .execute(&mut *tx)
        .await?;
    }
    for name in &plan.drop_values_of {
        drop_values(&mut tx, integration, object_type, name).await?;
    }
    super::board::drop_facts(&mut tx, integration, object_type, &plan.drop_values_of).await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct BodyRow {
    object_id: String,
    modified: i64,
    seq: i64,
    body: String,
}

/// Removes the top-level key `name` from every stored version of one type, page by page
/// in primary-key order. The bodies are rewritten here rather than with `jsonb - name`:
/// jsonb would reorder the keys and respace the text that GET returns verbatim (and it
/// refuses `\u0000`), where SQLite's `json_remove` leaves everything else as it was.
async fn drop_values(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    integration: IntegrationId,
    object_type: ObjectType,
    name: &str,
) -> Result<()> {
    // Bodies change in place in every tier: no merge may copy one meanwhile.
    super::tiers::exclude_merge(tx).await?;
    // The key as the model writes it; a body that lacks this text lacks the key.
    let needle = serde_json::to_string(name).expect("strings serialize");
    // Keyset pagination from before the first key (object ids are never empty).
    let mut after = (String::new(), i64::MIN, i64::MIN);
    loop {
        let rows: Vec<BodyRow> = sqlx::query_as(
            "SELECT object_id, modified, seq, body FROM all_versions \
             WHERE integration_id = $1 AND object_type = $2 \
             AND (object_id, modified, seq) > ($3, $4, $5) \
             AND strpos(body, $6) > 0 \
             ORDER BY object_id, modified, seq LIMIT $7",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(&after.0)
        .bind(after.1)
        .bind(after.2)
        .bind(&needle)
        .bind(DROP_VALUES_PAGE)
        .fetch_all(&mut **tx)
        .await?;
        let (mut ids, mut modified, mut seqs, mut bodies) = (vec![], vec![], vec![], vec![]);
        for row in &rows {
            if let Some(body) = without_key(&row.body, name) {
                ids.push(row.object_id.as_str());
                modified.push(row.modified);
                seqs.push(row.seq);
                bodies.push(body);
            }
        }
        // In every tier (a version replayed across a swap is in two).
        for table in super::tiers::VERSION_TABLES
            .iter()
            .filter(|_| !ids.is_empty())
        {
            sqlx::query(&format!(
                "UPDATE {table} r SET body = u.body \
                 FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
                     AS u(object_id, modified, seq, body) \
                 WHERE r.integration_id = $1 AND r.object_type = $2 \
                 AND r.object_id = u.object_id AND r.modified = u.modified AND r.seq = u.seq"
            ))
            .bind(integration)
            .bind(object_type.code())
            .bind(&ids)
            .bind(&modified)
            .bind(&seqs)
            .bind(&bodies)
            .execute(&mut **tx)
            .await?;
        }
        let Some(last) = rows
            .last()
            .filter(|_| rows.len() as i64 >= DROP_VALUES_PAGE)
        else {
            return Ok(());
        };
        after = (last.object_id.clone(), last.modified, last.seq);
    }
}

crate::same_sql::integration_statements!(PgStore, read: pool);
