//! Companies, access keys and tokens. Creation times are the database's defaults.

use super::PgStore;
use crate::rows::encode_scopes;
use crate::{conflict_on_unique, Company, CompanyId, Result, StoreError};

pub(super) async fn create_company(store: &PgStore, name: &str) -> Result<Company> {
    // The NOT EXISTS guard keeps a refused name from using up an id, as in SQLite.
    let created: Option<Company> = sqlx::query_as(
        "INSERT INTO companies (name) SELECT $1 \
         WHERE NOT EXISTS (SELECT 1 FROM companies WHERE name = $1) \
         RETURNING id, name, created_at",
    )
    .bind(name)
    .fetch_optional(&store.pool)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::CompanyExists(name.to_string())))?;
    created.ok_or_else(|| StoreError::CompanyExists(name.to_string()))
}

pub(super) async fn insert_access_key(
    store: &PgStore,
    company: CompanyId,
    key: &str,
    hash: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO access_keys (access_key, company_id, secret_hash) VALUES ($1, $2, $3)",
    )
    .bind(key)
    .bind(company)
    .bind(hash)
    .execute(&store.pool)
    .await?;
    Ok(())
}

pub(super) async fn insert_token(
    store: &PgStore,
    company: CompanyId,
    token_id: &str,
    hash: &[u8],
    scopes: &[String],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (token_id, company_id, secret_hash, scopes) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_id)
    .bind(company)
    .bind(hash)
    .bind(encode_scopes(scopes))
    .execute(&store.pool)
    .await?;
    Ok(())
}

crate::same_sql::admin_statements!(PgStore, read: pool, write: pool);

crate::same_sql::session_statements!(PgStore, write: pool);
