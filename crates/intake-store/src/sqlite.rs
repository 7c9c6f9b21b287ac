//! The embedded backend: one SQLite file in WAL mode. One instance owns it, so the rate
//! limiter and the new-work signal live in memory.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use intake_model::{FieldDef, LineError, ObjectType, SchemaPlan};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::Notify;

use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per multi-row INSERT: 9 parameters each, well under SQLite's limit.
const ROWS_PER_INSERT: usize = 500;

// The multi-row inserts of versions and keys say OR ROLLBACK: a statement that may stop
// halfway with ABORT makes SQLite keep, in memory, a copy of every page it touches (the
// statement journal), which for a batch of keys grew with the index. None of them can meet
// a constraint unless something is badly wrong, and then the whole transaction goes.

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

pub struct SqliteStore {
    /// Connections that read.
    pool: SqlitePool,
    /// The one connection that writes: SQLite takes one writer at a time anyway, and the
    /// pages a write needs stay in one page cache instead of being read into several.
    writer: SqlitePool,
    new_work: Notify,
    rate_windows: Mutex<HashMap<CompanyId, RateWindows>>,
    reports: ReportCache,
    tiers: KeyTiers,
}

/// How many version keys each tier holds: a copy of `version_key_tiers`, set from the
/// transactions that change it.
struct KeyTiers {
    main: AtomicI64,
    recent: AtomicI64,
    max_step_keys: AtomicI64,
    forced_min: AtomicI64,
    forced: AtomicBool,
}

impl KeyTiers {
    fn set(&self, (main, recent): (i64, i64)) {
        self.main.store(main, Ordering::Relaxed);
        self.recent.store(recent, Ordering::Relaxed);
    }
}

const RECENT: &str = "recent_version_keys";
const MAIN: &str = "version_keys";

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
async fn count_keys(tx: &mut sqlx::SqliteConnection, main: i64, recent: i64) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "UPDATE version_key_tiers SET main_keys = main_keys + ?, recent_keys = recent_keys + ? \
         WHERE id = 1 RETURNING main_keys, recent_keys",
    )
    .bind(main)
    .bind(recent)
    .fetch_one(tx)
    .await?)
}

/// What request-status answers, kept in memory: one process owns the SQLite file, so
/// every change of a request passes through this store, which drops the request's entry
/// once the change is committed. A read that raced with a change does not fill the cache
/// (the generation tells), so an entry is never older than the database.
#[derive(Default)]
struct ReportCache {
    inner: Mutex<ReportCacheInner>,
}

#[derive(Default)]
struct ReportCacheInner {
    generation: u64,
    by_name: HashMap<(CompanyId, String), (RequestSeq, RequestReport)>,
    name_of: HashMap<RequestSeq, (CompanyId, String)>,
}

const CACHED_REPORTS: usize = 10_000;

impl ReportCache {
    fn generation(&self) -> u64 {
        self.inner.lock().expect("report cache poisoned").generation
    }

    fn get(&self, company: CompanyId, crid: &str) -> Option<RequestReport> {
        let inner = self.inner.lock().expect("report cache poisoned");
        inner
            .by_name
            .get(&(company, crid.to_string()))
            .map(|(_, report)| report.clone())
    }

    fn put(
        &self,
        seen_at: u64,
        company: CompanyId,
        crid: &str,
        seq: RequestSeq,
        report: &RequestReport,
    ) {
        let mut inner = self.inner.lock().expect("report cache poisoned");
        if inner.generation != seen_at {
            return;
        }
        if inner.by_name.len() >= CACHED_REPORTS {
            inner.by_name.clear();
            inner.name_of.clear();
        }
        let name = (company, crid.to_string());
        inner.name_of.insert(seq, name.clone());
        inner.by_name.insert(name, (seq, report.clone()));
    }

    fn forget(&self, seq: RequestSeq) {
        let mut inner = self.inner.lock().expect("report cache poisoned");
        inner.generation += 1;
        if let Some(name) = inner.name_of.remove(&seq) {
            inner.by_name.remove(&name);
        }
    }
}

#[derive(Default)]
struct RateWindows {
    second: i64,
    second_count: u32,
    day: i64,
    day_count: u32,
}

fn now_secs() -> i64 {
    now_unix_ms() / 1000
}

