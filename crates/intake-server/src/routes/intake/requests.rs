use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use intake_model::wire::intake::{CancelReply, ErrorsPage, PageInfo, RequestReply, RequestsPage};
use intake_model::wire::Scope;

use crate::extract::{IntakeCaller, QueryParams};
use crate::request_id::ReqId;
use crate::services::requests;
use crate::{ApiError, AppState};

/// `GET /intake/v1/requests`
pub async fn list(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<RequestsPage>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let page = requests::list(&state, caller.company(), &params).await?;
    Ok(Json(RequestsPage {
        request_id,
        records: PageInfo {
            current_page_size: page.requests.len(),
            cursor: page.cursor,
        },
        requests: page.requests,
    }))
}

/// `GET /intake/v1/requests/{clientRequestId}`
pub async fn one(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path(crid): Path<String>,
) -> Result<Json<RequestReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let (request, errors) = requests::one(&state, caller.company(), &crid).await?;
    Ok(Json(RequestReply {
        request_id,
        request,
        errors,
    }))
}

/// `POST /intake/v1/requests/{clientRequestId}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path(crid): Path<String>,
) -> Result<Json<CancelReply>, ApiError> {
    caller.require(Scope::IntakeWrite)?;
    let request = requests::cancel(&state, caller.company(), &crid).await?;
    Ok(Json(CancelReply {
        request_id,
        request,
    }))
}

/// `GET /intake/v1/requests/{clientRequestId}/errors`: one page, or with `Accept:
/// application/x-ndjson` all of them as LDJSON.
pub async fn errors(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path(crid): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let every = requests::every_error(&state, caller.company(), &crid).await?;
    let ndjson = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or("").trim() == NDJSON);
    if ndjson {
        let body = every.stream().await?;
        return Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response());
    }
    let limit = crate::services::records::limit(&params)?;
    let (errors, cursor) = every.page(params.optional("cursor"), limit).await?;
    Ok(Json(ErrorsPage {
        request_id,
        records: PageInfo {
            current_page_size: errors.len(),
            cursor,
        },
        errors,
    })
    .into_response())
}

/// `GET /intake/v1/requests/{clientRequestId}/failed-lines`
pub async fn failed_lines(
    State(state): State<AppState>,
    caller: IntakeCaller,
    Path(crid): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let body = requests::failed_lines(&state, caller.company(), &crid).await?;
    Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
}

const NDJSON: &str = "application/x-ndjson";
