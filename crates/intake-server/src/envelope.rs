//! The error envelope: every error response gets the body `{"errors":[...],"requestId":"..."}`
//! (`application/json`), with the id of its request.
//!
//! Errors made by this server ([`ApiError`]) carry their texts to this layer; any other
//! 4xx or 5xx that reaches it without a JSON body (a rejection of the framework, a
//! layer's) is wrapped too, with the status's reason as its text. Errors that hyper answers
//! itself before a request exists (a malformed request line or Content-Length, headers
//! past its limit) never reach a layer: the listener replaces those answers by the same
//! envelope ([`crate::listener`]).

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use intake_model::wire::ErrorEnvelope;

use crate::error::ErrorTexts;
use crate::{request_id, ApiError};

/// Writes the envelope of an [`ApiError`](crate::ApiError) response, whose texts travel in
/// the response's extensions.
pub async fn middleware(request: Request, next: Next) -> Response {
    let request_id = request_id::of_request(&request);
    let mut response = next.run(request).await;
    if response
        .extensions()
        .get::<crate::console::OwnBody>()
        .is_some()
    {
        // A web console page: HTML for a person, whatever its status.
        return response;
    }
    if let Some(ErrorTexts(errors)) = response.extensions_mut().remove::<ErrorTexts>() {
        set_envelope(&mut response, errors, request_id);
    } else if (response.status().is_client_error() || response.status().is_server_error())
        && !is_json(&response)
    {
        let (_, errors) = ApiError::Other(response.status()).status_and_errors();
        set_envelope(&mut response, errors, request_id);
    }
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_plain_error_of_the_framework_gets_the_envelope() {
        let app = Router::new()
            .route(
                "/plain",
                get(|| async {
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Failed to buffer the request body",
                    )
                }),
            )
            .layer(axum::middleware::from_fn(super::middleware));
        let response = app
            .oneshot(Request::get("/plain").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"errors":["Payload Too Large"],"requestId":""}"#
        );
    }
}
