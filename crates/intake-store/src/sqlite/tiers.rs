//! Version keys in two tiers: inserts go to the small `recent_version_keys`, which idle
//! time (or, past a size, the time between two requests) merges into the main
//! `version_keys` in key order, in steps sized by the main-index pages they rewrite. The
//! purge of an integration goes through both tiers in the same kind of steps.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use sqlx::SqlitePool;

use super::SqliteStore;
use crate::{IntegrationId, Result};

/// Pages of the main key index that one merge step should rewrite, about: a step holds
/// the write lock, which new uploads wait for, and 2,000 pages take ~0.1 s.
const MERGE_STEP_PAGES: i64 = 2_000;

/// Keys on one leaf page of a key index, about (measured: ~4 KiB pages of ~35-byte keys).
const KEYS_PER_PAGE: i64 = 100;

/// The most keys one merge or purge step takes, however few pages they touch.
const MAX_STEP_KEYS: i64 = 100_000;

/// Versions one purge step deletes: their bodies lie anywhere in `record_versions`.
const PURGE_STEP_KEYS: i64 = 20_000;

/// The recent tier is merged at once, even while work waits, when it holds this many keys
/// and at least a quarter of the main tier's: past that, inserting into it starts to cost
/// what the tiers are there to avoid.
const FORCED_MERGE_MIN_KEYS: i64 = 1_000_000;

pub(super) const RECENT: &str = "recent_version_keys";
pub(super) const MAIN: &str = "version_keys";

/// How many version keys each tier holds: a copy of `version_key_tiers`, set from the
/// transactions that change it.
pub(super) struct KeyTiers {
    main: AtomicI64,
    recent: AtomicI64,
    max_step_keys: AtomicI64,
    forced_min: AtomicI64,
    forced: AtomicBool,
}

impl KeyTiers {
    pub(super) async fn load(pool: &SqlitePool) -> Result<KeyTiers> {
        let (main, recent): (i64, i64) =
            sqlx::query_as("SELECT main_keys, recent_keys FROM version_key_tiers WHERE id = 1")
                .fetch_one(pool)
                .await?;
        Ok(KeyTiers {
            main: AtomicI64::new(main),
            recent: AtomicI64::new(recent),
            max_step_keys: AtomicI64::new(MAX_STEP_KEYS),
            forced_min: AtomicI64::new(FORCED_MERGE_MIN_KEYS),
            forced: AtomicBool::new(false),
        })
    }

    pub(super) fn set(&self, (main, recent): (i64, i64)) {
        self.main.store(main, Ordering::Relaxed);
        self.recent.store(recent, Ordering::Relaxed);
    }
}

impl SqliteStore {
    /// How many version keys the main and the recent tier hold (for tests and logs).
    pub fn key_tiers(&self) -> (i64, i64) {
        (
            self.tiers.main.load(Ordering::Relaxed),
            self.tiers.recent.load(Ordering::Relaxed),
        )
    }

    /// For tests: sets the most keys one merge or purge step takes, and the fewest recent
    /// keys that force a merge while work waits (tests use small numbers).
    pub fn set_merge_tuning(&self, max_step_keys: i64, forced_min_keys: i64) {
        self.tiers
            .max_step_keys
            .store(max_step_keys.max(1), Ordering::Relaxed);
        self.tiers
            .forced_min
            .store(forced_min_keys, Ordering::Relaxed);
    }

    fn max_step_keys(&self) -> i64 {
        self.tiers.max_step_keys.load(Ordering::Relaxed)
    }
}

/// (integration, object type, object id, modifiedDate, request sequence)
type VersionKey = (i64, i64, String, i64, i64);

/// The first keys of a tier, up to some key: an SQL condition and what it binds.
struct KeyRange {
    condition: String,
    integration: Option<IntegrationId>,
    last: Option<VersionKey>,
}

impl KeyRange {
    /// The first `chunk` keys of `tier` in key order (of one integration, when given), or
    /// all if fewer.
    async fn first(
        tx: &mut sqlx::SqliteConnection,
        tier: &str,
        integration: Option<IntegrationId>,
        chunk: i64,
    ) -> Result<KeyRange> {
        let of_integration = if integration.is_some() {
            "integration_id = ?"
        } else {
            "1"
        };
        let sql = format!(
            "SELECT integration_id, object_type, object_id, modified, seq FROM {tier} \
             WHERE {of_integration} \
             ORDER BY integration_id, object_type, object_id, modified, seq LIMIT 1 OFFSET ?"
        );
        let mut query = sqlx::query_as(&sql);
        if let Some(integration) = integration {
            query = query.bind(integration);
        }
        let last: Option<VersionKey> = query.bind(chunk - 1).fetch_optional(tx).await?;
        let up_to_last = if last.is_some() {
            "(integration_id, object_type, object_id, modified, seq) <= (?, ?, ?, ?, ?)"
        } else {
            "1"
        };
        Ok(KeyRange {
            condition: format!("{of_integration} AND {up_to_last}"),
            integration,
            last,
        })
    }

