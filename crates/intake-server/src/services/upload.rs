//! An upload, from the checks that need no body to the 201: the company's integration,
//! the parameters, an unused `clientRequestId` and the declared size are checked before a
//! byte of the body is read; then the `dataFile` part is streamed to the spool, made
//! durable, and only then is the request registered. A rejected or broken upload leaves no
//! spool file and does not use up its `clientRequestId`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;
use intake_model::ObjectType;
use intake_store::{CompanyId, NewUpload, StoreError};

use crate::error::MAX_FILE_BYTES;
use crate::extract::QueryParams;
use crate::spool::SpoolWriter;
use crate::{ApiError, AppState};

/// Room for the multipart framing around a file of the largest size.
pub const MULTIPART_OVERHEAD: u64 = 1 << 20;

/// Most bytes read while looking for the first boundary (the preamble) or for the end of
/// a part's headers; past that the body is refused instead of buffered.
pub const MAX_FRAMING_BYTES: u64 = 64 << 10;

/// Registers an upload and returns its `clientRequestId`.
pub async fn upload(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<String, ApiError> {
    let integration = super::integration(state, company, params.integration_id()?).await?;
    let object_type = params.object_type(&ObjectType::ALL)?;
    let client_request_id = params.client_request_id()?;
    if state
        .store
        .client_request_id_used(company, client_request_id)
        .await?
    {
        return Err(ApiError::ClientRequestIdUsed);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_FILE_BYTES + MULTIPART_OVERHEAD) {
        return Err(ApiError::FileTooLarge);
    }
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let file = receive_data_file(state, company, client_request_id, body, boundary).await?;
    let file_bytes = file.bytes;
    let spool_file = file.commit().await?;
    let upload = NewUpload {
        company_id: company,
        integration_id: integration.id,
        client_request_id: client_request_id.to_string(),
        object_type,
        spool_file,
        file_bytes,
    };
    match state.store.insert_upload(&upload).await {
        Ok(_) => {
            state.metrics.upload_accepted(file_bytes);
            Ok(upload.client_request_id)
        }
        Err(err) => {
            state.spool.remove(&upload.spool_file).await;
            Err(match err {
                StoreError::ClientRequestIdUsed => ApiError::ClientRequestIdUsed,
                other => other.into(),
            })
        }
    }
}

/// Counts the body's bytes, so that the multipart framing (preamble, part headers) can be
/// bounded: multer keeps reading, and buffering, until it finds the end of what it looks
/// for, and has no limit of its own for these.
#[derive(Default)]
struct FramingBudget {
    read: AtomicU64,
    /// While framing is parsed: the count of bytes read past which no more may be read.
    framing_until: AtomicU64,
    exceeded: AtomicBool,
}

impl FramingBudget {
    fn start_framing(&self) {
        self.framing_until.store(
            self.read.load(Ordering::Relaxed) + MAX_FRAMING_BYTES,
            Ordering::Relaxed,
        );
    }

    fn start_data(&self) {
        self.framing_until.store(u64::MAX, Ordering::Relaxed);
    }

    /// Counts a chunk; false when framing already took more than its share.
    fn admit(&self, len: usize) -> bool {
        let before = self.read.fetch_add(len as u64, Ordering::Relaxed);
        if before > self.framing_until.load(Ordering::Relaxed) {
            self.exceeded.store(true, Ordering::Relaxed);
            false
        } else {
            true
        }
    }
}

#[derive(Debug)]
struct FramingTooLong;

impl std::fmt::Display for FramingTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "preamble or part headers longer than {MAX_FRAMING_BYTES} bytes"
        )
    }
}

impl std::error::Error for FramingTooLong {}

fn multipart_error(err: multer::Error, budget: &FramingBudget) -> ApiError {
    match err {
        _ if budget.exceeded.load(Ordering::Relaxed) => {
            ApiError::MalformedMultipart(FramingTooLong.to_string())
        }
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::FileTooLarge
        }
        other => ApiError::MalformedMultipart(other.to_string()),
    }
}

/// Streams the `dataFile` part to the spool; other parts are read and dropped. A second
/// `dataFile` part is refused (which of two files was meant cannot be known).
async fn receive_data_file(
    state: &AppState,
    company: CompanyId,
    client_request_id: &str,
    body: Body,
    boundary: String,
) -> Result<SpoolWriter, ApiError> {
    let budget = Arc::new(FramingBudget::default());
    let stream = {
        let budget = budget.clone();
        body.into_data_stream().map(move |chunk| {
            let chunk: Bytes = chunk?;
            if budget.admit(chunk.len()) {
                Ok(chunk)
            } else {
                Err(Box::new(FramingTooLong) as Box<dyn std::error::Error + Send + Sync>)
            }
        })
    };
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_FILE_BYTES + MULTIPART_OVERHEAD));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut received: Option<SpoolWriter> = None;
    loop {
        budget.start_framing();
        let next = multipart.next_field().await;
        let Some(mut field) = next.map_err(|e| multipart_error(e, &budget))? else {
            break;
        };
        budget.start_data();
        let is_data_file = field.name() == Some("dataFile");
        if is_data_file && received.is_some() {
            // `received` is dropped with the error: its spool file goes with it.
            return Err(ApiError::DuplicateDataFile);
        }
        let mut writer = if is_data_file {
            Some(state.spool.create(company, client_request_id).await?)
        } else {
            None
        };
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, &budget))?
        {
            if let Some(writer) = writer.as_mut() {
                if writer.bytes + chunk.len() as u64 > MAX_FILE_BYTES {
                    return Err(ApiError::FileTooLarge);
                }
                writer.write(&chunk).await?;
            }
        }
        if writer.is_some() {
            received = writer;
        }
    }
    let file = received.ok_or(ApiError::MissingDataFile)?;
    if file.bytes == 0 {
        return Err(ApiError::EmptyDataFile);
    }
    Ok(file)
}
