//! Gong's generic CRM API, `/v2/crm/...`.

pub mod entities;
pub mod integrations;
pub mod privacy;
pub mod schema;
pub mod status;
pub mod upload;

use axum::routing::get;
use axum::Router;

use crate::AppState;

/// The routes under `/v2/crm`. Every handler reads its body itself, with its own limit,
/// after the caller's scope is checked (axum's default body limit stays in force for any
/// body extractor, none of which is used).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/integrations",
            get(integrations::list)
                .put(integrations::register)
                .delete(integrations::delete),
        )
        .route("/entity-schema", get(schema::list).post(schema::upload))
        .route("/entities", get(entities::get).post(upload::upload))
        .route("/request-status", get(status::request_status))
}

/// The routes under `/v2/data-privacy`.
pub fn privacy_router() -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/data-for-email-address", get(privacy::data_for_email))
        .route("/data-for-phone-number", get(privacy::data_for_phone))
        .route("/erase-data-for-email-address", post(privacy::erase_email))
        .route("/erase-data-for-phone-number", post(privacy::erase_phone))
}
