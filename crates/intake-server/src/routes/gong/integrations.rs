use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use intake_model::wire::{
    Accepted, IntegrationInfo, IntegrationList, IntegrationRegistered, Scope,
};

use crate::extract::{read_body, Caller, QueryParams, MAX_JSON_BODY_BYTES};
use crate::request_id::ReqId;
use crate::services::integrations;
use crate::{ApiError, AppState};

pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    body: Body,
) -> Result<Json<IntegrationRegistered>, ApiError> {
    caller.require(Scope::IntegrationRegister)?;
    let body = read_body(body, MAX_JSON_BODY_BYTES).await?;
    let integration = integrations::register(&state, caller.company(), &body).await?;
    Ok(Json(IntegrationRegistered {
        integration_id: integration.id,
        request_id,
    }))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
) -> Result<Json<IntegrationList>, ApiError> {
    caller.require(Scope::IntegrationsRead)?;
    let integrations = integrations::list(&state, caller.company())
        .await?
        .into_iter()
        .map(|i| IntegrationInfo {
            integration_id: i.id,
            name: i.name,
            owner_email: i.owner_email,
        })
        .collect();
    Ok(Json(IntegrationList {
        integrations,
        request_id,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.require(Scope::IntegrationDelete)?;
    let params = QueryParams::parse(query.as_deref())?;
    let id = params.integration_id()?;
    let client_request_id = params.client_request_id()?;
    integrations::delete(&state, caller.company(), id, client_request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            client_request_id: client_request_id.to_owned(),
            request_id,
        }),
    ))
}
