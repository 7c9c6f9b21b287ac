use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::reply;
use crate::extract::{Caller, QueryParams};
use crate::{ApiError, AppState};

pub async fn request_status(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require("api:crm:upload")?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration_id = params.integration_id()?;
    let client_request_id = params.client_request_id()?;
    let report = state
        .store
        .request_report(caller.company(), client_request_id)
        .await?
        .filter(|r| r.integration_id == integration_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No request with clientRequestId [{client_request_id}] for integration [{integration_id}]"
            ))
        })?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "status": report.status.as_str(),
            "errors": report.errors,
            "totalErrorCount": report.error_count,
            "totalSuccessCount": report.success_count,
        }),
    ))
}
