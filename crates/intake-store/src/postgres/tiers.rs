//! Recent tiers of versions and look-up keys (migration 0012). A batch writes into the
//! active one of two small recent tables (`recent_versions_N`, `recent_lookup_keys_N`), so
//! its index inserts land on a small index whatever the store holds. A merge, in a task of
//! its own beside the worker, swaps the two and moves the inactive one into the main tables
//! (`record_versions`, `lookup_keys`) in key order, then empties it with `TRUNCATE`: no
//! row is ever deleted, so no dead tuples (the `DELETE … RETURNING` tier of an earlier
//! round left them, see BENCHMARKS.md). Reads go through the views `all_versions` and
//! `all_lookup_keys`.
//!
//! Look-up keys are written by the keyer (`lookups::key_uploads`), which finds the
//! versions not keyed yet in the recent tiers by request and line: a merge keys every
//! upload first, so a version leaves its tier keyed.
//!
//! Exactness:
//! - a batch reads the active tier `FOR SHARE` in its transaction; the swap's `UPDATE`
//!   waits for every such batch, so once it commits nothing writes to the tier it left;
//! - one merge at a time over every instance: a session advisory lock held from the swap to
//!   the commit of the merge, so a tier is never swapped back in while it is merged;
//! - the writers that change stored rows in place (purge, erasure, a schema change that
//!   drops values) take the same lock shared for their transaction: a merge never copies a
//!   row one of them is changing;
//! - `TRUNCATE` is not MVCC-safe, so it is taken with `NOWAIT` (retried) once no reader
//!   holds the tier: a statement locks every table of the view before it takes its
//!   snapshot, and the one multi-statement snapshot (`REPEATABLE READ`, the associations)
//!   locks the recent tiers before its first read ([`LOCK_RECENT`]);
//! - a version is in one tier, except one replayed across a swap, and, during a merge,
//!   one already copied into the main table (in committed batches, see [`move_rows`]) and
//!   not yet truncated from its tier: then both copies are the same row; the merge keeps
//!   one (`ON CONFLICT DO NOTHING`) and every read allows for it (the history read shows
//!   one).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use super::PgStore;
use crate::Result;

/// Every table that holds versions: the main one and the two recent tiers.
pub(super) const VERSION_TABLES: [&str; 3] =
    ["record_versions", "recent_versions_0", "recent_versions_1"];
/// Every table that holds look-up keys.
pub(super) const LOOKUP_TABLES: [&str; 3] = [
    "lookup_keys",
    "recent_lookup_keys_0",
    "recent_lookup_keys_1",
];

/// The recent table of versions of a tier (0 or 1).
pub(super) fn recent_versions(tier: i16) -> &'static str {
    VERSION_TABLES[1 + (tier & 1) as usize]
}

/// The recent table of look-up keys of a tier (0 or 1).
pub(super) fn recent_lookup_keys(tier: i16) -> &'static str {
    LOOKUP_TABLES[1 + (tier & 1) as usize]
}

/// The first statement of a multi-statement snapshot: locks the recent tiers (before the
/// snapshot is taken), so that no merge truncates one while the snapshot may read it.
pub(super) const LOCK_RECENT: &str = "LOCK TABLE recent_versions_0, recent_versions_1, \
     recent_lookup_keys_0, recent_lookup_keys_1 IN ACCESS SHARE MODE";

/// The advisory lock of the merge ("intake" and the number).
const MERGE_LOCK: i64 = 0x696e_7461_6b65_0017;

/// The active tier's size (versions and keys, bytes on disk) past which a merge starts
/// even while work waits: past it a batch starts to cost what the tiers are there to avoid.
const FORCED_MERGE_BYTES: i64 = 512 << 20;

/// How long the merge tries to take its tier from the readers before it gives up (and
/// tries again later); each try is `NOWAIT`, so readers never queue behind it.
const TRUNCATE_PATIENCE: Duration = Duration::from_secs(60);

/// Takes the merge lock shared for the transaction: for the writers that change rows
/// stored in any tier, so that a merge never copies a row they are changing.
pub(super) async fn exclude_merge(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(MERGE_LOCK)
        .execute(tx)
        .await?;
    Ok(())
}

