use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use intake_model::wire::associations::{AssociationReply, SettingsReply};
use intake_model::wire::Scope;

use crate::extract::{read_body, IntakeCaller, QueryParams};
use crate::request_id::ReqId;
use crate::services::{association_batch, associations, records};
use crate::{ApiError, AppState};

/// The most a single association's body may hold.
pub const MAX_BODY: usize = 1 << 20;

/// `POST /intake/v1/associations`
pub async fn associate(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<AssociationReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    let body = read_body(body, MAX_BODY).await?;
    let activity = associations::parse_activity(&body).map_err(ApiError::InvalidBody)?;
    let association = associations::associate_one(&state, integration, activity).await?;
    Ok(Json(AssociationReply {
        request_id,
        association,
    }))
}

/// `POST /intake/v1/associations/batch`
pub async fn batch(
    State(state): State<AppState>,
    caller: IntakeCaller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !association_batch::accepts(content_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let answers = association_batch::run(&state, caller.company(), integration, body).await?;
    Ok((
        [(header::CONTENT_TYPE, association_batch::CONTENT_TYPE)],
        answers,
    )
        .into_response())
}

/// `GET /intake/v1/settings`
pub async fn get_settings(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<SettingsReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    let settings = state.store.domain_settings(integration).await?;
    Ok(Json(SettingsReply {
        request_id,
        internal_domains: settings.internal_domains,
        excluded_domains: settings.excluded_domains,
    }))
}

/// `PUT /intake/v1/settings`
pub async fn put_settings(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<SettingsReply>, ApiError> {
    caller.require(Scope::IntakeWrite)?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    let body = read_body(body, MAX_BODY).await?;
    let settings = associations::parse_settings(&body).map_err(ApiError::InvalidBody)?;
    state
        .store
        .put_domain_settings(integration, &settings)
        .await?;
    Ok(Json(SettingsReply {
        request_id,
        internal_domains: settings.internal_domains,
        excluded_domains: settings.excluded_domains,
    }))
}
