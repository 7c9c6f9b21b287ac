use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::Json;
use intake_model::wire::{ObjectsReply, Scope};

use crate::extract::{read_body, Caller, QueryParams, MAX_JSON_BODY_BYTES};
use crate::request_id::ReqId;
use crate::services::entities;
use crate::{ApiError, AppState};

/// `GET /v2/crm/entities`: the ids come as a JSON array in the body, or in `objectsCrmIds`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<ObjectsReply>, ApiError> {
    caller.require(Scope::CrmGetObjects)?;
    let body = read_body(body, MAX_JSON_BODY_BYTES).await?;
    let params = QueryParams::parse(query.as_deref())?;
    let objects = entities::get(&state, caller.company(), &params, &body).await?;
    Ok(Json(ObjectsReply {
        crm_objects_map: objects,
        request_id,
    }))
}
