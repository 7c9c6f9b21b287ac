//! `/intake/v1/webhooks...`: register, list and remove webhooks, and read their delivery log.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use intake_model::wire::intake::{DeliveriesReply, WebhookBody, WebhookCreated, WebhooksReply};
use intake_model::wire::Scope;

use crate::extract::{read_body, IntakeCaller};
use crate::request_id::ReqId;
use crate::services::webhooks;
use crate::{ApiError, AppState};

/// Largest accepted body.
const MAX_BODY: usize = 64 * 1024;

/// `POST /intake/v1/webhooks`
pub async fn create(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    body: Body,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    caller.require(Scope::IntakeWrite)?;
    let body = read_body(body, MAX_BODY).await?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let text = |name: &'static str| match value.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::NotAString(name)),
        None => Err(ApiError::MissingField(name)),
    };
    let body = WebhookBody {
        url: text("url")?,
        secret: text("secret")?,
    };
    let webhook_id = webhooks::create(&state, caller.company(), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            request_id,
            webhook_id,
        }),
    ))
}

/// `GET /intake/v1/webhooks`
pub async fn list(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
) -> Result<Json<WebhooksReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    Ok(Json(WebhooksReply {
        request_id,
        webhooks: webhooks::list(&state, caller.company()).await?,
    }))
}

/// `DELETE /intake/v1/webhooks/{webhookId}`
pub async fn delete(
    State(state): State<AppState>,
    caller: IntakeCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::IntakeWrite)?;
    webhooks::delete(&state, caller.company(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /intake/v1/webhooks/{webhookId}/deliveries`
pub async fn deliveries(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path(id): Path<String>,
) -> Result<Json<DeliveriesReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    Ok(Json(DeliveriesReply {
        request_id,
        deliveries: webhooks::deliveries(&state, caller.company(), &id).await?,
    }))
}
