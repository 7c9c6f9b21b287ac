//! Answers given before their request's body was read to the end (a 409 for a used
//! clientRequestId, a 413 over a limit, a 415 for the wrong type, a 401 before the upload).
//!
//! A small unread body (at most [`DRAIN_BYTES`], arriving within [`DRAIN_TIME`]) is read
//! and dropped before the answer goes out. Closing a socket with unread bytes in it makes
//! the kernel reset the connection, and a client still writing its body then sees a broken
//! pipe (or a reset) instead of the answer — and may retry a request that was in fact
//! refused. A larger body is not read.
//!
//! Either way the answer carries `Connection: close` on HTTP/1, and the connection closes
//! after it: a keep-alive client told so does not send its next request down a connection
//! that is going away.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

/// Most bytes of an unread body read and dropped before an early answer: enough for a
/// body just over a limit (a 50 MB associations batch, a 1 MiB look-up), whose client
/// would otherwise meet a reset mid-write about half the time on loopback.
pub const DRAIN_BYTES: u64 = 64 << 20;
/// Longest wait for them.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A request body that records when it has been read to its end, and hands itself back
/// to the middleware when dropped before that.
struct Tracked {
    inner: Body,
    ended: Arc<AtomicBool>,
    unread: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.ended.load(Ordering::Relaxed) {
            return;
        }
        if let Some(unread) = self.unread.take() {
            let _ = unread.send(std::mem::take(&mut self.inner));
        }
    }
}

/// Reads `body` to its end, or until [`DRAIN_BYTES`] or [`DRAIN_TIME`] pass.
async fn drain(mut body: Body) {
    let read_all = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |data| data.len() as u64);
            if read > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read_all).await;
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if parts.version > Version::HTTP_11 || http_body::Body::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let (unread, mut handed_back) = oneshot::channel();
    let body = Body::new(Tracked {
        inner: body,
        ended: ended.clone(),
        unread: Some(unread),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if ended.load(Ordering::Relaxed) {
        return response;
    }
    // Still held (a streamed answer reading the body as it goes): not waited for. A body
    // known to hold more than the bytes drained is not read at all.
    if let Ok(body) = handed_back.try_recv() {
        if http_body::Body::size_hint(&body)
            .upper()
            .is_none_or(|left| left <= DRAIN_BYTES)
        {
            drain(body).await;
        }
    }
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
