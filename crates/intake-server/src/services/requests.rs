//! Every upload and integration delete of a company, newest first, one by one, and their
//! cancel (`/intake/v1/requests...`, INTAKE-API.md "Uploads and integration deletes").

use intake_model::wire::intake::{RequestError, RequestListed};

use futures_util::StreamExt;
use intake_model::{format_timestamp, format_timestamp_ms, LineError, ObjectType, Report};
use intake_store::{
    CancelOutcome, CompanyId, IntegrationId, RequestFilter, RequestInfo, RequestStatus,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::extract::QueryParams;
use crate::services::records;
use crate::sidecar;
use crate::{ApiError, AppState};

/// A request as listed.
pub fn listed(info: RequestInfo) -> RequestListed {
    RequestListed {
        client_request_id: info.client_request_id,
        kind: info.kind,
        object_type: info
            .object_type
            .and_then(ObjectType::from_code)
            .map(|t| t.as_str().to_owned()),
        status: info.status,
        total_success_count: info.success_count.max(0) as u64,
        total_error_count: info.error_count.max(0) as u64,
        file_bytes: info.file_bytes.map(|b| b.max(0) as u64),
        created_at: format_timestamp(info.accepted_at),
        started_at: info.started_at_ms.map(format_timestamp_ms),
        finished_at: info.finished_at_ms.map(format_timestamp_ms),
    }
}

/// The integration of a requests call: `integrationId` may name a deleted integration of
/// the company (its requests stay listed), else the active one.
async fn integration(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<IntegrationId, ApiError> {
    match records::integration(state, company, params).await {
        Err(ApiError::IntakeUnknownIntegration) => {
            let id: IntegrationId = params
                .optional("integrationId")
                .and_then(|raw| raw.parse().ok())
                .ok_or(ApiError::IntakeUnknownIntegration)?;
            // A deleted integration of the company has at least its delete request.
            let any = state
                .store
                .list_requests(company, id, &RequestFilter::default(), None, 1)
                .await?;
            if any.is_empty() {
                Err(ApiError::IntakeUnknownIntegration)
            } else {
                Ok(id)
            }
        }
        other => other,
    }
}

fn filter(params: &QueryParams) -> Result<RequestFilter, ApiError> {
    let status = params
        .optional("status")
        .map(|raw| {
            RequestStatus::parse(raw).ok_or_else(|| ApiError::InvalidParameter {
                name: "status",
                expected: "one of PENDING, IN_PROGRESS, DONE, FAILED, CANCELLED",
                got: raw.to_owned(),
            })
        })
        .transpose()?;
    let object_type = params
        .optional("objectType")
        .map(|raw| {
            ObjectType::parse(raw).ok_or_else(|| ApiError::InvalidParameter {
                name: "objectType",
                expected: "one of ACCOUNT, BUSINESS_USER, CONTACT, DEAL, LEAD, STAGE",
                got: raw.to_owned(),
            })
        })
        .transpose()?;
    let time = |name: &'static str| {
        params
            .optional(name)
            .map(|raw| {
                intake_model::parse_timestamp(raw).ok_or_else(|| ApiError::InvalidParameter {
                    name,
                    expected: "an ISO-8601 datetime with Z or ±HH:MM",
                    got: raw.to_owned(),
                })
            })
            .transpose()
    };
    Ok(RequestFilter {
        status,
        object_type,
        since: time("since")?,
        until: time("until")?,
    })
}

/// A requests cursor: the listing (integration and filters) and the last seq it gave.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct RequestsCursor {
    #[serde(rename = "i")]
    integration: IntegrationId,
    #[serde(rename = "f")]
    filter: (Option<String>, Option<i16>, Option<i64>, Option<i64>),
    #[serde(rename = "b")]
    before: i64,
}

fn filter_key(filter: &RequestFilter) -> (Option<String>, Option<i16>, Option<i64>, Option<i64>) {
    (
        filter.status.map(|s| s.as_str().to_owned()),
        filter.object_type.map(ObjectType::code),
        filter.since,
        filter.until,
    )
}

pub struct RequestsPage {
    pub requests: Vec<RequestListed>,
    pub cursor: Option<String>,
}

