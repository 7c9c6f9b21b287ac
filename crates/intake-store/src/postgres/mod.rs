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

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::OnceCell;

use crate::Result;

mod admin;
mod copy;
mod history;
mod integrations;
mod notify;
mod queue;
mod rates;
mod records;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// Started on first use by a worker (admin commands never need it).
    work_signal: OnceCell<notify::WorkSignal>,
}

crate::delegate::impl_store!(PgStore, "postgres");

impl PgStore {
    /// Connects and runs the migrations. sqlx's PostgreSQL migrator holds an advisory lock
    /// while it works, so instances that start at once apply them exactly once.
    pub async fn open(url: &str) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)?.application_name("intake");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore {
            pool,
            work_signal: OnceCell::new(),
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(signal) = self.work_signal.get() {
            signal.task.abort();
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
