//! `/ui/uploads`: the requests, newest first, with live progress, status and counts; and
//! `/ui/uploads/{clientRequestId}`: one request, its errors (100 a page), the download of
//! its failed lines (`.../failed-lines`) and, while it runs, a Cancel button. Over
//! [`crate::services::requests`].

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use intake_model::wire::intake::RequestListed;
use maud::{html, Markup};

use super::session::Session;
use super::{csrf_field, object_types, page_response, path_segment, query_with, read_form, Nav};
use crate::extract::QueryParams;
use crate::services::requests;
use crate::{ApiError, AppState};

const STATUSES: [&str; 5] = ["PENDING", "IN_PROGRESS", "DONE", "FAILED", "CANCELLED"];
/// Errors per page of one upload.
const ERRORS_PER_PAGE: usize = 100;

fn running(request: &RequestListed) -> bool {
    matches!(request.status.as_str(), "PENDING" | "IN_PROGRESS")
}

fn status_badge(status: &str) -> Markup {
    html! { span class={ "status status-" (status.to_ascii_lowercase()) } { (status) } }
}

/// Lines processed so far, with a bar that moves while the request runs.
fn progress(request: &RequestListed) -> Markup {
    let lines = request.total_success_count + request.total_error_count;
    html! {
        @if running(request) {
            progress aria-label={ "Progress of " (request.client_request_id) } {}
            " "
        }
        (lines) " lines"
    }
}

fn upload_link(crid: &str) -> String {
    format!("/ui/uploads/{}", path_segment(crid))
}

fn select(name: &str, label: &str, options: &[&str], chosen: Option<&str>) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            option value="" { "Any" }
            @for option in options {
                option value=(option) selected[chosen == Some(*option)] { (option) }
            }
        }
    }
}

/// `GET /ui/uploads?status=&objectType=&since=&until=&cursor=`
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let page = requests::list(&state, session.company, &params).await?;
    let filters = ["status", "objectType", "since", "until", "integrationId"];
    let body = html! {
        h1 { "Uploads" }
        form.filters method="get" action="/ui/uploads" {
            (select("status", "Status", &STATUSES, params.optional("status")))
            (select("objectType", "Object type", &object_types(), params.optional("objectType")))
            button type="submit" { "Filter" }
        }
        div id="live-uploads" data-live-region {
            @if page.requests.is_empty() {
                p { "No uploads yet." }
            } @else {
                div.scroll {
                    table {
                        caption.visually-hidden { "Uploads, newest first" }
                        thead { tr {
                            th scope="col" { "Request" }
                            th scope="col" { "Kind" }
                            th scope="col" { "Object type" }
                            th scope="col" { "Status" }
                            th scope="col" { "Progress" }
                            th scope="col" class="num" { "Succeeded" }
                            th scope="col" class="num" { "Errors" }
                            th scope="col" { "Created" }
                            th scope="col" { "Finished" }
                        } }
                        tbody {
                            @for request in &page.requests {
                                tr data-live[running(request)] {
                                    td { a href=(upload_link(&request.client_request_id)) {
                                        (request.client_request_id) } }
                                    td { (request.kind) }
                                    td { (request.object_type.as_deref().unwrap_or("—")) }
                                    td { (status_badge(&request.status)) }
                                    td { (progress(request)) }
                                    td.num { (request.total_success_count) }
                                    td.num { (request.total_error_count) }
                                    td { time { (request.created_at) } }
                                    td { (request.finished_at.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = &page.cursor {
            p.pager { a rel="next" href={ "/ui/uploads?" (query_with(&params, &filters, &[("cursor", cursor)])) } { "Next" } }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        "Uploads",
        Nav::Uploads,
        Some(&session.csrf),
        body,
    ))
}

/// `GET /ui/uploads/{clientRequestId}?cursor=`
pub async fn one(
    State(state): State<AppState>,
    session: Session,
    Path(crid): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let request = requests::info(&state, session.company, &crid).await?;
    let (errors, next) = requests::every_error(&state, session.company, &crid)
        .await?
        .page(params.optional("cursor"), ERRORS_PER_PAGE)
        .await?;
    let failed_lines = format!("{}/failed-lines", upload_link(&request.client_request_id));
    let body = html! {
        p.crumbs { a href="/ui/uploads" { "Uploads" } " › " (request.client_request_id) }
        h1 { "Upload " (request.client_request_id) }
        div id="live-request" data-live-region {
            dl.facts data-live[running(&request)] {
                dt { "Status" } dd { (status_badge(&request.status)) }
                dt { "Progress" } dd { (progress(&request)) }
                dt { "Kind" } dd { (request.kind) }
                dt { "Object type" } dd { (request.object_type.as_deref().unwrap_or("—")) }
                dt { "Succeeded" } dd { (request.total_success_count) }
                dt { "Errors" } dd { (request.total_error_count) }
                dt { "File size" } dd { (request.file_bytes.map_or("—".to_owned(), |b| format!("{b} bytes"))) }
                dt { "Created" } dd { (request.created_at) }
                dt { "Started" } dd { (request.started_at.as_deref().unwrap_or("—")) }
                dt { "Finished" } dd { (request.finished_at.as_deref().unwrap_or("—")) }
            }
            @if running(&request) && request.kind == "UPLOAD" {
                form.cancel method="post" action={ (upload_link(&request.client_request_id)) "/cancel" } {
                    (csrf_field(&session.csrf))
                    button type="submit" { "Cancel" }
                }
            }
        }
        h2 { "Errors" }
        p { a href=(failed_lines) download { "Download failed lines" } }
        @if errors.is_empty() {
            p { "No errors." }
        } @else {
            div.scroll {
                table.errors {
                    thead { tr {
                        th scope="col" class="num" { "Line" }
                        th scope="col" { "objectId" }
                        th scope="col" { "Field" }
                        th scope="col" { "Description" }
                    } }
                    tbody {
                        @for error in &errors {
                            tr {
                                td.num { (error.line) }
                                td { (error.object_id.as_deref().unwrap_or("—")) }
                                td { (error.field.as_deref().unwrap_or("—")) }
                                td { (error.description) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = &next {
            p.pager { a rel="next" href={ (upload_link(&request.client_request_id)) "?" (query_with(&params, &[], &[("cursor", cursor)])) } { "Next" } }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        &format!("Upload {crid}"),
        Nav::Uploads,
        Some(&session.csrf),
        body,
    ))
}

/// `GET /ui/uploads/{clientRequestId}/failed-lines`: the failed lines as sent, to fix and
/// send again (as `GET /intake/v1/requests/{clientRequestId}/failed-lines`), as a download.
pub async fn failed_lines(
    State(state): State<AppState>,
    session: Session,
    Path(crid): Path<String>,
) -> Result<Response, ApiError> {
    let body = requests::failed_lines(&state, session.company, &crid).await?;
    let file = format!(
        "attachment; filename=\"{}-failed-lines.ldjson\"",
        path_segment(&crid)
    );
    let disposition = HeaderValue::from_str(&file).map_err(ApiError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `POST /ui/uploads/{clientRequestId}/cancel`: cancels it and shows it again.
pub async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(crid): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    session.check_csrf(&form)?;
    let request = requests::cancel(&state, session.company, &crid).await?;
    Ok(Redirect::to(&upload_link(&request.client_request_id)).into_response())
}
