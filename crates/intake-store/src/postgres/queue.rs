//! Requests: registration (announced to every instance), the report request-status shows,
//! and the worker's side — claims with `FOR UPDATE SKIP LOCKED` under a lease judged by the
//! database clock, heartbeats, batches and the final status.

use std::time::Duration;

use super::copy::{copy_versions, insert_versions_skipping_conflicts};
use super::notify::WORK_CHANNEL;
use super::{millis, PgStore};
use crate::rows::{self, ClaimedRow, ReportHead, CLAIMED_COLUMNS, TAKEN_OVER};
use crate::{
    conflict_on_unique, lease_kept, Batch, ClaimedWork, CompanyId, LeaseLost, NewUpload,
    RequestReport, RequestSeq, RequestStatus, Result, StoreError, WorkKind,
};

pub(super) use super::notify::wait_for_work;

pub(super) async fn insert_upload(store: &PgStore, upload: &NewUpload) -> Result<RequestSeq> {
    // One statement, so one transaction: the notification goes out when the row is
    // visible to the other instances' workers.
    let seq: i64 = sqlx::query_scalar(
        "WITH inserted AS ( \
             INSERT INTO requests (company_id, client_request_id, integration_id, kind, \
                 object_type, spool_file, status, file_bytes) \
             VALUES ($1, $2, $3, 'UPLOAD', $4, $5, 'PENDING', $7) RETURNING seq \
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
    .bind(upload.file_bytes as i64)
    .fetch_one(&store.pool)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
    Ok(seq)
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    #[sqlx(flatten)]
    head: ReportHead,
    lines: Vec<i64>,
    descriptions: Vec<String>,
}

pub(super) async fn request_report(
    store: &PgStore,
    company: CompanyId,
    crid: &str,
) -> Result<Option<RequestReport>> {
    // One statement: the listed errors and the counts come from one snapshot.
    let row: Option<ReportRow> = sqlx::query_as(
        "SELECT r.integration_id, r.status, r.success_count, r.error_count, \
             ARRAY(SELECT e.line FROM request_errors e WHERE e.seq = r.seq \
                   ORDER BY e.line LIMIT 20) AS lines, \
             ARRAY(SELECT e.description FROM request_errors e WHERE e.seq = r.seq \
                   ORDER BY e.line LIMIT 20) AS descriptions \
         FROM requests r WHERE r.company_id = $1 AND r.client_request_id = $2",
    )
    .bind(company)
    .bind(crid)
    .fetch_optional(&store.pool)
    .await?;
    row.map(|r| r.head.with_errors(r.lines.into_iter().zip(r.descriptions)))
        .transpose()
}

pub(super) async fn claim_work(
    store: &PgStore,
    worker: &str,
    lease: Duration,
) -> Result<Option<ClaimedWork>> {
    // Listen before looking, so that work arriving after an empty claim wakes us.
    store.work_signal().await;
    let row: Option<ClaimedRow> = sqlx::query_as(&format!(
        "WITH next AS ( \
             SELECT seq, {TAKEN_OVER} FROM requests \
             WHERE status = 'PENDING' OR (status = 'IN_PROGRESS' \
                 AND (lease_expires_ms IS NULL OR lease_expires_ms < intake_now_ms())) \
             ORDER BY seq LIMIT 1 \
             FOR UPDATE SKIP LOCKED \
         ) \
         UPDATE requests r SET status = 'IN_PROGRESS', lease_owner = $1, \
             lease_expires_ms = intake_now_ms() + $2, \
             started_at_ms = coalesce(r.started_at_ms, intake_now_ms()) \
         FROM next WHERE r.seq = next.seq \
         RETURNING {}, next.taken_over",
        CLAIMED_COLUMNS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(worker)
    .bind(millis(lease))
    .fetch_optional(&store.pool)
    .await?;
    rows::claimed(row)
}

pub(super) async fn heartbeat(
    store: &PgStore,
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
    .execute(&store.pool)
    .await?;
    Ok(lease_kept(done.rows_affected()))
}

pub(super) async fn apply_batch(
    store: &PgStore,
    work: &ClaimedWork,
    worker: &str,
    batch: &Batch,
) -> Result<Result<(), LeaseLost>> {
    let upload_type = match &work.kind {
        WorkKind::Upload { object_type, .. } => *object_type,
        WorkKind::DeleteIntegration => return Ok(Err(LeaseLost)),
    };
    let object_type = upload_type.code();
    let mut tx = store.pool.begin().await?;
    // The lease check takes the request's row lock first; nothing is written unless the
    // lease is ours. The same statement reads the active recent tier FOR SHARE: a swap
    // waits for this transaction (see `tiers.rs`).
    let tier: Option<i16> = sqlx::query_scalar(
        "WITH tier AS (SELECT active FROM version_tiers WHERE id = 1 FOR SHARE) \
         UPDATE requests SET checkpoint_line = $1, success_count = $2, \
             error_count = $3, listed_errors = listed_errors + $4, \
             sidecar = coalesce($7, sidecar), errors_bytes = coalesce($8, errors_bytes), \
             failed_bytes = coalesce($9, failed_bytes) \
         FROM tier WHERE seq = $5 AND lease_owner = $6 AND status = 'IN_PROGRESS' \
         RETURNING tier.active",
    )
    .bind(batch.checkpoint_line as i64)
    .bind(batch.success_count as i64)
    .bind(batch.error_count as i64)
    .bind(batch.errors.len() as i64)
    .bind(work.seq)
    .bind(worker)
    .bind(batch.sidecar.as_ref().map(|m| m.name.as_str()))
    .bind(batch.sidecar.as_ref().map(|m| m.errors_bytes as i64))
    .bind(batch.sidecar.as_ref().map(|m| m.failed_bytes as i64))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(tier) = tier else {
        return Ok(Err(LeaseLost));
    };
    let versions = super::tiers::recent_versions(tier);
    if !batch.records.is_empty() {
        // COPY is PostgreSQL's fast path. A checkpoint commits with its rows, so a
        // resumed request never sends a stored row again and COPY meets no conflict;
        // should it meet one anyway, the batch is written again, skipping conflicts.
        sqlx::query("SAVEPOINT copy_versions")
            .execute(&mut *tx)
            .await?;
        match copy_versions(&mut tx, versions, work, object_type, &batch.records).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                sqlx::query("ROLLBACK TO SAVEPOINT copy_versions")
                    .execute(&mut *tx)
                    .await?;
                insert_versions_skipping_conflicts(
                    &mut tx,
                    versions,
                    work,
                    object_type,
                    &batch.records,
                )
                .await?;
            }
            Err(err) => return Err(err.into()),
        }
        super::board::insert_facts(&mut tx, work, &batch.records).await?;
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

pub(super) async fn finish_work(
    store: &PgStore,
    seq: RequestSeq,
    worker: &str,
    status: RequestStatus,
    fatal_error: Option<&str>,
) -> Result<Result<(), LeaseLost>> {
    let mut tx = store.pool.begin().await?;
    let done: i64 = sqlx::query_scalar(
        "WITH done AS ( \
             UPDATE requests SET status = $1, lease_owner = NULL, lease_expires_ms = NULL, \
                 error_count = error_count + $2, finished_at_ms = intake_now_ms() \
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
    .fetch_one(&mut *tx)
    .await?;
    if done > 0 {
        sqlx::query(crate::webhooks::QUEUE_DELIVERIES)
            .bind(crate::now_unix_ms())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(lease_kept(done as u64))
}

pub(super) async fn release_leases(store: &PgStore, worker: &str) -> Result<()> {
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
    .execute(&store.pool)
    .await?;
    Ok(())
}

crate::same_sql::request_statements!(PgStore, read: pool);
