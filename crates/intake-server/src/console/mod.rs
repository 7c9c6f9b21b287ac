//! The web console (`/ui/`, INTAKE-API.md "The web console"): server-rendered pages over
//! the same service functions as the JSON API ([`crate::services`]), for people who want to
//! look rather than read JSON. A page never has its own copy of a service's logic: it
//! builds the service's parameters from its query or form, calls the service and renders
//! what comes back.
//!
//! - [`session`]: signing in with an access key and its secret, the session cookie, CSRF
//!   tokens, signing out.
//! - [`uploads`], [`records`], [`board`], [`associations`]: one module per page.
//! - `console.css` and `console.js` (the live progress of running uploads, the one part
//!   that needs JavaScript) are compiled into the binary and served from `/ui/static/`;
//!   every answer carries a `Content-Security-Policy` that lets a page load nothing from
//!   another origin.
//!
//! Errors of the services answer as an HTML page with the status and texts the JSON API
//! would give ([`html_errors`]); the JSON envelope is for API clients, not for a person.

mod associations;
mod board;
mod records;
pub mod session;
mod uploads;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use crate::error::ErrorTexts;
use crate::extract::{read_body, QueryParams};
use crate::{ApiError, AppState};

/// How the console's sessions behave (`--ui-secure-cookies`, `--ui-session-idle-minutes`).
#[derive(Clone, Copy, Debug)]
pub struct ConsoleSettings {
    /// Mark the session cookie `Secure` on every answer (it is also marked when a request
    /// came with `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// A session unused this long has ended.
    pub session_idle: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> ConsoleSettings {
        ConsoleSettings {
            secure_cookies: false,
            session_idle: Duration::from_secs(60 * 60),
        }
    }
}

const STYLESHEET: &str = include_str!("console.css");
const SCRIPT: &str = include_str!("console.js");

/// Nothing from another origin: no script, style, font, image or form target.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every route of the console, with full paths (merged into the server's router).
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/static/console.js", get(script))
        .route(
            "/ui/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/uploads", get(uploads::list))
        .route("/ui/uploads/{client_request_id}", get(uploads::one))
        .route(
            "/ui/uploads/{client_request_id}/cancel",
            post(uploads::cancel),
        )
        .route(
            "/ui/uploads/{client_request_id}/failed-lines",
            get(uploads::failed_lines),
        )
        .route("/ui/records", get(records::list))
        .route("/ui/records/{object_type}/{object_id}", get(records::one))
        .route("/ui/deal-board", get(board::deal_board))
        .route(
            "/ui/associations",
            get(associations::form).post(associations::run),
        )
        .route("/ui/{*rest}", get(unknown_page));
    pages.layer(axum::middleware::from_fn(html_errors))
}

/// Any other `/ui/` path: the sign-in form without a session, else a 404 page.
async fn unknown_page(_session: session::Session) -> ApiError {
    ApiError::NotFound
}

async fn home() -> Redirect {
    Redirect::to("/ui/uploads")
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", SCRIPT)
}

fn static_file(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        text,
    )
        .into_response()
}

/// Where a page's CSRF token is left for [`html_errors`], so that an error page still has
/// its navigation bar's Sign out button.
#[derive(Clone, Default)]
pub(crate) struct CsrfSlot(Arc<Mutex<Option<String>>>);

impl CsrfSlot {
    fn set(&self, token: &str) {
        *self.0.lock().expect("the slot is never poisoned") = Some(token.to_owned());
    }

    fn get(&self) -> Option<String> {
        self.0.lock().expect("the slot is never poisoned").clone()
    }
}

/// Marks a response whose body is the console's own (an HTML page with an error status):
/// the envelope layer leaves it alone.
#[derive(Clone, Copy)]
pub struct OwnBody;

/// The console's layer: an [`ApiError`] answer becomes an HTML page with its status and
/// texts, and every answer gets the headers that keep a page to its own origin.
async fn html_errors(mut request: Request, next: Next) -> Response {
    let slot = CsrfSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(ErrorTexts(errors)) = response.extensions_mut().remove::<ErrorTexts>() {
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (status.as_u16()) " " (title) }
            ul.errors { @for error in &errors { li { (error) } } }
            p { a href="/ui/uploads" { "Back to the uploads" } }
        };
        response = page_response(status, title, Nav::None, slot.get().as_deref(), body);
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response.extensions_mut().insert(OwnBody);
    response
}

