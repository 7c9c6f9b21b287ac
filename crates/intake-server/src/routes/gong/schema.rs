use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::Json;
use intake_model::wire::{SchemaList, SchemaUploaded, Scope};

use crate::extract::{read_body, Caller, QueryParams, MAX_JSON_BODY_BYTES};
use crate::request_id::ReqId;
use crate::services::schema;
use crate::{ApiError, AppState};

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<SchemaUploaded>, ApiError> {
    caller.require(Scope::CrmSchema)?;
    let body = read_body(body, MAX_JSON_BODY_BYTES).await?;
    let params = QueryParams::parse(query.as_deref())?;
    schema::upload(&state, caller.company(), &params, &body).await?;
    Ok(Json(SchemaUploaded { request_id }))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<SchemaList>, ApiError> {
    caller.require(Scope::CrmSchema)?;
    let params = QueryParams::parse(query.as_deref())?;
    let fields = schema::list(&state, caller.company(), &params).await?;
    Ok(Json(SchemaList {
        object_type_to_selected_fields: fields,
        request_id,
    }))
}
