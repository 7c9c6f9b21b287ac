use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use intake_model::ObjectType;
use serde_json::value::RawValue;

use crate::extract::{integration, Caller, QueryParams};
use crate::request_id::current_request_id;
use crate::{ApiError, AppState};

/// At most this many ids are looked up; the rest are not answered.
const MAX_IDS: usize = 100;

/// The ids come as a JSON array in the body of the GET, or in `objectsCrmIds` (repeated or
/// comma-separated).
fn requested_ids(params: &QueryParams, body: &[u8]) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice(body).map_err(|_| {
            ApiError::bad_request("Request body must be a JSON array of object ids (strings)")
        })?
    } else {
        let from_query: Vec<String> = params
            .all("objectsCrmIds")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect();
        if from_query.is_empty() && params.all("objectsCrmIds").next().is_none() {
            return Err(ApiError::unsupported_media_type());
        }
        from_query
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request("No object ids given"));
    }
    // An id asked twice is answered once.
    let mut seen = std::collections::HashSet::new();
    Ok(ids
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .take(MAX_IDS)
        .collect())
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require("api:crm:get-objects")?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = integration(&state, &caller, &params).await?;
    let object_type = params.object_type(&ObjectType::ALL)?;
    let ids = requested_ids(&params, &body)?;
    let mut found = state
        .store
        .current_objects(integration.id, object_type, &ids)
        .await?;
    let mut objects = Vec::with_capacity(ids.len());
    for id in ids {
        let body = match found.remove(&id).flatten() {
            Some(body) => Some(RawValue::from_string(body).map_err(ApiError::internal)?),
            None => None,
        };
        objects.push((id, body));
    }
    let body = ObjectsReply {
        crm_objects_map: ObjectsMap(objects),
        request_id: current_request_id(),
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// The stored bodies go out as they were stored (no re-parsing, keys in their order), in
/// the order the ids were asked for.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectsReply {
    crm_objects_map: ObjectsMap,
    request_id: String,
}

struct ObjectsMap(Vec<(String, Option<Box<RawValue>>)>);

impl serde::Serialize for ObjectsMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(id, body)| (id, body)))
    }
}
