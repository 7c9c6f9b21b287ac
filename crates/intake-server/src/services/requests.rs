//! Every upload and integration delete of a company, newest first, one by one, and their
//! cancel (`/intake/v1/requests...`, INTAKE-API.md "Uploads and integration deletes").

use intake_model::wire::intake::{RequestError, RequestListed};
use intake_model::{format_timestamp, format_timestamp_ms, ObjectType};
use intake_store::{
    CancelOutcome, CompanyId, IntegrationId, RequestFilter, RequestInfo, RequestStatus,
};
use serde::{Deserialize, Serialize};

use crate::extract::QueryParams;
use crate::services::records;
use crate::{ApiError, AppState};

/// A request as listed.
pub fn listed(info: RequestInfo) -> RequestListed {
    RequestListed {
        client_request_id: info.client_request_id,
        kind: info.kind,
        object_type: info
            .object_type
            .and_then(ObjectType::from_code)
            .map(|t| t.as_str().to_owned()),
        status: info.status,
        total_success_count: info.success_count.max(0) as u64,
        total_error_count: info.error_count.max(0) as u64,
        file_bytes: info.file_bytes.map(|b| b.max(0) as u64),
        created_at: format_timestamp(info.accepted_at),
        started_at: info.started_at_ms.map(format_timestamp_ms),
        finished_at: info.finished_at_ms.map(format_timestamp_ms),
    }
}

/// The integration of a requests call: `integrationId` may name a deleted integration of
/// the company (its requests stay listed), else the active one.
async fn integration(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<IntegrationId, ApiError> {
    match records::integration(state, company, params).await {
        Err(ApiError::IntakeUnknownIntegration) => {
            let id: IntegrationId = params
                .optional("integrationId")
                .and_then(|raw| raw.parse().ok())
                .ok_or(ApiError::IntakeUnknownIntegration)?;
            // A deleted integration of the company has at least its delete request.
            let any = state
                .store
                .list_requests(company, id, &RequestFilter::default(), None, 1)
                .await?;
            if any.is_empty() {
                Err(ApiError::IntakeUnknownIntegration)
            } else {
                Ok(id)
            }
        }
        other => other,
    }
}

fn filter(params: &QueryParams) -> Result<RequestFilter, ApiError> {
    let status = params
        .optional("status")
        .map(|raw| {
            RequestStatus::parse(raw).ok_or_else(|| ApiError::InvalidParameter {
                name: "status",
                expected: "one of PENDING, IN_PROGRESS, DONE, FAILED, CANCELLED",
                got: raw.to_owned(),
            })
        })
        .transpose()?;
    let object_type = params
        .optional("objectType")
        .map(|raw| {
            ObjectType::parse(raw).ok_or_else(|| ApiError::InvalidParameter {
                name: "objectType",
                expected: "one of ACCOUNT, BUSINESS_USER, CONTACT, DEAL, LEAD, STAGE",
                got: raw.to_owned(),
            })
        })
        .transpose()?;
    let time = |name: &'static str| {
        params
            .optional(name)
            .map(|raw| {
                intake_model::parse_timestamp(raw).ok_or_else(|| ApiError::InvalidParameter {
                    name,
                    expected: "an ISO-8601 datetime with Z or ±HH:MM",
                    got: raw.to_owned(),
                })
            })
            .transpose()
    };
    Ok(RequestFilter {
        status,
        object_type,
        since: time("since")?,
        until: time("until")?,
    })
}

/// A requests cursor: the listing (integration and filters) and the last seq it gave.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct RequestsCursor {
    #[serde(rename = "i")]
    integration: IntegrationId,
    #[serde(rename = "f")]
    filter: (Option<String>, Option<i16>, Option<i64>, Option<i64>),
    #[serde(rename = "b")]
    before: i64,
}

fn filter_key(filter: &RequestFilter) -> (Option<String>, Option<i16>, Option<i64>, Option<i64>) {
    (
        filter.status.map(|s| s.as_str().to_owned()),
        filter.object_type.map(ObjectType::code),
        filter.since,
        filter.until,
    )
}

pub struct RequestsPage {
    pub requests: Vec<RequestListed>,
    pub cursor: Option<String>,
}

pub async fn list(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<RequestsPage, ApiError> {
    let integration = integration(state, company, params).await?;
    let filter = filter(params)?;
    let limit = records::limit(params)?;
    let before = match params.optional("cursor") {
        None => None,
        Some(raw) => {
            let cursor: RequestsCursor = records::decode_cursor(raw)?;
            if cursor.integration != integration || cursor.filter != filter_key(&filter) {
                return Err(ApiError::InvalidCursor);
            }
            Some(cursor.before)
        }
    };
    let mut found = state
        .store
        .list_requests(company, integration, &filter, before, limit + 1)
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let cursor = more.then(|| {
        records::encode_cursor(&RequestsCursor {
            integration,
            filter: filter_key(&filter),
            before: found.last().map_or(0, |r| r.seq),
        })
    });
    Ok(RequestsPage {
        requests: found.into_iter().map(listed).collect(),
        cursor,
    })
}

/// One request and its first 20 errors.
pub async fn one(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<(RequestListed, Vec<RequestError>), ApiError> {
    let info = state
        .store
        .request_info(company, crid)
        .await?
        .ok_or(ApiError::IntakeRequestNotFound)?;
    let report = state
        .store
        .request_report(company, crid)
        .await?
        .ok_or(ApiError::IntakeRequestNotFound)?;
    let errors = report
        .errors
        .into_iter()
        .map(|e| RequestError {
            line: e.line,
            description: e.description,
        })
        .collect();
    Ok((listed(info), errors))
}

/// Cancels a PENDING or IN_PROGRESS upload; 409 when it had finished.
pub async fn cancel(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<RequestListed, ApiError> {
    match state.store.cancel_request(company, crid).await? {
        None => Err(ApiError::IntakeRequestNotFound),
        Some(CancelOutcome::Cancelled(info)) => {
            // Its spool file goes with the spool's clean-up of finished requests.
            tracing::info!(client_request_id = crid, "request cancelled");
            Ok(listed(info))
        }
        Some(CancelOutcome::NotCancellable(info)) if info.kind != "UPLOAD" && !is_final(&info) => {
            Err(ApiError::NotCancellable(
                "An integration delete cannot be cancelled".into(),
            ))
        }
        Some(CancelOutcome::NotCancellable(info)) => Err(ApiError::NotCancellable(format!(
            "The request has already finished ({})",
            info.status
        ))),
    }
}

fn is_final(info: &RequestInfo) -> bool {
    RequestStatus::parse(&info.status).is_some_and(RequestStatus::is_final)
}
