//! The scale-out backend: one PostgreSQL database shared by several instances.
//!
//! What SQLite keeps in memory lives in the database here, so that it holds across
//! instances: rate-limit windows are rows (`rate_windows`), leases are judged by the
//! database clock (`intake_now_ms()`), and new work is announced with
//! `NOTIFY intake_work`, which every instance's listener forwards to its worker.
//! Writes that belong together are single statements (data-modifying CTEs) where possible,
//! so a batch of any size costs one round trip.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use intake_model::{FieldDef, LineError, ObjectType, SchemaPlan};
use serde_json::value::RawValue;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::{Notify, OnceCell};

use crate::sqlite::{object_type_of, parse_status, schema_row};
use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel `insert_upload`, `request_integration_delete` and `release_leases` notify.
const WORK_CHANNEL: &str = "intake_work";

/// Versions read and rewritten per round trip when a schema change drops field values.
const DROP_VALUES_PAGE: i64 = 2_000;

pub struct PgStore {
    pool: PgPool,
    /// Started on first use by a worker (admin commands never need it).
    work_signal: OnceCell<WorkSignal>,
}

/// A task that LISTENs on [`WORK_CHANNEL`] and turns each notification into a permit of
/// `notify`, so a notification that arrives between an empty claim and the wait is kept.
struct WorkSignal {
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
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

    /// The new-work signal, listening from now on; `None` when the listener cannot connect
    /// (waits then fall back to their timeout).
    async fn work_signal(&self) -> Option<&Arc<Notify>> {
        let started = self
            .work_signal
            .get_or_try_init(|| async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(WORK_CHANNEL).await?;
                let notify = Arc::new(Notify::new());
                let task = tokio::spawn(forward_notifications(listener, notify.clone()));
                Ok::<_, sqlx::Error>(WorkSignal { notify, task })
            })
            .await;
        match started {
            Ok(signal) => Some(&signal.notify),
            Err(err) => {
                tracing::warn!("cannot listen for new work, polling instead: {err}");
                None
            }
        }
    }
}

