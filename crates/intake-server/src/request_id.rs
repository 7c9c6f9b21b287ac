//! Request ids, through `tower-http`: every request gets a fresh Gong-style id
//! ([`GongRequestId`], set by `SetRequestIdLayer`), sent back in `X-Request-Id`
//! (`PropagateRequestIdLayer`), in the body (`requestId`, read by the [`ReqId`] extractor and
//! the envelope layer from the request's extension), in the span of everything logged
//! while it is served ([`trace_layer`]) and in the access log line
//! ([`crate::metrics::layer`]).
//!
//! Decision: an `X-Request-Id` sent by the client is dropped before the id is made (Gong
//! makes its own ids; a client must not be able to choose what appears in our logs and
//! bodies), so the id is always fresh, as before.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use rand::Rng;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestId, RequestId};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// 17 to 19 lowercase base-36 characters, like Gong's.
pub fn new_request_id() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let len = rng.gen_range(17..=19);
    (0..len)
        .map(|_| DIGITS[rng.gen_range(0..36)] as char)
        .collect()
}

/// Makes [`new_request_id`]s for `SetRequestIdLayer`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GongRequestId;

impl MakeRequestId for GongRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&new_request_id())
            .ok()
            .map(RequestId::new)
    }
}

/// Removes a client's `X-Request-Id`, so that `SetRequestIdLayer` always makes a new one.
pub fn drop_client_request_id(mut request: Request) -> Request {
    request.headers_mut().remove("x-request-id");
    request
}

/// The id of a request, as its extension holds it (empty when there is none).
pub fn of_request<B>(request: &axum::http::Request<B>) -> String {
    from_extensions(request.extensions())
}

fn from_extensions(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The request's id, for the `requestId` of a success body.
pub struct ReqId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ReqId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ReqId(from_extensions(&parts.extensions)))
    }
}

type MakeSpan = fn(&Request) -> Span;

/// The request's span, with its id, method and path: what is logged while the request is
/// served carries them. (The access-log line itself is written by [`crate::metrics::layer`],
/// which also knows the route.)
pub fn trace_layer(
) -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeSpan, (), (), (), (), ()> {
    let make_span: MakeSpan = |request| {
        tracing::info_span!(
            "request",
            request_id = %of_request(request),
            method = %request.method(),
            path = request.uri().path(),
        )
    };
    TraceLayer::new_for_http()
        .make_span_with(make_span)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}
