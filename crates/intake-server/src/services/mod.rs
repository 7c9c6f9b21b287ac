//! What each operation does, apart from HTTP: the handlers in [`crate::routes`] extract the
//! inputs, call one function here and map its result to the wire.

pub mod entities;
pub mod integrations;
pub mod records;
pub mod schema;
pub mod status;
pub mod upload;

use intake_store::{CompanyId, Integration, IntegrationId};

use crate::{ApiError, AppState};

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
