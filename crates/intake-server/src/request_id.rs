//! Every request gets a fresh id: in the body (`requestId`), the `X-Request-Id` header and
//! the log line. It lives in a task-local so that any response, error or not, can read it.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// 17 to 19 lowercase base-36 characters, like Gong's.
pub fn new_request_id() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let len = rng.gen_range(17..=19);
    (0..len)
        .map(|_| DIGITS[rng.gen_range(0..36)] as char)
        .collect()
}

/// The id of the request being served (empty outside of one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(
        request_id = %id,
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
