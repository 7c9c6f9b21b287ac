//! The accept loop, with timeouts and limits on connections.
//!
//! - **Header read** (`header_read_timeout`): from a connection's start, or from the first
//!   byte of a request after an idle keep-alive, the request's head must arrive whole within
//!   this time; else the connection is closed. (A connection that sends nothing counts too.)
//! - **Keep-alive idle** (`keep_alive_timeout`): a connection with no request in flight and
//!   nothing read or written for this long is closed.
//! - **Body idle** (`body_idle_timeout`): a request body from which the server waits this
//!   long for the next chunk fails; an upload then fails and leaves nothing (its spool file
//!   is removed, no request is registered).
//! - **Connections** (`max_connections`): beyond this many open connections, new ones wait
//!   in the listen backlog (they are not accepted) until one closes. Decision: queue rather
//!   than refuse, so that a burst is served late instead of failing.
//! - **Shutdown** (`shutdown_timeout`): on shutdown the listener closes, idle connections
//!   close, requests in flight may finish within this time; then every connection still
//!   open is dropped (a half upload leaves nothing).
//! - An `accept` that fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) does
//!   not stop the loop: it backs off 100 ms and goes on, so that new connections are served
//!   once idle ones have timed out.
//!
//! - **Requests hyper cannot parse** (HTTP/1: a malformed request line, header or
//!   `Content-Length`, a request target or a header block over hyper's limits) never reach
//!   the router: hyper answers them itself, with an empty 400, 414 or 431 and
//!   `connection: close`. The connection's IO wrapper recognises that write and sends the
//!   envelope instead (module `refusal`): the same status and hyper's `connection` and
//!   `date` headers, `content-type: application/json`, a fresh request id (in the body and in
//!   `x-request-id`, as the router's responses have it) and a text in the client's terms
//!   (what did not parse, read from hyper's error). It then closes the connection, after
//!   reading and dropping for a moment what the client still sends (so that closing does
//!   not reset the connection under the answer).
//!
//!   A write is taken for hyper's answer only when all of these hold: the connection is
//!   HTTP/1 (its first bytes are not HTTP/2's preface; hyper's HTTP/2 errors are frames,
//!   left alone) and was not switched to another protocol (101); no response is owed on
//!   it (every request handed to the router has had its response body end, which is when
//!   hyper drops the body) and the connection was flushed since (so every byte of those
//!   responses is written: hyper flushes its IO only once its buffer is empty); and the
//!   write is one whole response head, of status 400, 414 or 431, with
//!   `content-length: 0`. On HTTP/1, hyper writes nothing else then: it reads the next
//!   request only once the previous response is written. hyper is told the write went
//!   whole (whatever the socket took); the envelope is written once hyper has let the
//!   connection go (the wrapper hands its socket over when dropped), since only then is
//!   hyper's error, which says what did not parse, known. Normal writes pass through
//!   untouched, with no copy: they pay a comparison of their first bytes, and the
//!   connection's lock once per flush and per response. Were hyper ever to buffer its
//!   answer behind the end of a previous response (it flushes that first, pipelined
//!   requests included), its bare answer would go out as it is, never a broken one.
//!
//! Decision: hyper answering parse errors itself cannot be turned off, and parsing the
//! requests a second time ourselves would cost every request; replacing its answer in the
//! IO wrapper costs the normal path next to nothing.
//!
//! Decision: hyper's own HTTP/1 header-read timer is not used, because it also runs while a
//! keep-alive connection is idle, which would cut every idle connection at the header-read
//! timeout; the connection's IO wrapper here tells the two apart.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

mod refusal;

use refusal::Refusal;

/// The timeouts and limits of connections (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

