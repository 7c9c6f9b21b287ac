//! Intake's HTTP server: Gong's generic CRM API (`/v2/crm/...`) over a [`Store`], and the
//! background worker that processes uploads.

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use intake_store::{RateLimits, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod auth_cache;
pub mod error;
pub mod extract;
pub mod listener;
pub mod request_id;
pub mod routes;
pub mod spool;
pub mod worker;

pub use error::ApiError;
pub use spool::Spool;
pub use worker::{Worker, WorkerConfig};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub spool: Spool,
    pub rate_limits: RateLimits,
    pub auth_cache: Arc<auth_cache::AuthCache>,
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

pub fn router(state: AppState) -> Router {
    use routes::*;
    let crm = Router::new()
        .route(
            "/integrations",
            get(integrations::list)
                .put(integrations::register)
                .delete(integrations::delete),
        )
        .route("/entity-schema", get(schema::list).post(schema::upload))
        .route(
            "/entities",
            get(entities::get)
                .post(upload::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/request-status", get(status::request_status));
    Router::new()
        .nest("/v2/crm", crm)
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}

/// Serves the API on `listener` and runs one worker, until `shutdown` completes: then stops
/// taking requests, lets the worker hand back what it holds, and returns. Connections are
/// served under `limits` (timeouts, a cap, a shutdown deadline; see [`listener`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    worker_config: WorkerConfig,
    limits: listener::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_worker, worker_stopped) = watch::channel(false);
    let worker = Worker::new(state.store.clone(), state.spool.clone(), worker_config);
    let worker = tokio::spawn(worker.run(worker_stopped));
    let app = router(state);
    let served = listener::serve(listener, app, limits, shutdown).await;
    let _ = stop_worker.send(true);
    let _ = worker.await;
    served
}
