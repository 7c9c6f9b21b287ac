//! The wire contract of Intake's own API, `/intake/v1/...` (docs/API.md, "Intake's own
//! API"). Unlike Gong's shapes, these structs keep the field order of the contract's
//! examples (`requestId` first).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// Where a paged list stands: `cursor` is absent on the last page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub current_page_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /intake/v1/records/{objectType}` 200: each object as `GET /v2/crm/entities`
/// returns it (a deleted one, with `includeDeleted=true`, as
/// `{"objectId","modifiedDate","isDeleted":true}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordsPage {
    pub request_id: String,
    pub records: PageInfo,
    #[schema(value_type = Vec<Object>)]
    pub objects: Vec<Box<RawValue>>,
}

/// `GET /intake/v1/records/{objectType}/{objectId}` 200: `null` when the record is deleted
/// or did not exist yet at `asOf`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordReply {
    pub request_id: String,
    #[schema(value_type = Option<Object>)]
    pub object: Option<Box<RawValue>>,
}

/// One stored version of a record, with the request it came from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Object)]
    pub object: Box<RawValue>,
}

/// `GET /intake/v1/records/{objectType}/{objectId}/versions` 200, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionsReply {
    pub request_id: String,
    pub versions: Vec<VersionInfo>,
}

/// `GET /intake/v1/deal-board` 200: the columns, then every deal of the status asked that
/// is not shown and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DealBoard {
    pub request_id: String,
    /// The `asOf` asked, as ISO-8601 UTC with milliseconds; `null` for the board as it
    /// stands now.
    pub as_of: Option<String>,
    pub stages: Vec<BoardColumn>,
    pub hidden: Vec<HiddenDeal>,
}

/// One column of the deal board: a stage and the deals shown in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardColumn {
    pub object_id: String,
    pub name: Option<String>,
    pub sort_order: i64,
    pub is_active: bool,
    pub deal_count: usize,
    /// The sum of the deals' amounts (as f64), a JSON number.
    #[schema(value_type = Option<f64>)]
    pub total_amount: Box<RawValue>,
    pub deals: Vec<BoardDeal>,
}

/// A deal shown on the board.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardDeal {
    pub object_id: String,
    pub name: Option<String>,
    pub account_id: String,
    /// `null` when the account is unknown or deleted.
    pub account_name: Option<String>,
    pub owner_id: String,
    /// `null` when the user is unknown or deleted.
    pub owner_email: Option<String>,
    /// As it was stored (the text sent).
    #[schema(value_type = f64)]
    pub amount: Box<RawValue>,
    pub close_date: String,
    pub status: String,
}

/// A deal of the status asked that the board does not show, with every reason.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HiddenDeal {
    pub object_id: String,
    pub name: Option<String>,
    pub reasons: Vec<String>,
}

/// A request as the requests list shows it (`GET /intake/v1/requests`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestListed {
    pub client_request_id: String,
    /// `UPLOAD` or `DELETE_INTEGRATION`.
    pub kind: String,
    pub object_type: Option<String>,
    /// PENDING, IN_PROGRESS, DONE, FAILED or CANCELLED.
    pub status: String,
    pub total_success_count: u64,
    pub total_error_count: u64,
    pub file_bytes: Option<u64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// `GET /intake/v1/requests` 200, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestsPage {
    pub request_id: String,
    pub records: PageInfo,
    pub requests: Vec<RequestListed>,
}

/// One error of a request: its physical line, the line's objectId when it had a readable
/// one, the field at fault when one is, and the text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestError {
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub description: String,
}

impl From<crate::LineError> for RequestError {
    fn from(e: crate::LineError) -> RequestError {
        RequestError {
            line: e.line,
            object_id: e.object_id,
            field: e.field,
            description: e.description,
        }
    }
}

/// `GET /intake/v1/requests/{clientRequestId}/errors` 200: one page of every error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsPage {
    pub request_id: String,
    pub records: PageInfo,
    pub errors: Vec<RequestError>,
}

/// `GET /intake/v1/requests/{clientRequestId}` 200 (the first 20 errors).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestReply {
    pub request_id: String,
    pub request: RequestListed,
    pub errors: Vec<RequestError>,
}

/// `POST /intake/v1/requests/{clientRequestId}/cancel` 200.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelReply {
    pub request_id: String,
    pub request: RequestListed,
}

/// `POST /intake/v1/webhooks` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookBody {
    /// `http://` or `https://`; not a loopback or private address unless the server allows it.
    pub url: String,
    /// At least 16 characters; signs every delivery, never shown again.
    pub secret: String,
}

/// `POST /intake/v1/webhooks` 201.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCreated {
    pub request_id: String,
    pub webhook_id: String,
}

/// One webhook as listed (its secret never is).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookListed {
    pub webhook_id: String,
    pub url: String,
    pub created_at: String,
}

/// `GET /intake/v1/webhooks` 200.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhooksReply {
    pub request_id: String,
    pub webhooks: Vec<WebhookListed>,
}

/// One delivery of an event to a webhook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryListed {
    pub delivery_id: String,
    pub event: String,
    pub client_request_id: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub state: String,
    /// 0 for a delivery skipped unsent.
    pub attempts: u64,
    /// The HTTP status of the last answer; null when none came.
    pub last_status: Option<u16>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// `GET /intake/v1/webhooks/{webhookId}/deliveries` 200: the latest 100, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveriesReply {
    pub request_id: String,
    pub deliveries: Vec<DeliveryListed>,
}

/// The body of a delivery: `POST url` when a request finished.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// `request.finished`.
    pub event: String,
    pub delivery_id: String,
    pub integration_id: i64,
    pub request: RequestListed,
}
