//! The requests list and cancel (see `Store::list_requests`, `Store::cancel_request`).

use super::SqliteStore;
use crate::requests::{CANCELLED_TEXT, INFO_COLUMNS};
use crate::{
    now_unix_ms, CancelOutcome, CompanyId, IntegrationId, RequestFilter, RequestInfo, RequestSeq,
    RequestStatus, Result,
};

pub(super) async fn list_requests(
    store: &SqliteStore,
    company: CompanyId,
    integration: IntegrationId,
    filter: &RequestFilter,
    before: Option<RequestSeq>,
    limit: usize,
) -> Result<Vec<RequestInfo>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INFO_COLUMNS} FROM requests \
         WHERE company_id = ?1 AND integration_id = ?2 AND seq < ?3 \
         AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR object_type = ?5) \
         AND (?6 IS NULL OR accepted_at >= ?6) AND (?7 IS NULL OR accepted_at < ?7) \
         ORDER BY seq DESC LIMIT ?8"
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
    store: &SqliteStore,
    company: CompanyId,
    crid: &str,
) -> Result<Option<RequestInfo>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INFO_COLUMNS} FROM requests WHERE company_id = ? AND client_request_id = ?"
    ))
    .bind(company)
    .bind(crid)
    .fetch_optional(&store.pool)
    .await?)
}

pub(super) async fn cancel_request(
    store: &SqliteStore,
    company: CompanyId,
    crid: &str,
) -> Result<Option<CancelOutcome>> {
    let mut tx = store.begin_write().await?;
    let cancelled: Option<RequestInfo> = sqlx::query_as(&format!(
        "UPDATE requests SET status = 'CANCELLED', finished_at_ms = ?, lease_owner = NULL, \
         lease_expires_ms = NULL, error_count = error_count + 1 \
         WHERE company_id = ? AND client_request_id = ? AND kind = 'UPLOAD' \
         AND status IN ('PENDING', 'IN_PROGRESS') RETURNING {INFO_COLUMNS}"
    ))
    .bind(now_unix_ms())
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
    sqlx::query("INSERT OR REPLACE INTO request_errors (seq, line, description) VALUES (?, 0, ?)")
        .bind(info.seq)
        .bind(CANCELLED_TEXT)
        .execute(&mut *tx)
        .await?;
    sqlx::query(crate::webhooks::QUEUE_DELIVERIES)
        .bind(now_unix_ms())
        .bind(info.seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    store.reports.forget(info.seq);
    Ok(Some(CancelOutcome::Cancelled(info)))
}
