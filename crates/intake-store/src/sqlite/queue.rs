//! Requests: registration, the report request-status shows, and the worker's side — claims
//! under a lease, heartbeats, batches and the final status.

use std::time::Duration;

use sqlx::{QueryBuilder, Sqlite};

use super::{now_secs, tiers, SqliteStore};
use crate::rows::{self, ClaimedRow, ReportHead, CLAIMED_COLUMNS, TAKEN_OVER};
use crate::{
    conflict_on_unique, lease_kept, now_unix_ms, Batch, ClaimedWork, CompanyId, LeaseLost,
    NewUpload, RequestReport, RequestSeq, RequestStatus, Result, StoreError, WorkKind,
};

/// Rows per multi-row INSERT: 9 parameters each, well under SQLite's limit.
const ROWS_PER_INSERT: usize = 500;

// The multi-row inserts of versions and keys say OR ROLLBACK: a statement that may stop
// halfway with ABORT makes SQLite keep, in memory, a copy of every page it touches (the
// statement journal), which for a batch of keys grew with the index. None of them can meet
// a constraint unless something is badly wrong, and then the whole transaction goes.

pub(super) async fn insert_upload(store: &SqliteStore, upload: &NewUpload) -> Result<RequestSeq> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO requests (company_id, client_request_id, integration_id, kind, \
         object_type, spool_file, status, accepted_at, file_bytes) \
         VALUES (?, ?, ?, 'UPLOAD', ?, ?, 'PENDING', ?, ?) RETURNING seq",
    )
    .bind(upload.company_id)
    .bind(&upload.client_request_id)
    .bind(upload.integration_id)
    .bind(upload.object_type.code())
    .bind(&upload.spool_file)
    .bind(now_secs())
    .bind(upload.file_bytes as i64)
    .fetch_one(&store.writer)
    .await
    .map_err(|e| conflict_on_unique(e, StoreError::ClientRequestIdUsed))?;
    store.new_work.notify_one();
    Ok(seq)
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    #[sqlx(flatten)]
    head: ReportHead,
    seq: RequestSeq,
    line: Option<i64>,
    description: Option<String>,
}

pub(super) async fn request_report(
    store: &SqliteStore,
    company: CompanyId,
    crid: &str,
) -> Result<Option<RequestReport>> {
    if let Some(report) = store.reports.get(company, crid) {
        return Ok(Some(report));
    }
    let seen_at = store.reports.generation();
    // One query: a request lists at most 20 errors (and a line-0 error), so joining them
    // costs little and spares a round trip on the API's most polled call.
    let mut rows: Vec<ReportRow> = sqlx::query_as(
        "SELECT r.integration_id, r.status, r.success_count, r.error_count, r.seq, \
                e.line, e.description \
         FROM requests r LEFT JOIN request_errors e ON e.seq = r.seq \
         WHERE r.company_id = ? AND r.client_request_id = ? \
         ORDER BY e.line LIMIT 20",
    )
    .bind(company)
    .bind(crid)
    .fetch_all(&store.pool)
    .await?;
    let errors: Vec<(i64, String)> = rows
        .iter_mut()
        .filter_map(|r| Some((r.line?, r.description.take()?)))
        .collect();
    let Some(first) = rows.into_iter().next() else {
        return Ok(None);
    };
    let seq = first.seq;
    let report = first.head.with_errors(errors)?;
    store.reports.put(seen_at, company, crid, seq, &report);
    Ok(Some(report))
}

pub(super) async fn claim_work(
    store: &SqliteStore,
    worker: &str,
    lease: Duration,
) -> Result<Option<ClaimedWork>> {
    let now = now_unix_ms();
    let mut tx = store.begin_write().await?;
    let row: Option<ClaimedRow> = sqlx::query_as(&format!(
        "SELECT {CLAIMED_COLUMNS}, {TAKEN_OVER} FROM requests \
         WHERE status = 'PENDING' \
            OR (status = 'IN_PROGRESS' AND (lease_expires_ms IS NULL OR lease_expires_ms < ?)) \
         ORDER BY seq LIMIT 1"
    ))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(work) = rows::claimed(row)? else {
        tx.rollback().await?;
        return Ok(None);
    };
    sqlx::query(
        "UPDATE requests SET status = 'IN_PROGRESS', lease_owner = ?, lease_expires_ms = ?, \
         started_at_ms = coalesce(started_at_ms, ?) WHERE seq = ?",
    )
    .bind(worker)
    .bind(now + lease.as_millis() as i64)
    .bind(now)
    .bind(work.seq)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    store.reports.forget(work.seq);
    Ok(Some(work))
}

pub(super) async fn heartbeat(
    store: &SqliteStore,
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
    .execute(&store.writer)
    .await?;
    Ok(lease_kept(done.rows_affected()))
}

