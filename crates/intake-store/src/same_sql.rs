//! The statements whose SQL is the same in both dialects, written once. SQLite takes
//! PostgreSQL's `$N` placeholders (sqlx binds them by number), `true`/`false` and
//! `NOT column`, so these need no second copy; what differs by dialect (defaults, clocks,
//! casts, `RETURNING` shapes, the key tiers) stays in each backend's modules.
//!
//! Each macro expands to `pub(super)` functions taking the backend's store first, in the
//! concern module that invokes it: `$read` names the pool that reads and `$write` the one
//! that writes.

/// Companies, access keys and tokens: lists, look-ups and revocations.
macro_rules! admin_statements {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        pub(super) async fn list_companies(store: &$store) -> $crate::Result<Vec<$crate::Company>> {
            let sql = "SELECT id, name, created_at FROM companies ORDER BY id";
            Ok(sqlx::query_as(sql).fetch_all(&store.$read).await?)
        }

        pub(super) async fn company_by_name(
            store: &$store,
            name: &str,
        ) -> $crate::Result<Option<$crate::Company>> {
            let sql = "SELECT id, name, created_at FROM companies WHERE name = $1";
            Ok(sqlx::query_as(sql)
                .bind(name)
                .fetch_optional(&store.$read)
                .await?)
        }

        pub(super) async fn list_access_keys(
            store: &$store,
        ) -> $crate::Result<Vec<$crate::AccessKeyInfo>> {
            let sql = "SELECT k.access_key, c.name AS company, k.created_at, k.revoked \
                       FROM access_keys k JOIN companies c ON c.id = k.company_id \
                       ORDER BY c.name, k.created_at";
            Ok(sqlx::query_as(sql).fetch_all(&store.$read).await?)
        }

        pub(super) async fn list_tokens(store: &$store) -> $crate::Result<Vec<$crate::TokenInfo>> {
            let sql = "SELECT t.token_id, c.name AS company, t.scopes, t.created_at, t.revoked \
                       FROM tokens t JOIN companies c ON c.id = t.company_id \
                       ORDER BY c.name, t.created_at";
            let rows: Vec<$crate::rows::TokenRow> =
                sqlx::query_as(sql).fetch_all(&store.$read).await?;
            Ok(rows.into_iter().map($crate::TokenInfo::from).collect())
        }

        pub(super) async fn find_access_key(
            store: &$store,
            key: &str,
        ) -> $crate::Result<Option<$crate::StoredCredential>> {
            let sql = "SELECT company_id, secret_hash, revoked FROM access_keys \
                       WHERE access_key = $1";
            let row: Option<$crate::rows::CredentialRow> = sqlx::query_as(sql)
                .bind(key)
                .fetch_optional(&store.$read)
                .await?;
            Ok(row.map($crate::StoredCredential::from))
        }

        pub(super) async fn find_token(
            store: &$store,
            token_id: &str,
        ) -> $crate::Result<Option<$crate::StoredCredential>> {
            let sql = "SELECT company_id, secret_hash, scopes, revoked FROM tokens \
                       WHERE token_id = $1";
            let row: Option<$crate::rows::CredentialRow> = sqlx::query_as(sql)
                .bind(token_id)
                .fetch_optional(&store.$read)
                .await?;
            Ok(row.map($crate::StoredCredential::from))
        }

        /// Returns false when there is no such key.
        pub(super) async fn revoke_access_key(store: &$store, key: &str) -> $crate::Result<bool> {
            let sql = "UPDATE access_keys SET revoked = true WHERE access_key = $1";
            let done = sqlx::query(sql).bind(key).execute(&store.$write).await?;
            Ok(done.rows_affected() > 0)
        }

        pub(super) async fn revoke_token(store: &$store, token_id: &str) -> $crate::Result<bool> {
            let sql = "UPDATE tokens SET revoked = true WHERE token_id = $1";
            let done = sqlx::query(sql)
                .bind(token_id)
                .execute(&store.$write)
                .await?;
            Ok(done.rows_affected() > 0)
        }
    };
}

/// The active integrations of a company.
macro_rules! integration_statements {
    ($store:ty, read: $read:ident) => {
        pub(super) async fn list_integrations(
            store: &$store,
            company: $crate::CompanyId,
        ) -> $crate::Result<Vec<$crate::Integration>> {
            let sql = "SELECT id, company_id, name, owner_email FROM integrations \
                       WHERE company_id = $1 AND NOT deleted";
            Ok(sqlx::query_as(sql)
                .bind(company)
                .fetch_all(&store.$read)
                .await?)
        }

        pub(super) async fn find_integration(
            store: &$store,
            company: $crate::CompanyId,
            id: $crate::IntegrationId,
        ) -> $crate::Result<Option<$crate::Integration>> {
            let sql = "SELECT id, company_id, name, owner_email FROM integrations \
                       WHERE company_id = $1 AND id = $2 AND NOT deleted";
            Ok(sqlx::query_as(sql)
                .bind(company)
                .bind(id)
                .fetch_optional(&store.$read)
                .await?)
        }
    };
}

/// Whether a company used a `clientRequestId`.
macro_rules! request_statements {
    ($store:ty, read: $read:ident) => {
        pub(super) async fn client_request_id_used(
            store: &$store,
            company: $crate::CompanyId,
            crid: &str,
        ) -> $crate::Result<bool> {
            let sql = "SELECT seq FROM requests WHERE company_id = $1 AND client_request_id = $2";
            let found: Option<i64> = sqlx::query_scalar(sql)
                .bind(company)
                .bind(crid)
                .fetch_optional(&store.$read)
                .await?;
            Ok(found.is_some())
        }
    };
}

pub(crate) use {admin_statements, integration_statements, request_statements};
