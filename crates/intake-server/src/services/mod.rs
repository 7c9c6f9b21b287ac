//! What each operation does, apart from HTTP: the handlers in [`crate::routes`] extract the
//! inputs, call one function here and map its result to the wire.

pub mod association_batch;
pub mod associations;
pub mod board;
pub mod entities;
pub mod integrations;
pub mod privacy;
pub mod records;
pub mod requests;
pub mod schema;
pub mod status;
pub mod upload;
pub mod webhooks;

use intake_store::{CompanyId, Integration, IntegrationId};

use crate::{ApiError, AppState};

/// Refuses a text input with a control character (NUL included: PostgreSQL cannot store
/// it, and none belongs in a name, an email or an id).
///
/// Decision: every control character (Unicode `Cc`: C0, DEL, C1) is refused, tabs and
/// line breaks included, in integration names and emails, schema field names and the ids
/// of GET entities.
pub fn no_control_characters(value: &str, field: &'static str) -> Result<(), ApiError> {
    if value.chars().any(char::is_control) {
        Err(ApiError::ControlCharacters(field))
    } else {
        Ok(())
    }
}

/// The company's active integration `id`; another company's id is answered like an
/// unknown one.
pub async fn integration(
    state: &AppState,
    company: CompanyId,
    id: IntegrationId,
) -> Result<Integration, ApiError> {
    state
        .store
        .find_integration(company, id)
        .await?
        .ok_or(ApiError::UnknownIntegration(id))
}
