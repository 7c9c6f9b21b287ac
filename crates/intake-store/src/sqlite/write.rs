//! Write transactions on the one writer connection, begun, committed and rolled back by
//! this module rather than by sqlx's transaction manager.
//!
//! Why: sqlx counts a SQLite connection's transaction depth itself and lowers it only when
//! its COMMIT or ROLLBACK succeeds. After `SQLITE_FULL` (also `IOERR`, `BUSY`, `NOMEM`)
//! SQLite may already have rolled the transaction back on its own; sqlx's ROLLBACK then
//! fails with "no transaction is active", the depth stays at 1, and every later
//! `begin_with("BEGIN IMMEDIATE")` on that connection fails with "attempted to call
//! begin_with at non-zero transaction depth" — a full disk stopped the worker until the
//! process restarted. Here a failed transaction is always settled: ROLLBACK, where "no
//! transaction is active" counts as done, and a connection that cannot be settled is
//! closed (closing rolls back) so that the pool opens a fresh one.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::Result;

/// A transaction that took the write lock at once (`BEGIN IMMEDIATE`), so two writers
/// queue on the busy timeout instead of failing when a read would be upgraded. Dropped
/// without [`commit`](WriteTx::commit) or [`rollback`](WriteTx::rollback) (an error
/// returned with `?`, or the caller's future cancelled), it is rolled back by a task
/// before the connection is used again.
pub(super) struct WriteTx {
    conn: Option<PoolConnection<Sqlite>>,
}

impl SqliteStore {
    pub(super) async fn begin_write(&self) -> Result<WriteTx> {
        let mut conn = self.writer.acquire().await?;
        #[cfg(feature = "testing")]
        self.apply_page_limit(&mut conn).await?;
        // A BEGIN that fails starts nothing: the connection stays as it was.
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        Ok(WriteTx { conn: Some(conn) })
    }
}

impl WriteTx {
    pub(super) async fn commit(mut self) -> Result<()> {
        let mut conn = self.conn.take().expect("an open transaction");
        match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(err) => {
                settle(conn).await;
                Err(err.into())
            }
        }
    }

    pub(super) async fn rollback(mut self) -> Result<()> {
        settle(self.conn.take().expect("an open transaction")).await;
        Ok(())
    }
}

/// Ends whatever is left of a transaction on `conn` and gives the connection back, or
/// closes it when that fails.
async fn settle(mut conn: PoolConnection<Sqlite>) {
    match sqlx::query("ROLLBACK").execute(&mut *conn).await {
        Ok(_) => {}
        // SQLite rolled it back itself.
        Err(sqlx::Error::Database(db)) if db.message().contains("no transaction is active") => {}
        Err(err) => {
            tracing::warn!("closing the SQLite writer connection: rollback failed: {err}");
            drop(conn.detach());
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // The connection goes back to the pool only once the task has settled it.
            Ok(runtime) => {
                runtime.spawn(settle(conn));
            }
            // No runtime to roll back on: closing the connection rolls back.
            Err(_) => drop(conn.detach()),
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("an open transaction")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("an open transaction")
    }
}