impl SqliteStore {
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
        let (main, recent): (i64, i64) =
            sqlx::query_as("SELECT main_keys, recent_keys FROM version_key_tiers WHERE id = 1")
                .fetch_one(&pool)
                .await?;
        Ok(SqliteStore {
            pool,
            writer,
            new_work: Notify::new(),
            rate_windows: Mutex::new(HashMap::new()),
            reports: ReportCache::default(),
            tiers: KeyTiers {
                main: AtomicI64::new(main),
                recent: AtomicI64::new(recent),
                max_step_keys: AtomicI64::new(MAX_STEP_KEYS),
                forced_min: AtomicI64::new(FORCED_MERGE_MIN_KEYS),
                forced: AtomicBool::new(false),
            },
        })
    }

    /// How many version keys the main and the recent tier hold.
    pub fn key_tiers(&self) -> (i64, i64) {
        (
            self.tiers.main.load(Ordering::Relaxed),
            self.tiers.recent.load(Ordering::Relaxed),
        )
    }

    /// Sets the most keys one merge or purge step takes, and the fewest recent keys that
    /// force a merge while work waits (tests use small numbers).
    pub fn set_merge_tuning(&self, max_step_keys: i64, forced_min_keys: i64) {
        self.tiers
            .max_step_keys
            .store(max_step_keys.max(1), Ordering::Relaxed);
        self.tiers
            .forced_min
            .store(forced_min_keys, Ordering::Relaxed);
    }

    /// Moves the smallest keys of the recent tier, up to one chunk, into the main tier in
    /// one transaction. Taken in key order, successive steps sweep the main tier once, so
    /// a merge rewrites each of its pages about once however many keys it brings. Returns
    /// how many keys moved.
    async fn merge_step(&self) -> Result<i64> {
        // The first c of r recent keys span c/r of the key space, so they land on about
        // min(c, c/r x main pages) pages: as many keys as touch MERGE_STEP_PAGES pages.
        let (main, recent) = self.key_tiers();
        let main_pages = (main / KEYS_PER_PAGE).max(1);
        let chunk = (MERGE_STEP_PAGES * (recent / main_pages).max(1)).min(self.max_step_keys());
        let mut tx = self.begin_write().await?;
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
        self.tiers.set(counts);
        Ok(moved)
    }

    /// Deletes the versions of `integration` whose keys come first in `tier`, up to one
    /// chunk, in one transaction. Returns how many went.
    async fn purge_step(&self, integration: IntegrationId, tier: &'static str) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let chunk = PURGE_STEP_KEYS.min(self.max_step_keys());
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
        self.tiers.set(counts);
        Ok(removed)
    }

    fn max_step_keys(&self) -> i64 {
        self.tiers.max_step_keys.load(Ordering::Relaxed)
    }

    /// Write transactions take the write lock at once, so two writers queue on the busy
    /// timeout instead of failing when a read would be upgraded.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_company(&self, name: &str) -> Result<Company> {
        let created_at = now_secs();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO companies (name, created_at) VALUES (?, ?) RETURNING id",
        )
        .bind(name)
        .bind(created_at)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::CompanyExists(name.to_string())))?;
        Ok(Company {
            id,
            name: name.to_string(),
            created_at,
        })
    }

    async fn list_companies(&self) -> Result<Vec<Company>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM companies ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Company {
                id: r.get(0),
                name: r.get(1),
                created_at: r.get(2),
            })
            .collect())
    }

    async fn company_by_name(&self, name: &str) -> Result<Option<Company>> {
        let row = sqlx::query("SELECT id, name, created_at FROM companies WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Company {
            id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
        }))
    }

    async fn insert_access_key(&self, company: CompanyId, key: &str, hash: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_keys (access_key, company_id, secret_hash, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(key)
        .bind(company)
        .bind(hash)
        .bind(now_secs())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_access_keys(&self) -> Result<Vec<AccessKeyInfo>> {
        let rows = sqlx::query(
            "SELECT k.access_key, c.name, k.created_at, k.revoked FROM access_keys k \
             JOIN companies c ON c.id = k.company_id ORDER BY c.name, k.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AccessKeyInfo {
                access_key: r.get(0),
                company: r.get(1),
                created_at: r.get(2),
                revoked: r.get(3),
            })
            .collect())
    }

    async fn revoke_access_key(&self, key: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE access_keys SET revoked = 1 WHERE access_key = ?")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_token(
        &self,
        company: CompanyId,
        token_id: &str,
        hash: &[u8],
        scopes: &[String],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (token_id, company_id, secret_hash, scopes, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_id)
        .bind(company)
        .bind(hash)
        .bind(scopes.join(" "))
        .bind(now_secs())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT t.token_id, c.name, t.scopes, t.created_at, t.revoked FROM tokens t \
             JOIN companies c ON c.id = t.company_id ORDER BY c.name, t.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TokenInfo {
                token_id: r.get(0),
                company: r.get(1),
                scopes: r
                    .get::<String, _>(2)
                    .split_whitespace()
                    .map(String::from)
                    .collect(),
                created_at: r.get(3),
                revoked: r.get(4),
            })
            .collect())
    }

    async fn revoke_token(&self, token_id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE tokens SET revoked = 1 WHERE token_id = ?")
            .bind(token_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_access_key(&self, key: &str) -> Result<Option<StoredCredential>> {
        let row = sqlx::query(
            "SELECT company_id, secret_hash, revoked FROM access_keys WHERE access_key = ?",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| StoredCredential {
            company_id: r.get(0),
            secret_hash: r.get(1),
            scopes: None,
            revoked: r.get(2),
        }))
    }

    async fn find_token(&self, token_id: &str) -> Result<Option<StoredCredential>> {
        let row = sqlx::query(
            "SELECT company_id, secret_hash, scopes, revoked FROM tokens WHERE token_id = ?",
        )
        .bind(token_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| StoredCredential {
            company_id: r.get(0),
            secret_hash: r.get(1),
            scopes: Some(
                r.get::<String, _>(2)
                    .split_whitespace()
                    .map(String::from)
                    .collect(),
            ),
            revoked: r.get(3),
        }))
    }

    async fn hit_rate_limit(
        &self,
        company: CompanyId,
        limits: RateLimits,
        now_ms: i64,
    ) -> Result<RateDecision> {
        let mut windows = self.rate_windows.lock().expect("rate limiter poisoned");
        let w = windows.entry(company).or_default();
        let (second, day) = (now_ms.div_euclid(1000), now_ms.div_euclid(86_400_000));
        if w.second != second {
            w.second = second;
            w.second_count = 0;
        }
        if w.day != day {
            w.day = day;
            w.day_count = 0;
        }
        w.second_count = w.second_count.saturating_add(1);
        w.day_count = w.day_count.saturating_add(1);
        Ok(if limits.per_day > 0 && w.day_count > limits.per_day {
            RateDecision::Limited {
                retry_after_secs: secs_to_next_utc_day(now_ms),
            }
        } else if limits.per_second > 0 && w.second_count > limits.per_second {
            RateDecision::Limited {
                retry_after_secs: 1,
            }
        } else {
            RateDecision::Allowed
        })
    }

    async fn register_integration(
        &self,
        company: CompanyId,
        name: &str,
        owner_email: &str,
    ) -> Result<Integration> {
        let id = random_integration_id();
        sqlx::query(
            "INSERT INTO integrations (id, company_id, name, owner_email, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(company)
        .bind(name)
        .bind(owner_email)
        .bind(now_secs())
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::IntegrationActive))?;
        Ok(Integration {
            id,
            company_id: company,
            name: name.to_string(),
            owner_email: owner_email.to_string(),
        })
    }

    async fn list_integrations(&self, company: CompanyId) -> Result<Vec<Integration>> {
        let rows = sqlx::query(
            "SELECT id, company_id, name, owner_email FROM integrations \
             WHERE company_id = ? AND deleted = 0",
        )
        .bind(company)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(integration_from_row).collect())
    }

    async fn find_integration(
        &self,
        company: CompanyId,
        id: IntegrationId,
    ) -> Result<Option<Integration>> {
        let row = sqlx::query(
            "SELECT id, company_id, name, owner_email FROM integrations \
             WHERE company_id = ? AND id = ? AND deleted = 0",
        )
        .bind(company)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(integration_from_row))
    }

    async fn request_integration_delete(
        &self,
        company: CompanyId,
        id: IntegrationId,
        client_request_id: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE integrations SET deleted = 1 WHERE company_id = ? AND id = ? AND deleted = 0",
        )
        .bind(company)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Err(StoreError::UnknownIntegration(id));
        }
        sqlx::query(
            "INSERT INTO requests (company_id, client_request_id, integration_id, kind, status, \
             accepted_at) VALUES (?, ?, ?, 'DELETE_INTEGRATION', 'PENDING', ?)",
        )
        .bind(company)
        .bind(client_request_id)
        .bind(id)
        .bind(now_secs())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
        tx.commit().await?;
        self.new_work.notify_one();
        Ok(())
    }

    async fn get_schema(
        &self,
        integration: IntegrationId,
        object_type: Option<ObjectType>,
    ) -> Result<Vec<(ObjectType, FieldDef)>> {
        let rows = sqlx::query(
            "SELECT object_type, definition FROM schema_fields WHERE integration_id = ? \
             AND (? IS NULL OR object_type = ?) ORDER BY object_type, unique_name",
        )
        .bind(integration)
        .bind(object_type.map(ObjectType::code))
        .bind(object_type.map(ObjectType::code))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| schema_row(r.get(0), r.get(1)))
            .collect()
    }

    async fn replace_schema(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        plan: &SchemaPlan,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM schema_fields WHERE integration_id = ? AND object_type = ?")
            .bind(integration)
            .bind(object_type.code())
            .execute(&mut *tx)
            .await?;
        for field in &plan.keep {
            sqlx::query(
                "INSERT INTO schema_fields (integration_id, object_type, unique_name, definition) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(integration)
            .bind(object_type.code())
            .bind(&field.unique_name)
            .bind(serde_json::to_string(field).expect("field definitions serialize"))
            .execute(&mut *tx)
            .await?;
        }
        for name in &plan.drop_values_of {
            let path = json_path(name);
            sqlx::query(
                "UPDATE record_versions SET body = json_remove(body, ?) \
                 WHERE id IN (SELECT version_id FROM all_version_keys \
                              WHERE integration_id = ? AND object_type = ?) \
                 AND json_type(body, ?) IS NOT NULL",
            )
            .bind(&path)
            .bind(integration)
            .bind(object_type.code())
            .bind(&path)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client_request_id_used(&self, company: CompanyId, crid: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM requests WHERE company_id = ? AND client_request_id = ?",
        )
        .bind(company)
        .bind(crid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn insert_upload(&self, upload: &NewUpload) -> Result<RequestSeq> {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO requests (company_id, client_request_id, integration_id, kind, \
             object_type, spool_file, status, accepted_at) \
             VALUES (?, ?, ?, 'UPLOAD', ?, ?, 'PENDING', ?) RETURNING seq",
        )
        .bind(upload.company_id)
        .bind(&upload.client_request_id)
        .bind(upload.integration_id)
        .bind(upload.object_type.code())
        .bind(&upload.spool_file)
        .bind(now_secs())
        .fetch_one(&self.writer)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
        self.new_work.notify_one();
        Ok(seq)
    }

    async fn request_report(
        &self,
        company: CompanyId,
        crid: &str,
    ) -> Result<Option<RequestReport>> {
        if let Some(report) = self.reports.get(company, crid) {
            return Ok(Some(report));
        }
        let seen_at = self.reports.generation();
        // One query: a request lists at most 20 errors (and a line-0 error), so joining them
        // costs little and spares a round trip on the API's most polled call.
        let rows = sqlx::query(
            "SELECT r.integration_id, r.status, r.success_count, r.error_count, \
                    e.line, e.description, r.seq \
             FROM requests r LEFT JOIN request_errors e ON e.seq = r.seq \
             WHERE r.company_id = ? AND r.client_request_id = ? \
             ORDER BY e.line LIMIT 20",
        )
        .bind(company)
        .bind(crid)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let errors = rows
            .iter()
            .filter_map(|r| {
                let line: Option<i64> = r.get(4);
                line.map(|line| LineError {
                    line: line as u64,
                    description: r.get(5),
                })
            })
            .collect();
        let report = RequestReport {
            integration_id: first.get(0),
            status: parse_status(first.get(1)),
            errors,
            success_count: first.get::<i64, _>(2) as u64,
            error_count: first.get::<i64, _>(3) as u64,
        };
        self.reports
            .put(seen_at, company, crid, first.get(6), &report);
        Ok(Some(report))
    }

    async fn claim_work(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedWork>> {
        let now = now_unix_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT seq, company_id, integration_id, kind, object_type, spool_file, accepted_at, \
             checkpoint_line, success_count, error_count, listed_errors FROM requests \
             WHERE status = 'PENDING' \
                OR (status = 'IN_PROGRESS' AND (lease_expires_ms IS NULL OR lease_expires_ms < ?)) \
             ORDER BY seq LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let work = claimed_from_row(&row)?;
        sqlx::query(
            "UPDATE requests SET status = 'IN_PROGRESS', lease_owner = ?, lease_expires_ms = ? \
             WHERE seq = ?",
        )
        .bind(worker)
        .bind(now + lease.as_millis() as i64)
        .bind(work.seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.reports.forget(work.seq);
        Ok(Some(work))
    }

    async fn heartbeat(
        &self,
        seq: RequestSeq,
        worker: &str,
        lease: Duration,
    ) -> Result<Result<(), LeaseLost>> {
        let done = sqlx::query(
            "UPDATE requests SET lease_expires_ms = ? WHERE seq = ? AND lease_owner = ? \
             AND status = 'IN_PROGRESS'",
        )
        .bind(now_unix_ms() + lease.as_millis() as i64)
        .bind(seq)
        .bind(worker)
        .execute(&self.writer)
        .await?;
        Ok(if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(LeaseLost)
        })
    }

    async fn apply_batch(
        &self,
        work: &ClaimedWork,
        worker: &str,
        batch: &Batch,
    ) -> Result<Result<(), LeaseLost>> {
        let mut tx = self.begin_write().await?;
        // Lines up to the checkpoint are stored already: a replayed batch adds nothing.
        let stored_through: i64 =
            sqlx::query_scalar("SELECT checkpoint_line FROM requests WHERE seq = ?")
                .bind(work.seq)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0);
        let owned = sqlx::query(
            "UPDATE requests SET checkpoint_line = ?, success_count = ?, error_count = ?, \
             listed_errors = listed_errors + ? \
             WHERE seq = ? AND lease_owner = ? AND status = 'IN_PROGRESS'",
        )
        .bind(batch.checkpoint_line as i64)
        .bind(batch.success_count as i64)
        .bind(batch.error_count as i64)
        .bind(batch.errors.len() as i64)
        .bind(work.seq)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if owned.rows_affected() != 1 {
            return Ok(Err(LeaseLost));
        }
        let object_type = match &work.kind {
            WorkKind::Upload { object_type, .. } => object_type.code(),
            WorkKind::DeleteIntegration => return Ok(Err(LeaseLost)),
        };
        // Bodies are appended under ids of their own; their keys go to the recent tier.
        let first_id: i64 =
            sqlx::query_scalar("SELECT coalesce(max(id), 0) + 1 FROM record_versions")
                .fetch_one(&mut *tx)
                .await?;
        let mut next_id = first_id;
        let new_records: Vec<_> = batch
            .records
            .iter()
            .filter(|(line, _)| *line as i64 > stored_through)
            .collect();
        for chunk in new_records.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR ROLLBACK INTO record_versions (id, integration_id, object_type, object_id, \
                 modified, seq, line, deleted, body) ",
            );
            insert.push_values(chunk, |mut row, &(line, record)| {
                row.push_bind(next_id)
                    .push_bind(work.integration_id)
                    .push_bind(object_type)
                    .push_bind(&record.object_id)
                    .push_bind(record.modified.unwrap_or(work.accepted_at))
                    .push_bind(work.seq)
                    .push_bind(*line as i64)
                    .push_bind(record.deleted)
                    .push_bind(&record.body);
                next_id += 1;
            });
            insert.build().persistent(true).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT OR ROLLBACK INTO recent_version_keys \
             (integration_id, object_type, object_id, modified, seq, version_id) \
             SELECT integration_id, object_type, object_id, modified, seq, id \
             FROM record_versions WHERE id >= ?",
        )
        .bind(first_id)
        .execute(&mut *tx)
        .await?;
        let counts = count_keys(&mut tx, 0, next_id - first_id).await?;
        for error in &batch.errors {
            sqlx::query(
                "INSERT OR IGNORE INTO request_errors (seq, line, description) VALUES (?, ?, ?)",
            )
            .bind(work.seq)
            .bind(error.line as i64)
            .bind(&error.description)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.tiers.set(counts);
        self.reports.forget(work.seq);
        Ok(Ok(()))
    }

    async fn finish_work(
        &self,
        seq: RequestSeq,
        worker: &str,
        status: RequestStatus,
        fatal_error: Option<&str>,
    ) -> Result<Result<(), LeaseLost>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE requests SET status = ?, lease_owner = NULL, lease_expires_ms = NULL, \
             error_count = error_count + ? WHERE seq = ? AND lease_owner = ? \
             AND status = 'IN_PROGRESS'",
        )
        .bind(status.as_str())
        .bind(fatal_error.is_some() as i64)
        .bind(seq)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(Err(LeaseLost));
        }
        if let Some(description) = fatal_error {
            sqlx::query(
                "INSERT OR REPLACE INTO request_errors (seq, line, description) VALUES (?, 0, ?)",
            )
            .bind(seq)
            .bind(description)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.reports.forget(seq);
        Ok(Ok(()))
    }

    async fn purge_integration(&self, integration: IntegrationId) -> Result<()> {
        // In steps, so that neither memory nor the WAL grows with the integration; a purge
        // cut short is finished when its request is taken up again.
        for tier in [RECENT, MAIN] {
            while self.purge_step(integration, tier).await? > 0 {}
        }
        sqlx::query("DELETE FROM schema_fields WHERE integration_id = ?")
            .bind(integration)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_leases(&self, worker: &str) -> Result<()> {
        sqlx::query(
            "UPDATE requests SET lease_owner = NULL, lease_expires_ms = NULL \
             WHERE lease_owner = ? AND status = 'IN_PROGRESS'",
        )
        .bind(worker)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.new_work.notified()).await;
    }

    async fn maintain(&self, idle: bool) -> Result<bool> {
        let (main, recent) = self.key_tiers();
        if recent == 0 {
            self.tiers.forced.store(false, Ordering::Relaxed);
            return Ok(false);
        }
        if idle {
            return Ok(self.merge_step().await? > 0);
        }
        // Once started, a forced merge goes on until the recent tier is empty.
        if !self.tiers.forced.load(Ordering::Relaxed) {
            if recent < self.tiers.forced_min.load(Ordering::Relaxed).max(main / 4) {
                return Ok(false);
            }
            self.tiers.forced.store(true, Ordering::Relaxed);
        }
        let moved = self.merge_step().await?;
        if moved == 0 {
            self.tiers.forced.store(false, Ordering::Relaxed);
        }
        Ok(moved > 0)
    }

    async fn current_objects(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>> {
        let mut conn = self.pool.acquire().await?;
        let mut found = HashMap::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT deleted, body FROM record_versions WHERE id = \
                 (SELECT version_id FROM all_version_keys WHERE integration_id = ? \
                  AND object_type = ? AND object_id = ? ORDER BY modified DESC, seq DESC LIMIT 1)",
            )
            .bind(integration)
            .bind(object_type.code())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let body = row.and_then(|r| (!r.get::<bool, _>(0)).then(|| r.get::<String, _>(1)));
            found.insert(id.clone(), body);
        }
        Ok(found)
    }

    async fn versions(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        object_id: &str,
    ) -> Result<Vec<Version>> {
        let rows = sqlx::query(
            "SELECT v.modified, v.seq, v.line, v.deleted, v.body \
             FROM all_version_keys k JOIN record_versions v ON v.id = k.version_id \
             WHERE k.integration_id = ? AND k.object_type = ? AND k.object_id = ? \
             ORDER BY k.modified, k.seq",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(object_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Version {
                modified: r.get(0),
                seq: r.get(1),
                line: r.get::<i64, _>(2) as u64,
                deleted: r.get(3),
                body: r.get(4),
            })
            .collect())
    }
}

