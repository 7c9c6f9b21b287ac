//! Intake's HTTP server: Gong's generic CRM API (`/v2/crm/...`) over a [`Store`], and the
//! background worker that processes uploads.
//!
//! Layout: [`routes`] (thin handlers: extract, call one service, map to the wire types of
//! [`intake_model::wire`]), [`services`] (what each operation does), [`error`] (every
//! error's status and text, in one table), [`envelope`], [`request_id`] and [`metrics`] (the
//! layers every response goes through), [`worker`] and [`spool`]; [`openapi`] describes
//! every operation.

use std::future::Future;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use intake_store::{RateLimits, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

pub mod auth_cache;
pub mod console;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod routes;
pub mod services;
pub mod sidecar;
pub mod spool;
pub mod unread_body;
pub mod webhooks;
pub mod worker;

pub use error::ApiError;
pub use spool::Spool;
pub use worker::{Worker, WorkerConfig};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub spool: Spool,
    pub rate_limits: RateLimits,
    /// The per-company limit of `/intake/v1` (its own windows; no daily limit).
    pub intake_rate_limits: RateLimits,
    pub auth_cache: Arc<auth_cache::AuthCache>,
    /// This instance's series (`GET /metrics`).
    pub metrics: Arc<metrics::Metrics>,
    /// The web console's session settings.
    pub console: console::ConsoleSettings,
    /// How webhooks are checked and delivered.
    pub webhooks: webhooks::WebhookConfig,
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every route, without its state: what [`router`] serves, and what the test that checks
/// [`openapi`] against the router walks.
pub fn routes() -> Router<AppState> {
    Router::new()
        .nest("/v2/crm", routes::gong::router())
        .nest("/v2/data-privacy", routes::gong::privacy_router())
        .nest("/intake/v1", routes::intake::router())
        .route("/health", get(routes::ops::health))
        .route("/ready", get(routes::ops::ready))
        .route("/metrics", get(routes::ops::metrics))
        .merge(openapi::router())
        .merge(console::router())
}

pub fn router(state: AppState) -> Router {
    let layers = ServiceBuilder::new()
        .map_request(request_id::drop_client_request_id)
        .layer(axum::middleware::from_fn(unread_body::middleware))
        .layer(SetRequestIdLayer::x_request_id(request_id::GongRequestId))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::layer,
        ))
        .layer(request_id::trace_layer())
        .layer(axum::middleware::from_fn(envelope::middleware));
    routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(layers)
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
    // In the background: the first requests need not wait for it.
    let (store, spool) = (state.store.clone(), state.spool.clone());
    tokio::spawn(async move {
        if let Err(err) = spool.remove_orphans(store.as_ref()).await {
            tracing::warn!("cannot look for orphaned spool files: {err}");
        }
    });
    let (stop_worker, worker_stopped) = watch::channel(false);
    let mut worker = Worker::new(state.store.clone(), state.spool.clone(), worker_config);
    worker.metrics = state.metrics.clone();
    let deliveries = tokio::spawn(webhooks::run(
        state.store.clone(),
        state.webhooks.clone(),
        state.metrics.clone(),
        worker_stopped.clone(),
    ));
    let warm = tokio::spawn(services::board::keep_warm(
        state.clone(),
        worker_stopped.clone(),
    ));
    let worker = tokio::spawn(worker.run(worker_stopped));
    let app = router(state);
    let served = listener::serve(listener, app, limits, shutdown).await;
    let _ = stop_worker.send(true);
    let _ = worker.await;
    let _ = deliveries.await;
    // Warming only reads: nothing to finish.
    warm.abort();
    let _ = warm.await;
    served
}
