//! The embedded backend: one SQLite file in WAL mode. One instance owns it, so the rate
//! limiter, the request-status cache and the new-work signal live in memory.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::Notify;

use crate::Result;

mod admin;
mod board;
mod history;
mod integrations;
mod lookups;
mod ops;
mod queue;
mod rates;
mod records;
mod report_cache;
mod requests;
mod tiers;
mod webhooks;
mod write;

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
    /// For tests: a `max_page_count` for the writer, to make SQLite report a full disk
    /// (0: none set; `u64::MAX`: lifted).
    #[cfg(feature = "testing")]
    page_limit: std::sync::atomic::AtomicU64,
    /// Rows per chunk of `for_each_current` (see `history::CHUNK`).
    current_chunk: std::sync::atomic::AtomicI64,
    /// The deal board's latest facts per integration (see `board.rs`).
    board_cache: crate::board::BoardCache,
    /// Stops [`checkpoints`] when the store is dropped.
    _checkpoints: tokio::sync::oneshot::Sender<()>,
}

/// How often [`checkpoints`] copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Pages of WAL after which a connection that commits a write checkpoints itself in that
/// commit (SQLite's `wal_autocheckpoint`, for every connection): a bound on the WAL's size
/// (about 200 MB), reached only when [`checkpoints`] falls behind.
const AUTOCHECKPOINT_PAGES: &str = "50000";

/// Copies the WAL's committed pages into the database every [`CHECKPOINT_EVERY`]
/// (`wal_checkpoint(PASSIVE)`, which waits for no one), on a reading connection, until
/// `stop` is dropped: the copying is then done beside the writer instead of in its commits.
/// The writer, whose time bounds ingest, spent a third of it in commits that checkpointed
/// (the DEAL upload of the bench: 70-72k records/s with the writer checkpointing every 40
/// MB, 84-86k this way; BENCHMARKS.md).
async fn checkpoints(pool: SqlitePool, mut stop: tokio::sync::oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        // Busy when the writer checkpoints at that moment: the next round does it.
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!("background checkpoint: {err}");
        }
    }
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
            .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("cache_size", "-8192"))
            .await?;
        MIGRATOR.run(&writer).await?;
        let rates = rates::RateWindows::load(&writer, options.clone()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.pragma("cache_size", "-2048"))
            .await?;
        let tiers = tiers::KeyTiers::load(&pool).await?;
        let (stop_checkpoints, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(checkpoints(pool.clone(), stopped));
        let store = SqliteStore {
            pool,
            writer,
            new_work: Notify::new(),
            rates,
            reports: report_cache::ReportCache::default(),
            tiers,
            #[cfg(feature = "testing")]
            page_limit: std::sync::atomic::AtomicU64::new(0),
            current_chunk: std::sync::atomic::AtomicI64::new(history::CHUNK),
            board_cache: Default::default(),
            _checkpoints: stop_checkpoints,
        };
        Ok(store)
    }
}

fn now_secs() -> i64 {
    crate::now_unix_ms() / 1000
}

#[cfg(feature = "testing")]
impl SqliteStore {
    /// For tests: lets the database grow by at most `pages` more pages (`None` lifts the
    /// limit), so that writes past it fail as on a full disk (`SQLITE_FULL`). The limit
    /// holds for the writer connection, including one opened to replace it.
    pub async fn limit_growth_for_tests(&self, pages: Option<u64>) -> Result<()> {
        use std::sync::atomic::Ordering;
        let limit = match pages {
            Some(pages) => {
                let now: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(&self.writer)
                    .await?;
                now as u64 + pages
            }
            None => u64::MAX,
        };
        self.page_limit.store(limit, Ordering::Relaxed);
        let mut conn = self.writer.acquire().await?;
        self.apply_page_limit(&mut conn).await
    }

    async fn apply_page_limit(&self, conn: &mut sqlx::SqliteConnection) -> Result<()> {
        let limit = match self.page_limit.load(std::sync::atomic::Ordering::Relaxed) {
            0 => return Ok(()),
            u64::MAX => 4_294_967_294,
            limit => limit,
        };
        sqlx::query(&format!("PRAGMA max_page_count = {limit}"))
            .execute(conn)
            .await?;
        Ok(())
    }
}
