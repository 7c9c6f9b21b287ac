use intake_model::wire::RegisterIntegration;
use intake_store::{CompanyId, Integration, IntegrationId};
use serde_json::Value;

use crate::{ApiError, AppState};

/// Reads a registration body: a JSON object with `name` and `ownerEmail`, both non-empty
/// strings without control characters, the email valid.
pub fn parse_registration(body: &[u8]) -> Result<RegisterIntegration, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::RegistrationNotAnObject);
    };
    let registration = RegisterIntegration {
        name: mandatory_string(object.remove("name"), "name")?,
        owner_email: mandatory_string(object.remove("ownerEmail"), "ownerEmail")?,
    };
    if !intake_model::is_email(&registration.owner_email) {
        return Err(ApiError::InvalidEmail(registration.owner_email));
    }
    Ok(registration)
}

fn mandatory_string(value: Option<Value>, field: &'static str) -> Result<String, ApiError> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            super::no_control_characters(&s, field)?;
            Ok(s)
        }
        None | Some(Value::Null) | Some(Value::String(_)) => Err(ApiError::MissingField(field)),
        Some(_) => Err(ApiError::NotAString(field)),
    }
}

pub async fn register(
    state: &AppState,
    company: CompanyId,
    body: &[u8],
) -> Result<Integration, ApiError> {
    let registration = parse_registration(body)?;
    Ok(state
        .store
        .register_integration(company, &registration.name, &registration.owner_email)
        .await?)
}

pub async fn list(state: &AppState, company: CompanyId) -> Result<Vec<Integration>, ApiError> {
    Ok(state.store.list_integrations(company).await?)
}

/// Queues the removal of the integration's data as request `client_request_id`.
pub async fn delete(
    state: &AppState,
    company: CompanyId,
    id: IntegrationId,
    client_request_id: &str,
) -> Result<(), ApiError> {
    Ok(state
        .store
        .request_integration_delete(company, id, client_request_id)
        .await?)
}
