//! Every error a client can receive, and the one table that gives each its HTTP status and
//! text. The body is always the envelope `{"errors":[...],"requestId":"..."}`; the
//! envelope layer ([`crate::envelope`]) writes it, with the request's id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use intake_model::wire::Scope;
use intake_model::ObjectType;
use intake_store::StoreError;

/// The part of a request the HTTP library could not parse, for
/// [`ApiError::MalformedRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unparsable {
    /// Unknown or none in particular.
    Request,
    ContentLength,
    TransferEncoding,
    Method,
    Uri,
    Version,
    Header,
}

/// Largest accepted file: 200 MB.
pub const MAX_FILE_BYTES: u64 = 209_715_200;

/// Seconds a client is asked to wait after a 507 (no storage space left).
pub const DISK_FULL_RETRY_AFTER_SECS: u64 = 60;

const ALREADY_ACTIVE: &str = "Your organization already has an active GENERIC CRM integration. \
Only 1 active integration is supported. Please disconnect the existing GENERIC CRM integration \
before creating a new Generic CRM integration";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    // 400: parameters and bodies.
    /// A mandatory query parameter or body field is absent or empty.
    MissingField(&'static str),
    /// A body field that must be a string is something else.
    NotAString(&'static str),
    /// A text input holds a control character (NUL included), which no store keeps.
    ControlCharacters(&'static str),
    /// The registration body is JSON but not an object.
    RegistrationNotAnObject,
    InvalidEmail(String),
    InvalidIntegrationId(String),
    InvalidObjectType {
        got: String,
        allowed: &'static [ObjectType],
    },
    InvalidClientRequestId,
    MalformedQuery(String),
    /// Not an active integration of the caller's company (another company's id included).
    UnknownIntegration(i64),
    /// A JSON body that does not parse (the parser's message).
    InvalidJson(String),
    /// GET entities' body is not a JSON array of strings.
    IdsNotAnArray,
    NoObjectIds,
    /// The schema upload's every problem.
    InvalidSchema(Vec<String>),
    /// A body with these problems (each named in the client's terms).
    InvalidBody(Vec<String>),
    /// A batch of more activities than the limit.
    TooManyActivities {
        limit: usize,
    },
    /// The schema upload cannot replace the stored one.
    SchemaConflict(String),
    MissingDataFile,
    EmptyDataFile,
    MalformedMultipart(String),
    /// More than one `dataFile` part.
    DuplicateDataFile,
    /// The body could not be read (the client went away, or broke the framing).
    MalformedBody(String),
    // 401: who is calling.
    MissingAuthorization,
    MalformedBasic,
    UnsupportedAuthScheme,
    InvalidCredentials,
    PermissionDenied(Scope),
    // 404, 405, 409, 413, 415, 429.
    NotFound,
    RequestNotFound {
        client_request_id: String,
        integration_id: i64,
    },
    MethodNotAllowed,
    ClientRequestIdUsed,
    IntegrationActive,
    FileTooLarge,
    /// A body other than an upload's is over its limit (bytes).
    BodyTooLarge {
        limit: usize,
    },
    /// Gong's exact text, also for an upload whose body is not multipart/form-data.
    UnsupportedMediaType,
    /// A status this server did not make itself (a layer's or the framework's), wrapped
    /// in the envelope with the status's reason as its text.
    Other(StatusCode),
    RateLimited {
        retry_after: u64,
    },
    // Intake's own API (`/intake/v1`).
    /// No `integrationId` was given and the company has no active integration.
    NoActiveIntegration,
    /// `integrationId` names no integration of the company (another company's included).
    IntakeUnknownIntegration,
    /// A query or path parameter with a value it cannot take.
    InvalidParameter {
        name: &'static str,
        expected: &'static str,
        got: String,
    },
    /// A cursor that this listing did not write (garbled, or of other filters).
    InvalidCursor,
    /// The record never existed in the integration.
    RecordNotFound,
    /// `/intake/v1/requests/{clientRequestId}` of no request of the company.
    IntakeRequestNotFound,
    /// No webhook of the company has this id.
    WebhookNotFound,
    /// A cancel of a request that had finished (or cannot be stopped).
    NotCancellable(String),
    /// A web console POST without its form's CSRF token (403, nothing changed).
    CsrfRejected,
    // Refused by the HTTP library before a request reached the router (see
    // [`crate::listener`]), with the same statuses as it gives them.
    /// A request that does not parse (400); what of it, when known.
    MalformedRequest(Unparsable),
    /// A request target (path and query) over the HTTP library's limit (414).
    UriTooLong,
    /// A header block over the HTTP library's limits of size or count (431).
    HeadersTooLarge,
    // 5xx: ours.
    /// `GET /ready`: each thing that is not ready, its text naming it (`database`,
    /// `migrations`, `spool`).
    NotReady(Vec<String>),
    Busy,
    /// No storage space left (the database's disk or the spool's).
    DiskFull,
    /// Logged where it is made ([`ApiError::internal`]); the client sees no detail.
    Internal,
}

impl ApiError {
    /// The table: each error's status and text.
    pub fn status_and_errors(&self) -> (StatusCode, Vec<String>) {
        use ApiError::*;
        let bad = StatusCode::BAD_REQUEST;
        let (status, text) = match self {
            MissingField(name) => (bad, format!("Mandatory field [{name}] is missing or empty")),
            NotAString(name) => (bad, format!("Field [{name}] must be a string")),
            ControlCharacters(name) => (
                bad,
                format!("Field [{name}] must not contain control characters"),
            ),
            RegistrationNotAnObject => (
                bad,
                "Request body must be a JSON object with name and ownerEmail".into(),
            ),
            InvalidEmail(got) => (
                bad,
                format!("Field [ownerEmail] must be a valid email address, got [{got}]"),
            ),
            InvalidIntegrationId(got) => (
                bad,
                format!("Field [integrationId] must be a positive 64-bit integer, got [{got}]"),
            ),
            InvalidObjectType { got, allowed } => {
                let names: Vec<_> = allowed.iter().map(|t| t.as_str()).collect();
                (
                    bad,
                    format!(
                        "Field [objectType] must be one of {} (case-sensitive), got [{got}]",
                        names.join(", ")
                    ),
                )
            }
            InvalidClientRequestId => (
                bad,
                "Field [clientRequestId] must be 1 to 128 characters of letters, digits, '-' and '_'"
                    .into(),
            ),
            MalformedQuery(why) => (bad, format!("Malformed query string: {why}")),
            UnknownIntegration(id) => (bad, format!("Unknown integrationId [{id}]")),
            InvalidJson(why) => (bad, format!("Request body is not valid JSON: {why}")),
            IdsNotAnArray => (
                bad,
                "Request body must be a JSON array of object ids (strings)".into(),
            ),
            NoObjectIds => (bad, "No object ids given".into()),
            InvalidSchema(errors) | InvalidBody(errors) => return (bad, errors.clone()),
            TooManyActivities { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body holds more than the limit of {limit} activities"),
            ),
            SchemaConflict(why) => (bad, why.clone()),
            MissingDataFile => (bad, "dataFile part is missing".into()),
            EmptyDataFile => (bad, "dataFile is empty".into()),
            MalformedMultipart(why) => (bad, format!("Malformed multipart/form-data body: {why}")),
            DuplicateDataFile => (
                bad,
                "Malformed multipart/form-data body: the dataFile part appears more than once"
                    .into(),
            ),
            MalformedBody(why) => (bad, format!("The request body could not be read: {why}")),
            MissingAuthorization => (
                StatusCode::UNAUTHORIZED,
                "Missing Authorization header".into(),
            ),
            MalformedBasic => (
                StatusCode::UNAUTHORIZED,
                "Malformed Basic credentials".into(),
            ),
            UnsupportedAuthScheme => (
                StatusCode::UNAUTHORIZED,
                "Unsupported Authorization scheme".into(),
            ),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "Invalid credentials".into()),
            PermissionDenied(scope) => (
                StatusCode::UNAUTHORIZED,
                format!("You don't have permission to use '{scope}' in your app."),
            ),
            NotFound => (StatusCode::NOT_FOUND, "Not Found".into()),
            RequestNotFound {
                client_request_id,
                integration_id,
            } => (
                StatusCode::NOT_FOUND,
                format!(
                    "No request with clientRequestId [{client_request_id}] for integration [{integration_id}]"
                ),
            ),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into()),
            ClientRequestIdUsed => (
                StatusCode::CONFLICT,
                "Client request id has already been used".into(),
            ),
            IntegrationActive => (StatusCode::CONFLICT, ALREADY_ACTIVE.into()),
            FileTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("dataFile is larger than the 200 MB limit ({MAX_FILE_BYTES} bytes)"),
            ),
            BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than the {limit}-byte limit"),
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type".into(),
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "API request limit exceeded".into(),
            ),
            NoActiveIntegration => (StatusCode::NOT_FOUND, "No active integration".into()),
            IntakeUnknownIntegration => (StatusCode::NOT_FOUND, "Unknown integrationId".into()),
            InvalidParameter {
                name,
                expected,
                got,
            } => (bad, format!("Parameter [{name}] must be {expected}, got [{got}]")),
            InvalidCursor => (
                bad,
                "Parameter [cursor] is not a cursor of this listing: start again without it, \
                 with the same filters"
                    .into(),
            ),
            IntakeRequestNotFound => (
                StatusCode::NOT_FOUND,
                "No request with this clientRequestId".into(),
            ),
            WebhookNotFound => (
                StatusCode::NOT_FOUND,
                "No webhook with this webhookId".into(),
            ),
            NotCancellable(why) => (StatusCode::CONFLICT, why.clone()),
            CsrfRejected => (
                StatusCode::FORBIDDEN,
                "The form's CSRF token is missing or wrong: reload the page and try again".into(),
            ),
            RecordNotFound => (
                StatusCode::NOT_FOUND,
                "No such record in this integration".into(),
            ),
            NotReady(errors) => return (StatusCode::SERVICE_UNAVAILABLE, errors.clone()),
            MalformedRequest(part) => (
                bad,
                match part {
                    Unparsable::Request => "Malformed HTTP request",
                    Unparsable::ContentLength => "Invalid Content-Length header",
                    Unparsable::TransferEncoding => "Invalid Transfer-Encoding header",
                    Unparsable::Method => "Invalid HTTP method",
                    Unparsable::Uri => "Invalid request URI",
                    Unparsable::Version => "Invalid HTTP version",
                    Unparsable::Header => "Malformed HTTP header",
                }
                .into(),
            ),
            UriTooLong => (StatusCode::URI_TOO_LONG, "Request URI too long".into()),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request header fields too large".into(),
            ),
            Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is busy; try again shortly".into(),
            ),
            DiskFull => (
                StatusCode::INSUFFICIENT_STORAGE,
                "The server has no storage space left; try again later".into(),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".into(),
            ),
            Other(status) => (
                *status,
                status
                    .canonical_reason()
                    .unwrap_or("Error")
                    .to_owned(),
            ),
        };
        (status, vec![text])
    }

    /// Seconds the client should wait before trying again, when the error says so.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            ApiError::DiskFull => Some(DISK_FULL_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Logs `err` (with the request's span) and answers 500 without its detail.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {err}");
        ApiError::Internal
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::ClientRequestIdUsed => ApiError::ClientRequestIdUsed,
            StoreError::IntegrationActive => ApiError::IntegrationActive,
            StoreError::UnknownIntegration(id) => ApiError::UnknownIntegration(id),
            StoreError::InvalidText(field) => ApiError::ControlCharacters(field),
            err if err.is_busy() => ApiError::Busy,
            err if err.is_disk_full() => {
                tracing::error!("database has no space left: {err}");
                ApiError::DiskFull
            }
            err => ApiError::internal(err),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> ApiError {
        if err.kind() == std::io::ErrorKind::StorageFull {
            tracing::error!("spool has no space left: {err}");
            ApiError::DiskFull
        } else {
            ApiError::internal(err)
        }
    }
}

