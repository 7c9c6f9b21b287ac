//! `intake associate`: which contacts, leads, accounts, deals and users an activity belongs
//! to (`POST /intake/v1/associations`), printed as a person reads it, with why each record
//! matched; `--batch FILE` sends an LDJSON file of activities to the batch endpoint and
//! writes its LDJSON answer; `--json` prints the API's JSON.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use super::conn::{Api, CliError, ConnArgs};

#[derive(Args, Debug)]
pub struct AssociateArgs {
    /// A party's email address (repeat for several parties)
    #[arg(long, value_name = "EMAIL")]
    email: Vec<String>,
    /// A party's phone number (repeat for several parties; each is a party of its own)
    #[arg(long, value_name = "PHONE")]
    phone: Vec<String>,
    /// When the activity happened (ISO-8601 with Z or ±HH:MM) [default: now]
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Match the records as they were at the activity's time, not as they are now
    #[arg(long = "time-of-call")]
    time_of_call: bool,
    /// Send this LDJSON file of activities (one JSON object a line) to the batch endpoint
    #[arg(long, value_name = "FILE", conflicts_with_all = ["email", "phone", "at", "time_of_call"])]
    batch: Option<PathBuf>,
    /// Where to write the batch's LDJSON answer [default: standard output]
    #[arg(long, short = 'o', value_name = "FILE", requires = "batch")]
    output: Option<PathBuf>,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

fn path_of(api: &Api, endpoint: &str) -> String {
    match api.given_integration_id() {
        Some(id) => format!("{endpoint}?integrationId={id}"),
        None => endpoint.to_owned(),
    }
}

pub async fn associate(args: AssociateArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    if let Some(file) = &args.batch {
        return batch(&api, file, args.output.as_deref()).await;
    }
    if args.email.is_empty() && args.phone.is_empty() {
        return Err(CliError::Usage(
            "give at least one --email or --phone (or --batch FILE)".into(),
        ));
    }
    let mut parties: Vec<Value> = args
        .email
        .iter()
        .map(|e| json!({"emailAddress": e}))
        .collect();
    parties.extend(args.phone.iter().map(|p| json!({"phoneNumber": p})));
    let start = args
        .at
        .clone()
        .unwrap_or_else(|| intake_model::format_timestamp(intake_store::now_unix_ms() / 1000));
    let body = json!({
        "startTime": start,
        "timing": if args.time_of_call { "TimeOfCall" } else { "Now" },
        "parties": parties,
    });
    let reply = api
        .call_ok(
            reqwest::Method::POST,
            &path_of(&api, "/intake/v1/associations"),
            Some(&body),
        )
        .await?;
    if api.json {
        super::print_json(&reply.body);
    } else {
        for line in render(&reply.body) {
            crate::outln!("{line}");
        }
    }
    Ok(crate::exit::OK)
}

async fn batch(
    api: &Api,
    file: &std::path::Path,
    output: Option<&std::path::Path>,
) -> Result<u8, CliError> {
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let path = path_of(api, "/intake/v1/associations/batch");
    let sent = api
        .send("POST /intake/v1/associations/batch", || {
            let request = api
                .request(reqwest::Method::POST, &path)
                .header("content-type", "application/x-ndjson")
                .body(bytes.clone());
            std::future::ready(Ok(request))
        })
        .await?;
    let reply = super::conn::ok(sent.reply)?;
    match output {
        Some(out) => std::fs::write(out, reply.text.as_bytes())
            .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", out.display())))?,
        None => crate::output::write_raw(reply.text.as_bytes()),
    }
    let bad = reply
        .text
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("errors").is_some()))
        .count();
    if bad > 0 {
        eprintln!(
            "{bad} line(s) of {} were not valid activities",
            file.display()
        );
        return Ok(crate::exit::FAILED);
    }
    Ok(crate::exit::OK)
}

/// One matched object: `Contact c1 (Ann Lee) because emailAddress`.
fn object_line(object: &Value) -> String {
    let field = |name: &str| {
        object["fields"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["name"] == name))
            .and_then(|f| f["value"].as_str())
    };
    let label = match object["objectType"].as_str() {
        Some("Contact") | Some("Lead") => {
            let name: Vec<&str> = [field("firstName"), field("lastName")]
                .into_iter()
                .flatten()
                .collect();
            (!name.is_empty()).then(|| name.join(" "))
        }
        Some("User") => field("emailAddress").map(str::to_owned),
        _ => field("name").map(str::to_owned),
    };
    let reasons: Vec<&str> = object["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut line = format!(
        "{} {}",
        object["objectType"].as_str().unwrap_or("?"),
        object["objectId"].as_str().unwrap_or("?")
    );
    if let Some(label) = label {
        line.push_str(&format!(" ({label})"));
    }
    if object["objectType"] == "Opportunity" {
        for key in ["status", "closeDate"] {
            if let Some(value) = field(key) {
                line.push_str(&format!(", {key} {value}"));
            }
        }
    }
    line.push_str(&format!(" because {}", reasons.join(", ")));
    line
}

fn objects(context: &Value) -> Vec<&Value> {
    context
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|system| system["objects"].as_array().into_iter().flatten())
        .collect()
}

/// The answer as lines of text: each party with what it matched, then the accounts and
/// deals of the activity.
fn render(answer: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for party in answer["parties"].as_array().into_iter().flatten() {
        let who: Vec<&str> = ["emailAddress", "phoneNumber"]
            .iter()
            .filter_map(|k| party[*k].as_str())
            .collect();
        lines.push(format!(
            "{} — {}",
            who.join(" / "),
            party["affiliation"].as_str().unwrap_or("?")
        ));
        let matched = objects(&party["context"]);
        if matched.is_empty() {
            lines.push("    no contact, lead or user matched".to_owned());
        }
        for object in matched {
            lines.push(format!("    {}", object_line(object)));
        }
    }
    let context = objects(&answer["context"]);
    lines.push(String::new());
    if context.is_empty() {
        lines.push("No account or deal matched.".to_owned());
    } else {
        lines.push("Accounts and deals:".to_owned());
        for object in context {
            lines.push(format!("    {}", object_line(object)));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parties_then_accounts_and_deals() {
        let answer = json!({"parties": [
            {"emailAddress": "ann@acme.com", "affiliation": "External", "context": [{"system": "Generic", "objects": [
                {"objectType": "Contact", "objectId": "c1", "reasons": ["emailAddress"],
                 "fields": [{"name": "firstName", "value": "Ann"}]}]}]},
            {"phoneNumber": "555", "affiliation": "Unknown", "context": []}],
            "context": [{"system": "Generic", "objects": [
                {"objectType": "Account", "objectId": "a1", "reasons": ["contact:c1"],
                 "fields": [{"name": "name", "value": "Acme"}]},
                {"objectType": "Opportunity", "objectId": "d1", "reasons": ["account:a1"],
                 "fields": [{"name": "status", "value": "OPEN"}, {"name": "closeDate", "value": "2024-05-01"}]}]}]});
        assert_eq!(
            render(&answer),
            [
                "ann@acme.com — External",
                "    Contact c1 (Ann) because emailAddress",
                "555 — Unknown",
                "    no contact, lead or user matched",
                "",
                "Accounts and deals:",
                "    Account a1 (Acme) because contact:c1",
                "    Opportunity d1, status OPEN, closeDate 2024-05-01 because account:a1",
            ]
        );
    }
}
