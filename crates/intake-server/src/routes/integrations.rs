use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{json_body, reply};
use crate::extract::{Caller, QueryParams};
use crate::{ApiError, AppState};

const ALREADY_ACTIVE: &str = "Your organization already has an active GENERIC CRM integration. \
Only 1 active integration is supported. Please disconnect the existing GENERIC CRM integration \
before creating a new Generic CRM integration";

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registration {
    name: Option<serde_json::Value>,
    owner_email: Option<serde_json::Value>,
}

fn mandatory_string(value: Option<serde_json::Value>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s),
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => Err(
            ApiError::bad_request(format!("Mandatory field [{field}] is missing or empty")),
        ),
        Some(_) => Err(ApiError::bad_request(format!(
            "Field [{field}] must be a string"
        ))),
    }
}

pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require("api:crm:integration:register")?;
    let registration: Registration = json_body(&body)?;
    let name = mandatory_string(registration.name, "name")?;
    let owner_email = mandatory_string(registration.owner_email, "ownerEmail")?;
    if !intake_model::is_email(&owner_email) {
        return Err(ApiError::bad_request(format!(
            "Field [ownerEmail] must be a valid email address, got [{owner_email}]"
        )));
    }
    match state
        .store
        .register_integration(caller.company(), &name, &owner_email)
        .await
    {
        Ok(integration) => Ok(reply(
            StatusCode::OK,
            json!({ "integrationId": integration.id }),
        )),
        Err(intake_store::StoreError::IntegrationActive) => Err(ApiError::conflict(ALREADY_ACTIVE)),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require("api:crm:integrations:read")?;
    let integrations: Vec<_> = state
        .store
        .list_integrations(caller.company())
        .await?
        .into_iter()
        .map(|i| json!({ "integrationId": i.id, "ownerEmail": i.owner_email, "name": i.name }))
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({ "integrations": integrations }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require("api:crm:integration:delete")?;
    let params = QueryParams::parse(query.as_deref())?;
    let id = params.integration_id()?;
    let client_request_id = params.client_request_id()?;
    match state
        .store
        .request_integration_delete(caller.company(), id, client_request_id)
        .await
    {
        Ok(()) => Ok(reply(
            StatusCode::CREATED,
            json!({ "clientRequestId": client_request_id }),
        )),
        Err(intake_store::StoreError::UnknownIntegration(_)) => Err(ApiError::bad_request(
            format!("Unknown integrationId [{id}]"),
        )),
        Err(intake_store::StoreError::ClientRequestIdUsed) => {
            Err(ApiError::client_request_id_used())
        }
        Err(e) => Err(e.into()),
    }
}
