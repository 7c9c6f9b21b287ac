//! Intake's own API, `/intake/v1/...` (docs/API.md, "Intake's own API"). `integrationId` is
//! optional everywhere: the company's active integration by default.

#![allow(dead_code)]

use intake_model::wire::associations::{AssociationReply, BatchLine, SettingsReply};
use intake_model::wire::intake::{
    CancelReply, DealBoard, DeliveriesReply, ErrorsPage, RecordReply, RecordsPage, RequestError,
    RequestReply, RequestsPage, VersionsReply, WebhookBody, WebhookCreated, WebhookEvent,
    WebhooksReply,
};
use intake_model::wire::ErrorEnvelope;
use serde::Serialize;
use utoipa::ToSchema;

use super::ObjectTypeName;

/// Which records an association reads.
#[derive(Serialize, ToSchema)]
pub enum Timing {
    /// Each record as it stands now.
    Now,
    /// Each record as its latest version with `modifiedDate` at most `startTime`.
    TimeOfCall,
}

/// A party of an activity: an `emailAddress` (holding an `@`) and/or a `phoneNumber`; any
/// other member is echoed in the answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartyIn {
    pub email_address: Option<String>,
    pub phone_number: Option<String>,
    pub name: Option<String>,
}

/// One activity (`POST /intake/v1/associations`, or one line of the batch).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssociationRequest {
    /// RFC 3339 datetime of the activity.
    #[schema(example = "2024-05-01T10:00:00Z")]
    pub start_time: String,
    pub timing: Timing,
    /// 1 to 500 parties.
    pub parties: Vec<PartyIn>,
}

/// `PUT /intake/v1/settings`: both lists replace the stored ones (one left out is empty).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsBody {
    pub internal_domains: Option<Vec<String>>,
    pub excluded_domains: Option<Vec<String>>,
}

/// The statuses of Intake's requests list.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestStatusName {
    Pending,
    InProgress,
    Done,
    Failed,
    Cancelled,
}

/// The deal statuses the board shows.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum BoardStatus {
    Open,
    Won,
    Lost,
    All,
}

