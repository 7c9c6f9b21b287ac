use intake_store::{CompanyId, IntegrationId, RequestReport};

use crate::{ApiError, AppState};

/// The request `client_request_id` of the company, if it was made for `integration`.
pub async fn request_status(
    state: &AppState,
    company: CompanyId,
    integration: IntegrationId,
    client_request_id: &str,
) -> Result<RequestReport, ApiError> {
    state
        .store
        .request_report(company, client_request_id)
        .await?
        .filter(|r| r.integration_id == integration)
        .ok_or_else(|| ApiError::RequestNotFound {
            client_request_id: client_request_id.to_owned(),
            integration_id: integration,
        })
}
