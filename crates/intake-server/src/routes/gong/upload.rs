use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use intake_model::wire::{Accepted, Scope};

use crate::extract::{Caller, QueryParams};
use crate::request_id::ReqId;
use crate::services::upload;
use crate::{ApiError, AppState};

/// `POST /v2/crm/entities`: a multipart/form-data body with a `dataFile` part.
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.require(Scope::CrmUpload)?;
    let params = QueryParams::parse(query.as_deref())?;
    let client_request_id =
        upload::upload(&state, caller.company(), &params, &headers, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            client_request_id,
            request_id,
        }),
    ))
}
