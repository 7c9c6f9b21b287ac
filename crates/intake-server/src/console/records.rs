//! `/ui/records`: the records of a type (100 a page, with a search by objectId) and
//! `/ui/records/{objectType}/{objectId}`: one record, its current state and its history as
//! a timeline of versions, each with the upload it came from and what changed. Over
//! [`crate::services::records`].

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::session::Session;
use super::{json_text, object_types, page_response, path_segment, query_with, Nav};
use crate::extract::QueryParams;
use crate::services::records;
use crate::{ApiError, AppState};

/// Fields a listing shows beside objectId and modifiedDate.
const SUMMARY_FIELDS: usize = 4;

fn record_link(object_type: &str, object_id: &str) -> String {
    format!(
        "/ui/records/{}/{}",
        path_segment(object_type),
        path_segment(object_id)
    )
}

fn object(raw: &str) -> Map<String, Value> {
    match serde_json::from_str(raw) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn summary(fields: &Map<String, Value>) -> String {
    fields
        .iter()
        .filter(|(k, _)| *k != "objectId" && *k != "modifiedDate")
        .take(SUMMARY_FIELDS)
        .map(|(k, v)| format!("{k}: {}", json_text(v)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// `GET /ui/records?objectType=&objectId=&asOf=&includeDeleted=&cursor=`: an `objectId`
/// goes straight to that record.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let object_type = params.optional("objectType").unwrap_or("ACCOUNT");
    records::object_type(object_type)?;
    if let Some(object_id) = params.optional("objectId") {
        return Ok(Redirect::to(&record_link(object_type, object_id.trim())).into_response());
    }
    let page = records::list(&state, session.company, object_type, &params).await?;
    let kept = ["objectType", "asOf", "includeDeleted", "integrationId"];
    let rows: Vec<Map<String, Value>> = page.objects.iter().map(|o| object(o.get())).collect();
    let body = html! {
        h1 { "Records" }
        form.filters method="get" action="/ui/records" {
            label for="objectType" { "Object type" }
            select id="objectType" name="objectType" {
                @for t in object_types() {
                    option value=(t) selected[t == object_type] { (t) }
                }
            }
            label for="objectId" { "objectId" }
            input id="objectId" name="objectId" type="search" placeholder="Find by objectId";
            button type="submit" { "Show" }
        }
        h2 { (object_type) }
        @if rows.is_empty() {
            p { "No records of this type." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "objectId" }
                        th scope="col" { "modifiedDate" }
                        th scope="col" { "Fields" }
                    } }
                    tbody {
                        @for row in &rows {
                            @let id = row.get("objectId").map(json_text).unwrap_or_default();
                            tr {
                                td { a href=(record_link(object_type, &id)) { (id) } }
                                td { (row.get("modifiedDate").map(json_text).unwrap_or_default()) }
                                td {
                                    @if row.get("isDeleted") == Some(&Value::Bool(true)) {
                                        em { "deleted" }
                                    } @else {
                                        (summary(row))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = &page.cursor {
            p.pager { a rel="next" href={ "/ui/records?" (query_with(&params, &kept, &[("objectType", object_type), ("cursor", cursor)])) } { "Next" } }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        "Records",
        Nav::Records,
        Some(&session.csrf),
        body,
    ))
}

/// What changed from one version's fields to the next's.
enum Change<'a> {
    Added(&'a str, &'a Value),
    Changed(&'a str, &'a Value, &'a Value),
    Removed(&'a str, &'a Value),
}

fn changes<'a>(before: &'a Map<String, Value>, after: &'a Map<String, Value>) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => out.push(Change::Added(k, v)),
            Some(old) if old != v => out.push(Change::Changed(k, old, v)),
            Some(_) => {}
        }
    }
    for (k, v) in before {
        if !after.contains_key(k) {
            out.push(Change::Removed(k, v));
        }
    }
    out
}

fn changes_table(changes: &[Change]) -> Markup {
    html! {
        table.changes {
            thead { tr {
                th scope="col" { "Field" }
                th scope="col" { "Before" }
                th scope="col" { "After" }
            } }
            tbody {
                @for change in changes {
                    @match change {
                        Change::Added(k, v) => tr.added { th scope="row" { (k) } td { "—" } td { (json_text(v)) } },
                        Change::Changed(k, old, new) => tr.changed { th scope="row" { (k) } td { del { (json_text(old)) } } td { ins { (json_text(new)) } } },
                        Change::Removed(k, v) => tr.removed { th scope="row" { (k) } td { del { (json_text(v)) } } td { "—" } },
                    }
                }
            }
        }
    }
}

/// `GET /ui/records/{objectType}/{objectId}`
pub async fn one(
    State(state): State<AppState>,
    session: Session,
    Path((object_type, object_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let versions =
        records::versions(&state, session.company, &object_type, &object_id, &params).await?;
    let bodies: Vec<Map<String, Value>> = versions
        .iter()
        .map(|v| {
            if v.version.deleted {
                Map::new()
            } else {
                object(&v.version.body)
            }
        })
        .collect();
    let empty = Map::new();
    let current = versions.iter().zip(&bodies).find(|(v, _)| v.current);
    let body = html! {
        p.crumbs {
            a href="/ui/records" { "Records" } " › "
            a href={ "/ui/records?objectType=" (path_segment(&object_type)) } { (object_type) } " › "
            (object_id)
        }
        h1 { (object_type) " " (object_id) }
        h2 { "Current state" }
        @match current {
            Some((v, _)) if v.version.deleted => p { "Deleted (" (intake_model::format_timestamp(v.version.modified)) ")." },
            Some((_, fields)) => {
                dl.facts {
                    @for (k, v) in fields { dt { (k) } dd { (json_text(v)) } }
                }
            },
            None => p { "None." },
        }
        h2 { "History" }
        ol.timeline {
            @for (i, version) in versions.iter().enumerate() {
                @let before = if i == 0 { &empty } else { &bodies[i - 1] };
                li.version.current[version.current] {
                    h3 {
                        time { (intake_model::format_timestamp(version.version.modified)) }
                        @if version.current { " " span.badge { "current" } }
                        @if version.version.deleted { " " span.badge.deleted { "deleted" } }
                    }
                    p.origin {
                        "From upload "
                        a href={ "/ui/uploads/" (path_segment(&version.client_request_id)) } { (version.client_request_id) }
                        ", line " (version.version.line) ", received " (version.received_at)
                    }
                    @if version.version.deleted {
                        p { "The record was deleted." }
                    } @else {
                        @let list = changes(before, &bodies[i]);
                        @if i == 0 {
                            p { "Created:" }
                        }
                        @if list.is_empty() {
                            p { "No field changed." }
                        } @else {
                            (changes_table(&list))
                        }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        &format!("{object_type} {object_id}"),
        Nav::Records,
        Some(&session.csrf),
        body,
    ))
}
