//! The requests list and cancel (see `Store::list_requests`, `Store::cancel_request`).

use super::PgStore;
use crate::requests::{CANCELLED_TEXT, INFO_COLUMNS};
use crate::{
    CancelOutcome, CompanyId, IntegrationId, RequestFilter, RequestInfo, RequestSeq, RequestStatus,
    Result,
};

pub(super) async fn list_requests(
    store: &PgStore,
    company: CompanyId,
    integration: IntegrationId,
    filter: &RequestFilter,
    before: Option<RequestSeq>,
    limit: usize,
) -> Result<Vec<RequestInfo>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INFO_COLUMNS} FROM requests \
         WHERE company_id = $1 AND integration_id = $2 AND seq < $3 \
         AND ($4::text IS NULL OR status = $4) AND ($5::smallint IS NULL OR object_type = $5) \
         AND ($6::bigint IS NULL OR accepted_at >= $6) AND ($7::bigint IS NULL OR accepted_at < $7) \
         ORDER BY seq DESC LIMIT $8"
    ))
    .bind(company)
    .bind(integration)
    .bind(before.unwrap_or(i64::MAX))
    .bind(filter.status.map(RequestStatus::as_str))
    .bind(filter.object_type.map(|t| t.code()))
    .bind(filter.since)
    .bind(filter.until)
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await?)
}

pub(super) async fn request_info(
    store: &PgStore,
    company: CompanyId,
    crid: &str,
) -> Result<Option<RequestInfo>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INFO_COLUMNS} FROM requests WHERE company_id = $1 AND client_request_id = $2"
    ))
    .bind(company)
    .bind(crid)
    .fetch_optional(&store.pool)
    .await?)
}

pub(super) async fn cancel_request(
    store: &PgStore,
    company: CompanyId,
    crid: &str,
) -> Result<Option<CancelOutcome>> {
    let mut tx = store.pool.begin().await?;
    // The row lock orders this against the worker's batch: a batch committed before it
    // stays, and every later one finds the lease gone.
    let cancelled: Option<RequestInfo> = sqlx::query_as(&format!(
        "UPDATE requests SET status = 'CANCELLED', finished_at_ms = intake_now_ms(), \
         lease_owner = NULL, lease_expires_ms = NULL, error_count = error_count + 1 \
         WHERE company_id = $1 AND client_request_id = $2 AND kind = 'UPLOAD' \
         AND status IN ('PENDING', 'IN_PROGRESS') RETURNING {INFO_COLUMNS}"
    ))
    .bind(company)
    .bind(crid)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(info) = cancelled else {
        tx.rollback().await?;
        return Ok(request_info(store, company, crid)
            .await?
            .map(CancelOutcome::NotCancellable));
    };
    sqlx::query(
        "INSERT INTO request_errors (seq, line, description) VALUES ($1, 0, $2) \
         ON CONFLICT (seq, line) DO UPDATE SET description = excluded.description",
    )
    .bind(info.seq)
    .bind(CANCELLED_TEXT)
    .execute(&mut *tx)
    .await?;
    sqlx::query(crate::webhooks::QUEUE_DELIVERIES)
        .bind(crate::now_unix_ms())
        .bind(info.seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(CancelOutcome::Cancelled(info)))
}
