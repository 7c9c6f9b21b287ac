//! `GET /openapi.json`: the OpenAPI 3.1 document of every operation this server serves,
//! generated with `utoipa` from the wire types' schemas (`intake_model::wire`, which derive
//! `ToSchema`) and one `#[utoipa::path]` per operation, in the modules below (one per part
//! of the API; the handlers stay in [`crate::routes`]). `GET /docs`: Swagger UI for it,
//! built into the binary (`utoipa-swagger-ui`'s vendored copy), loading nothing from
//! outside.
//!
//! Where Gong's published document is right, the operations match it (paths, operation ids,
//! tags, parameters, schema names such as `ErrorResponse` or `RequestStatusResponse`);
//! where it is wrong, they say what the server does: GET entities takes its ids as a JSON
//! body (or `objectsCrmIds`), POST entities takes `integrationId`, `objectType` and
//! `clientRequestId` in the query, and POST entity-schema answers 200.
//!
//! A test walks the router's routes and fails on any that this document leaves out.

mod gong;
mod intake;
mod ops;
mod privacy;

use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr, Response,
    ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;

/// Where the document and the UI are served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
pub const UI_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Intake",
        description = "A self-hosted server for Gong's generic CRM API (`/v2/crm`, \
            `/v2/data-privacy`), Intake's own API (`/intake/v1`) and the operator's endpoints. \
            Every error answers the envelope `ErrorResponse`; every response carries \
            `X-Request-Id`.",
    ),
    paths(
        gong::register_integration,
        gong::list_integrations,
        gong::delete_integration,
        gong::list_schema,
        gong::upload_schema,
        gong::get_objects,
        gong::upload,
        gong::request_status,
        privacy::data_for_email,
        privacy::data_for_phone,
        privacy::erase_email,
        privacy::erase_phone,
        intake::associate,
        intake::associate_batch,
        intake::get_settings,
        intake::put_settings,
        intake::requests,
        intake::request,
        intake::cancel,
        intake::request_errors,
        intake::failed_lines,
        intake::create_webhook,
        intake::list_webhooks,
        intake::delete_webhook,
        intake::webhook_deliveries,
        intake::deal_board,
        intake::records,
        intake::record,
        intake::versions,
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi_document,
        ops::docs,
    ),
    // The schemas of parameters (those of bodies are found from the operations).
    components(schemas(
        ObjectTypeName,
        SchemaObjectType,
        intake::BoardStatus,
        intake::RequestStatusName,
        intake::WebhookDelivery
    )),
    tags(
        (name = "CRM", description = "Gong's generic CRM API"),
        (name = "Data Privacy", description = "Gong's data-privacy look-ups and erasure"),
        (name = "Intake", description = "Intake's own API: associations, records and their \
            history, the deal board"),
        (name = "Operations", description = "For operators: health, readiness, metrics and \
            this document; no authentication"),
    ),
    modifiers(&Conventions),
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The routes of the document and of Swagger UI (`/docs`, `/docs/`, `/docs/{*rest}`).
pub fn router() -> Router<AppState> {
    SwaggerUi::new(UI_PATH)
        .url(DOCUMENT_PATH, document())
        // No validator badge: it would be loaded from outside.
        .config(Config::new([DOCUMENT_PATH]).validator_url("none"))
        .into()
}

/// What every authenticated operation shares, added once instead of on each: the two
/// security schemes, and the error answers 400, 401, 429 (with `Retry-After`) and 500 in
/// the envelope, where an operation does not describe them itself.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("An access key and its secret: every operation"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token `itk_<id>.<secret>`: the operations of its scopes \
                         (each operation names the scope it needs)",
                    ))
                    .build(),
            ),
        );
        let common = [
            ("400", error("Malformed request", false)),
            ("401", error("Access denied", false)),
            ("429", error("API request limit exceeded", true)),
            (
                "500",
                error(
                    "Failed to complete the operation due to an unexpected error",
                    false,
                ),
            ),
        ];
        for item in doc.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if operation.security.is_none() {
                    continue;
                }
                for (status, response) in &common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(response.clone()));
                }
            }
        }
    }
}

/// An error answer in the envelope.
fn error(description: &str, retry_after: bool) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorResponse")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some("Seconds to wait before the next call"))
                .build(),
        );
    }
    response.build()
}

/// The object types of uploads, GET entities and `/intake/v1/records`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectTypeName {
    Account,
    Contact,
    Deal,
    Lead,
    BusinessUser,
    Stage,
}

/// The object types that take custom fields.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchemaObjectType {
    Account,
    Contact,
    Deal,
    Lead,
}
