//! `intake requests`: the uploads and integration deletes, newest first, as a table
//! (`GET /intake/v1/requests`, every page); `intake cancel CRID` stops one
//! (`POST /intake/v1/requests/{crid}/cancel`); `intake errors CRID` and `intake failed-lines
//! CRID` save every error and every failed line of one (streamed, never held whole).

use std::path::PathBuf;

use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::conn::{enc, error_chain, ok, read_reply, Api, CliError, ConnArgs};

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

#[derive(Args, Debug)]
pub struct ErrorsArgs {
    /// The clientRequestId of the upload
    client_request_id: String,
    /// Write them to this file instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct FailedLinesArgs {
    /// The clientRequestId of the upload
    client_request_id: String,
    /// The file to write them to, ready to fix and upload again
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

/// `intake errors CRID [--output FILE]`: every error, one JSON a line, in line order.
pub async fn errors(args: ErrorsArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let path = format!(
        "/intake/v1/requests/{}/errors",
        enc(&args.client_request_id)
    );
    download(&api, &path, args.output.as_ref()).await
}

/// `intake failed-lines CRID -o FILE`: the failed lines as sent.
pub async fn failed_lines(args: FailedLinesArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let path = format!(
        "/intake/v1/requests/{}/failed-lines",
        enc(&args.client_request_id)
    );
    download(&api, &path, Some(&args.output)).await
}

/// Streams an LDJSON answer to `output` (or standard output) as it comes.
async fn download(api: &Api, path: &str, output: Option<&PathBuf>) -> Result<u8, CliError> {
    let mut path = path.to_owned();
    if let Some(id) = api.given_integration_id() {
        path.push_str(&format!("?integrationId={id}"));
    }
    let response = api
        .request(reqwest::Method::GET, &path)
        .header(reqwest::header::ACCEPT, "application/x-ndjson")
        .send()
        .await
        .map_err(|e| CliError::Unreachable(format!("GET {path}: {}", error_chain(&e))))?;
    if !response.status().is_success() {
        let reply = read_reply(response)
            .await
            .map_err(|e| CliError::Failed(format!("GET {path}: {}", error_chain(&e))))?;
        ok(reply)?;
        return Err(CliError::Failed(format!("GET {path}: unexpected answer")));
    }
    let mut file = match output {
        Some(to) => Some(
            tokio::fs::File::create(to)
                .await
                .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", to.display())))?,
        ),
        None => None,
    };
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| CliError::Failed(format!("GET {path}: {}", error_chain(&e))))?;
        match &mut file {
            Some(f) => f
                .write_all(&chunk)
                .await
                .map_err(|e| CliError::Failed(format!("cannot write: {e}")))?,
            None => crate::output::write_raw(&chunk),
        }
    }
    if let Some(mut f) = file {
        f.flush()
            .await
            .map_err(|e| CliError::Failed(format!("cannot write: {e}")))?;
    }
    Ok(crate::exit::OK)
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
