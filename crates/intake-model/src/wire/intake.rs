//! The wire contract of Intake's own API, `/intake/v1/...` (docs/API.md, "Intake's own
//! API"). Unlike Gong's shapes, these structs keep the field order of the contract's
//! examples (`requestId` first).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Where a paged list stands: `cursor` is absent on the last page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub current_page_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /intake/v1/records/{objectType}` 200: each object as `GET /v2/crm/entities`
/// returns it (a deleted one, with `includeDeleted=true`, as
/// `{"objectId","modifiedDate","isDeleted":true}`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordsPage {
    pub request_id: String,
    pub records: PageInfo,
    pub objects: Vec<Box<RawValue>>,
}

/// `GET /intake/v1/records/{objectType}/{objectId}` 200: `null` when the record is deleted
/// or did not exist yet at `asOf`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordReply {
    pub request_id: String,
    pub object: Option<Box<RawValue>>,
}

/// One stored version of a record, with the request it came from.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// ISO-8601 UTC with milliseconds.
    pub modified_date: String,
    pub client_request_id: String,
    /// The physical line of the upload's file.
    pub line: u64,
    /// When the upload that carried it was accepted (its 201).
    pub received_at: String,
    /// Whether this version is the record's current state.
    pub current: bool,
    pub is_deleted: bool,
    pub object: Box<RawValue>,
}

/// `GET /intake/v1/records/{objectType}/{objectId}/versions` 200, oldest first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionsReply {
    pub request_id: String,
    pub versions: Vec<VersionInfo>,
}
