//! Signing in to the console, its sessions and their CSRF tokens.
//!
//! - A session is a row of the store ([`intake_store::UiSession`]), so every instance on
//!   one database shares it. The cookie holds a random id (32 bytes, base64url); the store
//!   holds only its SHA-256.
//! - The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/ui`, without an expiry (it ends with
//!   the browser); `Secure` when the server runs with `--ui-secure-cookies` or the request
//!   came with `X-Forwarded-Proto: https`.
//! - Each request of a session checks, in one statement, that it was used within the idle
//!   time and that its access key is not revoked, and marks it used.
//! - Every POST form carries a CSRF token: the session's own (a random value stored with
//!   it); the sign-in form, before any session exists, a random value also set in a cookie
//!   of its own (double submit), which a page of another site can neither read nor send.
//!   A POST without the right token answers 403 and changes nothing.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use intake_store::auth::{self, hash_secret};
use intake_store::{now_unix_ms, CompanyId, UiSession};
use maud::html;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::{csrf_field, page_response, read_form, CsrfSlot, Nav};
use crate::extract::QueryParams;
use crate::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "intake_session";
/// The sign-in form's CSRF cookie.
pub const SIGN_IN_COOKIE: &str = "intake_sign_in";
/// The name of the CSRF field of every POST form.
pub const CSRF_FIELD: &str = "csrf";

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A cookie's value in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Whether cookies are marked `Secure` for this request.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.console.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `value: None` removes the cookie.
fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(value) => format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("cookie values are base64url")
}

fn same_token(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// A signed-in visitor of the console. Without a live session the extractor answers 303
/// to `/ui/sign-in`.
pub struct Session {
    pub company: CompanyId,
    pub csrf: String,
    id_hash: Vec<u8>,
}

impl Session {
    /// The form's CSRF token is this session's; else the 403 to answer.
    pub fn check_csrf(&self, form: &QueryParams) -> Result<(), ApiError> {
        if same_token(form.optional(CSRF_FIELD), &self.csrf) {
            Ok(())
        } else {
            Err(ApiError::CsrfRejected)
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || Redirect::to("/ui/sign-in").into_response();
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let id_hash = hash_secret(id);
        let now = now_unix_ms();
        let idle = state.console.session_idle.as_millis() as i64;
        let found = state
            .store
            .touch_ui_session(&id_hash, now, now.saturating_sub(idle))
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        let Some(found) = found else {
            return Err(to_sign_in());
        };
        if let Some(slot) = parts.extensions.get::<CsrfSlot>() {
            slot.set(&found.csrf_token);
        }
        Ok(Session {
            company: found.company_id,
            csrf: found.csrf_token,
            id_hash,
        })
    }
}

fn sign_in_page(status: StatusCode, token: &str, problem: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in to Intake" }
        @if let Some(problem) = problem {
            p.problem role="alert" { (problem) }
        }
        form.sign-in method="post" action="/ui/sign-in" {
            (csrf_field(token))
            label for="accessKey" { "Access key" }
            input id="accessKey" name="accessKey" type="text" autocomplete="username"
                required autofocus;
            label for="accessKeySecret" { "Secret" }
            input id="accessKeySecret" name="accessKeySecret" type="password"
                autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    page_response(status, "Sign in", Nav::None, None, body)
}

/// `GET /ui/sign-in`: the form, with a fresh CSRF token in it and in its cookie.
pub async fn sign_in_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = random_token();
    let mut response = sign_in_page(StatusCode::OK, &token, None);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, Some(&token), secure(&state, &headers)),
    );
    response
}

/// `POST /ui/sign-in`: `accessKey` and `accessKeySecret`. A wrong pair answers 401 with the
/// form again; the right one starts a session and goes to the uploads.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    let Some(expected) = cookie(&headers, SIGN_IN_COOKIE) else {
        return Err(ApiError::CsrfRejected);
    };
    if !same_token(form.optional(CSRF_FIELD), expected) {
        return Err(ApiError::CsrfRejected);
    }
    let key = form.optional("accessKey").unwrap_or("").trim();
    let secret = form.optional("accessKeySecret").unwrap_or("");
    let principal = auth::check_basic(state.store.as_ref(), key, secret).await?;
    let Some(principal) = principal else {
        tracing::info!("console sign-in refused");
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            expected,
            Some("Wrong access key or secret."),
        ));
    };
    let id = random_token();
    let now = now_unix_ms();
    let idle = state.console.session_idle.as_millis() as i64;
    state
        .store
        .insert_ui_session(
            &UiSession {
                id_hash: hash_secret(&id),
                access_key: key.to_owned(),
                company_id: principal.company_id,
                csrf_token: random_token(),
                created_ms: now,
                last_seen_ms: now,
            },
            now.saturating_sub(idle),
        )
        .await?;
    let secure = secure(&state, &headers);
    let mut response = Redirect::to("/ui/uploads").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, Some(&id), secure),
    );
    cookies.append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, None, secure));
    Ok(response)
}

/// `POST /ui/sign-out`: ends the session and goes to the sign-in form.
pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    session.check_csrf(&form)?;
    state.store.delete_ui_session(&session.id_hash).await?;
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, None, secure(&state, &headers)),
    );
    Ok(response)
}
