//! `/ui/deal-board?status=&asOf=`: the board's columns by stage with their deals and
//! totals, the hidden deals with why, and an as-of date. Over [`crate::services::board`]: the
//! console reads the very answer the API sends.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use intake_model::wire::intake::DealBoard;
use maud::html;

use super::session::Session;
use super::{datetime_local, form_datetime, page_response, path_segment, Nav};
use crate::extract::QueryParams;
use crate::services::board;
use crate::{ApiError, AppState};

const STATUSES: [&str; 4] = ["OPEN", "WON", "LOST", "ALL"];

/// `GET /ui/deal-board?status=&asOf=` (`asOf` from the date picker is UTC).
pub async fn deal_board(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let asked = QueryParams::parse(query.as_deref())?;
    // The picker's `datetime-local` value has no zone: it is read as UTC.
    let params = QueryParams::from_pairs(
        ["status", "asOf", "integrationId"]
            .into_iter()
            .filter_map(|name| {
                asked.optional(name).map(|v| {
                    let v = if name == "asOf" {
                        form_datetime(v)
                    } else {
                        v.to_owned()
                    };
                    (name.to_owned(), v)
                })
            })
            .collect(),
    );
    let answer = board::board(&state, session.company, &params).await?;
    let bytes: Vec<u8> = answer.into_body(String::new()).flatten().collect();
    let board: DealBoard = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
    let status = params.optional("status").unwrap_or("OPEN");
    let deal_link = |id: &str| format!("/ui/records/DEAL/{}", path_segment(id));
    let body = html! {
        h1 { "Deal board" }
        form.filters method="get" action="/ui/deal-board" {
            label for="status" { "Status" }
            select id="status" name="status" {
                @for s in STATUSES { option value=(s) selected[s == status] { (s) } }
            }
            label for="asOf" { "As of (UTC)" }
            input id="asOf" name="asOf" type="datetime-local" step="1"
                value=(board.as_of.as_deref().map(datetime_local).unwrap_or_default());
            button type="submit" { "Show" }
        }
        p.as-of {
            @match &board.as_of {
                Some(as_of) => { "As it stood at " time { (as_of) } "." }
                None => "As it stands now.",
            }
        }
        div.board role="list" {
            @for column in &board.stages {
                section.column.inactive[!column.is_active] role="listitem"
                    aria-labelledby={ "stage-" (column.object_id) } {
                    h2 id={ "stage-" (column.object_id) } {
                        (column.name.as_deref().unwrap_or(&column.object_id))
                        @if !column.is_active { " " span.badge { "inactive" } }
                    }
                    p.totals {
                        (column.deal_count) @if column.deal_count == 1 { " deal" } @else { " deals" }
                        " · total " (column.total_amount.get())
                    }
                    ol.cards {
                        @for deal in &column.deals {
                            li.card {
                                h3 { a href=(deal_link(&deal.object_id)) {
                                    (deal.name.as_deref().unwrap_or(&deal.object_id)) } }
                                dl {
                                    dt { "Amount" } dd { (deal.amount.get()) }
                                    dt { "Close" } dd { (deal.close_date) }
                                    dt { "Account" } dd { (deal.account_name.as_deref().unwrap_or(&deal.account_id)) }
                                    dt { "Owner" } dd { (deal.owner_email.as_deref().unwrap_or(&deal.owner_id)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="hidden" { "Hidden deals" }
        @if board.hidden.is_empty() {
            p { "None: every deal of this status is on the board." }
        } @else {
            div.scroll {
                table.hidden {
                    thead { tr {
                        th scope="col" { "Deal" }
                        th scope="col" { "Name" }
                        th scope="col" { "Why it is hidden" }
                    } }
                    tbody {
                        @for deal in &board.hidden {
                            tr {
                                td { a href=(deal_link(&deal.object_id)) { (deal.object_id) } }
                                td { (deal.name.as_deref().unwrap_or("—")) }
                                td { ul.reasons { @for reason in &deal.reasons { li { (reason) } } } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page_response(
        StatusCode::OK,
        "Deal board",
        Nav::DealBoard,
        Some(&session.csrf),
        body,
    ))
}
