//! Request inputs the handlers share: the authenticated caller and query parameters,
//! each failing with the API's own error texts.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use base64::Engine;
use intake_model::ObjectType;
use intake_store::auth::{self, Principal};
use intake_store::{Integration, IntegrationId, RateDecision};

use crate::auth_cache::AuthCache;
use crate::error::ApiError;
use crate::AppState;

/// The authenticated company, already counted against its rate limits.
pub struct Caller(pub Principal);

impl Caller {
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(format!(
                "You don't have permission to use '{scope}' in your app."
            )))
        }
    }

    pub fn company(&self) -> i64 {
        self.0.company_id
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("Missing Authorization header"))?;
        let cache_key = AuthCache::key(header);
        let principal = match state.auth_cache.get(&cache_key) {
            Some(principal) => Some(principal),
            None => verify(state, header).await?,
        };
        let principal = principal.ok_or_else(|| ApiError::unauthorized("Invalid credentials"))?;
        state.auth_cache.put(cache_key, principal.clone());
        if let RateDecision::Limited { retry_after_secs } = state
            .store
            .hit_rate_limit(
                principal.company_id,
                state.rate_limits,
                intake_store::now_unix_ms(),
            )
            .await?
        {
            return Err(ApiError::too_many_requests(retry_after_secs));
        }
        Ok(Caller(principal))
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
                .ok_or_else(|| ApiError::unauthorized("Malformed Basic credentials"))?;
            let (key, secret) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::unauthorized("Malformed Basic credentials"))?;
            Ok(auth::check_basic(store, key, secret).await?)
        }
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(auth::check_bearer(store, value.trim()).await?)
        }
        _ => Err(ApiError::unauthorized("Unsupported Authorization scheme")),
    }
}

/// The query string as name/value pairs (names may repeat).
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Result<QueryParams, ApiError> {
        serde_urlencoded::from_str(raw.unwrap_or(""))
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request(format!("Malformed query string: {e}")))
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

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.optional(name).ok_or_else(|| {
            ApiError::bad_request(format!("Mandatory field [{name}] is missing or empty"))
        })
    }

    pub fn integration_id(&self) -> Result<IntegrationId, ApiError> {
        let raw = self.required("integrationId")?;
        raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Field [integrationId] must be a positive 64-bit integer, got [{raw}]"
            ))
        })
    }

    pub fn object_type(&self, allowed: &[ObjectType]) -> Result<ObjectType, ApiError> {
        let raw = self.required("objectType")?;
        self.parse_object_type(raw, allowed)
    }

    pub fn optional_object_type(
        &self,
        allowed: &[ObjectType],
    ) -> Result<Option<ObjectType>, ApiError> {
        self.optional("objectType")
            .map(|raw| self.parse_object_type(raw, allowed))
            .transpose()
    }

    fn parse_object_type(&self, raw: &str, allowed: &[ObjectType]) -> Result<ObjectType, ApiError> {
        ObjectType::parse(raw)
            .filter(|t| allowed.contains(t))
            .ok_or_else(|| {
                let names: Vec<_> = allowed.iter().map(|t| t.as_str()).collect();
                ApiError::bad_request(format!(
                    "Field [objectType] must be one of {} (case-sensitive), got [{raw}]",
                    names.join(", ")
                ))
            })
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
            Err(ApiError::bad_request(
                "Field [clientRequestId] must be 1 to 128 characters of letters, digits, '-' and '_'",
            ))
        }
    }
}

/// The caller's active integration named by `integrationId`; another company's id is
/// answered like an unknown one.
pub async fn integration(
    state: &AppState,
    caller: &Caller,
    params: &QueryParams,
) -> Result<Integration, ApiError> {
    let id = params.integration_id()?;
    state
        .store
        .find_integration(caller.company(), id)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("Unknown integrationId [{id}]")))
}