/// This instance's merge task, if one runs.
#[derive(Default)]
pub(super) struct Merges {
    running: Arc<AtomicBool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Merges {
    pub(super) fn abort(&self) {
        if let Some(task) = self.task.lock().expect("merge task lock").take() {
            task.abort();
        }
    }
}

/// Starts a merge in the background when one is due: when idle, as soon as a recent tier
/// holds anything; otherwise once the active tier is past [`FORCED_MERGE_BYTES`]. Never
/// reports a step done: the worker goes on with its work while the merge runs.
pub(super) async fn maintain(store: &PgStore, idle: bool) -> Result<bool> {
    if store.merges.running.load(Ordering::Acquire) {
        return Ok(false);
    }
    let due: bool = if idle {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM recent_versions_0) \
                 OR EXISTS (SELECT 1 FROM recent_versions_1) \
                 OR EXISTS (SELECT 1 FROM recent_lookup_keys_0) \
                 OR EXISTS (SELECT 1 FROM recent_lookup_keys_1)",
        )
        .fetch_one(&store.pool)
        .await?
    } else {
        sqlx::query_scalar(
            "SELECT CASE active \
                 WHEN 0 THEN pg_relation_size('recent_versions_0') \
                     + pg_relation_size('recent_lookup_keys_0') \
                 ELSE pg_relation_size('recent_versions_1') \
                     + pg_relation_size('recent_lookup_keys_1') END > $1 \
             FROM version_tiers WHERE id = 1",
        )
        .bind(FORCED_MERGE_BYTES)
        .fetch_one(&store.pool)
        .await?
    };
    if !due || store.merges.running.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    let pool = store.pool.clone();
    let running = store.merges.running.clone();
    let task = tokio::spawn(async move {
        if let Err(err) = merge(&pool).await {
            tracing::warn!("merge of the recent tier failed, will try again: {err}");
        }
        running.store(false, Ordering::Release);
    });
    *store.merges.task.lock().expect("merge task lock") = Some(task);
    Ok(false)
}

/// What one merge moved into the main tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub versions: u64,
    pub keys: u64,
}

/// Merges a recent tier into the main tables, here and now: the inactive one if it holds
/// anything (a merge that did not finish), else the active one after a swap. `None` when
/// another instance is merging or every tier is empty.
pub(super) async fn merge(pool: &PgPool) -> Result<Option<Merged>> {
    // A connection of its own, closed afterwards: the session lock goes with it, whatever
    // happens (an error, the task aborted).
    let mut conn = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(MERGE_LOCK)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        let _ = conn.close().await;
        return Ok(None);
    }
    let merged = merge_locked(pool, &mut conn).await;
    let _ = conn.close().await;
    merged
}

