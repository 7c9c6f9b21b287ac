//! Companies, access keys and tokens.

use super::{now_secs, SqliteStore};
use crate::rows::encode_scopes;
use crate::{conflict_on_unique, Company, CompanyId, Result, StoreError};

pub(super) async fn create_company(store: &SqliteStore, name: &str) -> Result<Company> {
    sqlx::query_as(
        "INSERT INTO companies (name, created_at) VALUES (?, ?) RETURNING id, name, created_at",
    )
    .bind(name)
    .bind(now_secs())
    .fetch_one(&store.writer)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::CompanyExists(name.to_string())))
}

pub(super) async fn insert_access_key(
    store: &SqliteStore,
    company: CompanyId,
    key: &str,
    hash: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO access_keys (access_key, company_id, secret_hash, created_at) \
         VALUES (?, ?, ?, ?)",
    )
    .bind(key)
    .bind(company)
    .bind(hash)
    .bind(now_secs())
    .execute(&store.writer)
    .await?;
    Ok(())
}

pub(super) async fn insert_token(
    store: &SqliteStore,
    company: CompanyId,
    token_id: &str,
    hash: &[u8],
    scopes: &[String],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (token_id, company_id, secret_hash, scopes, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(token_id)
    .bind(company)
    .bind(hash)
    .bind(encode_scopes(scopes))
    .bind(now_secs())
    .execute(&store.writer)
    .await?;
    Ok(())
}

crate::same_sql::admin_statements!(SqliteStore, read: pool, write: writer);

crate::same_sql::session_statements!(SqliteStore, write: writer);
