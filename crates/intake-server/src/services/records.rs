//! Records and their history (`/intake/v1/records/...`): every record of a type as it
//! stands now or stood at some time, page by page, and every version of one record with
//! the upload it came from. The rules are docs/API.md's "Records and their history".

use base64::Engine;
use intake_model::{format_timestamp, ObjectType};
use intake_store::{CompanyId, IntegrationId, RecordState, Version};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::extract::QueryParams;
use crate::{ApiError, AppState};

/// Records per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The integration of an `/intake/v1` call: `integrationId` when given (it must be one of the
/// company's active integrations), else the company's active one.
pub async fn integration(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<IntegrationId, ApiError> {
    match params.optional("integrationId") {
        Some(raw) => {
            let id = raw
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::InvalidParameter {
                    name: "integrationId",
                    expected: "a positive 64-bit integer",
                    got: raw.to_owned(),
                })?;
            match state.store.find_integration(company, id).await? {
                Some(integration) => Ok(integration.id),
                None => Err(ApiError::IntakeUnknownIntegration),
            }
        }
        None => state
            .store
            .list_integrations(company)
            .await?
            .first()
            .map(|integration| integration.id)
            .ok_or(ApiError::NoActiveIntegration),
    }
}

pub fn object_type(raw: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(raw).ok_or_else(|| ApiError::InvalidObjectType {
        got: raw.to_owned(),
        allowed: &ObjectType::ALL,
    })
}

/// `asOf` as unix seconds (`i64::MAX`, i.e. now, when absent).
pub fn as_of(params: &QueryParams) -> Result<Option<i64>, ApiError> {
    params
        .optional("asOf")
        .map(|raw| {
            intake_model::parse_timestamp(raw).ok_or_else(|| ApiError::InvalidParameter {
                name: "asOf",
                expected: "an ISO-8601 datetime with Z or ±HH:MM",
                got: raw.to_owned(),
            })
        })
        .transpose()
}

fn flag(params: &QueryParams, name: &'static str) -> Result<bool, ApiError> {
    match params.optional(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(raw) => Err(ApiError::InvalidParameter {
            name,
            expected: "true or false",
            got: raw.to_owned(),
        }),
    }
}

pub fn limit(params: &QueryParams) -> Result<usize, ApiError> {
    match params.optional("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::InvalidParameter {
                name: "limit",
                expected: "an integer from 1 to 1000",
                got: raw.to_owned(),
            }),
    }
}

/// What a records cursor holds: the listing it belongs to and the last objectId it gave.
/// A cursor is checked against the call it comes back with: another integration (so
/// another company), type or filter makes it a 400, so it cannot be forged into data the
/// caller could not list anyway.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct RecordsCursor {
    #[serde(rename = "i")]
    integration: IntegrationId,
    #[serde(rename = "t")]
    object_type: ObjectType,
    #[serde(rename = "o")]
    as_of: Option<i64>,
    #[serde(rename = "d")]
    include_deleted: bool,
    #[serde(rename = "a")]
    after: String,
}

const CURSOR: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A cursor's text: its JSON, base64url.
pub fn encode_cursor(cursor: &impl Serialize) -> String {
    CURSOR.encode(serde_json::to_vec(cursor).expect("cursors serialize"))
}

/// A cursor from its text; 400 `InvalidCursor` when it is not one of this kind.
pub fn decode_cursor<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    CURSOR
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<T>(&bytes).ok())
        .ok_or(ApiError::InvalidCursor)
}

impl RecordsCursor {
    fn encode(&self) -> String {
        encode_cursor(self)
    }

    fn decode(raw: &str) -> Result<RecordsCursor, ApiError> {
        decode_cursor::<RecordsCursor>(raw)
            .ok()
            // Only the server writes cursors, and object ids hold no control characters.
            .filter(|cursor| !cursor.after.chars().any(char::is_control))
            .ok_or(ApiError::InvalidCursor)
    }
}

/// One page of a records listing.
pub struct RecordsPage {
    pub objects: Vec<Box<RawValue>>,
    pub cursor: Option<String>,
}

