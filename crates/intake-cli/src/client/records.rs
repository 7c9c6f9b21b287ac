//! `intake records` and `intake history`: the records of a type as they stand (or stood),
//! and every version of one record (`/intake/v1/records/...`).

use clap::Args;
use intake_model::wire::intake::{RecordsPage, VersionsReply};
use intake_model::ObjectType;

use super::conn::{Api, CliError, ConnArgs};
use super::{parse_type, print_json, EXIT_CODES};

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct RecordsArgs {
    /// Object type: ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER or STAGE
    #[arg(value_parser = parse_type)]
    object_type: ObjectType,
    /// Each record as it stood at this time (ISO-8601 with Z or ±HH:MM)
    #[arg(long)]
    as_of: Option<String>,
    /// Also list deleted records (as {"objectId","modifiedDate","isDeleted":true})
    #[arg(long)]
    include_deleted: bool,
    /// Records per request (1 to 1000)
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct HistoryArgs {
    /// Object type: ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER or STAGE
    #[arg(value_parser = parse_type)]
    object_type: ObjectType,
    /// The record's objectId
    object_id: String,
    #[command(flatten)]
    conn: ConnArgs,
}

impl RecordsArgs {
    pub fn conn_mut(&mut self) -> &mut ConnArgs {
        &mut self.conn
    }
}

impl HistoryArgs {
    pub fn conn_mut(&mut self) -> &mut ConnArgs {
        &mut self.conn
    }
}

/// `?integrationId=` when one is given; the server defaults to the active one.
fn integration_query(api: &Api) -> String {
    api.given_integration_id()
        .map_or(String::new(), |id| format!("&integrationId={id}"))
}

/// Every page, in objectId order: each record as one JSON line (LDJSON, ready to upload
/// again), or with `--json` each page as the API gave it.
pub async fn records(args: RecordsArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let mut query = format!("limit={}{}", args.page_size, integration_query(&api));
    if let Some(t) = &args.as_of {
        query.push_str(&format!("&asOf={}", super::enc(t)));
    }
    if args.include_deleted {
        query.push_str("&includeDeleted=true");
    }
    let base = format!("/intake/v1/records/{}?{query}", args.object_type.as_str());
    let mut cursor: Option<String> = None;
    let mut count = 0usize;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base.clone(),
        };
        let reply = api.call_ok(reqwest::Method::GET, &path, None).await?;
        if api.json {
            print_json(&reply.body);
        }
        let page: RecordsPage = serde_json::from_str(&reply.text)
            .map_err(|e| CliError::Failed(format!("unexpected records page: {e}")))?;
        count += page.objects.len();
        if !api.json {
            for object in &page.objects {
                crate::outln!("{}", object.get());
            }
        }
        match page.records.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if !api.json {
        eprintln!("{count} {} records", args.object_type.as_str());
    }
    Ok(crate::exit::OK)
}

/// Every version of one record, oldest first, with the upload it came from.
pub async fn history(args: HistoryArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let path = format!(
        "/intake/v1/records/{}/{}/versions?{}",
        args.object_type.as_str(),
        super::enc(&args.object_id),
        integration_query(&api).trim_start_matches('&'),
    );
    let reply = api.call_ok(reqwest::Method::GET, &path, None).await?;
    if api.json {
        print_json(&reply.body);
        return Ok(crate::exit::OK);
    }
    let versions: VersionsReply = serde_json::from_str(&reply.text)
        .map_err(|e| CliError::Failed(format!("unexpected versions reply: {e}")))?;
    for v in &versions.versions {
        let mut marks = vec![];
        if v.current {
            marks.push("current");
        }
        if v.is_deleted {
            marks.push("deleted");
        }
        crate::outln!(
            "{}  from {} line {} (received {}){}",
            v.modified_date,
            v.client_request_id,
            v.line,
            v.received_at,
            if marks.is_empty() {
                String::new()
            } else {
                format!("  [{}]", marks.join(", "))
            }
        );
        crate::outln!("  {}", v.object.get());
    }
    Ok(crate::exit::OK)
}