/// Pause after an `accept` that failed for want of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes, then shuts down as described in
/// the module documentation and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // A permit first: past the cap, connections wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                tracing::warn!("accept failed: {err}; retrying in {ACCEPT_BACKOFF:?}");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let phase = Arc::new(Mutex::new(Shared {
            phase: Phase::Head {
                since: Instant::now(),
            },
            reader: None,
            owed: 0,
            settled: true,
            switched: false,
            refused: None,
        }));
        let refused = phase.clone();
        let io = TokioIo::new(TimedIo::new(stream, phase.clone(), limits));
        let app = app.clone();
        let body_idle = limits.body_idle_timeout;
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let in_flight = InFlight::begin(phase.clone());
                let owed = Owed(phase.clone());
                let request = request.map(|body| Body::new(IdleBody::new(body, body_idle)));
                let response = app.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(in_flight);
                    response.map(|response| owed.attach(response))
                }
            });
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        let answer_timeout = limits.header_read_timeout;
        connections.spawn(async move {
            let result = connection.await;
            // The connection (its IO included) is dropped by now.
            let refused = refused.lock().ok().and_then(|mut s| s.refused.take());
            match (refused, &result) {
                (Some((refusal, stream)), result) => {
                    let err = result.as_ref().err().map(|e| &**e);
                    refusal.answer(stream, err, answer_timeout).await;
                }
                (None, Err(err)) => tracing::debug!("connection closed: {err}"),
                (None, Ok(())) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    let deadline = limits.shutdown_timeout;
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown deadline of {deadline:?}: closing them"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors of one connection that `accept` reports; the next accept is unaffected.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// What a connection is doing, for its timeouts.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's head (from the connection's start, or from the first byte
    /// after being idle).
    Head { since: Instant },
    /// Requests in flight: no connection timeout (the body has its own).
    Busy { requests: usize },
    /// Between requests, since the last byte read or written.
    Idle { since: Instant },
}

/// A connection's phase, shared by its IO and its requests.
struct Shared {
    phase: Phase,
    /// The reader that found nothing to read while busy: woken when the connection turns
    /// idle, so that its keep-alive timer starts (hyper would not read again by itself).
    reader: Option<Waker>,
    /// Responses owed: requests handed to the router whose response body has not ended.
    owed: usize,
    /// No response is owed and the connection was flushed since the last one ended: every
    /// byte of every response is written.
    settled: bool,
    /// A response switched the connection to another protocol (101).
    switched: bool,
    /// The socket of a connection that ended with hyper's answer to a request it could not
    /// parse, and that answer (not written): handed over by the IO when it is dropped, for
    /// the envelope to be written instead.
    refused: Option<(Refusal, TcpStream)>,
}

type SharedPhase = Arc<Mutex<Shared>>;

/// Marks a request in flight on its connection; dropping it (the response is ready, or the
/// request was abandoned) makes the connection idle again once no other is in flight.
struct InFlight(SharedPhase);

impl InFlight {
    /// Also counts the request's response as owed (see [`Owed`]).
    fn begin(shared: SharedPhase) -> InFlight {
        if let Ok(mut s) = shared.lock() {
            s.owed += 1;
            s.settled = false;
            s.phase = match s.phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                _ => Phase::Busy { requests: 1 },
            };
        }
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.phase = match s.phase {
                Phase::Busy { requests } if requests > 1 => Phase::Busy {
                    requests: requests - 1,
                },
                _ => Phase::Idle {
                    since: Instant::now(),
                },
            };
            if let (Phase::Idle { .. }, Some(reader)) = (s.phase, s.reader.take()) {
                reader.wake();
            }
        }
    }
}

/// A request's response, owed on its connection from the request's dispatch
/// ([`InFlight::begin`] counts it) until its body has ended: hyper drops the body then, and
/// this with it. Until then, no write of the connection is taken for hyper's answer to a
/// request it could not parse.
struct Owed(SharedPhase);

impl Owed {
    /// `response`, whose body keeps this until it is dropped.
    fn attach(self, response: axum::response::Response) -> hyper::Response<OwedBody> {
        if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
            if let Ok(mut s) = self.0.lock() {
                s.switched = true;
            }
        }
        response.map(|inner| OwedBody { inner, _owed: self })
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.owed = s.owed.saturating_sub(1);
        }
    }
}

/// A response body, unchanged, that holds its [`Owed`] until it is dropped.
struct OwedBody {
    inner: Body,
    _owed: Owed,
}

impl HttpBody for OwedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// HTTP/2's connection preface: a connection that starts with it is HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's protocol, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    /// The first bytes so far (this many) are HTTP/2's preface.
    Sniffing(usize),
    Http1,
    Http2,
}

impl Proto {
    /// After `read` more bytes.
    fn after(self, read: &[u8]) -> Proto {
        let Proto::Sniffing(seen) = self else {
            return self;
        };
        let rest = &H2_PREFACE[seen..];
        let n = rest.len().min(read.len());
        if read[..n] != rest[..n] {
            Proto::Http1
        } else if seen + n == H2_PREFACE.len() {
            Proto::Http2
        } else {
            Proto::Sniffing(seen + n)
        }
    }
}

/// A TCP stream that ends itself after the header-read or keep-alive timeout, and that
/// replaces hyper's answer to a request it cannot parse by the envelope (see the module
/// documentation).
struct TimedIo {
    /// `None` only once dropped (see its `Drop`).
    stream: Option<TcpStream>,
    shared: SharedPhase,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
    proto: Proto,
    /// hyper's answer to a request it could not parse, taken from a write and not sent.
    refusal: Option<Refusal>,
}

const STREAM: &str = "a connection's stream is there until its IO is dropped";

impl TimedIo {
    fn new(stream: TcpStream, shared: SharedPhase, limits: ConnectionLimits) -> TimedIo {
        TimedIo {
            stream: Some(stream),
            shared,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            proto: Proto::Sniffing(0),
            refusal: None,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect(STREAM))
    }

