//! The store's contract, checked against both backends through the `Store` trait: each
//! case in `contract_tests!` runs once on SQLite (`sqlite::case`) and once on a fresh
//! PostgreSQL database (`postgres::case`, skipped loudly when PostgreSQL is unreachable
//! unless `INTAKE_REQUIRE_POSTGRES=1`), so the SQLite contract runs without PostgreSQL.
//! Beside them: what only one backend has (SQLite's key tiers and migration, PostgreSQL's
//! instances sharing one database) and the differential check of the two.

mod board;
mod cluster;
mod common;
mod contract;
mod faults;
mod lookups;
mod ops;
mod pg_tiers;
mod rates;
mod scenario;
mod sessions;
mod tiers;

/// Declares each contract case once per backend: `contract_tests!(name, ...)` expects
/// `async fn name(site: common::Site)` in scope and makes `sqlite::name` and
/// `postgres::name` (as the end-to-end tests' `backend_tests!` does).
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Site::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(site) = $crate::common::Site::postgres().await {
                        super::$name(site).await;
                    }
                }
            )*
        }
    };
}
