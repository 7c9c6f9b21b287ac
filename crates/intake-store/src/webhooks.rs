//! Every error's sidecar files and the webhooks with their deliveries: statements whose SQL
//! is the same in both dialects (see `same_sql`), written once as `webhook_statements!`.

use intake_model::LineError;

use crate::rows::count_of;
use crate::{ErrorSource, RequestSeq, RequestStatus, Result, SidecarMark, StoreError};

/// Queues a `request.finished` delivery to each webhook of the request's company; run in the
/// transaction that finishes the request. `$1` the time (unix ms), `$2` the request's seq.
pub(crate) const QUEUE_DELIVERIES: &str =
    "INSERT INTO webhook_deliveries (webhook_id, seq, event, state, attempts, created_at_ms, \
     next_attempt_ms) \
     SELECT w.webhook_id, r.seq, 'request.finished', 'PENDING', 0, $1, $1 \
     FROM requests r JOIN webhooks w ON w.company_id = r.company_id WHERE r.seq = $2";

#[derive(sqlx::FromRow)]
pub(crate) struct SourceRow {
    pub seq: RequestSeq,
    pub status: String,
    pub sidecar: Option<String>,
    pub errors_bytes: i64,
    pub failed_bytes: i64,
}

pub(crate) fn mark(name: Option<String>, errors: i64, failed: i64) -> Result<Option<SidecarMark>> {
    Ok(match name {
        Some(name) => Some(SidecarMark {
            name,
            errors_bytes: count_of(errors)?,
            failed_bytes: count_of(failed)?,
        }),
        None => None,
    })
}

pub(crate) fn source(row: SourceRow, stored: Vec<(i64, String)>) -> Result<ErrorSource> {
    let status = RequestStatus::parse(&row.status)
        .ok_or_else(|| StoreError::Corrupt(format!("request status {:?}", row.status)))?;
    let stored = stored
        .into_iter()
        .map(|(line, description)| Ok(LineError::new(count_of(line)?, description)))
        .collect::<Result<_>>()?;
    Ok(ErrorSource {
        seq: row.seq,
        status,
        sidecar: mark(row.sidecar, row.errors_bytes, row.failed_bytes)?,
        stored,
    })
}

