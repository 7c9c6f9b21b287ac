//! hyper's own answer to an HTTP/1 request it cannot parse, recognised in the connection's
//! writes and replaced by the envelope (see the listener's module documentation).

use std::time::Duration;

use axum::http::StatusCode;
use intake_model::wire::ErrorEnvelope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::{ApiError, Unparsable};
use crate::request_id::new_request_id;

/// At most this long, and this many bytes, are read and dropped after the answer, so that
/// the rest of a refused request does not make the kernel reset the connection (and lose
/// the answer) when it closes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 4 << 20;

/// The error a connection ended with.
pub(super) type Fault = dyn std::error::Error + Send + Sync + 'static;

/// hyper's answer to a request it could not parse, as it wrote it (not sent).
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    head: Vec<u8>,
}

/// Whether a write may be hyper's answer to a request it could not parse: a status line of
/// 400, 414 or 431. This is all the normal path pays (a write of another response fails it
/// in the first bytes, but for heads of the same three statuses).
pub(super) fn may_be_refusal(data: &[u8]) -> bool {
    data.len() > 12
        && (data.starts_with(b"HTTP/1.1 ") || data.starts_with(b"HTTP/1.0 "))
        && matches!(&data[9..13], b"400 " | b"414 " | b"431 ")
}

impl Refusal {
    /// `data` as hyper's answer to a request it could not parse: one whole head (a status
    /// of [`may_be_refusal`], `content-length: 0`, nothing after the head), or `None`.
    pub(super) fn recognise(data: &[u8]) -> Option<Refusal> {
        if !may_be_refusal(data) {
            return None;
        }
        let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
        if end + 4 != data.len() {
            return None;
        }
        let head = &data[..end];
        let empty = head
            .split(|&b| b == b'\n')
            .any(|line| line.trim_ascii().eq_ignore_ascii_case(b"content-length: 0"));
        let status = std::str::from_utf8(&data[9..12]).ok()?.parse().ok()?;
        let status = StatusCode::from_u16(status).ok()?;
        empty.then(|| Refusal {
            status,
            head: head.to_vec(),
        })
    }

    /// The error the client is told: the status hyper chose, and what did not parse, as
    /// far as `err` (the connection's error, hyper's parse error) tells.
    fn error(&self, err: Option<&Fault>) -> ApiError {
        match self.status {
            StatusCode::URI_TOO_LONG => ApiError::UriTooLong,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge,
            _ => ApiError::MalformedRequest(unparsable(err)),
        }
    }

    /// The response that replaces hyper's: its status line and headers (`date`,
    /// `connection: close`) with the envelope's `content-type`, `x-request-id` and
    /// `content-length`, and the envelope.
    fn response(&self, error: &ApiError, request_id: &str) -> Vec<u8> {
        let (_, errors) = error.status_and_errors();
        let body = serde_json::to_vec(&ErrorEnvelope {
            errors,
            request_id: request_id.to_owned(),
        })
        .expect("the envelope serializes");
        let mut lines = self.head.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
        let status_line = lines.next().unwrap_or_default();
        let mut out = Vec::with_capacity(self.head.len() + body.len() + 128);
        out.extend_from_slice(status_line);
        out.extend_from_slice(b"\r\ncontent-type: application/json\r\nx-request-id: ");
        out.extend_from_slice(request_id.as_bytes());
        out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
        let mut close = false;
        for line in lines {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            if name.eq_ignore_ascii_case(b"content-length")
                || name.eq_ignore_ascii_case(b"content-type")
                || name.eq_ignore_ascii_case(b"x-request-id")
            {
                continue;
            }
            close |= name.eq_ignore_ascii_case(b"connection");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        if !close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }

    /// Writes the envelope on `stream` (within `timeout`) and closes it. `err` is the error
    /// the connection ended with.
    pub(super) async fn answer(
        self,
        mut stream: TcpStream,
        err: Option<&Fault>,
        timeout: Duration,
    ) {
        let error = self.error(err);
        let request_id = new_request_id();
        tracing::info!(
            request_id = %request_id,
            status = self.status.as_u16(),
            "request refused before routing: {}",
            err.map(ToString::to_string).unwrap_or_default()
        );
        let response = self.response(&error, &request_id);
        let written = tokio::time::timeout(timeout, async {
            stream.write_all(&response).await?;
            stream.shutdown().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
        // A lingering close: what the client still sends is read and dropped, until it
        // closes, for a bounded time.
        let deadline = Instant::now() + LINGER;
        let mut buf = vec![0u8; 16 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => break,
            }
        }
    }
}

/// What did not parse, from hyper's error (which has no public kinds for these: its texts
/// are read, and a text it may change some day gives the general one).
fn unparsable(err: Option<&Fault>) -> Unparsable {
    let Some(err) = err.and_then(|e| e.downcast_ref::<hyper::Error>()) else {
        return Unparsable::Request;
    };
    let text = err.to_string();
    let text = text.as_str();
    if text.starts_with("invalid content-length") {
        Unparsable::ContentLength
    } else if text.contains("transfer-encoding") {
        Unparsable::TransferEncoding
    } else if text.starts_with("invalid HTTP method") {
        Unparsable::Method
    } else if text.starts_with("invalid URI") {
        Unparsable::Uri
    } else if text.starts_with("invalid HTTP version") {
        Unparsable::Version
    } else if text.starts_with("invalid HTTP header") {
        Unparsable::Header
    } else {
        Unparsable::Request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What hyper 1 writes.
    const HYPER_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\
        content-length: 0\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";

    #[test]
    fn only_a_whole_empty_head_of_the_three_statuses_is_recognised() {
        assert!(Refusal::recognise(HYPER_400).is_some());
        let with_body = [HYPER_400, b"x"].concat();
        assert!(Refusal::recognise(&with_body).is_none());
        let not_empty = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n";
        assert!(Refusal::recognise(not_empty).is_none());
        let other = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert!(Refusal::recognise(other).is_none());
        assert!(!may_be_refusal(b"HTTP/1.1 200 OK\r\n"));
        assert!(!may_be_refusal(b"\0\0\x04\x04"));
    }

    #[test]
    fn the_answer_keeps_hypers_head_and_carries_the_envelope() {
        let refusal = Refusal::recognise(HYPER_400).unwrap();
        let error = refusal.error(None);
        let response = refusal.response(&error, "abcdefghijklmnopq");
        let text = String::from_utf8(response).unwrap();
        let body = r#"{"errors":["Malformed HTTP request"],"requestId":"abcdefghijklmnopq"}"#;
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 x-request-id: abcdefghijklmnopq\r\ncontent-length: {}\r\n\
                 connection: close\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n{body}",
                body.len()
            )
        );
    }
}
