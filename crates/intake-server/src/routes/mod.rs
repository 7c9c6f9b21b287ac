pub mod entities;
pub mod integrations;
pub mod schema;
pub mod status;
pub mod upload;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::request_id::current_request_id;

/// A success body: the given fields plus `requestId`.
pub fn reply(status: StatusCode, mut body: Value) -> Response {
    if let Value::Object(map) = &mut body {
        map.insert("requestId".into(), json!(current_request_id()));
    }
    (status, axum::Json(body)).into_response()
}

/// Parses a JSON request body, with the API's error envelope on failure.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| crate::ApiError::bad_request(format!("Request body is not valid JSON: {e}")))
}
