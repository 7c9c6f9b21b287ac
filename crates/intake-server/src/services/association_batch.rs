//! `POST /intake/v1/associations/batch`: LDJSON in, LDJSON out, over one snapshot.
//!
//! The body is first written to a file in the spool (bounded: 50 MB and 100,000
//! activities, else 413 before any answer is sent), then read back a chunk of activities
//! at a time; each chunk is answered by [`associations::associate_chunk`] and written to
//! the response as it is ready. Memory holds one chunk, whatever the number of lines.

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use intake_model::wire::associations::{BatchLine, BatchOutcome};
use intake_store::{CompanyId, DomainSettings, IntegrationId, ReadSnapshot};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::services::associations::{self, Activity};
use crate::spool::SpoolWriter;
use crate::{ApiError, AppState};

pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// The most a batch may hold.
pub const MAX_BYTES: usize = 50 * 1024 * 1024;
pub const MAX_ACTIVITIES: usize = 100_000;
/// The longest line: the single call's body limit.
const MAX_LINE: usize = crate::routes::intake::associations::MAX_BODY;
/// Activities answered per chunk (one round of queries).
const CHUNK: usize = 500;

/// The media types a batch may be sent as.
pub fn accepts(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/x-ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-lines"
    )
}

/// Receives the batch and returns the body that answers it.
pub async fn run(
    state: &AppState,
    company: CompanyId,
    integration: IntegrationId,
    body: Body,
) -> Result<Body, ApiError> {
    let mut file = receive(state, company, body).await?;
    let settings = state.store.domain_settings(integration).await?;
    let snapshot = state.store.read_snapshot(integration).await?;
    let reader = BufReader::with_capacity(1 << 16, file.read_back().await?);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        // The spool file lives (and is removed) with this task.
        let _file = file;
        if let Err(err) = answer_all(reader, snapshot, settings, &sender).await {
            tracing::error!("association batch stopped: {err:?}");
            let _ = sender
                .send(Err(std::io::Error::other(
                    "the batch could not be answered",
                )))
                .await;
        }
    });
    Ok(Body::from_stream(tokio_stream_of(receiver)))
}

fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Writes the body to the spool, enforcing both limits.
async fn receive(
    state: &AppState,
    company: CompanyId,
    body: Body,
) -> Result<SpoolWriter, ApiError> {
    if axum::body::HttpBody::size_hint(&body).lower() > MAX_BYTES as u64 {
        return Err(ApiError::BodyTooLarge { limit: MAX_BYTES });
    }
    let mut file = state.spool.create(company, "associations-batch").await?;
    let mut stream = body.into_data_stream();
    let (mut lines, mut in_line) = (0usize, false);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ApiError::MalformedBody(err.to_string()))?;
        if file.bytes + chunk.len() as u64 > MAX_BYTES as u64 {
            return Err(ApiError::BodyTooLarge { limit: MAX_BYTES });
        }
        for &b in chunk.iter() {
            match b {
                b'\n' => in_line = false,
                b' ' | b'\t' | b'\r' => {}
                _ if !in_line => {
                    in_line = true;
                    lines += 1;
                }
                _ => {}
            }
        }
        if lines > MAX_ACTIVITIES {
            return Err(ApiError::TooManyActivities {
                limit: MAX_ACTIVITIES,
            });
        }
        file.write(&chunk).await?;
    }
    Ok(file)
}

enum Line {
    Activity(u64, Activity),
    Bad(u64, Vec<String>),
}

async fn answer_all(
    mut reader: BufReader<tokio::fs::File>,
    mut snapshot: Box<dyn ReadSnapshot>,
    settings: DomainSettings,
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ApiError> {
    let mut number = 0u64;
    let mut raw = Vec::new();
    let mut pending: Vec<Line> = Vec::with_capacity(CHUNK);
    loop {
        raw.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 3)
            .read_until(b'\n', &mut raw)
            .await?;
        let at_end = read == 0;
        if !at_end {
            number += 1;
            let too_long = raw.len() > MAX_LINE + 2 && raw.last() != Some(&b'\n');
            if too_long {
                // Skip the rest of the line.
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest).await?;
                pending.push(Line::Bad(
                    number,
                    vec![format!("Line is longer than the {MAX_LINE}-byte limit")],
                ));
            } else {
                let mut text: &[u8] = &raw;
                if number == 1 {
                    text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
                }
                text = text.strip_suffix(b"\n").unwrap_or(text);
                text = text.strip_suffix(b"\r").unwrap_or(text);
                if !text.iter().all(u8::is_ascii_whitespace) {
                    pending.push(match associations::parse_activity(text) {
                        Ok(activity) => Line::Activity(number, activity),
                        Err(errors) => Line::Bad(number, errors),
                    });
                }
            }
        }
        if pending.len() >= CHUNK || (at_end && !pending.is_empty()) {
            let out =
                answer_chunk(snapshot.as_mut(), &settings, std::mem::take(&mut pending)).await?;
            if sender.send(Ok(out)).await.is_err() {
                return Ok(()); // the client went away
            }
        }
        if at_end {
            return Ok(());
        }
    }
}

async fn answer_chunk(
    snapshot: &mut dyn ReadSnapshot,
    settings: &DomainSettings,
    lines: Vec<Line>,
) -> Result<Bytes, ApiError> {
    let mut activities = Vec::new();
    let mut order = Vec::with_capacity(lines.len());
    for line in lines {
        match line {
            Line::Activity(n, activity) => {
                order.push((n, None));
                activities.push(activity);
            }
            Line::Bad(n, errors) => order.push((n, Some(errors))),
        }
    }
    let mut answers = associations::associate_chunk(snapshot, settings, &activities)
        .await?
        .into_iter();
    let mut out = Vec::with_capacity(order.len() * 512);
    for (line, errors) in order {
        let outcome = match errors {
            Some(errors) => BatchOutcome::Errors { errors },
            None => BatchOutcome::Answer(
                answers
                    .next()
                    .ok_or_else(|| ApiError::internal("an activity without its answer"))?,
            ),
        };
        serde_json::to_writer(&mut out, &BatchLine { line, outcome })
            .map_err(ApiError::internal)?;
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}
