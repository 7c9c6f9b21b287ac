//! For tests (cargo feature `testing`): a fresh PostgreSQL database per test, shared by the
//! store's tests and the end-to-end tests.
//!
//! PostgreSQL is found through `INTAKE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it is unreachable, a test says so
//! loudly and skips, unless `INTAKE_REQUIRE_POSTGRES=1`, which makes it fail.

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;

/// The server tests create their databases on.
pub fn base_url() -> String {
    std::env::var("INTAKE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Whether an unreachable PostgreSQL fails the test instead of skipping it.
pub fn postgres_required() -> bool {
    std::env::var("INTAKE_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

/// `base` with its database name replaced by `name`; its query (`?sslmode=...`) and
/// everything before the path stay as they are.
pub fn database_url(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((main, query)) => (main, format!("?{query}")),
        None => (base, String::new()),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let end = main[authority_start..]
        .find('/')
        .map_or(main.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &main[..end])
}

/// A PostgreSQL database made for one test and dropped (with its connections) when this is
/// dropped, whether the test passed or not.
pub struct TestDatabase {
    /// The new database's URL.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A fresh database on [`base_url`]; `None` (after saying so loudly) when PostgreSQL is
    /// unreachable, unless [`postgres_required`], which panics instead.
    pub async fn create() -> Option<TestDatabase> {
        TestDatabase::create_on(&base_url()).await
    }

    /// A fresh database on the server `admin_url` names (its database is where
    /// `CREATE DATABASE` runs).
    pub async fn create_on(admin_url: &str) -> Option<TestDatabase> {
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect(admin_url),
        )
        .await;
        let mut admin = match connected {
            Ok(Ok(conn)) => conn,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out after 5 s".to_string(),
                };
                if postgres_required() {
                    panic!(
                        "PostgreSQL at {admin_url} is required (INTAKE_REQUIRE_POSTGRES=1): {why}"
                    );
                }
                eprintln!(
                    "\n!!!!! SKIPPED: PostgreSQL is not reachable at {admin_url} ({why}); \
                     set INTAKE_TEST_POSTGRES_URL, or INTAKE_REQUIRE_POSTGRES=1 to fail !!!!!\n"
                );
                return None;
            }
        };
        let name = format!("intake_test_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        Some(TestDatabase {
            url: database_url(admin_url, &name),
            admin_url: admin_url.to_string(),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // On a thread of its own: a drop may run inside a runtime, which cannot block on
        // another.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Runs `test` against a fresh database (its URL as argument), then drops the database,
/// whether the test passed or not; does nothing (loudly) when PostgreSQL is unreachable and
/// not required.
pub async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let outcome = tokio::spawn(test(db.url.clone())).await;
    drop(db);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_name_replaces_the_path_only() {
        assert_eq!(
            database_url("postgres://u@h:1/db?x=1", "n"),
            "postgres://u@h:1/n?x=1"
        );
        assert_eq!(
            database_url(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "n"
            ),
            "postgres://postgres@127.0.0.1:5432/n?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "n"), "postgres://h/n");
        assert_eq!(
            database_url("postgres://h?sslmode=disable", "n"),
            "postgres://h/n?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://u:p@h/d/x", "n"),
            "postgres://u:p@h/n"
        );
    }
}
