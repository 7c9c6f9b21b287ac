//! The operator's endpoints: no authentication.

#![allow(dead_code)]

use intake_model::wire::{ErrorEnvelope, Health};

#[utoipa::path(
    get,
    path = "/health",
    tag = "Operations",
    operation_id = "health",
    summary = "Liveness",
    responses((status = 200, description = "`{\"status\": \"ok\"}` while the process serves", body = Health)),
)]
pub fn health() {}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "Operations",
    operation_id = "ready",
    summary = "Readiness: the database answers, the migrations are applied, the spool is writable",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        (status = 503, description = "Not ready: each error starts with what failed (`database`, `migrations`, `spool`)", body = ErrorEnvelope),
    ),
)]
pub fn ready() {}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Operations",
    operation_id = "metrics",
    summary = "This instance's Prometheus series (OpenMetrics text format)",
    responses(
        (status = 200, description = "The series", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 404, description = "Switched off (--metrics false)", body = ErrorEnvelope),
    ),
)]
pub fn metrics() {}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "Operations",
    operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)),
)]
pub fn openapi_document() {}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "Operations",
    operation_id = "docs",
    summary = "Swagger UI for this document, served from the binary",
    responses((status = 303, description = "To /docs/, the UI's page")),
)]
pub fn docs() {}