/// The texts of an error, carried in the response's extensions to the envelope layer,
/// which writes the body with the request's id.
#[derive(Clone, Debug)]
pub struct ErrorTexts(pub Vec<String>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errors) = self.status_and_errors();
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorTexts(errors));
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"intake\", Bearer realm=\"intake\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(err: ApiError) -> (u16, String) {
        let (status, errors) = err.status_and_errors();
        (status.as_u16(), errors.join("|"))
    }

    #[test]
    fn the_table_keeps_the_api_texts() {
        assert_eq!(
            text(ApiError::MissingField("name")),
            (400, "Mandatory field [name] is missing or empty".into())
        );
        assert_eq!(
            text(ApiError::PermissionDenied(Scope::CrmUpload)),
            (
                401,
                "You don't have permission to use 'api:crm:upload' in your app.".into()
            )
        );
        assert_eq!(
            text(ApiError::ClientRequestIdUsed),
            (409, "Client request id has already been used".into())
        );
        assert_eq!(
            text(ApiError::UnsupportedMediaType),
            (415, "Unsupported Media Type".into())
        );
        assert_eq!(
            text(ApiError::InvalidSchema(vec!["a".into(), "b".into()])),
            (400, "a|b".into())
        );
        assert_eq!(
            text(ApiError::MalformedRequest(Unparsable::ContentLength)),
            (400, "Invalid Content-Length header".into())
        );
        assert_eq!(
            text(ApiError::HeadersTooLarge),
            (431, "Request header fields too large".into())
        );
    }

    #[test]
    fn no_space_left_is_507_with_retry_after() {
        let err: ApiError = std::io::Error::from(std::io::ErrorKind::StorageFull).into();
        assert_eq!(err, ApiError::DiskFull);
        assert_eq!(err.status_and_errors().0, StatusCode::INSUFFICIENT_STORAGE);
        let response = err.into_response();
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            DISK_FULL_RETRY_AFTER_SECS.to_string()
        );
    }

    #[test]
    fn typed_store_errors_keep_their_meaning() {
        assert_eq!(
            ApiError::from(StoreError::UnknownIntegration(7)),
            ApiError::UnknownIntegration(7)
        );
        assert_eq!(
            ApiError::from(StoreError::IntegrationActive),
            ApiError::IntegrationActive
        );
        assert_eq!(
            ApiError::from(StoreError::Database(sqlx_pool_timeout())),
            ApiError::Busy
        );
    }

    fn sqlx_pool_timeout() -> sqlx::Error {
        sqlx::Error::PoolTimedOut
    }
}