async fn merge_locked(pool: &PgPool, conn: &mut PgConnection) -> Result<Option<Merged>> {
    let (active, full0, full1): (i16, bool, bool) = sqlx::query_as(
        "SELECT active, \
             EXISTS (SELECT 1 FROM recent_versions_0) OR EXISTS (SELECT 1 FROM recent_lookup_keys_0), \
             EXISTS (SELECT 1 FROM recent_versions_1) OR EXISTS (SELECT 1 FROM recent_lookup_keys_1) \
         FROM version_tiers WHERE id = 1",
    )
    .fetch_one(&mut *conn)
    .await?;
    let full = |tier: i16| if tier == 0 { full0 } else { full1 };
    let inactive = 1 - active;
    let tier = if full(inactive) {
        inactive
    } else if full(active) {
        // Waits for the batches writing to it; after the commit none does.
        sqlx::query("UPDATE version_tiers SET active = $1, swaps = swaps + 1 WHERE id = 1")
            .bind(inactive)
            .execute(&mut *conn)
            .await?;
        active
    } else {
        return Ok(None);
    };
    // The keys of every line stored so far first: the keyer finds versions in the recent
    // tiers only, and no batch writes to this tier any more.
    super::lookups::key_uploads(pool, None).await?;
    let started = Instant::now();
    let (versions, keys) = (recent_versions(tier), recent_lookup_keys(tier));
    let moved = move_rows(&mut *conn, versions, "record_versions", &VERSION_KEY).await?;
    let moved_keys = move_rows(&mut *conn, keys, "lookup_keys", &LOOKUP_KEY).await?;
    let mut tx = conn.begin().await?;
    // TRUNCATE once no reader holds the tier, without making readers queue behind it.
    let waited = Instant::now();
    loop {
        sqlx::query("SAVEPOINT take_tier").execute(&mut *tx).await?;
        match sqlx::query(&format!(
            "LOCK TABLE {versions}, {keys} IN ACCESS EXCLUSIVE MODE NOWAIT"
        ))
        .execute(&mut *tx)
        .await
        {
            Ok(_) => break,
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("55P03")
                    && waited.elapsed() < TRUNCATE_PATIENCE =>
            {
                sqlx::query("ROLLBACK TO SAVEPOINT take_tier")
                    .execute(&mut *tx)
                    .await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    sqlx::query(&format!("TRUNCATE {versions}, {keys}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        versions = moved,
        keys = moved_keys,
        seconds = started.elapsed().as_secs_f64(),
        "recent tier {tier} merged into the main tables"
    );
    Ok(Some(Merged {
        versions: moved,
        keys: moved_keys,
    }))
}

/// The primary key of `record_versions` (and of its tiers), with its columns' types.
const VERSION_KEY: [(&str, &str); 5] = [
    ("integration_id", "bigint"),
    ("object_type", "smallint"),
    ("object_id", "text"),
    ("modified", "bigint"),
    ("seq", "bigint"),
];
/// The primary key of `lookup_keys` (and of its tiers).
const LOOKUP_KEY: [(&str, &str); 5] = [
    ("integration_id", "bigint"),
    ("kind", "smallint"),
    ("key_hash", "bigint"),
    ("object_type", "smallint"),
    ("object_id", "text"),
];

/// Rows copied per transaction of a merge (20,000; smaller in tests, see
/// [`PgStore::set_merge_batch_rows`]).
static MERGE_BATCH_ROWS: AtomicI64 = AtomicI64::new(20_000);

/// Copies every row of the tier `from` into `into`, in key order, [`MERGE_BATCH_ROWS`] a
/// transaction; returns how many were new. One transaction for the whole tier left its
/// rows uncommitted in the main index for the whole merge (14 s for the 500,000 versions
/// of a 200 MB upload), and every read over that key range stepped over each of them with
/// a heap fetch to find it invisible: a records page took 0.5 s during such a merge
/// (BENCHMARKS.md). Committed in batches, a read steps over one batch at most. The tier is
/// not written meanwhile (it is inactive), so the key bounds hold; a row copied and not yet
/// truncated is in two tiers, which every read allows for (the same row twice).
async fn move_rows(
    conn: &mut PgConnection,
    from: &str,
    into: &str,
    key: &[(&str, &str); 5],
) -> Result<u64> {
    let columns = key.map(|(c, _)| c).join(", ");
    // Named apart from the columns: an ORDER BY of an output column's name sorts by it,
    // and these are texts.
    let texts = key
        .iter()
        .enumerate()
        .map(|(k, (c, _))| format!("{c}::text AS bound_{k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let params = |first: usize| {
        key.iter()
            .enumerate()
            .map(|(k, (_, t))| format!("${}::{t}", first + k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut after: Option<[String; 5]> = None;
    let mut moved = 0;
    loop {
        let past = if after.is_some() {
            format!("({columns}) > ({})", params(1))
        } else {
            "true".to_owned()
        };
        // The last key of this batch; none when the rest is one batch.
        let bound_sql = format!(
            "SELECT {texts} FROM {from} WHERE {past} ORDER BY {columns} OFFSET {} LIMIT 1",
            MERGE_BATCH_ROWS.load(Ordering::Relaxed).max(1) - 1
        );
        let mut bound = sqlx::query_as::<_, (String, String, String, String, String)>(&bound_sql);
        for value in after.iter().flatten() {
            bound = bound.bind(value);
        }
        let upper = bound.fetch_optional(&mut *conn).await?;
        let through = if upper.is_some() {
            format!(
                " AND ({columns}) <= ({})",
                params(if after.is_some() { 6 } else { 1 })
            )
        } else {
            String::new()
        };
        let insert_sql = format!(
            "INSERT INTO {into} SELECT * FROM {from} WHERE {past}{through} \
             ORDER BY {columns} ON CONFLICT DO NOTHING"
        );
        let mut insert = sqlx::query(&insert_sql);
        for value in after.iter().flatten() {
            insert = insert.bind(value);
        }
        let upper = upper.map(|(a, b, c, d, e)| [a, b, c, d, e]);
        for value in upper.iter().flatten() {
            insert = insert.bind(value);
        }
        moved += insert.execute(&mut *conn).await?.rows_affected();
        match upper {
            Some(upper) => after = Some(upper),
            None => return Ok(moved),
        }
    }
}

impl PgStore {
    /// Sets the rows a merge copies per transaction, for every store of this process (for
    /// tests, so that a small store's merge takes several).
    pub fn set_merge_batch_rows(rows: i64) {
        MERGE_BATCH_ROWS.store(rows, Ordering::Relaxed);
    }

    /// Merges a recent tier into the main tables now, and waits for it (for tests and the
    /// benchmarks; the worker merges in the background by itself). `None` when there was
    /// nothing to merge or another instance is merging.
    pub async fn merge_recent_tier(&self) -> Result<Option<Merged>> {
        merge(&self.pool).await
    }

    /// How many versions and look-up keys the recent tiers hold, and which tier is active
    /// (for tests and logs).
    pub async fn recent_tiers(&self) -> Result<(i64, i64, i16)> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM recent_versions_0) + (SELECT count(*) FROM recent_versions_1), \
                 (SELECT count(*) FROM recent_lookup_keys_0) + (SELECT count(*) FROM recent_lookup_keys_1), \
                 active FROM version_tiers WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
