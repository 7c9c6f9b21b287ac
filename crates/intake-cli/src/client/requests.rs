//! `intake requests`: the uploads and integration deletes, newest first, as a table
//! (`GET /intake/v1/requests`, every page); `intake cancel CRID` stops one
//! (`POST /intake/v1/requests/{crid}/cancel`).

use clap::Args;
use serde_json::Value;

use super::conn::{enc, Api, CliError, ConnArgs};

#[derive(Args, Debug)]
pub struct RequestsArgs {
    /// Only requests in this status: PENDING, IN_PROGRESS, DONE, FAILED or CANCELLED
    #[arg(long, value_name = "S")]
    status: Option<String>,
    /// Only uploads of this object type
    #[arg(long = "type", value_name = "TYPE")]
    object_type: Option<String>,
    /// At most this many (newest first) [default: all]
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The clientRequestId of the upload to stop
    client_request_id: String,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

pub async fn requests(args: RequestsArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let mut filters = Vec::new();
    if let Some(id) = api.given_integration_id() {
        filters.push(format!("integrationId={id}"));
    }
    if let Some(status) = &args.status {
        filters.push(format!("status={}", enc(status)));
    }
    if let Some(t) = &args.object_type {
        filters.push(format!("objectType={}", enc(t)));
    }
    let wanted = args.limit.unwrap_or(usize::MAX);
    let mut listed: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while listed.len() < wanted {
        let mut query = filters.clone();
        query.push(format!("limit={}", (wanted - listed.len()).min(1000)));
        if let Some(c) = &cursor {
            query.push(format!("cursor={}", enc(c)));
        }
        let path = format!("/intake/v1/requests?{}", query.join("&"));
        let reply = api.call_ok(reqwest::Method::GET, &path, None).await?;
        listed.extend(
            reply.body["requests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        cursor = reply.body["records"]["cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    if api.json {
        for request in &listed {
            super::print_json(request);
        }
    } else {
        for line in table(&listed) {
            crate::outln!("{line}");
        }
    }
    Ok(crate::exit::OK)
}

pub async fn cancel(args: CancelArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let path = format!(
        "/intake/v1/requests/{}/cancel",
        enc(&args.client_request_id)
    );
    let reply = api.call_ok(reqwest::Method::POST, &path, None).await?;
    if api.json {
        super::print_json(&reply.body);
    } else {
        let request = &reply.body["request"];
        crate::outln!(
            "{} {}: {} lines applied before it stopped",
            request["clientRequestId"].as_str().unwrap_or("?"),
            request["status"].as_str().unwrap_or("?"),
            request["totalSuccessCount"]
        );
    }
    Ok(crate::exit::OK)
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The requests as an aligned table.
fn table(requests: &[Value]) -> Vec<String> {
    let header = [
        "created",
        "clientRequestId",
        "kind",
        "type",
        "status",
        "ok",
        "errors",
        "bytes",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in requests {
        rows.push(vec![
            text(&r["createdAt"]),
            text(&r["clientRequestId"]),
            text(&r["kind"]),
            text(&r["objectType"]),
            text(&r["status"]),
            text(&r["totalSuccessCount"]),
            text(&r["totalErrorCount"]),
            text(&r["fileBytes"]),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect();
    if requests.is_empty() {
        lines = vec!["No requests.".to_owned()];
    }
    lines
}