pub async fn list(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<RequestsPage, ApiError> {
    let integration = integration(state, company, params).await?;
    let filter = filter(params)?;
    let limit = records::limit(params)?;
    let before = match params.optional("cursor") {
        None => None,
        Some(raw) => {
            let cursor: RequestsCursor = records::decode_cursor(raw)?;
            if cursor.integration != integration || cursor.filter != filter_key(&filter) {
                return Err(ApiError::InvalidCursor);
            }
            Some(cursor.before)
        }
    };
    let mut found = state
        .store
        .list_requests(company, integration, &filter, before, limit + 1)
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let cursor = more.then(|| {
        records::encode_cursor(&RequestsCursor {
            integration,
            filter: filter_key(&filter),
            before: found.last().map_or(0, |r| r.seq),
        })
    });
    Ok(RequestsPage {
        requests: found.into_iter().map(listed).collect(),
        cursor,
    })
}

/// One request as listed; 404 when the company has no such request.
pub async fn info(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<RequestListed, ApiError> {
    let info = state
        .store
        .request_info(company, crid)
        .await?
        .ok_or(ApiError::IntakeRequestNotFound)?;
    Ok(listed(info))
}

/// One request and its first 20 errors (with objectId and field, as the errors list).
pub async fn one(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<(RequestListed, Vec<RequestError>), ApiError> {
    let request = info(state, company, crid).await?;
    let errors = every_error(state, company, crid).await?;
    let (first, _) = errors.page(None, Report::LISTED_ERRORS).await?;
    Ok((request, first))
}

/// Where a request's every error is read from: those on line 0 (the request's own: cancel,
/// a file that could not be read) first, then every line's error in line order from its
/// sidecar file, or, for a request without one (no line failed, or processed before this
/// version, or its files purged), the errors the database lists.
pub struct EveryError {
    seq: i64,
    zeros: Vec<LineError>,
    rest: Rest,
}

enum Rest {
    File {
        file: std::sync::Arc<std::fs::File>,
        len: u64,
    },
    Stored(Vec<LineError>),
}

/// Where an errors page starts: how many line-0 errors were given, and the byte offset in
/// the errors file (the index among the stored errors without one), for request `seq`.
#[derive(Serialize, Deserialize)]
struct ErrorsCursor {
    #[serde(rename = "s")]
    seq: i64,
    #[serde(rename = "z")]
    zeros: usize,
    #[serde(rename = "o")]
    offset: u64,
}

pub async fn every_error(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<EveryError, ApiError> {
    // The errors file is opened here and read through its handle: a generation replaced
    // (settled or erased) meanwhile stays readable. One that went between reading its mark
    // and opening it: the mark is read again.
    let mut attempts = 0;
    loop {
        let source = state
            .store
            .error_source(company, crid)
            .await?
            .ok_or(ApiError::IntakeRequestNotFound)?;
        let (zeros, lines): (Vec<_>, Vec<_>) = source.stored.into_iter().partition(|e| e.line == 0);
        let rest = match source.sidecar {
            Some(mark) => {
                let path = sidecar::errors_path(state.spool.dir(), &mark.name);
                match std::fs::File::open(&path) {
                    Ok(file) => Rest::File {
                        file: std::sync::Arc::new(file),
                        len: mark.errors_bytes,
                    },
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                        attempts += 1;
                        continue;
                    }
                    Err(_) => Rest::Stored(lines),
                }
            }
            None => Rest::Stored(lines),
        };
        return Ok(EveryError {
            seq: source.seq,
            zeros,
            rest,
        });
    }
}

impl EveryError {
    /// One page of at most `limit` errors from `cursor`; with the cursor of the next page
    /// when there is one. A cursor of another request, or pointing anywhere but at the start
    /// of an error, is a 400.
    pub async fn page(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<RequestError>, Option<String>), ApiError> {
        let (mut zeros, mut offset) = match cursor {
            None => (0, 0),
            Some(raw) => {
                let c: ErrorsCursor = records::decode_cursor(raw)?;
                if c.seq != self.seq || c.zeros > self.zeros.len() {
                    return Err(ApiError::InvalidCursor);
                }
                (c.zeros, c.offset)
            }
        };
        let mut out: Vec<RequestError> = Vec::new();
        while out.len() < limit && zeros < self.zeros.len() {
            out.push(self.zeros[zeros].clone().into());
            zeros += 1;
        }
        let end = match &self.rest {
            Rest::Stored(errors) => {
                let start = usize::try_from(offset).map_err(|_| ApiError::InvalidCursor)?;
                if start > errors.len() {
                    return Err(ApiError::InvalidCursor);
                }
                let take = (limit - out.len()).min(errors.len() - start);
                out.extend(errors[start..start + take].iter().cloned().map(Into::into));
                offset = (start + take) as u64;
                errors.len() as u64
            }
            Rest::File { file, len } => {
                let (file, len, want) = (file.clone(), *len, limit - out.len());
                let (read, next) =
                    tokio::task::spawn_blocking(move || read_errors(&file, len, offset, want))
                        .await
                        .map_err(|e| ApiError::internal(e.to_string()))??;
                out.extend(read);
                offset = next;
                len
            }
        };
        let more = zeros < self.zeros.len() || offset < end;
        let next = more.then(|| {
            records::encode_cursor(&ErrorsCursor {
                seq: self.seq,
                zeros,
                offset,
            })
        });
        Ok((out, next))
    }

    /// Every error as LDJSON, one a line, read from the file as it is sent.
    pub async fn stream(self) -> Result<axum::body::Body, ApiError> {
        let mut head = Vec::new();
        let stored = match &self.rest {
            Rest::Stored(errors) => errors.as_slice(),
            Rest::File { .. } => &[],
        };
        for e in self.zeros.iter().chain(stored) {
            serde_json::to_writer(&mut head, &RequestError::from(e.clone()))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            head.push(b'\n');
        }
        let head = futures_util::stream::once(async move { Ok(bytes::Bytes::from(head)) });
        Ok(match self.rest {
            Rest::File { file, len } => {
                let mut file = file
                    .try_clone()
                    .map_err(|e| ApiError::internal(format!("errors file: {e}")))?;
                std::io::Seek::rewind(&mut file)
                    .map_err(|e| ApiError::internal(format!("errors file: {e}")))?;
                let file = tokio::fs::File::from_std(file);
                let body = tokio_util::io::ReaderStream::with_capacity(file.take(len), 1 << 16);
                axum::body::Body::from_stream(head.chain(body))
            }
            Rest::Stored(_) => axum::body::Body::from_stream(head),
        })
    }
}

/// Up to `want` errors of the errors file from byte `offset` (which must start a line),
/// reading no further than `len`; and the offset after the last one read.
fn read_errors(
    file: &std::fs::File,
    len: u64,
    offset: u64,
    want: usize,
) -> Result<(Vec<RequestError>, u64), ApiError> {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    if offset > len {
        return Err(ApiError::InvalidCursor);
    }
    let internal = |e: std::io::Error| ApiError::internal(format!("errors file: {e}"));
    let mut file = file.try_clone().map_err(internal)?;
    file.seek(SeekFrom::Start(0)).map_err(internal)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset - 1)).map_err(internal)?;
        let mut before = [0u8];
        file.read_exact(&mut before).map_err(internal)?;
        if before[0] != b'\n' {
            return Err(ApiError::InvalidCursor);
        }
    }
    let mut reader = std::io::BufReader::new(file.take(len - offset));
    let (mut out, mut at, mut line) = (Vec::with_capacity(want), offset, Vec::new());
    while out.len() < want {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(internal)?;
        if n == 0 {
            break;
        }
        at += n as u64;
        let error: RequestError = serde_json::from_slice(&line)
            .map_err(|e| ApiError::internal(format!("errors file: {e}")))?;
        out.push(error);
    }
    Ok((out, at))
}

