use axum::extract::{Path, RawQuery, State};
use axum::Json;
use intake_model::wire::intake::{CancelReply, PageInfo, RequestReply, RequestsPage};
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