async fn forward_notifications(mut listener: PgListener, notify: Arc<Notify>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => notify.notify_one(),
            // The connection was lost and re-established: notifications may have been missed.
            Ok(None) => notify.notify_one(),
            Err(err) => {
                tracing::warn!("listening for new work failed, retrying: {err}");
                notify.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_company(&self, name: &str) -> Result<Company> {
        // The NOT EXISTS guard keeps a refused name from using up an id, as in SQLite.
        let row = sqlx::query(
            "INSERT INTO companies (name) SELECT $1 \
             WHERE NOT EXISTS (SELECT 1 FROM companies WHERE name = $1) \
             RETURNING id, created_at",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::CompanyExists(name.to_string())))?;
        let Some(row) = row else {
            return Err(StoreError::CompanyExists(name.to_string()));
        };
        Ok(Company {
            id: row.get(0),
            name: name.to_string(),
            created_at: row.get(1),
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
        let row = sqlx::query("SELECT id, name, created_at FROM companies WHERE name = $1")
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
            "INSERT INTO access_keys (access_key, company_id, secret_hash) VALUES ($1, $2, $3)",
        )
        .bind(key)
        .bind(company)
        .bind(hash)
        .execute(&self.pool)
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
        let done = sqlx::query("UPDATE access_keys SET revoked = true WHERE access_key = $1")
            .bind(key)
            .execute(&self.pool)
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
            "INSERT INTO tokens (token_id, company_id, secret_hash, scopes) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_id)
        .bind(company)
        .bind(hash)
        .bind(scopes.join(" "))
        .execute(&self.pool)
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
        let done = sqlx::query("UPDATE tokens SET revoked = true WHERE token_id = $1")
            .bind(token_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_access_key(&self, key: &str) -> Result<Option<StoredCredential>> {
        let row = sqlx::query(
            "SELECT company_id, secret_hash, revoked FROM access_keys WHERE access_key = $1",
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
            "SELECT company_id, secret_hash, scopes, revoked FROM tokens WHERE token_id = $1",
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
        if limits.per_second == 0 && limits.per_day == 0 {
            return Ok(RateDecision::Allowed);
        }
        // Both windows counted in one statement. A window only moves forward, so an
        // instance whose clock lags counts its call in the newer window instead of
        // resetting it.
        let rows = sqlx::query(
            "INSERT INTO rate_windows AS w (company_id, kind, window_start, count) \
             VALUES ($1, 0, $2, 1), ($1, 1, $3, 1) \
             ON CONFLICT (company_id, kind) DO UPDATE SET \
                 count = CASE WHEN excluded.window_start > w.window_start THEN 1 \
                              ELSE w.count + 1 END, \
                 window_start = GREATEST(w.window_start, excluded.window_start) \
             RETURNING kind, count",
        )
        .bind(company)
        .bind(now_ms.div_euclid(1000))
        .bind(now_ms.div_euclid(86_400_000))
        .fetch_all(&self.pool)
        .await?;
        let (mut second_count, mut day_count) = (0i64, 0i64);
        for row in &rows {
            match row.get::<i16, _>(0) {
                0 => second_count = row.get(1),
                _ => day_count = row.get(1),
            }
        }
        Ok(
            if limits.per_day > 0 && day_count > i64::from(limits.per_day) {
                RateDecision::Limited {
                    retry_after_secs: secs_to_next_utc_day(now_ms),
                }
            } else if limits.per_second > 0 && second_count > i64::from(limits.per_second) {
                RateDecision::Limited {
                    retry_after_secs: 1,
                }
            } else {
                RateDecision::Allowed
            },
        )
    }

    async fn register_integration(
        &self,
        company: CompanyId,
        name: &str,
        owner_email: &str,
    ) -> Result<Integration> {
        let id = random_integration_id();
        sqlx::query(
            "INSERT INTO integrations (id, company_id, name, owner_email) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(company)
        .bind(name)
        .bind(owner_email)
        .execute(&self.pool)
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
             WHERE company_id = $1 AND NOT deleted",
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
             WHERE company_id = $1 AND id = $2 AND NOT deleted",
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
        let mut tx = self.pool.begin().await?;
        let marked = sqlx::query(
            "UPDATE integrations SET deleted = true \
             WHERE company_id = $1 AND id = $2 AND NOT deleted",
        )
        .bind(company)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Err(StoreError::UnknownIntegration(id));
        }
        sqlx::query(
            "INSERT INTO requests (company_id, client_request_id, integration_id, kind, status) \
             VALUES ($1, $2, $3, 'DELETE_INTEGRATION', 'PENDING')",
        )
        .bind(company)
        .bind(client_request_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
        // Delivered to the listeners when the transaction commits.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WORK_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_schema(
        &self,
        integration: IntegrationId,
        object_type: Option<ObjectType>,
    ) -> Result<Vec<(ObjectType, FieldDef)>> {
        let rows = sqlx::query(
            "SELECT object_type, definition FROM schema_fields WHERE integration_id = $1 \
             AND ($2::smallint IS NULL OR object_type = $2) ORDER BY object_type, unique_name",
        )
        .bind(integration)
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
        let mut tx = self.pool.begin().await?;
        // Two replacements of one integration's schema run one after the other, as they do
        // behind SQLite's write lock (integration ids are random 63-bit values: no other
        // advisory lock key of ours comes near them).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(integration)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM schema_fields WHERE integration_id = $1 AND object_type = $2")
            .bind(integration)
            .bind(object_type.code())
            .execute(&mut *tx)
            .await?;
        if !plan.keep.is_empty() {
            let names: Vec<&str> = plan.keep.iter().map(|f| f.unique_name.as_str()).collect();
            let definitions: Vec<String> = plan
                .keep
                .iter()
                .map(|f| serde_json::to_string(f).expect("field definitions serialize"))
                .collect();
            sqlx::query(
                "INSERT INTO schema_fields (integration_id, object_type, unique_name, definition) \
                 SELECT $1, $2, f.unique_name, f.definition \
                 FROM UNNEST($3::text[], $4::text[]) AS f(unique_name, definition)",
            )
            .bind(integration)
            .bind(object_type.code())
            .bind(names)
            .bind(definitions)
            .execute(&mut *tx)
            .await?;
        }
        for name in &plan.drop_values_of {
            drop_values(&mut tx, integration, object_type, name).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client_request_id_used(&self, company: CompanyId, crid: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM requests WHERE company_id = $1 AND client_request_id = $2",
        )
        .bind(company)
        .bind(crid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn insert_upload(&self, upload: &NewUpload) -> Result<RequestSeq> {
        // One statement, so one transaction: the notification goes out when the row is
        // visible to the other instances' workers.
        let seq: i64 = sqlx::query_scalar(
            "WITH inserted AS ( \
                 INSERT INTO requests (company_id, client_request_id, integration_id, kind, \
                     object_type, spool_file, status) \
                 VALUES ($1, $2, $3, 'UPLOAD', $4, $5, 'PENDING') RETURNING seq \
             ), notified AS ( \
                 SELECT pg_notify($6, '') FROM inserted \
             ) \
             SELECT inserted.seq FROM inserted, notified",
        )
        .bind(upload.company_id)
        .bind(&upload.client_request_id)
        .bind(upload.integration_id)
        .bind(upload.object_type.code())
        .bind(&upload.spool_file)
        .bind(WORK_CHANNEL)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
        Ok(seq)
    }

    async fn request_report(
        &self,
        company: CompanyId,
        crid: &str,
    ) -> Result<Option<RequestReport>> {
        // One statement: the listed errors and the counts come from one snapshot.
        let Some(row) = sqlx::query(
            "SELECT r.integration_id, r.status, r.success_count, r.error_count, \
                 ARRAY(SELECT e.line FROM request_errors e WHERE e.seq = r.seq \
                       ORDER BY e.line LIMIT 20), \
                 ARRAY(SELECT e.description FROM request_errors e WHERE e.seq = r.seq \
                       ORDER BY e.line LIMIT 20) \
             FROM requests r WHERE r.company_id = $1 AND r.client_request_id = $2",
        )
        .bind(company)
        .bind(crid)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let lines: Vec<i64> = row.get(4);
        let descriptions: Vec<String> = row.get(5);
        let errors = lines
            .into_iter()
            .zip(descriptions)
            .map(|(line, description)| LineError {
                line: line as u64,
                description,
            })
            .collect();
        Ok(Some(RequestReport {
            integration_id: row.get(0),
            status: parse_status(row.get(1)),
            errors,
            success_count: row.get::<i64, _>(2) as u64,
            error_count: row.get::<i64, _>(3) as u64,
        }))
    }

    async fn claim_work(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedWork>> {
        // Listen before looking, so that work arriving after an empty claim wakes us.
        self.work_signal().await;
        let row = sqlx::query(
            "WITH next AS ( \
                 SELECT seq FROM requests \
                 WHERE status = 'PENDING' OR (status = 'IN_PROGRESS' \
                     AND (lease_expires_ms IS NULL OR lease_expires_ms < intake_now_ms())) \
                 ORDER BY seq LIMIT 1 \
                 FOR UPDATE SKIP LOCKED \
             ) \
             UPDATE requests r SET status = 'IN_PROGRESS', lease_owner = $1, \
                 lease_expires_ms = intake_now_ms() + $2 \
             FROM next WHERE r.seq = next.seq \
             RETURNING r.seq, r.company_id, r.integration_id, r.kind, r.object_type, \
                 r.spool_file, r.accepted_at, r.checkpoint_line, r.success_count, \
                 r.error_count, r.listed_errors",
        )
        .bind(worker)
        .bind(millis(lease))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(claimed_from_row).transpose()
    }

    async fn heartbeat(
        &self,
        seq: RequestSeq,
        worker: &str,
        lease: Duration,
    ) -> Result<Result<(), LeaseLost>> {
        let done = sqlx::query(
            "UPDATE requests SET lease_expires_ms = intake_now_ms() + $1 \
             WHERE seq = $2 AND lease_owner = $3 AND status = 'IN_PROGRESS'",
        )
        .bind(millis(lease))
        .bind(seq)
        .bind(worker)
        .execute(&self.pool)
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
        let object_type = match &work.kind {
            WorkKind::Upload { object_type, .. } => object_type.code(),
            WorkKind::DeleteIntegration => return Ok(Err(LeaseLost)),
        };
        let mut tx = self.pool.begin().await?;
        // The lease check takes the request's row lock first; nothing is written unless the
        // lease is ours.
        let owned = sqlx::query(
            "UPDATE requests SET checkpoint_line = $1, success_count = $2, \
                 error_count = $3, listed_errors = listed_errors + $4 \
             WHERE seq = $5 AND lease_owner = $6 AND status = 'IN_PROGRESS'",
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
        if !batch.records.is_empty() {
            // COPY is PostgreSQL's fast path. A checkpoint commits with its rows, so a
            // resumed request never sends a stored row again and COPY meets no conflict;
            // should it meet one anyway, the batch is written again, skipping conflicts.
            sqlx::query("SAVEPOINT copy_versions")
                .execute(&mut *tx)
                .await?;
            match copy_versions(&mut tx, work, object_type, &batch.records).await {
                Ok(()) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    sqlx::query("ROLLBACK TO SAVEPOINT copy_versions")
                        .execute(&mut *tx)
                        .await?;
                    insert_versions_skipping_conflicts(&mut tx, work, object_type, &batch.records)
                        .await?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        if !batch.errors.is_empty() {
            let lines: Vec<i64> = batch.errors.iter().map(|e| e.line as i64).collect();
            let texts: Vec<&str> = batch
                .errors
                .iter()
                .map(|e| e.description.as_str())
                .collect();
            sqlx::query(
                "INSERT INTO request_errors (seq, line, description) \
                 SELECT $1, e.line, e.description \
                 FROM UNNEST($2::bigint[], $3::text[]) AS e(line, description) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(work.seq)
            .bind(lines)
            .bind(texts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn finish_work(
        &self,
        seq: RequestSeq,
        worker: &str,
        status: RequestStatus,
        fatal_error: Option<&str>,
    ) -> Result<Result<(), LeaseLost>> {
        let done: i64 = sqlx::query_scalar(
            "WITH done AS ( \
                 UPDATE requests SET status = $1, lease_owner = NULL, lease_expires_ms = NULL, \
                     error_count = error_count + $2 \
                 WHERE seq = $3 AND lease_owner = $4 AND status = 'IN_PROGRESS' \
                 RETURNING seq \
             ), fatal AS ( \
                 INSERT INTO request_errors (seq, line, description) \
                 SELECT done.seq, 0, $5 FROM done WHERE $5::text IS NOT NULL \
                 ON CONFLICT (seq, line) DO UPDATE SET description = excluded.description \
             ) \
             SELECT count(*) FROM done",
        )
        .bind(status.as_str())
        .bind(fatal_error.is_some() as i64)
        .bind(seq)
        .bind(worker)
        .bind(fatal_error)
        .fetch_one(&self.pool)
        .await?;
        Ok(if done == 1 { Ok(()) } else { Err(LeaseLost) })
    }

    async fn purge_integration(&self, integration: IntegrationId) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["record_versions", "schema_fields"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE integration_id = $1"))
                .bind(integration)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_leases(&self, worker: &str) -> Result<()> {
        // Released work is new work for the other instances: tell them.
        sqlx::query(
            "WITH released AS ( \
                 UPDATE requests SET lease_owner = NULL, lease_expires_ms = NULL \
                 WHERE lease_owner = $1 AND status = 'IN_PROGRESS' RETURNING seq \
             ) \
             SELECT pg_notify($2, '') FROM (SELECT count(*) AS n FROM released) r WHERE r.n > 0",
        )
        .bind(worker)
        .bind(WORK_CHANNEL)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn wait_for_work(&self, max: Duration) {
        match self.work_signal().await {
            Some(notify) => {
                let _ = tokio::time::timeout(max, notify.notified()).await;
            }
            None => tokio::time::sleep(max).await,
        }
    }

    async fn current_objects(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>> {
        // Each id's latest version by a backward scan of the primary key: only that
        // version's body is read, however long the record's history.
        let rows = sqlx::query(
            "SELECT i.id, v.deleted, v.body FROM UNNEST($3::text[]) AS i(id) \
             CROSS JOIN LATERAL ( \
                 SELECT deleted, body FROM record_versions \
                 WHERE integration_id = $1 AND object_type = $2 AND object_id = i.id \
                 ORDER BY modified DESC, seq DESC LIMIT 1 \
             ) v",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<String, Option<String>> =
            ids.iter().map(|id| (id.clone(), None)).collect();
        for row in rows {
            if !row.get::<bool, _>(1) {
                found.insert(row.get(0), Some(row.get(2)));
            }
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
            "SELECT modified, seq, line, deleted, body FROM record_versions \
             WHERE integration_id = $1 AND object_type = $2 AND object_id = $3 \
             ORDER BY modified, seq",
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

/// Removes the top-level key `name` from every stored version of one type, page by page
/// in primary-key order. The bodies are rewritten here rather than with `jsonb - name`:
/// jsonb would reorder the keys and respace the text that GET returns verbatim (and it
/// refuses `\u0000`), where SQLite's `json_remove` leaves everything else as it was.
async fn drop_values(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    integration: IntegrationId,
    object_type: ObjectType,
    name: &str,
) -> Result<()> {
    // The key as the model writes it; a body that lacks this text lacks the key.
    let needle = serde_json::to_string(name).expect("strings serialize");
    // Keyset pagination from before the first key (object ids are never empty).
    let mut after = (String::new(), i64::MIN, i64::MIN);
    loop {
        let rows = sqlx::query(
            "SELECT object_id, modified, seq, body FROM record_versions \
             WHERE integration_id = $1 AND object_type = $2 \
             AND (object_id, modified, seq) > ($3, $4, $5) \
             AND strpos(body, $6) > 0 \
             ORDER BY object_id, modified, seq LIMIT $7",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(&after.0)
        .bind(after.1)
        .bind(after.2)
        .bind(&needle)
        .bind(DROP_VALUES_PAGE)
        .fetch_all(&mut **tx)
        .await?;
        let (mut ids, mut modified, mut seqs, mut bodies) = (vec![], vec![], vec![], vec![]);
        for row in &rows {
            if let Some(body) = without_key(row.get(3), name) {
                ids.push(row.get::<String, _>(0));
                modified.push(row.get::<i64, _>(1));
                seqs.push(row.get::<i64, _>(2));
                bodies.push(body);
            }
        }
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE record_versions r SET body = u.body \
                 FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
                     AS u(object_id, modified, seq, body) \
                 WHERE r.integration_id = $1 AND r.object_type = $2 \
                 AND r.object_id = u.object_id AND r.modified = u.modified AND r.seq = u.seq",
            )
            .bind(integration)
            .bind(object_type.code())
            .bind(ids)
            .bind(modified)
            .bind(seqs)
            .bind(bodies)
            .execute(&mut **tx)
            .await?;
        }
        if (rows.len() as i64) < DROP_VALUES_PAGE {
            return Ok(());
        }
        let last = rows.last().expect("a full page");
        after = (last.get(0), last.get(1), last.get(2));
    }
}

/// `body` (a JSON object) without its top-level key `name`, or `None` when it has no such
/// key. The other members keep their order and the exact text of their values.
fn without_key(body: &str, name: &str) -> Option<String> {
    struct Members<'a>(Vec<(String, &'a RawValue)>);

    impl<'de> serde::Deserialize<'de> for Members<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Members<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Members<'de>, A::Error> {
                    let mut members = Vec::new();
                    while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                        members.push(member);
                    }
                    Ok(Members(members))
                }
            }
            d.deserialize_map(Visit)
        }
    }

    let Members(members) = serde_json::from_str(body).ok()?;
    if !members.iter().any(|(key, _)| key == name) {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    out.push('{');
    for (key, value) in members.iter().filter(|(key, _)| key != name) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).expect("strings serialize"));
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    Some(out)
}

fn integration_from_row(r: &PgRow) -> Integration {
    Integration {
        id: r.get(0),
        company_id: r.get(1),
        name: r.get(2),
        owner_email: r.get(3),
    }
}

fn claimed_from_row(r: &PgRow) -> Result<ClaimedWork> {
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

/// Checks against a real PostgreSQL: every test creates its own database and drops it.
/// PostgreSQL is found through `INTAKE_TEST_POSTGRES_URL` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`); when it is unreachable the tests say so
/// and pass, unless `INTAKE_REQUIRE_POSTGRES=1`.
/// Appends `value` to a COPY text-format row, escaping what that format treats specially.
fn push_copy_text(row: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => row.extend_from_slice(b"\\\\"),
            b'\t' => row.extend_from_slice(b"\\t"),
            b'\n' => row.extend_from_slice(b"\\n"),
            b'\r' => row.extend_from_slice(b"\\r"),
            _ => row.push(b),
        }
    }
}

/// Streams the batch's versions into `record_versions` with COPY, in chunks of about 1 MiB.
async fn copy_versions(
    tx: &mut sqlx::PgConnection,
    work: &ClaimedWork,
    object_type: i16,
    records: &[(u64, intake_model::ValidRecord)],
) -> std::result::Result<(), sqlx::Error> {
    use std::io::Write;
    let mut copy = tx
        .copy_in_raw(
            "COPY record_versions (integration_id, object_type, object_id, modified, seq, \
             line, deleted, body) FROM STDIN",
        )
        .await?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for (line, record) in records {
        let modified = record.modified.unwrap_or(work.accepted_at);
        write!(chunk, "{}\t{}\t", work.integration_id, object_type).expect("writes to a Vec");
        push_copy_text(&mut chunk, &record.object_id);
        write!(
            chunk,
            "\t{modified}\t{}\t{line}\t{}\t",
            work.seq,
            if record.deleted { 't' } else { 'f' }
        )
        .expect("writes to a Vec");
        push_copy_text(&mut chunk, &record.body);
        chunk.push(b'\n');
        if chunk.len() >= 1 << 20 {
            if let Err(err) = copy.send(std::mem::take(&mut chunk)).await {
                let _ = copy.abort("send failed").await;
                return Err(err);
            }
            chunk.reserve(1 << 20);
        }
    }
    if !chunk.is_empty() {
        if let Err(err) = copy.send(chunk).await {
            let _ = copy.abort("send failed").await;
            return Err(err);
        }
    }
    copy.finish().await.map(|_| ())
}

/// The slow path of [`copy_versions`]: one multi-row insert that skips stored versions.
async fn insert_versions_skipping_conflicts(
    tx: &mut sqlx::PgConnection,
    work: &ClaimedWork,
    object_type: i16,
    records: &[(u64, intake_model::ValidRecord)],
) -> std::result::Result<(), sqlx::Error> {
    let ids: Vec<&str> = records.iter().map(|(_, r)| r.object_id.as_str()).collect();
    let modified: Vec<i64> = records
        .iter()
        .map(|(_, r)| r.modified.unwrap_or(work.accepted_at))
        .collect();
    let lines: Vec<i64> = records.iter().map(|(l, _)| *l as i64).collect();
    let deleted: Vec<bool> = records.iter().map(|(_, r)| r.deleted).collect();
    let bodies: Vec<&str> = records.iter().map(|(_, r)| r.body.as_str()).collect();
    sqlx::query(
        "INSERT INTO record_versions (integration_id, object_type, object_id, modified, seq, \
             line, deleted, body) \
         SELECT $1, $2, v.object_id, v.modified, $3, v.line, v.deleted, v.body \
         FROM UNNEST($4::text[], $5::bigint[], $6::bigint[], $7::boolean[], $8::text[]) \
             AS v(object_id, modified, line, deleted, body) \
         ON CONFLICT DO NOTHING",
    )
    .bind(work.integration_id)
    .bind(object_type)
    .bind(work.seq)
    .bind(ids)
    .bind(modified)
    .bind(lines)
    .bind(deleted)
    .bind(bodies)
    .execute(tx)
    .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::future::Future;

    use intake_model::ValidRecord;
    use sqlx::Connection;

    use super::*;

    fn base_url() -> String {
        std::env::var("INTAKE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
    }

    /// `base` with its database name replaced by `name`.
    fn database_url(base: &str, name: &str) -> String {
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

    /// Runs `test` against a fresh database (its URL as argument), then drops the database,
    /// whether the test passed or not.
    async fn with_database<F, Fut>(test: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let base = base_url();
        let connected =
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&base)).await;
        let mut admin = match connected {
            Ok(Ok(conn)) => conn,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                if std::env::var("INTAKE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("PostgreSQL at {base} is required (INTAKE_REQUIRE_POSTGRES=1): {why}");
                }
                eprintln!(
                    "\n!!!!! SKIPPED: PostgreSQL is not reachable at {base} ({why}); \
                     set INTAKE_TEST_POSTGRES_URL, or INTAKE_REQUIRE_POSTGRES=1 to fail !!!!!\n"
                );
                return;
            }
        };
        let name = format!("intake_pgstore_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let outcome = tokio::spawn(test(database_url(&base, &name))).await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        if let Err(err) = outcome {
            std::panic::resume_unwind(err.into_panic());
        }
    }

    fn field(name: &str, ty: &str) -> FieldDef {
        serde_json::from_value(serde_json::json!({"uniqueName": name, "label": name, "type": ty}))
            .unwrap()
    }

    pub(crate) fn record(
        id: &str,
        modified: Option<i64>,
        deleted: bool,
        body: &str,
    ) -> ValidRecord {
        ValidRecord {
            object_id: id.into(),
            modified,
            deleted,
            body: body.into(),
        }
    }

    pub(crate) fn upload(company: CompanyId, integration: IntegrationId, crid: &str) -> NewUpload {
        NewUpload {
            company_id: company,
            integration_id: integration,
            client_request_id: crid.into(),
            object_type: ObjectType::Contact,
            spool_file: format!("{crid}.ldjson"),
        }
    }

    /// Everything a client or an operator can see of one scenario, with the values that
    /// are meant to differ between runs (random ids, request sequence numbers, clocks)
    /// replaced by stable names.
    async fn scenario(store: &dyn Store) -> Vec<String> {
        let mut t: Vec<String> = Vec::new();
        let mut seqs: Vec<RequestSeq> = Vec::new();
        let label = |seqs: &Vec<RequestSeq>, seq: RequestSeq| {
            seqs.iter()
                .position(|s| *s == seq)
                .map_or("?".to_string(), |i| format!("u{i}"))
        };
        let versions_of = |v: Vec<Version>, seqs: &Vec<RequestSeq>| -> Vec<String> {
            v.into_iter()
                .map(|v| {
                    format!(
                        "{} {} {} {} {}",
                        v.modified,
                        label(seqs, v.seq),
                        v.line,
                        v.deleted,
                        v.body
                    )
                })
                .collect()
        };

        // Administration.
        let acme = store.create_company("acme").await.unwrap();
        t.push(format!(
            "{:?}",
            store.create_company("acme").await.map(|c| c.name)
        ));
        let beta = store.create_company("Beta").await.unwrap();
        let zed = store.create_company("_zed").await.unwrap();
        t.push(format!("{:?}", (acme.id, beta.id, zed.id)));
        let companies = store.list_companies().await.unwrap();
        t.push(format!(
            "{:?}",
            companies
                .iter()
                .map(|c| (c.id, &c.name))
                .collect::<Vec<_>>()
        ));
        t.push(format!(
            "{:?}",
            store.company_by_name("Beta").await.unwrap().map(|c| c.id)
        ));
        t.push(format!(
            "{:?}",
            store.company_by_name("beta").await.unwrap()
        ));
        store
            .insert_access_key(acme.id, "IKA", b"hash-a")
            .await
            .unwrap();
        store
            .insert_access_key(beta.id, "IKB", b"hash-b")
            .await
            .unwrap();
        store
            .insert_access_key(zed.id, "IKZ", b"hash-z")
            .await
            .unwrap();
        t.push(format!("{:?}", store.revoke_access_key("IKB").await));
        t.push(format!("{:?}", store.revoke_access_key("nope").await));
        let keys = store.list_access_keys().await.unwrap();
        t.push(format!(
            "{:?}",
            keys.iter()
                .map(|k| (&k.access_key, &k.company, k.revoked))
                .collect::<Vec<_>>()
        ));
        t.push(format!("{:?}", store.find_access_key("IKA").await));
        t.push(format!("{:?}", store.find_access_key("IKB").await));
        t.push(format!("{:?}", store.find_access_key("nope").await));
        let scopes = vec!["api:crm:upload".to_string(), "api:crm:schema".to_string()];
        store
            .insert_token(acme.id, "itk_a", b"th", &scopes)
            .await
            .unwrap();
        store
            .insert_token(beta.id, "itk_b", b"th2", &[])
            .await
            .unwrap();
        t.push(format!("{:?}", store.revoke_token("itk_b").await));
        let tokens = store.list_tokens().await.unwrap();
        t.push(format!(
            "{:?}",
            tokens
                .iter()
                .map(|k| (&k.token_id, &k.company, &k.scopes, k.revoked))
                .collect::<Vec<_>>()
        ));
        t.push(format!("{:?}", store.find_token("itk_a").await));
        t.push(format!("{:?}", store.find_token("itk_b").await));

        // Rate limits: 3 a second, 5 a day, from a fixed clock.
        let limits = RateLimits {
            per_second: 3,
            per_day: 5,
        };
        let t0 = 1_700_000_000_500;
        for (company, now) in [
            (acme.id, t0),
            (acme.id, t0 + 100),
            (acme.id, t0 + 200),
            (acme.id, t0 + 300),
            (beta.id, t0 + 300),
            (acme.id, t0 + 1000),
            (acme.id, t0 + 1001),
            (acme.id, t0 + 1002),
            (acme.id, t0 + 86_400_000),
        ] {
            t.push(format!(
                "{:?}",
                store.hit_rate_limit(company, limits, now).await
            ));
        }
        let only_second = RateLimits {
            per_second: 1,
            per_day: 0,
        };
        t.push(format!(
            "{:?}",
            store.hit_rate_limit(zed.id, only_second, t0).await
        ));
        t.push(format!(
            "{:?}",
            store.hit_rate_limit(zed.id, only_second, t0).await
        ));

        // Integrations.
        let integration = store
            .register_integration(acme.id, "CRM", "o@acme.com")
            .await
            .unwrap();
        let iid = integration.id;
        t.push(format!(
            "{:?}",
            (iid > 1 << 53, &integration.name, &integration.owner_email)
        ));
        t.push(format!(
            "{:?}",
            store
                .register_integration(acme.id, "CRM2", "o@acme.com")
                .await
                .map(|i| i.name)
        ));
        let listed = store.list_integrations(acme.id).await.unwrap();
        t.push(format!("{:?}", listed == vec![integration.clone()]));
        t.push(format!(
            "{:?}",
            store.find_integration(acme.id, iid).await.unwrap() == Some(integration.clone())
        ));
        t.push(format!("{:?}", store.find_integration(beta.id, iid).await));
        t.push(format!("{:?}", store.list_integrations(beta.id).await));

        // Schema.
        t.push(format!("{:?}", store.get_schema(iid, None).await));
        let plan = SchemaPlan {
            keep: vec![
                field("zeta", "STRING"),
                field("f1", "NUMBER"),
                field("Alpha", "BOOLEAN"),
            ],
            drop_values_of: vec![],
        };
        store
            .replace_schema(iid, ObjectType::Contact, &plan)
            .await
            .unwrap();
        let plan = SchemaPlan {
            keep: vec![field("acct", "STRING")],
            drop_values_of: vec![],
        };
        store
            .replace_schema(iid, ObjectType::Account, &plan)
            .await
            .unwrap();
        t.push(format!("{:?}", store.get_schema(iid, None).await));
        t.push(format!(
            "{:?}",
            store.get_schema(iid, Some(ObjectType::Contact)).await
        ));
        t.push(format!(
            "{:?}",
            store.get_schema(iid, Some(ObjectType::Deal)).await
        ));

        // An upload, processed by w1 while w2 tries to interfere.
        seqs.push(
            store
                .insert_upload(&upload(acme.id, iid, "u1"))
                .await
                .unwrap(),
        );
        t.push(format!(
            "{:?}",
            store.insert_upload(&upload(acme.id, iid, "u1")).await
        ));
        t.push(format!(
            "{:?}",
            store
                .insert_upload(&upload(beta.id, iid, "u1"))
                .await
                .is_ok()
        ));
        seqs.push(0); // beta's u1: never claimed below, finished at the end
        t.push(format!(
            "{:?}",
            store.client_request_id_used(acme.id, "u1").await
        ));
        t.push(format!(
            "{:?}",
            store.client_request_id_used(zed.id, "u1").await
        ));
        t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
        t.push(format!("{:?}", store.request_report(acme.id, "nope").await));
        let lease = Duration::from_secs(30);
        let work = store.claim_work("w1", lease).await.unwrap().unwrap();
        let beta_work = store.claim_work("w1", lease).await.unwrap().unwrap();
        seqs[1] = beta_work.seq;
        let accepted_ok = (work.accepted_at - now_unix_ms() / 1000).abs() <= 5;
        t.push(format!(
            "{} {:?} {} {:?} {} {} {} {}",
            label(&seqs, work.seq),
            work.kind,
            work.integration_id == iid,
            accepted_ok,
            work.checkpoint_line,
            work.success_count,
            work.error_count,
            work.listed_errors
        ));
        t.push(format!("{:?}", store.claim_work("w2", lease).await));
        t.push(format!(
            "{:?}",
            store.heartbeat(work.seq, "w1", lease).await
        ));
        t.push(format!(
            "{:?}",
            store.heartbeat(work.seq, "w2", lease).await
        ));
        t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
        let batch = Batch {
            records: vec![
                (
                    1,
                    record(
                        "c1",
                        Some(100),
                        false,
                        r#"{"objectId":"c1","zeta":"z","f1":1,"isDeleted":false}"#,
                    ),
                ),
                (
                    3,
                    record(
                        "c2",
                        Some(100),
                        true,
                        r#"{"objectId":"c2","isDeleted":true}"#,
                    ),
                ),
                (
                    4,
                    record(
                        "c3",
                        Some(100),
                        false,
                        r#"{"objectId":"c3","f1":1.5e300,"nested":{"a":[1,{"f1":2}]},"n":"é\u0000\"x","isDeleted":false}"#,
                    ),
                ),
                (
                    6,
                    record(
                        "c5",
                        None,
                        false,
                        r#"{"objectId":"c5","note":"f1","isDeleted":false}"#,
                    ),
                ),
            ],
            errors: vec![
                LineError {
                    line: 2,
                    description: "Line is not a JSON object".into(),
                },
                LineError {
                    line: 5,
                    description: "Mandatory field [objectId] is missing or empty".into(),
                },
            ],
            checkpoint_line: 6,
            success_count: 4,
            error_count: 2,
        };
        t.push(format!(
            "{:?}",
            store.apply_batch(&work, "w2", &batch).await
        ));
        t.push(format!(
            "{:?}",
            store.apply_batch(&work, "w1", &batch).await
        ));
        // A replay of the same batch (a worker taking over from a checkpoint) changes nothing.
        t.push(format!(
            "{:?}",
            store.apply_batch(&work, "w1", &batch).await
        ));
        t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
        let more = Batch {
            records: vec![(7, record("c6", Some(100), false, r#"{"objectId":"c6","isDeleted":false}"#))],
            errors: vec![LineError { line: 8, description: "Duplicate objectId [c1] in file: send multiple updates of a record in separate files".into() }],
            checkpoint_line: 8,
            success_count: 5,
            error_count: 3,
        };
        t.push(format!("{:?}", store.apply_batch(&work, "w1", &more).await));
        t.push(format!(
            "{:?}",
            store
                .finish_work(work.seq, "w2", RequestStatus::Failed, None)
                .await
        ));
        t.push(format!(
            "{:?}",
            store
                .finish_work(work.seq, "w1", RequestStatus::Failed, None)
                .await
        ));
        t.push(format!(
            "{:?}",
            store
                .finish_work(work.seq, "w1", RequestStatus::Done, None)
                .await
        ));
        t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
        // On SQLite, the first upload's keys move to the main tier; the second's stay in
        // the recent one, so the reads below consult both.
        store.maintain(true).await.unwrap();

        // A second upload: an older version (history), a newer one, an undelete.
        seqs.push(
            store
                .insert_upload(&upload(acme.id, iid, "u2"))
                .await
                .unwrap(),
        );
        let work = store.claim_work("w1", lease).await.unwrap().unwrap();
        t.push(label(&seqs, work.seq));
        let batch = Batch {
            records: vec![
                (
                    1,
                    record(
                        "c1",
                        Some(50),
                        false,
                        r#"{"objectId":"c1","old":true,"isDeleted":false}"#,
                    ),
                ),
                (
                    2,
                    record(
                        "c3",
                        Some(200),
                        false,
                        r#"{"objectId":"c3","f1":7,"isDeleted":false}"#,
                    ),
                ),
                (
                    3,
                    record(
                        "c2",
                        Some(100),
                        false,
                        r#"{"objectId":"c2","back":1,"isDeleted":false}"#,
                    ),
                ),
            ],
            errors: vec![],
            checkpoint_line: 3,
            success_count: 3,
            error_count: 0,
        };
        t.push(format!(
            "{:?}",
            store.apply_batch(&work, "w1", &batch).await
        ));
        t.push(format!(
            "{:?}",
            store
                .finish_work(work.seq, "w1", RequestStatus::Done, None)
                .await
        ));

        let ids: Vec<String> = ["c1", "c2", "c3", "c4", "c5", "c6", "c1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut current: Vec<_> = store
            .current_objects(iid, ObjectType::Contact, &ids)
            .await
            .unwrap()
            .into_iter()
            .collect();
        current.sort();
        t.push(format!("{current:?}"));
        t.push(format!(
            "{:?}",
            store
                .current_objects(iid, ObjectType::Account, &ids[..1])
                .await
        ));
        t.push(format!(
            "{:?}",
            store.current_objects(iid, ObjectType::Contact, &[]).await
        ));
        for id in ["c1", "c2", "c3", "c5", "zz"] {
            let v = store.versions(iid, ObjectType::Contact, id).await.unwrap();
            let v: Vec<String> = versions_of(v, &seqs)
                .into_iter()
                .map(|s| {
                    if id == "c5" {
                        s.split_once(' ').unwrap().1.to_string()
                    } else {
                        s
                    }
                })
                .collect();
            t.push(format!("{id}: {v:?}"));
        }

        // Dropping a field's values rewrites only the versions holding that key.
        let plan = SchemaPlan {
            keep: vec![field("zeta", "STRING"), field("Alpha", "BOOLEAN")],
            drop_values_of: vec!["f1".to_string(), "never".to_string()],
        };
        store
            .replace_schema(iid, ObjectType::Contact, &plan)
            .await
            .unwrap();
        t.push(format!("{:?}", store.get_schema(iid, None).await));
        for id in ["c1", "c3", "c5"] {
            let v = store.versions(iid, ObjectType::Contact, id).await.unwrap();
            let v: Vec<String> = versions_of(v, &seqs)
                .into_iter()
                .map(|s| {
                    if id == "c5" {
                        s.split_once(' ').unwrap().1.to_string()
                    } else {
                        s
                    }
                })
                .collect();
            t.push(format!("{id}: {v:?}"));
        }

        // A fatal error, and a lease that expires.
        seqs.push(
            store
                .insert_upload(&upload(acme.id, iid, "u3"))
                .await
                .unwrap(),
        );
        let work = store
            .claim_work("w1", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stolen = store.claim_work("w2", lease).await.unwrap().unwrap();
        t.push(format!(
            "{} {}",
            label(&seqs, work.seq),
            label(&seqs, stolen.seq)
        ));
        let half = Batch {
            records: vec![(
                1,
                record(
                    "c7",
                    Some(1),
                    false,
                    r#"{"objectId":"c7","isDeleted":false}"#,
                ),
            )],
            errors: vec![],
            checkpoint_line: 1,
            success_count: 1,
            error_count: 0,
        };
        t.push(format!("{:?}", store.apply_batch(&work, "w1", &half).await));
        t.push(format!(
            "{:?}",
            store.heartbeat(work.seq, "w1", lease).await
        ));
        t.push(format!(
            "{:?}",
            store.apply_batch(&stolen, "w2", &half).await
        ));
        store.release_leases("w2").await.unwrap();
        t.push(format!(
            "{:?}",
            store.heartbeat(work.seq, "w2", lease).await
        ));
        let resumed = store.claim_work("w3", lease).await.unwrap().unwrap();
        t.push(format!(
            "{} {} {} {}",
            label(&seqs, resumed.seq),
            resumed.checkpoint_line,
            resumed.success_count,
            resumed.error_count
        ));
        t.push(format!(
            "{:?}",
            store
                .finish_work(
                    resumed.seq,
                    "w3",
                    RequestStatus::Failed,
                    Some("Stream did not contain valid UTF-8")
                )
                .await
        ));
        t.push(format!("{:?}", store.request_report(acme.id, "u3").await));
        t.push(format!(
            "{:?}",
            store
                .finish_work(beta_work.seq, "w1", RequestStatus::Failed, Some("gone"))
                .await
        ));
        t.push(format!("{:?}", store.request_report(beta.id, "u1").await));
        t.push(format!("{:?}", store.claim_work("w1", lease).await));

        // Deleting the integration.
        t.push(format!(
            "{:?}",
            store.request_integration_delete(acme.id, 12345, "d1").await
        ));
        t.push(format!(
            "{:?}",
            store.request_integration_delete(beta.id, iid, "d1").await
        ));
        t.push(format!(
            "{:?}",
            store.request_integration_delete(acme.id, iid, "u2").await
        ));
        t.push(format!(
            "{:?}",
            store.list_integrations(acme.id).await.unwrap().len()
        ));
        t.push(format!(
            "{:?}",
            store.request_integration_delete(acme.id, iid, "d1").await
        ));
        t.push(format!("{:?}", store.list_integrations(acme.id).await));
        t.push(format!("{:?}", store.find_integration(acme.id, iid).await));
        t.push(format!(
            "{:?}",
            store.request_integration_delete(acme.id, iid, "d2").await
        ));
        t.push(format!(
            "{:?}",
            store.client_request_id_used(acme.id, "d1").await
        ));
        t.push(format!(
            "{:?}",
            store
                .request_report(acme.id, "d1")
                .await
                .unwrap()
                .unwrap()
                .status
        ));
        let again = store
            .register_integration(acme.id, "CRM", "o@acme.com")
            .await
            .unwrap();
        t.push(format!("{:?}", again.id != iid));
        let work = store.claim_work("w1", lease).await.unwrap().unwrap();
        t.push(format!("{:?} {:?}", work.kind, work.integration_id == iid));
        t.push(format!(
            "{:?}",
            store.apply_batch(&work, "w1", &Batch::default()).await
        ));
        store.purge_integration(iid).await.unwrap();
        t.push(format!(
            "{:?}",
            store
                .finish_work(work.seq, "w1", RequestStatus::Done, None)
                .await
        ));
        let report = store.request_report(acme.id, "d1").await.unwrap().unwrap();
        t.push(format!(
            "{:?}",
            (
                report.status,
                report.errors,
                report.error_count,
                report.success_count,
                report.integration_id == iid
            )
        ));
        t.push(format!("{:?}", store.get_schema(iid, None).await));
        t.push(format!(
            "{:?}",
            store.versions(iid, ObjectType::Contact, "c1").await
        ));
        t.push(format!(
            "{:?}",
            store
                .current_objects(iid, ObjectType::Contact, &ids[..2])
                .await
                .map(|m| m.len())
        ));
        t.into_iter()
            .map(|line| {
                line.replace(&iid.to_string(), "<iid>")
                    .replace(&again.id.to_string(), "<iid2>")
            })
            .collect()
    }

    /// The scenario gives the same transcript on SQLite and on PostgreSQL.
    #[tokio::test]
    async fn behaves_like_sqlite() {
        with_database(|url| async move {
            let path = std::env::temp_dir()
                .join(format!("intake-pgstore-{:016x}.db", rand::random::<u64>()));
            let sqlite = crate::sqlite::SqliteStore::open(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let expected = scenario(&sqlite).await;
            drop(sqlite);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            let store = crate::open(&url).await.unwrap();
            assert_eq!(store.backend(), "postgres");
            let actual = scenario(&*store).await;
            for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
                assert_eq!(a, e, "transcript line {i} differs");
            }
            assert_eq!(actual.len(), expected.len());
        })
        .await;
    }

    #[tokio::test]
    async fn instances_start_together_and_share_work() {
        with_database(|url| async move {
            // Four instances migrate one empty database at once.
            let opened = futures_util::future::join_all((0..4).map(|_| PgStore::open(&url))).await;
            let stores: Vec<Arc<PgStore>> =
                opened.into_iter().map(|s| Arc::new(s.unwrap())).collect();
            let company = stores[0].create_company("c").await.unwrap();
            let integration = stores[1]
                .register_integration(company.id, "n", "a@b.c")
                .await
                .unwrap();

            // A waiting instance wakes when another one takes an upload.
            let waiter = stores[2].clone();
            assert!(waiter
                .claim_work("w-wait", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none());
            let started = std::time::Instant::now();
            let waiting = tokio::spawn(async move {
                waiter.wait_for_work(Duration::from_secs(20)).await;
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            stores[3]
                .insert_upload(&upload(company.id, integration.id, "first"))
                .await
                .unwrap();
            waiting.await.unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "woken by the notification"
            );

            // Forty uploads, eight workers on four instances: each claimed exactly once.
            for i in 0..39 {
                stores[i % 4]
                    .insert_upload(&upload(company.id, integration.id, &format!("r{i}")))
                    .await
                    .unwrap();
            }
            let workers = (0..8).map(|w| {
                let store = stores[w % 4].clone();
                tokio::spawn(async move {
                    let mut claimed = vec![];
                    let id = format!("w{w}");
                    while let Some(work) = store
                        .claim_work(&id, Duration::from_secs(30))
                        .await
                        .unwrap()
                    {
                        claimed.push(work.seq);
                        let batch = Batch {
                            records: vec![(1, record("x", Some(work.seq), false, "{}"))],
                            checkpoint_line: 1,
                            success_count: 1,
                            ..Batch::default()
                        };
                        store
                            .apply_batch(&work, &id, &batch)
                            .await
                            .unwrap()
                            .unwrap();
                        store
                            .finish_work(work.seq, &id, RequestStatus::Done, None)
                            .await
                            .unwrap()
                            .unwrap();
                    }
                    claimed
                })
            });
            let mut all: Vec<i64> = futures_util::future::join_all(workers)
                .await
                .into_iter()
                .flat_map(|r| r.unwrap())
                .collect();
            all.sort();
            let before = all.len();
            all.dedup();
            assert_eq!((before, all.len()), (40, 40));
            let versions = stores[0]
                .versions(integration.id, ObjectType::Contact, "x")
                .await
                .unwrap();
            assert_eq!(versions.len(), 40);

            // The rate limit counts calls on every instance.
            let limits = RateLimits {
                per_second: 3,
                per_day: 0,
            };
            let now = 1_700_000_000_000;
            let mut decisions = vec![];
            for store in &stores {
                decisions.push(store.hit_rate_limit(company.id, limits, now).await.unwrap());
            }
            assert_eq!(decisions[..3], [RateDecision::Allowed; 3]);
            assert_eq!(
                decisions[3],
                RateDecision::Limited {
                    retry_after_secs: 1
                }
            );
            // A lagging clock counts in the current window rather than resetting it.
            assert_eq!(
                stores[0]
                    .hit_rate_limit(company.id, limits, now - 1000)
                    .await
                    .unwrap(),
                RateDecision::Limited {
                    retry_after_secs: 1
                }
            );
            assert_eq!(
                stores[0]
                    .hit_rate_limit(company.id, limits, now + 1000)
                    .await
                    .unwrap(),
                RateDecision::Allowed
            );
        })
        .await;
    }

    /// Records per second through `apply_batch` on both backends (worker-sized batches of
    /// CONTACT-like bodies). Run with `cargo test -p intake-store --release -- --ignored
    /// --nocapture apply_batch_throughput`.
    #[tokio::test]
    #[ignore]
    async fn apply_batch_throughput() {
        async fn measure(store: &dyn Store) -> f64 {
            let company = store.create_company("bench").await.unwrap();
            let integration = store
                .register_integration(company.id, "n", "a@b.c")
                .await
                .unwrap();
            store
                .insert_upload(&upload(company.id, integration.id, "bench"))
                .await
                .unwrap();
            let work = store
                .claim_work("bench", Duration::from_secs(300))
                .await
                .unwrap()
                .unwrap();
            let (total, per_batch) = (200_000u64, 5_000u64);
            let started = std::time::Instant::now();
            for first in (0..total).step_by(per_batch as usize) {
                let records = (first..first + per_batch)
                    .map(|i| {
                        let body = format!(
                            r#"{{"objectId":"contact-{i:08}","modifiedDate":"2024-01-03T23:45:57Z","accountId":"acct-{a}","emailAddress":"person.{i}@example.com","firstName":"First{i}","lastName":"Last{i}","title":"Engineer","phoneNumber":"+1 555 {i:07}","isDeleted":false}}"#,
                            a = i % 1000
                        );
                        (i + 1, record(&format!("contact-{i:08}"), Some(1_704_325_557), false, &body))
                    })
                    .collect();
                let batch = Batch {
                    records,
                    checkpoint_line: first + per_batch,
                    success_count: first + per_batch,
                    ..Batch::default()
                };
                store
                    .apply_batch(&work, "bench", &batch)
                    .await
                    .unwrap()
                    .unwrap();
            }
            total as f64 / started.elapsed().as_secs_f64()
        }
        with_database(|url| async move {
            let path = std::env::temp_dir()
                .join(format!("intake-pgbench-{:016x}.db", rand::random::<u64>()));
            let sqlite = crate::sqlite::SqliteStore::open(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let sqlite_rate = measure(&sqlite).await;
            drop(sqlite);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            let pg = PgStore::open(&url).await.unwrap();
            let pg_rate = measure(&pg).await;
            eprintln!(
                "apply_batch: sqlite {sqlite_rate:.0} records/s, postgres {pg_rate:.0} records/s"
            );
        })
        .await;
    }

    #[test]
    fn without_key_keeps_everything_else() {
        let body = r#"{"objectId":"a","f1":{"x":[1,2]},"n":1.50,"s":"é\u0000\"f1\"","f1x":true}"#;
        assert_eq!(
            without_key(body, "f1").as_deref(),
            Some(r#"{"objectId":"a","n":1.50,"s":"é\u0000\"f1\"","f1x":true}"#)
        );
        assert_eq!(without_key(body, "f"), None);
        assert_eq!(without_key(r#"{"a":1}"#, "a").as_deref(), Some("{}"));
        assert_eq!(
            without_key(r#"{"a\"b":1,"c":2}"#, "a\"b").as_deref(),
            Some(r#"{"c":2}"#)
        );
        assert_eq!(
            database_url("postgres://u@h:1/db?x=1", "n"),
            "postgres://u@h:1/n?x=1"
        );
        assert_eq!(database_url("postgres://h", "n"), "postgres://h/n");
    }
}
