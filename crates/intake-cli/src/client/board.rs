//! `intake board`: the deal board (`GET /intake/v1/deal-board`) as a person reads it, one
//! table per column with its count and total, then the hidden deals and why; `--json`
//! prints the API's JSON.

use clap::Args;
use serde_json::Value;

use super::conn::{enc, Api, CliError, ConnArgs};

#[derive(Args, Debug)]
pub struct BoardArgs {
    /// Deals of this status: OPEN, WON, LOST or ALL [default: OPEN]
    #[arg(long, value_name = "S")]
    status: Option<String>,
    /// The board as it stood at this time (ISO-8601 with Z or ±HH:MM)
    #[arg(long = "as-of", value_name = "T")]
    as_of: Option<String>,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

pub async fn board(args: BoardArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    // The server checks the values; its 400 names the one it refuses.
    let mut query = Vec::new();
    if let Some(id) = args.conn.settings.integration_id {
        query.push(format!("integrationId={id}"));
    }
    if let Some(status) = &args.status {
        query.push(format!("status={}", enc(status)));
    }
    if let Some(as_of) = &args.as_of {
        query.push(format!("asOf={}", enc(as_of)));
    }
    let mut path = "/intake/v1/deal-board".to_owned();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let reply = api.call_ok(reqwest::Method::GET, &path, None).await?;
    if api.json {
        super::print_json(&reply.body);
    } else {
        let status = args.status.as_deref().unwrap_or("OPEN");
        for line in render(&reply.body, status) {
            crate::outln!("{line}");
        }
    }
    Ok(crate::exit::OK)
}

fn text<'a>(value: &'a Value, unknown: &'a str) -> &'a str {
    value.as_str().unwrap_or(unknown)
}

/// A JSON number as it was written (a string would be quoted).
fn number(value: &Value) -> String {
    match value {
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The board as lines of text: a summary, each column with its deals, the hidden deals.
fn render(board: &Value, status: &str) -> Vec<String> {
    let empty = Vec::new();
    let stages = board["stages"].as_array().unwrap_or(&empty);
    let hidden = board["hidden"].as_array().unwrap_or(&empty);
    let shown: usize = stages
        .iter()
        .map(|s| s["deals"].as_array().map_or(0, Vec::len))
        .sum();
    let when = match board["asOf"].as_str() {
        Some(t) => format!("as of {t}"),
        None => "now".to_owned(),
    };
    let mut out = vec![format!(
        "Deal board ({status} deals, {when}): {}, {} shown, {} hidden",
        plural(stages.len(), "stage"),
        plural(shown, "deal"),
        hidden.len()
    )];
    for stage in stages {
        let deals = stage["deals"].as_array().unwrap_or(&empty);
        out.push(String::new());
        out.push(format!(
            "{} [{}]{} - {}, total {}",
            text(&stage["name"], "?"),
            text(&stage["objectId"], ""),
            if stage["isActive"] == Value::Bool(false) {
                " (inactive)"
            } else {
                ""
            },
            plural(deals.len(), "deal"),
            number(&stage["totalAmount"])
        ));
        if deals.is_empty() {
            out.push("  (no deals)".to_owned());
            continue;
        }
        let mut rows = vec![[
            "closeDate".to_owned(),
            "deal".to_owned(),
            "amount".to_owned(),
            "account".to_owned(),
            "owner".to_owned(),
        ]];
        for deal in deals {
            let labelled = |name: &str, id: &str| {
                format!("{} [{}]", text(&deal[name], "?"), text(&deal[id], ""))
            };
            rows.push([
                text(&deal["closeDate"], "").to_owned(),
                labelled("name", "objectId"),
                number(&deal["amount"]),
                labelled("accountName", "accountId"),
                labelled("ownerEmail", "ownerId"),
            ]);
        }
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
        for [close, deal, amount, account, owner] in rows {
            let line = format!("  {close:w0$}  {deal:w1$}  {amount:>w2$}  {account:w3$}  {owner}");
            out.push(line.trim_end().to_owned());
        }
    }
    if !hidden.is_empty() {
        out.push(String::new());
        out.push(format!("Hidden ({}):", hidden.len()));
        for deal in hidden {
            let reasons: Vec<&str> = deal["reasons"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter_map(Value::as_str)
                .collect();
            out.push(format!(
                "  {} [{}]: {}",
                text(&deal["name"], "?"),
                text(&deal["objectId"], ""),
                reasons.join(", ")
            ));
        }
    }
    out
}
