//! The scale-out backend: one PostgreSQL database shared by several instances.
//!
//! What SQLite keeps in memory lives in the database here, so that it holds across
//! instances: rate-limit windows are rows (`rate_windows`), leases are judged by the
//! database clock (`intake_now_ms()`), and new work is announced with
//! `NOTIFY intake_work`, which every instance's listener forwards to its worker.
//! Writes that belong together are single statements (data-modifying CTEs) where possible,
//! so a batch of any size costs one round trip.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;
use tokio::sync::OnceCell;

use crate::{Result, StoreError};

mod admin;
mod board;
mod copy;
mod history;
mod integrations;
mod lookups;
mod notify;
mod ops;
mod queue;
mod rates;
mod records;
mod requests;
mod tiers;
mod webhooks;

pub use tiers::Merged;

/// How long opening the store waits for PostgreSQL to accept a first connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// Started on first use by a worker (admin commands never need it).
    work_signal: OnceCell<notify::WorkSignal>,
    /// The deal board's latest facts per integration (see `board.rs`).
    board_cache: crate::board::BoardCache,
    /// The merge of a recent tier this instance runs, if any (see `tiers.rs`).
    merges: tiers::Merges,
}

crate::delegate::impl_store!(PgStore, "postgres");

impl PgStore {
    /// Connects and runs the migrations. sqlx's PostgreSQL migrator holds an advisory lock
    /// while it works, so instances that start at once apply them exactly once.
    ///
    /// One connection is made first, within [`CONNECT_TIMEOUT`], so that an unreachable
    /// database fails at once with [`StoreError::Unreachable`] naming host:port and the
    /// cause, rather than after the pool's 30 s acquire timeout with only "pool timed out".
    pub async fn open(url: &str) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)?.application_name("intake");
        let unreachable = |cause: String| StoreError::Unreachable {
            target: format!(
                "{}:{} (database {:?})",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            ),
            cause,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(err)) => return Err(unreachable(err.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let store = PgStore {
            pool,
            work_signal: OnceCell::new(),
            board_cache: Default::default(),
            merges: Default::default(),
        };
        lookups::backfill(&store).await?;
        Ok(store)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(signal) = self.work_signal.get() {
            signal.task.abort();
        }
        self.merges.abort();
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
