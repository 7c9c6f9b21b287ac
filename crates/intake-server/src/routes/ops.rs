//! The operator's endpoints, all without authentication: `GET /health` (liveness),
//! `GET /ready` (readiness) and `GET /metrics` (Prometheus).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use intake_model::wire::Health;

use crate::{ApiError, AppState};

/// `GET /health`: 200 while the process serves.
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /ready`: 200 when the database answers, the migrations applied are this version's
/// and the spool takes a file; else 503 with each problem, its text starting with what
/// failed (`database: `, `migrations: `, `spool: `).
pub async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let (store, spool) = tokio::join!(state.store.readiness(), state.spool.check_writable());
    let mut problems: Vec<String> = store.iter().map(ToString::to_string).collect();
    if let Err(err) = spool {
        problems.push(format!(
            "spool: cannot write to {}: {err}",
            state.spool.dir().display()
        ));
    }
    if problems.is_empty() {
        Ok(Json(Health {
            status: "ready".into(),
        }))
    } else {
        tracing::warn!("not ready: {}", problems.join("; "));
        Err(ApiError::NotReady(problems))
    }
}

/// `GET /metrics`: this instance's series (404 when switched off with `--metrics false`).
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if !state.metrics.enabled {
        return Err(ApiError::NotFound);
    }
    let counts = match state.store.request_counts().await {
        Ok(counts) => Some(counts),
        Err(err) => {
            tracing::warn!("metrics: cannot count the requests: {err}");
            None
        }
    };
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(counts.as_deref()),
    ))
}
