//! Intake's own API, `/intake/v1/...` (docs/API.md, "Intake's own API"): every handler
//! takes an [`IntakeCaller`](crate::extract::IntakeCaller), counted against the intake
//! API's own rate limit.

pub mod associations;
pub mod board;
pub mod records;
pub mod requests;
pub mod webhooks;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/associations", post(associations::associate))
        .route("/associations/batch", post(associations::batch))
        .route(
            "/settings",
            get(associations::get_settings).put(associations::put_settings),
        )
        .route("/requests", get(requests::list))
        .route("/requests/{client_request_id}", get(requests::one))
        .route(
            "/requests/{client_request_id}/errors",
            get(requests::errors),
        )
        .route(
            "/requests/{client_request_id}/failed-lines",
            get(requests::failed_lines),
        )
        .route(
            "/requests/{client_request_id}/cancel",
            post(requests::cancel),
        )
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{webhook_id}", delete(webhooks::delete))
        .route(
            "/webhooks/{webhook_id}/deliveries",
            get(webhooks::deliveries),
        )
        .route("/deal-board", get(board::deal_board))
        .route("/records/{object_type}", get(records::list))
        .route("/records/{object_type}/{object_id}", get(records::one))
        .route(
            "/records/{object_type}/{object_id}/versions",
            get(records::versions),
        )
}
