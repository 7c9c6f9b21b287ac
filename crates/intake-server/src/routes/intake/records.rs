use axum::extract::{Path, RawQuery, State};
use axum::Json;
use intake_model::format_timestamp;
use intake_model::wire::intake::{PageInfo, RecordReply, RecordsPage, VersionInfo, VersionsReply};
use intake_model::wire::Scope;
use serde_json::value::RawValue;

use crate::extract::{IntakeCaller, QueryParams};
use crate::request_id::ReqId;
use crate::services::records;
use crate::{ApiError, AppState};

/// `GET /intake/v1/records/{objectType}`
pub async fn list(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path(object_type): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<RecordsPage>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let page = records::list(&state, caller.company(), &object_type, &params).await?;
    Ok(Json(RecordsPage {
        request_id,
        records: PageInfo {
            current_page_size: page.objects.len(),
            cursor: page.cursor,
        },
        objects: page.objects,
    }))
}

/// `GET /intake/v1/records/{objectType}/{objectId}`
pub async fn one(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path((object_type, object_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<RecordReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let object = records::one(&state, caller.company(), &object_type, &object_id, &params).await?;
    Ok(Json(RecordReply { request_id, object }))
}

/// `GET /intake/v1/records/{objectType}/{objectId}/versions`
pub async fn versions(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    Path((object_type, object_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<VersionsReply>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let versions =
        records::versions(&state, caller.company(), &object_type, &object_id, &params).await?;
    let versions = versions
        .into_iter()
        .map(|v| {
            Ok(VersionInfo {
                modified_date: format_timestamp(v.version.modified),
                client_request_id: v.client_request_id,
                line: v.version.line,
                received_at: v.received_at,
                current: v.current,
                is_deleted: v.version.deleted,
                object: RawValue::from_string(v.version.body).map_err(ApiError::internal)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(VersionsReply {
        request_id,
        versions,
    }))
}