    /// Runs each statement with `{keys}` standing for the range's condition; returns how
    /// many rows the last one changed.
    async fn run(&self, tx: &mut sqlx::SqliteConnection, statements: &[&str]) -> Result<i64> {
        let mut changed = 0;
        for statement in statements {
            let sql = statement.replace("{keys}", &self.condition);
            let mut query = sqlx::query(&sql);
            if let Some(integration) = self.integration {
                query = query.bind(integration);
            }
            if let Some(key) = &self.last {
                query = query
                    .bind(key.0)
                    .bind(key.1)
                    .bind(&key.2)
                    .bind(key.3)
                    .bind(key.4);
            }
            changed = query.execute(&mut *tx).await?.rows_affected() as i64;
        }
        Ok(changed)
    }
}

/// Adds to the tier counts inside `tx`, and returns the new counts.
pub(super) async fn count_keys(
    tx: &mut sqlx::SqliteConnection,
    main: i64,
    recent: i64,
) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "UPDATE version_key_tiers SET main_keys = main_keys + ?, recent_keys = recent_keys + ? \
         WHERE id = 1 RETURNING main_keys, recent_keys",
    )
    .bind(main)
    .bind(recent)
    .fetch_one(tx)
    .await?)
}

/// Moves the smallest keys of the recent tier, up to one chunk, into the main tier in
/// one transaction. Taken in key order, successive steps sweep the main tier once, so
/// a merge rewrites each of its pages about once however many keys it brings. Returns
/// how many keys moved.
async fn merge_step(store: &SqliteStore) -> Result<i64> {
    // The first c of r recent keys span c/r of the key space, so they land on about
    // min(c, c/r x main pages) pages: as many keys as touch MERGE_STEP_PAGES pages.
    let (main, recent) = store.key_tiers();
    let main_pages = (main / KEYS_PER_PAGE).max(1);
    let chunk = (MERGE_STEP_PAGES * (recent / main_pages).max(1)).min(store.max_step_keys());
    let mut tx = store.begin_write().await?;
    let keys = KeyRange::first(&mut tx, RECENT, None, chunk).await?;
    let moved = keys
        .run(
            &mut tx,
            &[
                &format!(
                    "INSERT OR ROLLBACK INTO {MAIN} \
                     (integration_id, object_type, object_id, modified, seq, version_id) \
                     SELECT integration_id, object_type, object_id, modified, seq, version_id \
                     FROM {RECENT} WHERE {{keys}}"
                ),
                &format!("DELETE FROM {RECENT} WHERE {{keys}}"),
            ],
        )
        .await?;
    let counts = count_keys(&mut tx, moved, -moved).await?;
    tx.commit().await?;
    store.tiers.set(counts);
    Ok(moved)
}

/// Deletes the versions of `integration` whose keys come first in `tier`, up to one
/// chunk, in one transaction. Returns how many went.
pub(super) async fn purge_step(
    store: &SqliteStore,
    integration: IntegrationId,
    tier: &'static str,
) -> Result<i64> {
    let mut tx = store.begin_write().await?;
    let chunk = PURGE_STEP_KEYS.min(store.max_step_keys());
    let keys = KeyRange::first(&mut tx, tier, Some(integration), chunk).await?;
    let removed = keys
        .run(
            &mut tx,
            &[
                &format!(
                    "DELETE FROM record_versions WHERE id IN \
                     (SELECT version_id FROM {tier} WHERE {{keys}})"
                ),
                &format!("DELETE FROM {tier} WHERE {{keys}}"),
            ],
        )
        .await?;
    let counts = match tier {
        RECENT => count_keys(&mut tx, 0, -removed).await?,
        _ => count_keys(&mut tx, -removed, 0).await?,
    };
    tx.commit().await?;
    store.tiers.set(counts);
    Ok(removed)
}

/// One merge step when idle, or when the recent tier has grown past the forced threshold
/// (a forced merge, once started, goes on until the recent tier is empty).
pub(super) async fn maintain(store: &SqliteStore, idle: bool) -> Result<bool> {
    let (main, recent) = store.key_tiers();
    let tiers = &store.tiers;
    if recent == 0 {
        tiers.forced.store(false, Ordering::Relaxed);
        return Ok(false);
    }
    if idle {
        return Ok(merge_step(store).await? > 0);
    }
    if !tiers.forced.load(Ordering::Relaxed) {
        if recent < tiers.forced_min.load(Ordering::Relaxed).max(main / 4) {
            return Ok(false);
        }
        tiers.forced.store(true, Ordering::Relaxed);
    }
    let moved = merge_step(store).await?;
    if moved == 0 {
        tiers.forced.store(false, Ordering::Relaxed);
    }
    Ok(moved > 0)
}