fn integration_from_row(r: &sqlx::sqlite::SqliteRow) -> Integration {
    Integration {
        id: r.get(0),
        company_id: r.get(1),
        name: r.get(2),
        owner_email: r.get(3),
    }
}

fn claimed_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ClaimedWork> {
    let kind = match r.get::<&str, _>(3) {
        "UPLOAD" => WorkKind::Upload {
            object_type: object_type_of(r.get(4))?,
            spool_file: r.get(5),
        },
        _ => WorkKind::DeleteIntegration,
    };
    Ok(ClaimedWork {
        seq: r.get(0),
        company_id: r.get(1),
        integration_id: r.get(2),
        kind,
        accepted_at: r.get(6),
        checkpoint_line: r.get::<i64, _>(7) as u64,
        success_count: r.get::<i64, _>(8) as u64,
        error_count: r.get::<i64, _>(9) as u64,
        listed_errors: r.get::<i64, _>(10) as u64,
    })
}

pub(crate) fn object_type_of(code: i16) -> Result<ObjectType> {
    ObjectType::from_code(code)
        .ok_or_else(|| StoreError::Corrupt(format!("object type code {code}")))
}

pub(crate) fn schema_row(code: i16, definition: String) -> Result<(ObjectType, FieldDef)> {
    let field = serde_json::from_str(&definition)
        .map_err(|e| StoreError::Corrupt(format!("unreadable field definition: {e}")))?;
    Ok((object_type_of(code)?, field))
}