/// The failed lines of a request, as sent, each followed by `\n`, in file order.
pub async fn failed_lines(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<axum::body::Body, ApiError> {
    let internal = |err: std::io::Error| ApiError::internal(format!("failed lines file: {err}"));
    // A generation replaced (settled or erased) between reading its mark and opening its
    // files is gone: the request's mark is read again.
    let mut attempts = 0;
    let lines = loop {
        let source = state
            .store
            .error_source(company, crid)
            .await?
            .ok_or(ApiError::IntakeRequestNotFound)?;
        let Some(mark) = source.sidecar else {
            return Ok(axum::body::Body::empty());
        };
        let dir = state.spool.dir().to_owned();
        let opened = tokio::task::spawn_blocking(move || sidecar::FailedLines::open(&dir, &mark))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        match opened {
            Ok(lines) => break lines,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                attempts += 1;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(axum::body::Body::empty())
            }
            Err(err) => return Err(internal(err)),
        }
    };
    let chunks = futures_util::stream::try_unfold(lines, |mut lines| async move {
        let (lines, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = lines.next_chunk(1 << 16);
            (lines, chunk)
        })
        .await
        .map_err(std::io::Error::other)?;
        let chunk = chunk?;
        Ok::<_, std::io::Error>(if chunk.is_empty() {
            None
        } else {
            Some((bytes::Bytes::from(chunk), lines))
        })
    });
    Ok(axum::body::Body::from_stream(chunks))
}

/// Cancels a PENDING or IN_PROGRESS upload; 409 when it had finished.
pub async fn cancel(
    state: &AppState,
    company: CompanyId,
    crid: &str,
) -> Result<RequestListed, ApiError> {
    match state.store.cancel_request(company, crid).await? {
        None => Err(ApiError::IntakeRequestNotFound),
        Some(CancelOutcome::Cancelled(info)) => {
            // Its spool file goes with the spool's clean-up of finished requests.
            tracing::info!(client_request_id = crid, "request cancelled");
            Ok(listed(info))
        }
        Some(CancelOutcome::NotCancellable(info)) if info.kind != "UPLOAD" && !is_final(&info) => {
            Err(ApiError::NotCancellable(
                "An integration delete cannot be cancelled".into(),
            ))
        }
        Some(CancelOutcome::NotCancellable(info)) => Err(ApiError::NotCancellable(format!(
            "The request has already finished ({})",
            info.status
        ))),
    }
}

fn is_final(info: &RequestInfo) -> bool {
    RequestStatus::parse(&info.status).is_some_and(RequestStatus::is_final)
}
