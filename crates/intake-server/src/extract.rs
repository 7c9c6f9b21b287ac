//! Request inputs the handlers share: the authenticated caller, query parameters and
//! bounded bodies, each failing with an [`ApiError`].

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use base64::Engine;
use intake_model::wire::Scope;
use intake_model::ObjectType;
use intake_store::auth::{self, Principal};
use intake_store::{IntegrationId, RateDecision};

use crate::auth_cache::AuthCache;
use crate::error::ApiError;
use crate::AppState;

/// Largest JSON body a route reads (register, schema upload, GET entities' ids).
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;

/// The authenticated company, already counted against its rate limits. As an extractor it
/// runs before any body is read.
pub struct Caller(pub Principal);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope.as_str()) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(scope))
        }
    }

    pub fn company(&self) -> i64 {
        self.0.company_id
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        count_call(state, principal.company_id, state.rate_limits).await?;
        Ok(Caller(principal))
    }
}

/// A caller of Intake's own API (`/intake/v1`): authenticated as [`Caller`] is, and counted
/// against that API's own per-company limit instead of the Gong-compatible ones.
pub struct IntakeCaller(pub Caller);

impl IntakeCaller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.0.require(scope)
    }

    pub fn company(&self) -> i64 {
        self.0.company()
    }
}

impl FromRequestParts<AppState> for IntakeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        // The intake API's windows are kept under the negated company id (ids are
        // positive), so both limits count apart on either backend, across instances too.
        count_call(state, -principal.company_id, state.intake_rate_limits).await?;
        Ok(IntakeCaller(Caller(principal)))
    }
}

/// Who the Authorization header names, from the cache or the store.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::MissingAuthorization)?;
    let cache_key = AuthCache::key(header);
    if let Some(principal) = state.auth_cache.get(&cache_key) {
        return Ok(principal);
    }
    let principal = verify(state, header)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    state.auth_cache.put(cache_key, principal.clone());
    Ok(principal)
}

/// Counts one call in `bucket`'s windows; 429 when it is over `limits`.
async fn count_call(
    state: &AppState,
    bucket: i64,
    limits: intake_store::RateLimits,
) -> Result<(), ApiError> {
    match state
        .store
        .hit_rate_limit(bucket, limits, intake_store::now_unix_ms())
        .await?
    {
        RateDecision::Limited { retry_after_secs } => Err(ApiError::RateLimited {
            retry_after: retry_after_secs,
        }),
        RateDecision::Allowed => Ok(()),
    }
}

/// Checks an Authorization header against the stored credentials.
async fn verify(state: &AppState, header: &str) -> Result<Option<Principal>, ApiError> {
    let store = state.store.as_ref();
    match header.split_once(' ') {
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("basic") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or(ApiError::MalformedBasic)?;
            let (key, secret) = decoded.split_once(':').ok_or(ApiError::MalformedBasic)?;
            Ok(auth::check_basic(store, key, secret).await?)
        }
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(auth::check_bearer(store, value.trim()).await?)
        }
        _ => Err(ApiError::UnsupportedAuthScheme),
    }
}

/// Reads a whole body of at most `limit` bytes (call it after the scope check).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before a byte is read.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(ApiError::BodyTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return ApiError::BodyTooLarge { limit };
            }
            source = e.source();
        }
        ApiError::MalformedBody(err.to_string())
    })
}

/// The query string as name/value pairs (names may repeat).
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Result<QueryParams, ApiError> {
        serde_urlencoded::from_str(raw.unwrap_or(""))
            .map(QueryParams)
            .map_err(|e| ApiError::MalformedQuery(e.to_string()))
    }

    /// Parameters given as pairs (the web console's forms, read as a query).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> QueryParams {
        QueryParams(pairs)
    }

    pub fn optional(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.optional(name).ok_or(ApiError::MissingField(name))
    }

    pub fn integration_id(&self) -> Result<IntegrationId, ApiError> {
        let raw = self.required("integrationId")?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::InvalidIntegrationId(raw.to_owned()))
    }

    pub fn object_type(&self, allowed: &'static [ObjectType]) -> Result<ObjectType, ApiError> {
        let raw = self.required("objectType")?;
        parse_object_type(raw, allowed)
    }

    pub fn optional_object_type(
        &self,
        allowed: &'static [ObjectType],
    ) -> Result<Option<ObjectType>, ApiError> {
        self.optional("objectType")
            .map(|raw| parse_object_type(raw, allowed))
            .transpose()
    }

    pub fn client_request_id(&self) -> Result<&str, ApiError> {
        let raw = self.required("clientRequestId")?;
        let valid = raw.len() <= 128
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(raw)
        } else {
            Err(ApiError::InvalidClientRequestId)
        }
    }
}

fn parse_object_type(raw: &str, allowed: &'static [ObjectType]) -> Result<ObjectType, ApiError> {
    ObjectType::parse(raw)
        .filter(|t| allowed.contains(t))
        .ok_or_else(|| ApiError::InvalidObjectType {
            got: raw.to_owned(),
            allowed,
        })
}