pub(super) async fn apply_batch(
    store: &SqliteStore,
    work: &ClaimedWork,
    worker: &str,
    batch: &Batch,
) -> Result<Result<(), LeaseLost>> {
    let mut tx = store.begin_write().await?;
    // Lines up to the checkpoint are stored already: a replayed batch adds nothing.
    let stored_through: i64 =
        sqlx::query_scalar("SELECT checkpoint_line FROM requests WHERE seq = ?")
            .bind(work.seq)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
    let owned = sqlx::query(
        "UPDATE requests SET checkpoint_line = ?, success_count = ?, error_count = ?, \
         listed_errors = listed_errors + ?, sidecar = coalesce(?, sidecar), \
         errors_bytes = coalesce(?, errors_bytes), failed_bytes = coalesce(?, failed_bytes) \
         WHERE seq = ? AND lease_owner = ? AND status = 'IN_PROGRESS'",
    )
    .bind(batch.checkpoint_line as i64)
    .bind(batch.success_count as i64)
    .bind(batch.error_count as i64)
    .bind(batch.errors.len() as i64)
    .bind(batch.sidecar.as_ref().map(|m| m.name.as_str()))
    .bind(batch.sidecar.as_ref().map(|m| m.errors_bytes as i64))
    .bind(batch.sidecar.as_ref().map(|m| m.failed_bytes as i64))
    .bind(work.seq)
    .bind(worker)
    .execute(&mut *tx)
    .await?;
    if let Err(lost) = lease_kept(owned.rows_affected()) {
        tx.rollback().await?;
        return Ok(Err(lost));
    }
    let upload_type = match &work.kind {
        WorkKind::Upload { object_type, .. } => *object_type,
        WorkKind::DeleteIntegration => {
            tx.rollback().await?;
            return Ok(Err(LeaseLost));
        }
    };
    let object_type = upload_type.code();
    // Bodies are appended under ids of their own; their keys go to the recent tier.
    // Above every id keyed so far too: an erasure or a purge may have removed the
    // greatest ids, and an id keyed before would never be keyed again (see `lookups.rs`).
    let first_id: i64 = sqlx::query_scalar(
        "SELECT max(coalesce((SELECT max(id) FROM record_versions), 0),              (SELECT keyed_through FROM lookup_progress WHERE id = 1)) + 1",
    )
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
    super::board::insert_facts(&mut tx, work, first_id).await?;
    sqlx::query(
        "INSERT OR ROLLBACK INTO recent_version_keys \
         (integration_id, object_type, object_id, modified, seq, version_id) \
         SELECT integration_id, object_type, object_id, modified, seq, id \
         FROM record_versions WHERE id >= ?",
    )
    .bind(first_id)
    .execute(&mut *tx)
    .await?;
    let counts = tiers::count_keys(&mut tx, 0, next_id - first_id).await?;
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
    store.tiers.set(counts);
    store.reports.forget(work.seq);
    Ok(Ok(()))
}

pub(super) async fn finish_work(
    store: &SqliteStore,
    seq: RequestSeq,
    worker: &str,
    status: RequestStatus,
    fatal_error: Option<&str>,
) -> Result<Result<(), LeaseLost>> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query(
        "UPDATE requests SET status = ?, lease_owner = NULL, lease_expires_ms = NULL, \
         error_count = error_count + ?, finished_at_ms = ? WHERE seq = ? AND lease_owner = ? \
         AND status = 'IN_PROGRESS'",
    )
    .bind(status.as_str())
    .bind(fatal_error.is_some() as i64)
    .bind(now_unix_ms())
    .bind(seq)
    .bind(worker)
    .execute(&mut *tx)
    .await?;
    if let Err(lost) = lease_kept(done.rows_affected()) {
        tx.rollback().await?;
        return Ok(Err(lost));
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
    sqlx::query(crate::webhooks::QUEUE_DELIVERIES)
        .bind(now_unix_ms())
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    store.reports.forget(seq);
    Ok(Ok(()))
}

pub(super) async fn release_leases(store: &SqliteStore, worker: &str) -> Result<()> {
    sqlx::query(
        "UPDATE requests SET lease_owner = NULL, lease_expires_ms = NULL \
         WHERE lease_owner = ? AND status = 'IN_PROGRESS'",
    )
    .bind(worker)
    .execute(&store.writer)
    .await?;
    Ok(())
}

/// Every new request passes through this process, which signals it in memory.
pub(super) async fn wait_for_work(store: &SqliteStore, max: Duration) {
    let _ = tokio::time::timeout(max, store.new_work.notified()).await;
}

crate::same_sql::request_statements!(SqliteStore, read: pool);