macro_rules! webhook_statements {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        pub(super) async fn error_source(
            store: &$store,
            company: $crate::CompanyId,
            crid: &str,
        ) -> $crate::Result<Option<$crate::ErrorSource>> {
            let sql = "SELECT seq, status, sidecar, errors_bytes, failed_bytes FROM requests \
                       WHERE company_id = $1 AND client_request_id = $2";
            let row: Option<$crate::webhooks::SourceRow> = sqlx::query_as(sql)
                .bind(company)
                .bind(crid)
                .fetch_optional(&store.$read)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let stored: Vec<(i64, String)> = sqlx::query_as(
                "SELECT line, description FROM request_errors WHERE seq = $1 ORDER BY line",
            )
            .bind(row.seq)
            .fetch_all(&store.$read)
            .await?;
            $crate::webhooks::source(row, stored).map(Some)
        }

        pub(super) async fn integration_sidecars(
            store: &$store,
            integration: $crate::IntegrationId,
        ) -> $crate::Result<Vec<($crate::RequestSeq, $crate::SidecarMark)>> {
            let rows: Vec<(i64, Option<String>, i64, i64)> = sqlx::query_as(
                "SELECT seq, sidecar, errors_bytes, failed_bytes FROM requests \
                 WHERE integration_id = $1 AND sidecar IS NOT NULL ORDER BY seq",
            )
            .bind(integration)
            .fetch_all(&store.$read)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for (seq, name, errors, failed) in rows {
                if let Some(mark) = $crate::webhooks::mark(name, errors, failed)? {
                    out.push((seq, mark));
                }
            }
            Ok(out)
        }

        pub(super) async fn replace_sidecar(
            store: &$store,
            seq: $crate::RequestSeq,
            old: &str,
            new: &$crate::SidecarMark,
        ) -> $crate::Result<bool> {
            let done = sqlx::query(
                "UPDATE requests SET sidecar = $1, errors_bytes = $2, failed_bytes = $3 \
                 WHERE seq = $4 AND sidecar = $5 AND status IN ('DONE', 'FAILED', 'CANCELLED')",
            )
            .bind(&new.name)
            .bind(new.errors_bytes as i64)
            .bind(new.failed_bytes as i64)
            .bind(seq)
            .bind(old)
            .execute(&store.$write)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(super) async fn create_webhook(
            store: &$store,
            company: $crate::CompanyId,
            url: &str,
            secret: &str,
        ) -> $crate::Result<i64> {
            Ok(sqlx::query_scalar(
                "INSERT INTO webhooks (company_id, url, secret, created_at_ms) \
                 VALUES ($1, $2, $3, $4) RETURNING webhook_id",
            )
            .bind(company)
            .bind(url)
            .bind(secret)
            .bind($crate::now_unix_ms())
            .fetch_one(&store.$write)
            .await?)
        }

        pub(super) async fn list_webhooks(
            store: &$store,
            company: $crate::CompanyId,
        ) -> $crate::Result<Vec<$crate::Webhook>> {
            Ok(sqlx::query_as(
                "SELECT webhook_id, company_id, url, secret, created_at_ms FROM webhooks \
                 WHERE company_id = $1 ORDER BY webhook_id",
            )
            .bind(company)
            .fetch_all(&store.$read)
            .await?)
        }

        pub(super) async fn delete_webhook(
            store: &$store,
            company: $crate::CompanyId,
            webhook: i64,
        ) -> $crate::Result<bool> {
            let done = sqlx::query("DELETE FROM webhooks WHERE webhook_id = $1 AND company_id = $2")
                .bind(webhook)
                .bind(company)
                .execute(&store.$write)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            // A delivery of a removed webhook is never claimed (the claim joins webhooks).
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(webhook)
                .execute(&store.$write)
                .await?;
            Ok(true)
        }

        pub(super) async fn list_deliveries(
            store: &$store,
            company: $crate::CompanyId,
            webhook: i64,
            limit: usize,
        ) -> $crate::Result<Option<Vec<$crate::Delivery>>> {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT webhook_id FROM webhooks WHERE webhook_id = $1 AND company_id = $2",
            )
            .bind(webhook)
            .bind(company)
            .fetch_optional(&store.$read)
            .await?;
            if found.is_none() {
                return Ok(None);
            }
            Ok(Some(
                sqlx::query_as(
                    "SELECT d.delivery_id, d.webhook_id, d.seq, d.event, r.client_request_id, \
                     d.state, d.attempts, d.last_status, d.created_at_ms, d.delivered_at_ms \
                     FROM webhook_deliveries d JOIN requests r ON r.seq = d.seq \
                     WHERE d.webhook_id = $1 ORDER BY d.delivery_id DESC LIMIT $2",
                )
                .bind(webhook)
                .bind(limit as i64)
                .fetch_all(&store.$read)
                .await?,
            ))
        }

        pub(super) async fn claim_deliveries(
            store: &$store,
            sender: &str,
            lease: std::time::Duration,
            limit: usize,
        ) -> $crate::Result<Vec<$crate::DueDelivery>> {
            let now = $crate::now_unix_ms();
            let until = now + lease.as_millis() as i64;
            // Asked a few times a second by every instance, and nearly always with nothing
            // due: a read answers that without taking the write lock (SQLite's one writer
            // is the worker's).
            let any_due: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM webhook_deliveries WHERE state = 'PENDING' \
                 AND next_attempt_ms <= $1 \
                 AND (lease_expires_ms IS NULL OR lease_expires_ms < $1) LIMIT 1",
            )
            .bind(now)
            .fetch_optional(&store.$read)
            .await?;
            if any_due.is_none() {
                return Ok(Vec::new());
            }
            // The outer conditions are checked again on the row as it is when locked, so
            // two instances never both take one delivery.
            let taken = sqlx::query(
                "UPDATE webhook_deliveries SET lease_owner = $1, lease_expires_ms = $2 \
                 WHERE delivery_id IN ( \
                     SELECT d.delivery_id FROM webhook_deliveries d \
                     JOIN webhooks w ON w.webhook_id = d.webhook_id \
                     WHERE d.state = 'PENDING' AND d.next_attempt_ms <= $3 \
                     AND (d.lease_expires_ms IS NULL OR d.lease_expires_ms < $3) \
                     ORDER BY d.next_attempt_ms LIMIT $4) \
                 AND state = 'PENDING' AND (lease_expires_ms IS NULL OR lease_expires_ms < $3)",
            )
            .bind(sender)
            .bind(until)
            .bind(now)
            .bind(limit as i64)
            .execute(&store.$write)
            .await?;
            if taken.rows_affected() == 0 {
                return Ok(Vec::new());
            }
            Ok(sqlx::query_as(
                "SELECT d.delivery_id, d.seq, d.event, d.attempts, w.company_id, w.url, w.secret \
                 FROM webhook_deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id \
                 WHERE d.lease_owner = $1 AND d.lease_expires_ms = $2 AND d.state = 'PENDING' \
                 ORDER BY d.delivery_id",
            )
            .bind(sender)
            .bind(until)
            .fetch_all(&store.$write)
            .await?)
        }

        pub(super) async fn record_attempt(
            store: &$store,
            delivery: i64,
            sender: &str,
            outcome: $crate::AttemptOutcome,
        ) -> $crate::Result<()> {
            use $crate::AttemptOutcome::*;
            let now = $crate::now_unix_ms();
            let (state, tried, status, delivered, retry): (&str, i64, Option<i64>, _, _) =
                match outcome {
                    Delivered { status } => ("DELIVERED", 1, Some(status.into()), Some(now), None),
                    Failed { status, retry_at_ms: Some(at) } => {
                        ("PENDING", 1, status.map(i64::from), None::<i64>, Some(at))
                    }
                    Failed { status, retry_at_ms: None } => {
                        ("FAILED", 1, status.map(i64::from), None, None)
                    }
                    Skipped => ("FAILED", 0, None, None, None),
                };
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, attempts = attempts + $2, \
                 last_status = $3, delivered_at_ms = $4, \
                 next_attempt_ms = coalesce($5, next_attempt_ms), \
                 lease_owner = NULL, lease_expires_ms = NULL \
                 WHERE delivery_id = $6 AND lease_owner = $7 AND state = 'PENDING'",
            )
            .bind(state)
            .bind(tried)
            .bind(status)
            .bind(delivered)
            .bind(retry)
            .bind(delivery)
            .bind(sender)
            .execute(&store.$write)
            .await?;
            Ok(())
        }

        pub(super) async fn request_by_seq(
            store: &$store,
            seq: $crate::RequestSeq,
        ) -> $crate::Result<Option<$crate::RequestInfo>> {
            Ok(sqlx::query_as(&format!(
                "SELECT {} FROM requests WHERE seq = $1",
                $crate::requests::INFO_COLUMNS
            ))
            .bind(seq)
            .fetch_optional(&store.$read)
            .await?)
        }
    };
}

pub(crate) use webhook_statements;