/// The page the navigation bar marks as current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Uploads,
    Records,
    DealBoard,
    Associations,
    None,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Uploads, "/ui/uploads", "Uploads"),
    (Nav::Records, "/ui/records", "Records"),
    (Nav::DealBoard, "/ui/deal-board", "Deal board"),
    (Nav::Associations, "/ui/associations", "Associations"),
];

/// A whole page: the navigation bar (with a Sign out button when signed in, i.e. when
/// `csrf` is known), then `body`.
fn layout(title: &str, current: Nav, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Intake" }
                link rel="stylesheet" href="/ui/static/console.css";
                script src="/ui/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(csrf) = csrf {
                    header {
                        nav aria-label="Main" {
                            span.brand { "Intake" }
                            ul {
                                @for (nav, href, label) in NAV {
                                    li {
                                        @if nav == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                                li {
                                    form.sign-out method="post" action="/ui/sign-out" {
                                        (csrf_field(csrf))
                                        button type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

pub(crate) fn page_response(
    status: StatusCode,
    title: &str,
    current: Nav,
    csrf: Option<&str>,
    body: Markup,
) -> Response {
    let mut response = (status, layout(title, current, csrf, body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The hidden field every POST form carries.
pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(session::CSRF_FIELD) value=(token); }
}

/// The most a console form's body may hold.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A form's fields (`application/x-www-form-urlencoded`).
pub(crate) async fn read_form(body: Body) -> Result<QueryParams, ApiError> {
    let bytes = read_body(body, MAX_FORM_BYTES).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::MalformedQuery("the form is not UTF-8".into()))?;
    QueryParams::parse(Some(text))
}

/// A query's fields as pairs, `extra` replacing those it names.
pub(crate) fn query_with(params: &QueryParams, names: &[&str], extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = names
        .iter()
        .filter(|name| !extra.iter().any(|(k, _)| k == *name))
        .filter_map(|name| params.optional(name).map(|v| (*name, v)))
        .collect();
    pairs.extend(extra.iter().copied());
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The object types, as the API names them.
pub(crate) fn object_types() -> Vec<&'static str> {
    intake_model::ObjectType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect()
}

/// A path segment, percent-encoded (every byte but the unreserved ones).
pub(crate) fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON value as a page shows it: a string as itself, anything else as JSON.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// A datetime from a form's `datetime-local` input (no zone: read as UTC, seconds
/// optional) or any ISO-8601 datetime the API takes, as the API's parameter text.
pub(crate) fn form_datetime(raw: &str) -> String {
    let raw = raw.trim();
    let bare = raw.len() >= 16
        && raw.as_bytes().get(10) == Some(&b'T')
        && !raw.ends_with('Z')
        && !raw[10..].contains(['+', '-']);
    match (bare, raw.len()) {
        (true, 16) => format!("{raw}:00Z"),
        (true, _) => format!("{raw}Z"),
        _ => raw.to_owned(),
    }
}

/// The value a `datetime-local` input shows for an ISO-8601 UTC text (`YYYY-MM-DDTHH:MM`).
pub(crate) fn datetime_local(iso: &str) -> String {
    iso.get(..16).unwrap_or(iso).to_owned()
}

#[cfg(test)]
mod tests {
    use super::form_datetime;

    #[test]
    fn a_datetime_local_value_is_read_as_utc() {
        assert_eq!(form_datetime("2024-05-01T10:00"), "2024-05-01T10:00:00Z");
        assert_eq!(form_datetime("2024-05-01T10:00:30"), "2024-05-01T10:00:30Z");
        assert_eq!(
            form_datetime("2024-05-01T10:00:00Z"),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            form_datetime("2024-05-01T10:00:00+02:00"),
            "2024-05-01T10:00:00+02:00"
        );
    }
}
