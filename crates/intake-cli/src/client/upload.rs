//! `intake upload` and `intake status`: streamed uploads with their retries, and following a
//! request to its end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use intake_model::ObjectType;
use serde_json::{json, Value};

use super::conn::{enc, ok, Api, CliError, ConnArgs, Reply, Sent};
use super::{parse_type, print_json, stderr_is_terminal};
use crate::exit;

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// LDJSON files (one JSON object per line), uploaded one after the other
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Object type: ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER or STAGE
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    object_type: ObjectType,
    /// clientRequestId of the upload [default: generated]; with several files, -1, -2, ...
    /// are appended to it
    #[arg(long)]
    client_request_id: Option<String>,
    /// Follow processing to its end, print the outcome and exit 1 if it FAILED
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The clientRequestId of an upload or integration delete
    client_request_id: String,
    /// Follow processing to its end; exit 1 if it FAILED
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// A fresh clientRequestId: `intake-<unix seconds>-<random>`.
pub fn new_client_request_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "intake-{secs}-{:012x}",
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

fn request_status_path(integration: i64, crid: &str) -> String {
    format!(
        "/v2/crm/request-status?integrationId={integration}&clientRequestId={}",
        enc(crid)
    )
}

/// Turns the response of a request with a clientRequestId into its acceptance. A 409 on a
/// retry means an earlier try may have got through with its response lost: if the request
/// exists, it was accepted.
pub async fn accepted(
    api: &Api,
    integration: i64,
    crid: &str,
    sent: Sent,
) -> Result<Reply, CliError> {
    if sent.reply.status != 409 || sent.attempts < 2 {
        return ok(sent.reply);
    }
    let status = api
        .call(
            reqwest::Method::GET,
            &request_status_path(integration, crid),
            None,
        )
        .await?
        .reply;
    if status.status == 200 {
        eprintln!(
            "note: clientRequestId {crid} was already used: an earlier try got through, its \
             response was lost"
        );
        Ok(Reply {
            status: 201,
            body: json!({"requestId": status.body["requestId"], "clientRequestId": crid}),
            text: String::new(),
            retry_after: None,
        })
    } else {
        Err(CliError::Api(sent.reply))
    }
}

/// Counts the lines holding something other than whitespace (the lines the server counts),
/// streaming, in bounded memory.
fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut count = 0u64;
    let mut blank = true;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                if !blank {
                    count += 1;
                }
                blank = true;
            } else if blank && !b.is_ascii_whitespace() {
                blank = false;
            }
        }
    }
    if !blank {
        count += 1;
    }
    Ok(count)
}

fn bytes_bar(len: u64) -> ProgressBar {
    if !stderr_is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:20}] {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn lines_bar(total: Option<u64>) -> ProgressBar {
    if !stderr_is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:20}] {human_pos}/{human_len} lines, eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {human_pos} lines done")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }
    }
}

pub async fn upload(args: UploadArgs) -> Result<u8, CliError> {
    // Local checks first: nothing is sent when a file is missing.
    for file in &args.files {
        match std::fs::metadata(file) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(CliError::Usage(format!("{} is not a file", file.display())));
            }
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "cannot read {}: {e}",
                    file.display()
                )))
            }
        }
    }
    let api = Api::from_args(&args.conn)?;
    let integration = api.integration_id().await?;
    let several = args.files.len() > 1;
    let mut worst = exit::OK;
    for (i, file) in args.files.iter().enumerate() {
        let crid = match &args.client_request_id {
            Some(id) if several => format!("{id}-{}", i + 1),
            Some(id) => id.clone(),
            None => new_client_request_id(),
        };
        let code =
            match upload_one(&api, integration, args.object_type, file, &crid, args.wait).await {
                Ok(code) => code,
                Err(err) => {
                    let code = err.report(api.json);
                    if code == exit::UNREACHABLE {
                        // Neither this nor the next files can get through.
                        return Ok(code);
                    }
                    code
                }
            };
        worst = worst.max(code);
    }
    Ok(worst)
}

