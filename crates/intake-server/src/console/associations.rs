//! `/ui/associations`: emails, phones and a time in; what matched and why out. The form
//! becomes the activity `POST /intake/v1/associations` takes, and goes through the same
//! parser and the same rules ([`crate::services::associations`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use intake_model::wire::associations::{ContextObject, SystemContext};
use intake_model::ObjectType;
use maud::{html, Markup};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::session::Session;
use super::{csrf_field, form_datetime, page_response, path_segment, read_form, Nav};
use crate::extract::QueryParams;
use crate::services::{associations, records};
use crate::{ApiError, AppState};

/// What the form was filled with.
#[derive(Default)]
struct Asked {
    emails: String,
    phones: String,
    start: String,
    timing: String,
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', ',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn form_markup(csrf: &str, asked: &Asked) -> Markup {
    let timing = if asked.timing.is_empty() {
        "Now"
    } else {
        asked.timing.as_str()
    };
    html! {
        form.association method="post" action="/ui/associations" {
            (csrf_field(csrf))
            label for="emails" { "Email addresses (one a line)" }
            textarea id="emails" name="emails" rows="4" { (asked.emails) }
            label for="phones" { "Phone numbers (one a line)" }
            textarea id="phones" name="phones" rows="3" { (asked.phones) }
            label for="startTime" { "Time of the activity (UTC)" }
            input id="startTime" name="startTime" type="datetime-local" step="1" required
                value=(asked.start);
            fieldset {
                legend { "Records as they are" }
                label { input type="radio" name="timing" value="Now" checked[timing == "Now"]; " now" }
                label { input type="radio" name="timing" value="TimeOfCall" checked[timing == "TimeOfCall"]; " at the time of the activity" }
            }
            button type="submit" { "Find associations" }
        }
    }
}

/// `GET /ui/associations`
pub async fn form(session: Session) -> Response {
    let body = html! {
        h1 { "Associations" }
        p { "Which CRM records an activity with these people belongs to, and why." }
        (form_markup(&session.csrf, &Asked::default()))
    };
    page_response(
        StatusCode::OK,
        "Associations",
        Nav::Associations,
        Some(&session.csrf),
        body,
    )
}

fn objects_of(context: &[SystemContext]) -> Vec<&ContextObject> {
    context.iter().flat_map(|system| &system.objects).collect()
}

fn record_link(object: &ContextObject) -> String {
    let object_type = ObjectType::ALL
        .into_iter()
        .find(|t| associations::context_name(*t) == object.object_type)
        .map_or(object.object_type, ObjectType::as_str);
    format!(
        "/ui/records/{}/{}",
        path_segment(object_type),
        path_segment(&object.object_id)
    )
}

/// A party's value as sent: a JSON string's text, any other JSON as written.
fn sent_text(value: &RawValue) -> String {
    serde_json::from_str::<String>(value.get()).unwrap_or_else(|_| value.get().to_owned())
}

fn matches_table(objects: &[&ContextObject]) -> Markup {
    html! {
        @if objects.is_empty() {
            p { "Nothing matched." }
        } @else {
            table.matches {
                thead { tr {
                    th scope="col" { "Type" }
                    th scope="col" { "objectId" }
                    th scope="col" { "Why" }
                } }
                tbody {
                    @for object in objects {
                        tr {
                            td { (object.object_type) }
                            td { a href=(record_link(object)) { (object.object_id) } }
                            td { ul.reasons {
                                @for reason in &object.reasons {
                                    li { (reason) }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/associations`: `emails`, `phones`, `startTime`, `timing`.
pub async fn run(
    State(state): State<AppState>,
    session: Session,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    session.check_csrf(&form)?;
    let field = |name| form.optional(name).unwrap_or("").to_owned();
    let asked = Asked {
        emails: field("emails"),
        phones: field("phones"),
        start: field("startTime"),
        timing: field("timing"),
    };
    let mut parties: Vec<Value> = lines(&asked.emails)
        .map(|email| json!({ "emailAddress": email }))
        .collect();
    parties.extend(lines(&asked.phones).map(|phone| json!({ "phoneNumber": phone })));
    let mut activity = json!({ "startTime": form_datetime(&asked.start), "parties": parties });
    if !asked.timing.is_empty() {
        activity["timing"] = Value::String(asked.timing.clone());
    }
    let integration = records::integration(
        &state,
        session.company,
        &QueryParams::from_pairs(Vec::new()),
    )
    .await?;
    let parsed = associations::parse_activity(activity.to_string().as_bytes());
    let (status, outcome) = match parsed {
        Err(problems) => (
            StatusCode::BAD_REQUEST,
            html! {
                div.problem role="alert" {
                    p { "The activity cannot be associated:" }
                    ul { @for problem in &problems { li { (problem) } } }
                }
            },
        ),
        Ok(activity) => {
            let answer = associations::associate_one(&state, integration, activity).await?;
            (
                StatusCode::OK,
                html! {
                    section.result aria-labelledby="result" {
                        h2 id="result" { "What matched" }
                        h3 { "Parties" }
                        @for party in &answer.parties {
                            article.party {
                                h4 {
                                    (party.sent.get("emailAddress").or(party.sent.get("phoneNumber")).map(sent_text).unwrap_or_default())
                                    " " span.badge { (party.affiliation) }
                                }
                                (matches_table(&objects_of(&party.context)))
                            }
                        }
                        h3 { "The activity's accounts and opportunities" }
                        (matches_table(&objects_of(&answer.context)))
                    }
                },
            )
        }
    };
    let body = html! {
        h1 { "Associations" }
        (form_markup(&session.csrf, &asked))
        (outcome)
    };
    Ok(page_response(
        status,
        "Associations",
        Nav::Associations,
        Some(&session.csrf),
        body,
    ))
}