/// The records of one type in objectId order, `limit` at a time. Keyset paging on the
/// objectId: every record that exists when the listing starts is on exactly one page,
/// whatever uploads land between pages (a record created meanwhile appears when its id
/// comes after the cursor).
pub async fn list(
    state: &AppState,
    company: CompanyId,
    raw_type: &str,
    params: &QueryParams,
) -> Result<RecordsPage, ApiError> {
    let object_type = object_type(raw_type)?;
    let integration = integration(state, company, params).await?;
    let as_of = as_of(params)?;
    let include_deleted = flag(params, "includeDeleted")?;
    let limit = limit(params)?;
    let mut after = String::new();
    if let Some(raw) = params.optional("cursor") {
        let cursor = RecordsCursor::decode(raw)?;
        let expected = (integration, object_type, as_of, include_deleted);
        if (
            cursor.integration,
            cursor.object_type,
            cursor.as_of,
            cursor.include_deleted,
        ) != expected
        {
            return Err(ApiError::InvalidCursor);
        }
        after = cursor.after;
    }
    // One more than a page tells whether another page follows.
    let mut shown: Vec<(String, RecordState)> = Vec::with_capacity(limit + 1);
    loop {
        let want = limit + 1 - shown.len();
        let batch = state
            .store
            .records_after(
                integration,
                object_type,
                &after,
                want,
                as_of.unwrap_or(i64::MAX),
            )
            .await?;
        let exhausted = batch.len() < want;
        for (id, record) in batch {
            after.clone_from(&id);
            match record {
                Some(record) if include_deleted || !record.deleted => shown.push((id, record)),
                _ => {}
            }
        }
        if shown.len() > limit || exhausted {
            break;
        }
    }
    let more = shown.len() > limit;
    shown.truncate(limit);
    let cursor = more.then(|| {
        RecordsCursor {
            integration,
            object_type,
            as_of,
            include_deleted,
            after: shown.last().map(|(id, _)| id.clone()).unwrap_or_default(),
        }
        .encode()
    });
    let objects = shown
        .into_iter()
        .map(|(id, record)| shown_object(&id, record))
        .collect::<Result<_, _>>()?;
    Ok(RecordsPage { objects, cursor })
}

/// A record as a listing shows it: its stored body, or a stub when it is deleted.
fn shown_object(object_id: &str, record: RecordState) -> Result<Box<RawValue>, ApiError> {
    let text = if record.deleted {
        serde_json::json!({
            "objectId": object_id,
            "modifiedDate": format_timestamp(record.modified),
            "isDeleted": true,
        })
        .to_string()
    } else {
        record.body
    };
    RawValue::from_string(text).map_err(ApiError::internal)
}

/// Every version of one record, oldest first; 404 when it never existed.
async fn all_versions(
    state: &AppState,
    company: CompanyId,
    raw_type: &str,
    object_id: &str,
    params: &QueryParams,
) -> Result<Vec<Version>, ApiError> {
    let object_type = object_type(raw_type)?;
    let integration = integration(state, company, params).await?;
    let versions = state
        .store
        .versions(integration, object_type, object_id)
        .await?;
    if versions.is_empty() {
        return Err(ApiError::RecordNotFound);
    }
    Ok(versions)
}

/// One record as it stands (or stood at `asOf`): `None` when deleted then, or not yet there.
pub async fn one(
    state: &AppState,
    company: CompanyId,
    raw_type: &str,
    object_id: &str,
    params: &QueryParams,
) -> Result<Option<Box<RawValue>>, ApiError> {
    let as_of = as_of(params)?.unwrap_or(i64::MAX);
    let versions = all_versions(state, company, raw_type, object_id, params).await?;
    match versions.into_iter().rfind(|v| v.modified <= as_of) {
        Some(v) if !v.deleted => Ok(Some(
            RawValue::from_string(v.body).map_err(ApiError::internal)?,
        )),
        _ => Ok(None),
    }
}

/// A version with the upload it came from, for the wire.
pub struct VersionOrigin {
    pub version: Version,
    pub client_request_id: String,
    pub received_at: String,
    pub current: bool,
}

/// Every version of one record, oldest first (by modifiedDate, then upload order), each
/// with its upload's `clientRequestId` and acceptance time; the last is the current one.
pub async fn versions(
    state: &AppState,
    company: CompanyId,
    raw_type: &str,
    object_id: &str,
    params: &QueryParams,
) -> Result<Vec<VersionOrigin>, ApiError> {
    let versions = all_versions(state, company, raw_type, object_id, params).await?;
    let mut seqs: Vec<_> = versions.iter().map(|v| v.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let origins = state.store.request_origins(&seqs).await?;
    let last = versions.len() - 1;
    Ok(versions
        .into_iter()
        .enumerate()
        .map(|(i, version)| {
            let origin = origins.get(&version.seq);
            VersionOrigin {
                client_request_id: origin
                    .map(|o| o.client_request_id.clone())
                    .unwrap_or_default(),
                received_at: origin
                    .map(|o| format_timestamp(o.accepted_at))
                    .unwrap_or_default(),
                current: i == last,
                version,
            }
        })
        .collect())
}
