//! The embedded backend: one SQLite file in WAL mode. One instance owns it, so the rate
//! limiter, the request-status cache and the new-work signal live in memory.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::Notify;

use crate::Result;

mod admin;
mod history;
mod integrations;
mod queue;
mod rates;
mod records;
mod report_cache;
mod tiers;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    /// Connections that read.
    pool: SqlitePool,
    /// The one connection that writes: SQLite takes one writer at a time anyway, and the
    /// pages a write needs stay in one page cache instead of being read into several.
    writer: SqlitePool,
    new_work: Notify,
    rates: rates::RateWindows,
    reports: report_cache::ReportCache,
    tiers: tiers::KeyTiers,
    /// Rows per chunk of `for_each_current` (see `history::CHUNK`).
    current_chunk: std::sync::atomic::AtomicI64,
}

crate::delegate::impl_store!(SqliteStore, "sqlite");

impl SqliteStore {
    /// For tests: the rows per chunk of `for_each_current` (tests use small numbers, so
    /// that chunks end inside a record's versions).
    pub fn set_current_chunk(&self, rows: i64) {
        self.current_chunk
            .store(rows.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub async fn open(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "10000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("cache_size", "-8192"))
            .await?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.pragma("cache_size", "-2048"))
            .await?;
        let tiers = tiers::KeyTiers::load(&pool).await?;
        Ok(SqliteStore {
            pool,
            writer,
            new_work: Notify::new(),
            rates: rates::RateWindows::default(),
            reports: report_cache::ReportCache::default(),
            tiers,
            current_chunk: std::sync::atomic::AtomicI64::new(history::CHUNK),
        })
    }

    /// Write transactions take the write lock at once, so two writers queue on the busy
    /// timeout instead of failing when a read would be upgraded.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn now_secs() -> i64 {
    crate::now_unix_ms() / 1000
}
