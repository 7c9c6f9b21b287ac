//! The error envelope: every error response gets the body `{"errors":[...],"requestId":"..."}`
//! (`application/json`), with the id of its request.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use intake_model::wire::ErrorEnvelope;

use crate::error::ErrorTexts;
use crate::request_id;

/// Writes the envelope of an [`ApiError`](crate::ApiError) response, whose texts travel in
/// the response's extensions.
pub async fn middleware(request: Request, next: Next) -> Response {
    let request_id = request_id::of_request(&request);
    let mut response = next.run(request).await;
    if let Some(ErrorTexts(errors)) = response.extensions_mut().remove::<ErrorTexts>() {
        set_envelope(&mut response, errors, request_id);
    }
    response
}

fn set_envelope(response: &mut Response, errors: Vec<String>, request_id: String) {
    let body =
        serde_json::to_vec(&ErrorEnvelope { errors, request_id }).expect("the envelope serializes");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().remove(header::CONTENT_LENGTH);
    *response.body_mut() = axum::body::Body::from(body);
}
