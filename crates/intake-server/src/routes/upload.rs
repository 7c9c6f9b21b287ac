use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use intake_model::ObjectType;
use intake_store::{NewUpload, StoreError};
use serde_json::json;

use super::reply;
use crate::extract::{integration, Caller, QueryParams};
use crate::spool::SpoolWriter;
use crate::{ApiError, AppState};

/// Largest accepted file: 200 MB.
pub const MAX_FILE_BYTES: u64 = 209_715_200;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("dataFile is larger than the 200 MB limit ({MAX_FILE_BYTES} bytes)"),
    )
}

fn broken_body(err: MultipartError) -> ApiError {
    ApiError::bad_request(format!(
        "Malformed multipart/form-data body: {}",
        err.body_text()
    ))
}

/// Room for the multipart framing around a file of the largest size.
const MULTIPART_OVERHEAD: u64 = 1 << 20;

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    caller.require("api:crm:upload")?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = integration(&state, &caller, &params).await?;
    let object_type = params.object_type(&ObjectType::ALL)?;
    let client_request_id = params.client_request_id()?;
    if state
        .store
        .client_request_id_used(caller.company(), client_request_id)
        .await?
    {
        return Err(ApiError::client_request_id_used());
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_FILE_BYTES + MULTIPART_OVERHEAD) {
        return Err(too_large());
    }
    let multipart = multipart.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type: the body must be multipart/form-data with a dataFile part",
        )
    })?;
    let file = receive_data_file(&state, multipart).await?;
    let spool_file = file.commit().await?;
    let upload = NewUpload {
        company_id: caller.company(),
        integration_id: integration.id,
        client_request_id: client_request_id.to_string(),
        object_type,
        spool_file,
    };
    match state.store.insert_upload(&upload).await {
        Ok(_) => Ok(reply(
            StatusCode::CREATED,
            json!({ "clientRequestId": client_request_id }),
        )),
        Err(err) => {
            state.spool.remove(&upload.spool_file).await;
            match err {
                StoreError::ClientRequestIdUsed => Err(ApiError::client_request_id_used()),
                other => Err(other.into()),
            }
        }
    }
}

/// Streams the `dataFile` part to the spool; other parts are read and dropped.
async fn receive_data_file(
    state: &AppState,
    mut multipart: Multipart,
) -> Result<SpoolWriter, ApiError> {
    let mut received: Option<SpoolWriter> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(broken_body)? {
        let is_data_file = field.name() == Some("dataFile") && received.is_none();
        let mut writer = if is_data_file {
            Some(state.spool.create().await?)
        } else {
            None
        };
        while let Some(chunk) = field.chunk().await.map_err(broken_body)? {
            if let Some(writer) = writer.as_mut() {
                if writer.bytes + chunk.len() as u64 > MAX_FILE_BYTES {
                    return Err(too_large());
                }
                writer.write(&chunk).await?;
            }
        }
        if writer.is_some() {
            received = writer;
        }
    }
    let file = received.ok_or_else(|| ApiError::bad_request("dataFile part is missing"))?;
    if file.bytes == 0 {
        return Err(ApiError::bad_request("dataFile is empty"));
    }
    Ok(file)
}
