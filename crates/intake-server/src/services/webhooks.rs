//! The company's webhooks and their delivery log (`/intake/v1/webhooks...`, INTAKE-API.md
//! "Webhooks"); the deliveries themselves are sent by [`crate::webhooks`].

use intake_model::format_timestamp_ms;
use intake_model::wire::intake::{DeliveryListed, WebhookBody, WebhookListed};
use intake_store::CompanyId;

use crate::webhooks::check_target;
use crate::{ApiError, AppState};

/// Shortest accepted secret, in characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// How many deliveries the log shows.
pub const LISTED_DELIVERIES: usize = 100;

/// Registers a webhook; 400 for a URL that is not http(s), a short secret, or a private or
/// loopback target (unless the server allows them).
pub async fn create(
    state: &AppState,
    company: CompanyId,
    body: WebhookBody,
) -> Result<String, ApiError> {
    let mut problems = Vec::new();
    if let Err(refused) = check_target(&body.url, state.webhooks.allow_private).await {
        problems.push(refused.to_string());
    }
    if body.secret.chars().count() < MIN_SECRET_CHARS {
        problems.push(format!(
            "Field [secret] must be at least {MIN_SECRET_CHARS} characters"
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidBody(problems));
    }
    let id = state
        .store
        .create_webhook(company, &body.url, &body.secret)
        .await?;
    tracing::info!(webhook = id, "webhook registered");
    Ok(id.to_string())
}

pub async fn list(state: &AppState, company: CompanyId) -> Result<Vec<WebhookListed>, ApiError> {
    Ok(state
        .store
        .list_webhooks(company)
        .await?
        .into_iter()
        .map(|w| WebhookListed {
            webhook_id: w.webhook_id.to_string(),
            url: w.url,
            created_at: format_timestamp_ms(w.created_at_ms),
        })
        .collect())
}

/// A webhook id from the path: another company's, or no number at all, is unknown.
fn webhook_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::WebhookNotFound)
}

pub async fn delete(state: &AppState, company: CompanyId, raw: &str) -> Result<(), ApiError> {
    if state
        .store
        .delete_webhook(company, webhook_id(raw)?)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::WebhookNotFound)
    }
}

pub async fn deliveries(
    state: &AppState,
    company: CompanyId,
    raw: &str,
) -> Result<Vec<DeliveryListed>, ApiError> {
    let found = state
        .store
        .list_deliveries(company, webhook_id(raw)?, LISTED_DELIVERIES)
        .await?
        .ok_or(ApiError::WebhookNotFound)?;
    Ok(found
        .into_iter()
        .map(|d| DeliveryListed {
            delivery_id: d.delivery_id.to_string(),
            event: d.event,
            client_request_id: d.client_request_id,
            state: d.state,
            attempts: d.attempts.max(0) as u64,
            last_status: d.last_status.and_then(|s| u16::try_from(s).ok()),
            created_at: format_timestamp_ms(d.created_at_ms),
            delivered_at: d.delivered_at_ms.map(format_timestamp_ms),
        })
        .collect())
}
