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

/// The web console's sessions.
macro_rules! session_statements {
    ($store:ty, write: $write:ident) => {
        pub(super) async fn insert_ui_session(
            store: &$store,
            session: &$crate::UiSession,
            expired_before_ms: i64,
        ) -> $crate::Result<()> {
            let sql = "DELETE FROM ui_sessions WHERE last_seen_ms < $1";
            sqlx::query(sql)
                .bind(expired_before_ms)
                .execute(&store.$write)
                .await?;
            let sql = "INSERT INTO ui_sessions \
                       (id_hash, access_key, company_id, csrf_token, created_ms, last_seen_ms) \
                       VALUES ($1, $2, $3, $4, $5, $6)";
            sqlx::query(sql)
                .bind(&session.id_hash)
                .bind(&session.access_key)
                .bind(session.company_id)
                .bind(&session.csrf_token)
                .bind(session.created_ms)
                .bind(session.last_seen_ms)
                .execute(&store.$write)
                .await?;
            Ok(())
        }

        pub(super) async fn touch_ui_session(
            store: &$store,
            id_hash: &[u8],
            now_ms: i64,
            expired_before_ms: i64,
        ) -> $crate::Result<Option<$crate::UiSession>> {
            let sql = "UPDATE ui_sessions SET last_seen_ms = $2 \
                       WHERE id_hash = $1 AND last_seen_ms >= $3 \
                       AND EXISTS (SELECT 1 FROM access_keys k \
                                   WHERE k.access_key = ui_sessions.access_key \
                                   AND k.company_id = ui_sessions.company_id AND NOT k.revoked) \
                       RETURNING id_hash, access_key, company_id, csrf_token, created_ms, \
                       last_seen_ms";
            Ok(sqlx::query_as(sql)
                .bind(id_hash)
                .bind(now_ms)
                .bind(expired_before_ms)
                .fetch_optional(&store.$write)
                .await?)
        }

        pub(super) async fn delete_ui_session(
            store: &$store,
            id_hash: &[u8],
        ) -> $crate::Result<()> {
            let sql = "DELETE FROM ui_sessions WHERE id_hash = $1";
            sqlx::query(sql).bind(id_hash).execute(&store.$write).await?;
            Ok(())
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

pub(crate) use {admin_statements, integration_statements, request_statements, session_statements};