pub(crate) fn parse_status(s: String) -> RequestStatus {
    RequestStatus::parse(&s).unwrap_or(RequestStatus::Failed)
}

/// SQLite JSON path of a top-level key, quoted so that dots and brackets are literal.
fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::postgres::tests::{record, upload};

    struct TempDb(PathBuf);

    impl TempDb {
        fn new() -> TempDb {
            TempDb(
                std::env::temp_dir().join(format!("intake-tiers-{:016x}", rand::random::<u64>())),
            )
        }
        fn url(&self) -> String {
            format!("sqlite://{}/intake.db", self.0.display())
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn open(db: &TempDb) -> SqliteStore {
        std::fs::create_dir_all(&db.0).unwrap();
        SqliteStore::open(&db.url()).await.unwrap()
    }

    const IDS: usize = 50;

    /// Registers an upload and claims it as worker "w".
    async fn claim_new_upload(
        store: &SqliteStore,
        company: CompanyId,
        iid: IntegrationId,
        crid: &str,
    ) -> ClaimedWork {
        store
            .insert_upload(&upload(company, iid, crid))
            .await
            .unwrap();
        store
            .claim_work("w", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap()
    }

    /// Stores one upload of 40 CONTACT records: ids spread over `IDS`, some versions older
    /// than what is stored, some tied on modifiedDate (the later request wins), some
    /// deletions.
    async fn store_upload(store: &SqliteStore, company: CompanyId, iid: IntegrationId, round: i64) {
        let work = claim_new_upload(store, company, iid, &format!("r{round}")).await;
        let records = (0..40i64)
            .map(|i| {
                let id = format!("c{:02}", (i * 7 + round * 3) % IDS as i64);
                let modified = 1000 - round * (i % 2);
                let deleted = round == 1 && i % 11 == 0;
                let body = format!(r#"{{"objectId":"{id}","round":{round},"f":{i}}}"#);
                (i as u64 + 1, record(&id, Some(modified), deleted, &body))
            })
            .collect();
        let batch = Batch {
            records,
            checkpoint_line: 40,
            success_count: 40,
            ..Batch::default()
        };
        store
            .apply_batch(&work, "w", &batch)
            .await
            .unwrap()
            .unwrap();
        store
            .finish_work(work.seq, "w", RequestStatus::Done, None)
            .await
            .unwrap()
            .unwrap();
    }

    /// Every answer the reads give: the current state of each id, and its history.
    async fn answers(store: &SqliteStore, iid: IntegrationId) -> Vec<String> {
        let ids: Vec<String> = (0..IDS).map(|i| format!("c{i:02}")).collect();
        let current = store
            .current_objects(iid, ObjectType::Contact, &ids)
            .await
            .unwrap();
        let mut out = Vec::new();
        for id in &ids {
            let history = store.versions(iid, ObjectType::Contact, id).await.unwrap();
            out.push(format!("{id} {:?} {history:?}", current[id]));
        }
        out
    }

    #[tokio::test]
    async fn merging_the_key_tiers_changes_no_answer() {
        let db = TempDb::new();
        let store = open(&db).await;
        let company = store.create_company("acme").await.unwrap();
        let iid = store
            .register_integration(company.id, "crm", "a@b.c")
            .await
            .unwrap()
            .id;
        for round in 0..3 {
            store_upload(&store, company.id, iid, round).await;
        }
        let expected = answers(&store, iid).await;
        assert_eq!(store.key_tiers(), (0, 120));
        assert!(
            expected.iter().any(|a| a.contains(" None ")),
            "some records are deleted"
        );

        // Below the forced threshold, nothing is merged while work waits.
        store.set_merge_tuning(7, 1000);
        assert!(!store.maintain(false).await.unwrap());
        assert_eq!(store.key_tiers(), (0, 120));

        // Idle steps move 7 keys each, in key order; every answer stays the same.
        let mut steps = 0;
        while store.maintain(true).await.unwrap() {
            steps += 1;
            let (main, recent) = store.key_tiers();
            assert_eq!((main, main + recent), ((steps * 7).min(120), 120));
            assert_eq!(answers(&store, iid).await, expected, "after step {steps}");
        }
        assert_eq!(steps, 18);
        assert_eq!(store.key_tiers(), (120, 0));

        // The counts are stored: a reopened store knows them.
        drop(store);
        let store = open(&db).await;
        assert_eq!(store.key_tiers(), (120, 0));
        assert_eq!(answers(&store, iid).await, expected);

        // Over the forced threshold, a merge runs to the end while work waits.
        store.set_merge_tuning(15, 30);
        store_upload(&store, company.id, iid, 3).await;
        assert_eq!(store.key_tiers(), (120, 40));
        let mut forced_steps = 0;
        while store.maintain(false).await.unwrap() {
            forced_steps += 1;
        }
        assert_eq!((forced_steps, store.key_tiers()), (3, (160, 0)));
        // Fewer recent keys than the threshold (here 41): no forced merge; at 10, one is.
        store_upload(&store, company.id, iid, 4).await;
        store.set_merge_tuning(15, 41);
        assert!(!store.maintain(false).await.unwrap());
        assert_eq!(store.key_tiers(), (160, 40));
        store.set_merge_tuning(15, 10);
        assert!(store.maintain(false).await.unwrap());

        // Dropping a field's values reaches the versions of both tiers.
        assert_eq!(store.key_tiers(), (175, 25));
        let plan = SchemaPlan {
            keep: vec![],
            drop_values_of: vec!["f".to_string()],
        };
        store
            .replace_schema(iid, ObjectType::Contact, &plan)
            .await
            .unwrap();
        let after = answers(&store, iid).await;
        assert!(after.iter().all(|a| !a.contains("\\\"f\\\"")), "{after:?}");
        assert!(after.iter().any(|a| a.contains("\\\"round\\\":4")));

        // A replayed batch adds no version.
        let before_replay = store.key_tiers();
        let work = claim_new_upload(&store, company.id, iid, "replay").await;
        let batch = Batch {
            records: vec![(1, record("c01", Some(5000), false, r#"{"objectId":"c01"}"#))],
            checkpoint_line: 1,
            success_count: 1,
            ..Batch::default()
        };
        for _ in 0..2 {
            store
                .apply_batch(&work, "w", &batch)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(store.key_tiers(), (before_replay.0, before_replay.1 + 1));

        // Deleting the integration empties both tiers of its keys, in steps of 15, and
        // leaves another integration alone.
        let other_company = store.create_company("other").await.unwrap();
        let other = store
            .register_integration(other_company.id, "crm", "a@b.c")
            .await
            .unwrap()
            .id;
        store_upload(&store, other_company.id, other, 0).await;
        let other_answers = answers(&store, other).await;
        store.purge_integration(iid).await.unwrap();
        assert_eq!(store.key_tiers(), (0, 40));
        let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM record_versions")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(versions, 40);
        assert_eq!(answers(&store, other).await, other_answers);
        assert!(answers(&store, iid)
            .await
            .iter()
            .all(|a| a.ends_with(" None []")));
    }

    /// A store written before the key tiers existed opens with its versions intact.
    #[tokio::test]
    async fn versions_of_the_first_layout_survive_the_migration() {
        let db = TempDb::new();
        std::fs::create_dir_all(&db.0).unwrap();
        let first = db.0.join("first-migration");
        std::fs::create_dir_all(&first).unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/sqlite/0001_init.sql"
            ),
            first.join("0001_init.sql"),
        )
        .unwrap();
        let options = SqliteConnectOptions::from_str(&db.url())
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(first.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for (id, modified, seq, body) in [
            ("a", 10, 1, r#"{"objectId":"a","v":1}"#),
            ("a", 20, 2, r#"{"objectId":"a","v":2}"#),
            ("b", 10, 1, r#"{"objectId":"b","v":1}"#),
        ] {
            sqlx::query(
                "INSERT INTO record_versions (integration_id, object_type, object_id, modified, \
                 seq, line, deleted, body) VALUES (7, ?, ?, ?, ?, 1, 0, ?)",
            )
            .bind(ObjectType::Contact.code())
            .bind(id)
            .bind(modified)
            .bind(seq)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = open(&db).await;
        assert_eq!(store.key_tiers(), (3, 0));
        let ids = ["a".to_string(), "b".to_string()];
        let current = store
            .current_objects(7, ObjectType::Contact, &ids)
            .await
            .unwrap();
        assert_eq!(current["a"].as_deref(), Some(r#"{"objectId":"a","v":2}"#));
        assert_eq!(current["b"].as_deref(), Some(r#"{"objectId":"b","v":1}"#));
        let history = store.versions(7, ObjectType::Contact, "a").await.unwrap();
        assert_eq!(
            history.iter().map(|v| v.modified).collect::<Vec<_>>(),
            vec![10, 20]
        );
    }
}