async fn upload_one(
    api: &Api,
    integration: i64,
    ty: ObjectType,
    file: &Path,
    crid: &str,
    wait: bool,
) -> Result<u8, CliError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data.ldjson".into());
    // The line count, for the progress of processing; counted while the file goes up.
    let counter = (wait && stderr_is_terminal()).then(|| {
        let path = file.to_path_buf();
        tokio::task::spawn_blocking(move || count_lines(&path))
    });
    let path = format!(
        "/v2/crm/entities?integrationId={integration}&objectType={}&clientRequestId={}",
        ty.as_str(),
        enc(crid)
    );
    let bar = bytes_bar(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
    bar.set_message(name.clone());
    let what = format!("upload of {}", file.display());
    let sent = api
        .send(&what, || {
            // Each try re-opens the file and streams it anew, with the same clientRequestId.
            let bar = bar.clone();
            let name = name.clone();
            let file = file.to_path_buf();
            let path = path.clone();
            async move {
                let handle = tokio::fs::File::open(&file).await.map_err(|e| {
                    CliError::Failed(format!("cannot open {}: {e}", file.display()))
                })?;
                let len = handle
                    .metadata()
                    .await
                    .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?
                    .len();
                bar.reset();
                bar.set_length(len);
                let stream = tokio_util::io::ReaderStream::with_capacity(handle, 256 * 1024)
                    .inspect(move |chunk| {
                        if let Ok(bytes) = chunk {
                            bar.inc(bytes.len() as u64);
                        }
                    });
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::wrap_stream(stream),
                    len,
                )
                .file_name(name)
                .mime_str("application/octet-stream")
                .map_err(|e| CliError::Failed(e.to_string()))?;
                let form = reqwest::multipart::Form::new().part("dataFile", part);
                Ok(api.request(reqwest::Method::POST, &path).multipart(form))
            }
        })
        .await;
    bar.finish_and_clear();
    let reply = accepted(api, integration, crid, sent?).await?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let crid = reply.body["clientRequestId"]
        .as_str()
        .unwrap_or(crid)
        .to_string();
    if !wait {
        if api.json {
            print_json(&reply.body);
        } else {
            crate::outln!(
                "Uploaded {} ({}) as {}: clientRequestId {crid}",
                file.display(),
                indicatif::HumanBytes(size),
                ty.as_str()
            );
            crate::outln!("Follow it with: intake status {crid} --wait");
        }
        return Ok(exit::OK);
    }
    if !api.json {
        crate::outln!(
            "Uploaded {} ({}) as {}: clientRequestId {crid}",
            file.display(),
            indicatif::HumanBytes(size),
            ty.as_str()
        );
    }
    let total = match counter {
        Some(handle) => handle.await.ok().and_then(Result::ok),
        None => None,
    };
    let status = wait_for(api, integration, &crid, total).await?;
    print_status(api, &crid, &status);
    Ok(status_exit_code(&status))
}

/// Polls request-status until DONE or FAILED, with a progress bar of lines done.
pub async fn wait_for(
    api: &Api,
    integration: i64,
    crid: &str,
    total_lines: Option<u64>,
) -> Result<Reply, CliError> {
    let bar = lines_bar(total_lines);
    let path = request_status_path(integration, crid);
    let mut delay = Duration::from_millis(200);
    loop {
        let reply = match api.call_ok(reqwest::Method::GET, &path, None).await {
            Ok(reply) => reply,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        let progress: intake_model::wire::RequestStatusReply =
            match reply.parse("GET /v2/crm/request-status") {
                Ok(progress) => progress,
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(e);
                }
            };
        bar.set_message(progress.status.as_str());
        bar.set_position(progress.total_success_count + progress.total_error_count);
        if progress.status.is_final() {
            bar.finish_and_clear();
            return Ok(reply);
        }
        tokio::time::sleep(delay).await;
        delay = (delay.mul_f64(1.5)).min(Duration::from_secs(2));
    }
}

pub fn status_exit_code(status: &Reply) -> u8 {
    if status.body["status"].as_str() == Some("FAILED") {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// Prints a request-status: its status, the counts and every listed error with its line.
pub fn print_status(api: &Api, crid: &str, status: &Reply) {
    if api.json {
        let mut body = status.body.clone();
        if let Some(map) = body.as_object_mut() {
            map.entry("clientRequestId")
                .or_insert_with(|| Value::String(crid.to_string()));
        }
        print_json(&body);
        return;
    }
    let b = &status.body;
    let state = b["status"].as_str().unwrap_or("?");
    let successes = b["totalSuccessCount"].as_u64().unwrap_or(0);
    let failures = b["totalErrorCount"].as_u64().unwrap_or(0);
    let plural = |n: u64| if n == 1 { "line" } else { "lines" };
    crate::outln!(
        "Request {crid}: {state}: {successes} {} succeeded, {failures} failed",
        plural(successes)
    );
    let errors = b["errors"].as_array().cloned().unwrap_or_default();
    for e in &errors {
        crate::outln!(
            "  line {}: {}",
            e["line"],
            e["description"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e["description"].to_string())
        );
    }
    let unlisted = failures.saturating_sub(errors.len() as u64);
    if unlisted > 0 {
        crate::outln!(
            "  ... and {unlisted} more: every error with `intake errors {crid} --output FILE`, \
             the failed lines with `intake failed-lines {crid} -o FILE`"
        );
    }
}

pub async fn status(args: StatusArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let integration = api.integration_id().await?;
    let crid = args.client_request_id;
    let reply = if args.wait {
        wait_for(&api, integration, &crid, None).await?
    } else {
        api.call_ok(
            reqwest::Method::GET,
            &request_status_path(integration, &crid),
            None,
        )
        .await?
    };
    print_status(&api, &crid, &reply);
    Ok(status_exit_code(&reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_non_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "{}\n\n  \r\n{}\r\n{}").unwrap();
        assert_eq!(count_lines(&path).unwrap(), 3);
        std::fs::write(&path, "").unwrap();
        assert_eq!(count_lines(&path).unwrap(), 0);
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = new_client_request_id();
        assert!(id.len() <= 128);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(id, new_client_request_id());
    }
}
