//! Intake's own API, `/intake/v1/...` (docs/API.md, "Intake's own API"): every handler
//! takes an [`IntakeCaller`](crate::extract::IntakeCaller), counted against the intake
//! API's own rate limit.

pub mod board;
pub mod records;

use axum::routing::get;
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deal-board", get(board::deal_board))
        .route("/records/{object_type}", get(records::list))
        .route("/records/{object_type}/{object_id}", get(records::one))
        .route(
            "/records/{object_type}/{object_id}/versions",
            get(records::versions),
        )
}
