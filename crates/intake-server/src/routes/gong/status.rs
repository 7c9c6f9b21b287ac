use axum::extract::{RawQuery, State};
use axum::Json;
use intake_model::wire::{RequestState, RequestStatusReply, Scope};
use intake_store::RequestStatus;

use crate::extract::{Caller, QueryParams};
use crate::request_id::ReqId;
use crate::services::status;
use crate::{ApiError, AppState};

pub async fn request_status(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<RequestStatusReply>, ApiError> {
    caller.require(Scope::CrmUpload)?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration_id = params.integration_id()?;
    let client_request_id = params.client_request_id()?;
    let report =
        status::request_status(&state, caller.company(), integration_id, client_request_id).await?;
    Ok(Json(RequestStatusReply {
        errors: report.errors.into_iter().map(Into::into).collect(),
        request_id,
        status: match report.status {
            RequestStatus::Pending => RequestState::Pending,
            RequestStatus::InProgress => RequestState::InProgress,
            RequestStatus::Done => RequestState::Done,
            // Gong knows no cancelled request: it shows it FAILED, with the error on
            // line 0 that the cancel stored.
            RequestStatus::Failed | RequestStatus::Cancelled => RequestState::Failed,
        },
        total_error_count: report.error_count,
        total_success_count: report.success_count,
    }))
}