#[utoipa::path(
    post,
    path = "/intake/v1/associations",
    tag = "Intake",
    operation_id = "associate",
    summary = "Which CRM records an activity belongs to",
    description = "Gong's shapes (`Party` with `affiliation` and `context`, `CallContextDto`), \
        each object with the `reasons` it matched. Body at most 1 MiB.",
    params(("integrationId" = Option<i64>, Query, description = "Default: the company's active integration")),
    request_body(content = AssociationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The activity's parties and context", body = AssociationReply),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
        (status = 413, description = "Body over 1 MiB", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn associate() {}

#[utoipa::path(
    post,
    path = "/intake/v1/associations/batch",
    tag = "Intake",
    operation_id = "associateBatch",
    summary = "Associations of many activities, one a line",
    description = "NDJSON in (`application/x-ndjson` or `application/jsonl`; at most 50 MB \
        and 100,000 activities), NDJSON out: one line per activity, in order, with its \
        physical line; all of it read from one state of the store.",
    params(("integrationId" = Option<i64>, Query, description = "Default: the company's active integration")),
    request_body(content = AssociationRequest, content_type = "application/x-ndjson"),
    responses(
        (status = 200, description = "One line per activity", body = BatchLine, content_type = "application/x-ndjson"),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
        (status = 413, description = "Over 50 MB or 100,000 activities", body = ErrorEnvelope),
        (status = 415, description = "Not NDJSON", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn associate_batch() {}

#[utoipa::path(
    get,
    path = "/intake/v1/settings",
    tag = "Intake",
    operation_id = "getSettings",
    summary = "The integration's internal and excluded domains",
    params(("integrationId" = Option<i64>, Query, description = "Default: the company's active integration")),
    responses(
        (status = 200, description = "The settings (both lists empty by default)", body = SettingsReply),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn get_settings() {}

#[utoipa::path(
    put,
    path = "/intake/v1/settings",
    tag = "Intake",
    operation_id = "putSettings",
    summary = "Replace the integration's internal and excluded domains",
    description = "Entries are normalised (`https://www.Ourco.com:443/x` is `ourco.com`) and \
        de-duplicated; one that is not a domain name is a 400 naming it, and nothing changes.",
    params(("integrationId" = Option<i64>, Query, description = "Default: the company's active integration")),
    request_body(content = SettingsBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The settings as stored", body = SettingsReply),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:write"])),
)]
pub fn put_settings() {}

#[utoipa::path(
    get,
    path = "/intake/v1/deal-board",
    tag = "Intake",
    operation_id = "dealBoard",
    summary = "The deals by stage, and those not shown with why",
    params(
        ("status" = Option<BoardStatus>, Query, description = "Default OPEN"),
        ("asOf" = Option<String>, Query, description = "RFC 3339: the board as it stood then"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "The board", body = DealBoard),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn deal_board() {}

#[utoipa::path(
    get,
    path = "/intake/v1/records/{objectType}",
    tag = "Intake",
    operation_id = "listRecords",
    summary = "The records of a type, in objectId order, paged",
    params(
        ("objectType" = ObjectTypeName, Path, description = "The object type (case-sensitive)"),
        ("asOf" = Option<String>, Query, description = "RFC 3339: each record as its latest version with modifiedDate at most this"),
        ("includeDeleted" = Option<bool>, Query, description = "List deleted records as {objectId, modifiedDate, isDeleted: true}"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "From the previous page, with the same filters"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "One page", body = RecordsPage),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn records() {}

#[utoipa::path(
    get,
    path = "/intake/v1/records/{objectType}/{objectId}",
    tag = "Intake",
    operation_id = "getRecord",
    summary = "One record, now or as of a time",
    params(
        ("objectType" = ObjectTypeName, Path, description = "The object type (case-sensitive)"),
        ("objectId" = String, Path, description = "The record's objectId"),
        ("asOf" = Option<String>, Query, description = "RFC 3339"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "The record (null when deleted, or not yet there at asOf)", body = RecordReply),
        (status = 404, description = "The record never existed in this integration", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn record() {}

#[utoipa::path(
    get,
    path = "/intake/v1/records/{objectType}/{objectId}/versions",
    tag = "Intake",
    operation_id = "getRecordVersions",
    summary = "Every version of one record, oldest first, with the upload it came from",
    params(
        ("objectType" = ObjectTypeName, Path, description = "The object type (case-sensitive)"),
        ("objectId" = String, Path, description = "The record's objectId"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "The versions", body = VersionsReply),
        (status = 404, description = "The record never existed in this integration", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn versions() {}

#[utoipa::path(
    get,
    path = "/intake/v1/requests",
    tag = "Intake",
    operation_id = "listRequests",
    summary = "The uploads and integration deletes of the integration, newest first, paged",
    params(
        ("status" = Option<RequestStatusName>, Query, description = "Only requests in this status"),
        ("objectType" = Option<ObjectTypeName>, Query, description = "Only uploads of this type"),
        ("since" = Option<String>, Query, description = "RFC 3339: created at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339: created before"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "From the previous page, with the same filters"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "One page", body = RequestsPage),
        (status = 404, description = "No active integration, or an unknown integrationId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn requests() {}

#[utoipa::path(
    get,
    path = "/intake/v1/requests/{clientRequestId}",
    tag = "Intake",
    operation_id = "getRequest",
    summary = "One request, with its first 20 errors",
    params(
        ("clientRequestId" = String, Path, description = "The request's clientRequestId"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "The request", body = RequestReply),
        (status = 404, description = "No request with this clientRequestId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn request() {}

#[utoipa::path(
    post,
    path = "/intake/v1/requests/{clientRequestId}/cancel",
    tag = "Intake",
    operation_id = "cancelRequest",
    summary = "Cancel a pending or running upload",
    description = "It becomes CANCELLED at once, with the error `Request cancelled` on line 0 \
        (Gong's request-status shows it FAILED); what the worker applied stays applied.",
    params(
        ("clientRequestId" = String, Path, description = "The request's clientRequestId"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = CancelReply),
        (status = 404, description = "No request with this clientRequestId", body = ErrorEnvelope),
        (status = 409, description = "Finished already, or an integration delete", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:write"])),
)]
pub fn cancel() {}

#[utoipa::path(
    get,
    path = "/intake/v1/requests/{clientRequestId}/errors",
    tag = "Intake",
    operation_id = "listRequestErrors",
    summary = "Every error of a request, in line order, paged or streamed",
    description = "Line-0 errors (cancel, a file that could not be read) first. With \
        `Accept: application/x-ndjson`, all of them as LDJSON, one error a line.",
    params(
        ("clientRequestId" = String, Path, description = "The request's clientRequestId"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "From the previous page"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "One page, or every error as LDJSON", content(
            (ErrorsPage = "application/json"),
            (RequestError = "application/x-ndjson"),
        )),
        (status = 404, description = "No request with this clientRequestId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn request_errors() {}

#[utoipa::path(
    get,
    path = "/intake/v1/requests/{clientRequestId}/failed-lines",
    tag = "Intake",
    operation_id = "getFailedLines",
    summary = "The failed lines of a request, byte for byte as sent, in file order",
    description = "Each line without its line end and leading BOM, followed by `\\n`; empty \
        when no line failed. Lines longer than 1 MiB are not kept.",
    params(
        ("clientRequestId" = String, Path, description = "The request's clientRequestId"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses(
        (status = 200, description = "The failed lines", body = String, content_type = "application/x-ndjson"),
        (status = 404, description = "No request with this clientRequestId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn failed_lines() {}

#[utoipa::path(
    post,
    path = "/intake/v1/webhooks",
    tag = "Intake",
    operation_id = "createWebhook",
    summary = "Register a webhook: each finished request of the company is POSTed to it",
    description = "Each delivery is `POST url` with a `WebhookEvent` body and the headers \
        `Intake-Delivery` and `Intake-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \
        \"<t>.<body>\" with the secret>`; retried with exponential backoff until a 2xx.",
    request_body = WebhookBody,
    responses(
        (status = 201, description = "Registered", body = WebhookCreated),
        (status = 400, description = "Not an http(s) URL, a secret under 16 characters, or a \
            loopback or private target", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:write"])),
)]
pub fn create_webhook() {}

#[utoipa::path(
    get,
    path = "/intake/v1/webhooks",
    tag = "Intake",
    operation_id = "listWebhooks",
    summary = "The company's webhooks (never their secrets)",
    responses((status = 200, description = "The webhooks", body = WebhooksReply)),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn list_webhooks() {}

#[utoipa::path(
    delete,
    path = "/intake/v1/webhooks/{webhookId}",
    tag = "Intake",
    operation_id = "deleteWebhook",
    summary = "Remove a webhook; its pending deliveries are dropped",
    params(("webhookId" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No webhook with this webhookId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:write"])),
)]
pub fn delete_webhook() {}

#[utoipa::path(
    get,
    path = "/intake/v1/webhooks/{webhookId}/deliveries",
    tag = "Intake",
    operation_id = "listWebhookDeliveries",
    summary = "The latest 100 deliveries of a webhook, newest first",
    params(("webhookId" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The deliveries", body = DeliveriesReply),
        (status = 404, description = "No webhook with this webhookId", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["intake:read"])),
)]
pub fn webhook_deliveries() {}

/// What each webhook receives (documented for its schema).
#[derive(Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub body: WebhookEvent,
}