    /// Takes `data`, the bytes of one write, for hyper's answer to a request it could not
    /// parse when it is one (see the module documentation), and keeps it.
    fn refuses(&mut self, data: &[u8]) -> bool {
        if self.proto != Proto::Http1 {
            return false;
        }
        let settled = self
            .shared
            .lock()
            .is_ok_and(|s| s.settled && s.owed == 0 && !s.switched);
        if !settled {
            return false;
        }
        self.refusal = Refusal::recognise(data);
        self.refusal.is_some()
    }

    fn phase(&self) -> Phase {
        self.shared
            .lock()
            .map(|s| s.phase)
            .unwrap_or(Phase::Busy { requests: 1 })
    }

    fn set_phase(&self, phase: Phase) {
        if let Ok(mut s) = self.shared.lock() {
            s.phase = phase;
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match this.stream().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Proto::Sniffing(_) = this.proto {
                    this.proto = this.proto.after(&buf.filled()[before..]);
                }
                if buf.filled().len() > before {
                    if let Phase::Idle { .. } = this.phase() {
                        this.set_phase(Phase::Head {
                            since: Instant::now(),
                        });
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let phase = match this.shared.lock() {
                    Ok(mut s) => {
                        if let Phase::Busy { .. } = s.phase {
                            s.reader = Some(cx.waker().clone());
                        }
                        s.phase
                    }
                    Err(_) => return Poll::Pending,
                };
                let (deadline, what) = match phase {
                    Phase::Head { since } => {
                        (since + this.limits.header_read_timeout, "header read")
                    }
                    Phase::Idle { since } => (since + this.limits.keep_alive_timeout, "keep-alive"),
                    Phase::Busy { .. } => return Poll::Pending,
                };
                if Instant::now() >= deadline {
                    tracing::debug!("closing a connection: {what} timeout");
                    return match what {
                        // An idle connection just ends.
                        "keep-alive" => Poll::Ready(Ok(())),
                        _ => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "header read timeout",
                        ))),
                    };
                }
                this.timer.as_mut().reset(deadline);
                if this.timer.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

impl TimedIo {
    /// After a write: a response still being written keeps an idle connection alive.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            if *n > 0 && matches!(self.phase(), Phase::Idle { .. }) {
                self.set_phase(Phase::Idle {
                    since: Instant::now(),
                });
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper's answer, and what it may write after it, is reported written whole and
        // not sent: the envelope goes instead once hyper lets the connection go.
        if this.refusal.is_some() || (refusal::may_be_refusal(data) && this.refuses(data)) {
            return Poll::Ready(Ok(data.len()));
        }
        let written = this.stream().poll_write(cx, data);
        this.wrote(&written);
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return Poll::Ready(Ok(()));
        }
        let flushed = this.stream().poll_flush(cx);
        if flushed.is_ready() && this.proto == Proto::Http1 {
            if let Ok(mut s) = this.shared.lock() {
                if s.owed == 0 {
                    s.settled = true;
                }
            }
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // Closed after the envelope is written.
            return Poll::Ready(Ok(()));
        }
        this.stream().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let whole = |bufs: &[io::IoSlice<'_>]| bufs.iter().map(|b| b.len()).sum();
        if this.refusal.is_some() {
            return Poll::Ready(Ok(whole(bufs)));
        }
        if let Some(first) = bufs.first() {
            if refusal::may_be_refusal(first)
                && bufs[1..].iter().all(|b| b.is_empty())
                && this.refuses(first)
            {
                return Poll::Ready(Ok(whole(bufs)));
            }
        }
        let written = this.stream().poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }
}

impl Drop for TimedIo {
    /// Hands the socket over with hyper's answer, when there is one: the connection's task
    /// writes the envelope instead.
    fn drop(&mut self) {
        if let (Some(refusal), Some(stream)) = (self.refusal.take(), self.stream.take()) {
            if let Ok(mut s) = self.shared.lock() {
                s.refused = Some((refusal, stream));
            }
        }
    }
}

/// A request body that fails when the server has waited `timeout` for its next chunk.
/// Time counts only while the server waits on the client, not while the handler is busy
/// with what it has.
struct IdleBody<B> {
    inner: B,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<B> IdleBody<B> {
    fn new(inner: B, timeout: Duration) -> IdleBody<B> {
        IdleBody {
            inner,
            timeout,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            waiting: false,
        }
    }
}

/// The error of a body whose client stopped sending.
#[derive(Debug)]
pub struct BodyIdleTimeout(Duration);

impl std::fmt::Display for BodyIdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no data received for {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyIdleTimeout {}

impl<B> HttpBody for IdleBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = Instant::now() + this.timeout;
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::debug!("request body idle for {:?}: failed", this.timeout);
                        Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(this.timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
