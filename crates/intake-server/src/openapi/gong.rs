//! Gong's generic CRM operations, `/v2/crm/...`, as Gong's document names them (operation
//! ids, tags, parameters, schemas), with what this server really does where Gong's document
//! is wrong.

#![allow(dead_code)]

use intake_model::wire::{
    Accepted, ErrorEnvelope, IntegrationList, IntegrationRegistered, ObjectsReply,
    RegisterIntegration, RequestStatusReply, SchemaList, SchemaUploaded,
};
use intake_model::FieldDef;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ObjectTypeName, SchemaObjectType};

/// The body of an upload: `multipart/form-data` with one part `dataFile`.
#[derive(Serialize, ToSchema)]
pub struct UploadForm {
    /// The CRM data file, one JSON object per line (LDJSON), at most 200 MB
    /// (209,715,200 bytes); any content type and file name.
    #[serde(rename = "dataFile")]
    #[schema(value_type = String, format = Binary)]
    pub data_file: Vec<u8>,
}

#[utoipa::path(
    put,
    path = "/v2/crm/integrations",
    tag = "CRM",
    operation_id = "registerGenericCrmIntegration",
    summary = "Register a Generic CRM integration (/v2/crm/integrations)",
    description = "A company has at most one active integration.",
    request_body(content = RegisterIntegration, content_type = "application/json"),
    responses(
        (status = 200, description = "Successful response", body = IntegrationRegistered),
        (status = 409, description = "Conflict - An active integration already exists.", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:integration:register"])),
)]
pub fn register_integration() {}

#[utoipa::path(
    get,
    path = "/v2/crm/integrations",
    tag = "CRM",
    operation_id = "listGenericCrmIntegration",
    summary = "Get Generic CRM integration details (/v2/crm/integrations)",
    responses(
        (status = 200, description = "Successful response: zero or one integration", body = IntegrationList),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:integrations:read"])),
)]
pub fn list_integrations() {}

#[utoipa::path(
    delete,
    path = "/v2/crm/integrations",
    tag = "CRM",
    operation_id = "deleteGenericCrmIntegration",
    summary = "Delete a Generic CRM integration (/v2/crm/integrations)",
    description = "The integration stops taking requests at once; its records, history and \
        schema are removed in the background, followed by request-status like an upload.",
    params(
        ("integrationId" = i64, Query, description = "The ID of the integration to delete"),
        ("clientRequestId" = String, Query, description = "A unique identifier generated and sent by you to allow troubleshooting. Valid characters are letters, numbers, dashes and underscores."),
    ),
    responses(
        (status = 201, description = "Successfully registered the delete integration request", body = Accepted),
        (status = 409, description = "Client request id has already been used", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:integration:delete"])),
)]
pub fn delete_integration() {}

#[utoipa::path(
    get,
    path = "/v2/crm/entity-schema",
    tag = "CRM",
    operation_id = "listCrmSchemaFields",
    summary = "List Schema Fields (/v2/crm/entity-schema)",
    params(
        ("integrationId" = i64, Query, description = "Integration ID generated when creating the integration"),
        ("objectType" = Option<SchemaObjectType>, Query, description = "Type of object to retrieve the schema fields for (case-sensitive). Omitting this parameter returns the schema for all object types."),
    ),
    responses(
        (status = 200, description = "Successfully retrieved crm schema fields", body = SchemaList),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:schema"])),
)]
pub fn list_schema() {}

#[utoipa::path(
    post,
    path = "/v2/crm/entity-schema",
    tag = "CRM",
    operation_id = "uploadCrmSchemaField",
    summary = "Upload Object Schema (/v2/crm/entity-schema)",
    description = "The whole schema of the type: a field defined before must be sent again, \
        or with `isDeleted: true`, which removes it and its values from every stored version. \
        Every problem of the body is listed in one 400. Answers 200 (Gong's document also \
        names a 201, which Gong does not send).",
    params(
        ("integrationId" = i64, Query, description = "Integration ID generated when creating the integration"),
        ("objectType" = SchemaObjectType, Query, description = "The object type to set the schema for (case-sensitive)"),
    ),
    request_body(content = Vec<FieldDef>, content_type = "application/json"),
    responses(
        (status = 200, description = "Successfully uploaded crm schema fields", body = SchemaUploaded),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:schema"])),
)]
pub fn upload_schema() {}

#[utoipa::path(
    get,
    path = "/v2/crm/entities",
    tag = "CRM",
    operation_id = "getCrmObjects",
    summary = "Get CRM objects (/v2/crm/entities)",
    description = "The ids come as a JSON array of strings in the body of the GET (at most \
        1 MiB), or in `objectsCrmIds` (repeated or comma-separated). The first 100 distinct \
        ids are answered, in the order asked. No ids at all: 415 without a body, else 400.",
    params(
        ("integrationId" = i64, Query, description = "Integration ID generated when creating the integration"),
        ("objectType" = ObjectTypeName, Query, description = "Requested objects type"),
        ("objectsCrmIds" = Option<Vec<String>>, Query, description = "The requested objects' ids, when not sent in the body"),
    ),
    request_body(content = Option<Vec<String>>, description = "The requested objects' ids", content_type = "application/json"),
    responses(
        (status = 200, description = "Successfully retrieved requested objects data", body = ObjectsReply),
        (status = 413, description = "Request body over 1 MiB", body = ErrorEnvelope),
        (status = 415, description = "No ids and no body", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:get-objects"])),
)]
pub fn get_objects() {}

#[utoipa::path(
    post,
    path = "/v2/crm/entities",
    tag = "CRM",
    operation_id = "uploadCrmData",
    summary = "Upload CRM objects (/v2/crm/entities)",
    description = "Asynchronous: a 201 means the file is durably stored and pending \
        processing; follow it with GET /v2/crm/request-status. A rejected upload keeps \
        nothing and leaves its clientRequestId free.",
    params(
        ("integrationId" = i64, Query, description = "Integration ID generated when creating the integration"),
        ("objectType" = ObjectTypeName, Query, description = "The type of every object of the file (case-sensitive)"),
        ("clientRequestId" = String, Query, description = "A unique identifier generated and sent by you: 1 to 128 letters, digits, dashes and underscores"),
    ),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Successfully uploaded the crm data; it is pending processing", body = Accepted),
        (status = 409, description = "Client request id has already been used", body = ErrorEnvelope),
        (status = 413, description = "dataFile over the 200 MB limit", body = ErrorEnvelope),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorEnvelope),
        (status = 507, description = "The server has no storage space left; try again later (Retry-After)", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:upload"])),
)]
pub fn upload() {}

#[utoipa::path(
    get,
    path = "/v2/crm/request-status",
    tag = "CRM",
    operation_id = "getRequestStatus",
    summary = "Get Request Status (/v2/crm/request-status)",
    description = "Of an upload or an integration delete: at most 20 errors, in line order; \
        the totals grow while the request runs.",
    params(
        ("integrationId" = i64, Query, description = "Integration ID generated when creating the integration"),
        ("clientRequestId" = String, Query, description = "The client request ID used in the asynchronous endpoint you want to get a status for"),
    ),
    responses(
        (status = 200, description = "Operation successful", body = RequestStatusReply),
        (status = 404, description = "No request with this clientRequestId for the integration", body = ErrorEnvelope),
    ),
    security(("basicAuth" = []), ("bearerAuth" = ["api:crm:upload"])),
)]
pub fn request_status() {}
