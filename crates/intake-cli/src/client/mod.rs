//! The client commands: upload files and follow them, inspect requests, objects, schemas and
//! the integration over the API, and validate or generate files offline.
//!
//! Exit codes: 0 success; 1 the request failed or some lines failed; 2 usage (bad
//! arguments, unreadable local file); 3 could not connect or authenticate.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{ArgMatches, Args, Subcommand};
use intake_model::ObjectType;
use serde_json::{json, Value};

mod associate;
mod board;
mod conn;
mod offline;
mod records;
mod requests;
mod upload;
mod webhooks;

use conn::{enc, ok, Api, CliError, ConnArgs};
pub use conn::{error_chain, Reply};

pub(crate) const EXIT_CODES: &str = "Exit codes: 0 success, 1 the request failed or lines \
failed, 2 usage error, 3 could not connect or authenticate.";

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Upload LDJSON files of CRM objects (POST /v2/crm/entities), one after the other.
    #[command(after_help = EXIT_CODES)]
    Upload(upload::UploadArgs),
    /// Show the processing status of an upload or of an integration delete.
    #[command(after_help = EXIT_CODES)]
    Status(upload::StatusArgs),
    /// Read objects back by their CRM ids (GET /v2/crm/entities).
    #[command(after_help = EXIT_CODES)]
    Get(GetArgs),
    /// List or upload the custom fields of the object types (entity schema).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Register, show or delete the company's integration.
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Print every record of a type, as it stands or stood at a time, one JSON line each
    /// (GET /intake/v1/records/{type}).
    Records(records::RecordsArgs),
    /// Print every version of one record, oldest first, with the upload it came from
    /// (GET /intake/v1/records/{type}/{id}/versions).
    History(records::HistoryArgs),
    /// List the uploads and integration deletes, newest first (GET /intake/v1/requests).
    #[command(after_help = EXIT_CODES)]
    Requests(requests::RequestsArgs),
    /// Stop an upload that is waiting or running; what it applied stays applied.
    #[command(after_help = EXIT_CODES)]
    Cancel(requests::CancelArgs),
    /// Print (or save) every error of an upload, one JSON a line, in line order
    /// (GET /intake/v1/requests/{crid}/errors).
    #[command(after_help = EXIT_CODES)]
    Errors(requests::ErrorsArgs),
    /// Save the failed lines of an upload as sent, ready to fix and upload again
    /// (GET /intake/v1/requests/{crid}/failed-lines).
    #[command(after_help = EXIT_CODES)]
    FailedLines(requests::FailedLinesArgs),
    /// Add, list or remove the company's webhooks, and read their deliveries
    /// (/intake/v1/webhooks).
    #[command(subcommand)]
    Webhook(webhooks::WebhookCommand),
    /// Which contacts, leads, accounts, deals and users an activity belongs to, and why
    /// (POST /intake/v1/associations; --batch FILE for many).
    #[command(after_help = EXIT_CODES)]
    Associate(associate::AssociateArgs),
    /// Show the deal board: stages, their deals and totals, and the hidden deals and why.
    #[command(after_help = EXIT_CODES)]
    Board(board::BoardArgs),
    /// Validate an LDJSON file offline with the server's rules; print every failed line.
    #[command(after_help = EXIT_CODES)]
    Validate(offline::ValidateArgs),
    /// Write realistic, deterministic LDJSON of a type, for trials and benchmarks.
    #[command(after_help = EXIT_CODES)]
    Gen(offline::GenArgs),
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Object type: ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER or STAGE
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    object_type: ObjectType,
    /// CRM object ids
    #[arg(required = true)]
    ids: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// List the custom fields (GET /v2/crm/entity-schema).
    #[command(after_help = EXIT_CODES)]
    List {
        /// Only this object type
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
        object_type: Option<ObjectType>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Replace the custom fields of a type with a JSON array of field definitions
    /// (POST /v2/crm/entity-schema).
    #[command(after_help = EXIT_CODES)]
    Upload {
        /// JSON file: an array of {uniqueName, label, type, ...}
        file: PathBuf,
        /// Object type: ACCOUNT, CONTACT, DEAL or LEAD
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
        object_type: ObjectType,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum IntegrationCommand {
    /// Register the company's integration (PUT /v2/crm/integrations).
    #[command(after_help = EXIT_CODES)]
    Register {
        /// Name of the integration
        #[arg(long)]
        name: String,
        /// Email address of its owner
        #[arg(long)]
        owner_email: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show the company's integration (GET /v2/crm/integrations).
    #[command(after_help = EXIT_CODES)]
    Get {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete the integration with all its objects, history and schema (asynchronous).
    #[command(after_help = EXIT_CODES)]
    Delete {
        /// clientRequestId of the delete [default: generated]
        #[arg(long)]
        client_request_id: Option<String>,
        /// Follow the delete until it is done
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Parses an object type; case and `-` for `_` are forgiven.
pub(crate) fn parse_type(s: &str) -> Result<ObjectType, String> {
    let upper = s.trim().to_ascii_uppercase().replace('-', "_");
    ObjectType::parse(&upper).ok_or_else(|| {
        let all: Vec<&str> = ObjectType::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown object type {s:?}; one of {}", all.join(", "))
    })
}

/// True when progress bars may be drawn.
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

impl ClientCommand {
    /// The connection options of a command that talks to a server.
    fn conn_mut(&mut self) -> Option<&mut ConnArgs> {
        match self {
            ClientCommand::Upload(a) => Some(&mut a.conn),
            ClientCommand::Status(a) => Some(&mut a.conn),
            ClientCommand::Get(a) => Some(&mut a.conn),
            ClientCommand::Records(a) => Some(a.conn_mut()),
            ClientCommand::History(a) => Some(a.conn_mut()),
            ClientCommand::Board(a) => Some(&mut a.conn),
            ClientCommand::Associate(a) => Some(&mut a.conn),
            ClientCommand::Requests(a) => Some(&mut a.conn),
            ClientCommand::Cancel(a) => Some(&mut a.conn),
            ClientCommand::Errors(a) => Some(&mut a.conn),
            ClientCommand::FailedLines(a) => Some(&mut a.conn),
            ClientCommand::Webhook(c) => Some(c.conn_mut()),
            ClientCommand::Schema(SchemaCommand::List { conn, .. })
            | ClientCommand::Schema(SchemaCommand::Upload { conn, .. })
            | ClientCommand::Integration(IntegrationCommand::Register { conn, .. })
            | ClientCommand::Integration(IntegrationCommand::Get { conn })
            | ClientCommand::Integration(IntegrationCommand::Delete { conn, .. }) => Some(conn),
            ClientCommand::Validate(_) | ClientCommand::Gen(_) => None,
        }
    }
}

pub async fn run(mut command: ClientCommand, matches: &ArgMatches) -> u8 {
    let json = match &mut command {
        ClientCommand::Validate(a) => a.json,
        other => other.conn_mut().is_some_and(|c| c.json),
    };
    if let Some(conn) = command.conn_mut() {
        if let Err(err) = conn.resolve(matches) {
            return err.report(json);
        }
    }
    let result = match command {
        ClientCommand::Upload(args) => upload::upload(args).await,
        ClientCommand::Status(args) => upload::status(args).await,
        ClientCommand::Get(args) => get(args).await,
        ClientCommand::Records(args) => records::records(args).await,
        ClientCommand::History(args) => records::history(args).await,
        ClientCommand::Board(args) => board::board(args).await,
        ClientCommand::Associate(args) => associate::associate(args).await,
        ClientCommand::Requests(args) => requests::requests(args).await,
        ClientCommand::Cancel(args) => requests::cancel(args).await,
        ClientCommand::Errors(args) => requests::errors(args).await,
        ClientCommand::FailedLines(args) => requests::failed_lines(args).await,
        ClientCommand::Webhook(command) => webhooks::run(command).await,
        ClientCommand::Schema(SchemaCommand::List { object_type, conn }) => {
            schema_list(object_type, conn).await
        }
        ClientCommand::Schema(SchemaCommand::Upload {
            file,
            object_type,
            conn,
        }) => schema_upload(file, object_type, conn).await,
        ClientCommand::Integration(IntegrationCommand::Register {
            name,
            owner_email,
            conn,
        }) => register(name, owner_email, conn).await,
        ClientCommand::Integration(IntegrationCommand::Get { conn }) => integration_get(conn).await,
        ClientCommand::Integration(IntegrationCommand::Delete {
            client_request_id,
            wait,
            conn,
        }) => integration_delete(client_request_id, wait, conn).await,
        ClientCommand::Validate(args) => offline::validate(args).await,
        ClientCommand::Gen(args) => offline::gen(args).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(json),
    }
}

/// Prints a JSON document on one line.
pub(crate) fn print_json(value: &Value) {
    crate::output::println(value);
}

async fn get(args: GetArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&args.conn)?;
    let integration = api.integration_id().await?;
    let path = format!(
        "/v2/crm/entities?integrationId={integration}&objectType={}",
        args.object_type.as_str()
    );
    // The server answers at most 100 ids per call.
    let mut merged = serde_json::Map::new();
    let mut request_id = Value::Null;
    for chunk in args.ids.chunks(100) {
        let body = json!(chunk);
        let reply = api
            .call_ok(reqwest::Method::GET, &path, Some(&body))
            .await?;
        request_id = reply.body["requestId"].clone();
        if let Some(map) = reply.body["crmObjectsMap"].as_object() {
            merged.extend(map.clone());
        }
    }
    if api.json {
        print_json(&json!({"requestId": request_id, "crmObjectsMap": merged}));
        return Ok(crate::exit::OK);
    }
    let mut seen = std::collections::HashSet::new();
    for id in &args.ids {
        if !seen.insert(id) {
            continue;
        }
        match merged.get(id) {
            Some(Value::Null) | None => crate::outln!("{id}: not found (unknown or deleted)"),
            Some(object) => {
                let pretty = serde_json::to_string_pretty(object).unwrap_or_default();
                crate::outln!("{id}:");
                for line in pretty.lines() {
                    crate::outln!("  {line}");
                }
            }
        }
    }
    Ok(crate::exit::OK)
}

async fn schema_list(object_type: Option<ObjectType>, conn: ConnArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&conn)?;
    let integration = api.integration_id().await?;
    let mut path = format!("/v2/crm/entity-schema?integrationId={integration}");
    if let Some(t) = object_type {
        path.push_str(&format!("&objectType={}", t.as_str()));
    }
    let reply = api.call_ok(reqwest::Method::GET, &path, None).await?;
    if api.json {
        print_json(&reply.body);
        return Ok(crate::exit::OK);
    }
    let empty = serde_json::Map::new();
    let map = reply.body["objectTypeToSelectedFields"]
        .as_object()
        .unwrap_or(&empty);
    let types: Vec<String> = match object_type {
        Some(t) => vec![t.as_str().to_string()],
        None => {
            let mut keys: Vec<String> = map.keys().cloned().collect();
            keys.sort_by_key(|k| ObjectType::parse(k).map(|t| t.code()).unwrap_or(i16::MAX));
            if keys.is_empty() {
                crate::outln!("No custom fields.");
            }
            keys
        }
    };
    for t in types {
        let fields = map
            .get(&t)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if fields.is_empty() {
            crate::outln!("{t}: no custom fields");
            continue;
        }
        crate::outln!(
            "{t} ({} field{})",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        );
        let rows: Vec<[String; 4]> = fields
            .iter()
            .map(|f| {
                let name = f["uniqueName"]
                    .as_str()
                    .or(f["name"].as_str())
                    .unwrap_or("?");
                let mut extra = Vec::new();
                if let Some(to) = f["referenceTo"].as_str() {
                    extra.push(format!("-> {to}"));
                }
                if let Some(values) = f["orderedValueList"].as_array() {
                    let v: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
                    extra.push(format!("values: {}", v.join(", ")));
                }
                if f["isDeleted"].as_bool() == Some(true) {
                    extra.push("(deleted)".into());
                }
                [
                    name.to_string(),
                    f["type"].as_str().unwrap_or("?").to_string(),
                    f["label"].as_str().unwrap_or("").to_string(),
                    extra.join(" "),
                ]
            })
            .collect();
        let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
        let w2 = rows.iter().map(|r| r[2].chars().count()).max().unwrap_or(0);
        for [a, b, c, d] in rows {
            let line = format!("  {a:w0$}  {b:w1$}  {c:w2$}  {d}");
            crate::outln!("{}", line.trim_end());
        }
    }
    Ok(crate::exit::OK)
}

async fn schema_upload(
    file: PathBuf,
    object_type: ObjectType,
    conn: ConnArgs,
) -> Result<u8, CliError> {
    let body = tokio::fs::read(&file)
        .await
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let api = Api::from_args(&conn)?;
    let integration = api.integration_id().await?;
    let path = format!(
        "/v2/crm/entity-schema?integrationId={integration}&objectType={}",
        object_type.as_str()
    );
    let sent = api
        .send("POST /v2/crm/entity-schema", || {
            let builder = api
                .request(reqwest::Method::POST, &path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            std::future::ready(Ok(builder))
        })
        .await?;
    let reply = ok(sent.reply)?;
    if api.json {
        print_json(&reply.body);
    } else {
        let (count, deleted) = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(items)) => {
                let deleted = items
                    .iter()
                    .filter(|f| f["isDeleted"].as_bool() == Some(true))
                    .count();
                (items.len(), deleted)
            }
            _ => (0, 0),
        };
        crate::outln!(
            "Schema of {} replaced: {} field{} defined{}.",
            object_type.as_str(),
            count - deleted,
            if count - deleted == 1 { "" } else { "s" },
            if deleted > 0 {
                format!(", {deleted} deleted")
            } else {
                String::new()
            }
        );
    }
    Ok(crate::exit::OK)
}

async fn register(name: String, owner_email: String, conn: ConnArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&conn)?;
    let body = json!({"name": name, "ownerEmail": owner_email});
    let sent = api
        .call(reqwest::Method::PUT, "/v2/crm/integrations", Some(&body))
        .await?;
    let reply = if sent.reply.status == 409 && sent.attempts > 1 {
        // An earlier try may have got through with its response lost: look for it.
        let list = api
            .call_ok(reqwest::Method::GET, "/v2/crm/integrations", None)
            .await?;
        let found = list.body["integrations"].as_array().and_then(|all| {
            all.iter()
                .find(|i| i["name"] == body["name"] && i["ownerEmail"] == body["ownerEmail"])
                .cloned()
        });
        match found {
            Some(integration) => Reply {
                status: 200,
                body: json!({
                    "requestId": list.body["requestId"],
                    "integrationId": integration["integrationId"],
                }),
                text: String::new(),
                retry_after: None,
            },
            None => return Err(CliError::Api(sent.reply)),
        }
    } else {
        ok(sent.reply)?
    };
    if api.json {
        print_json(&reply.body);
    } else {
        crate::outln!(
            "Registered integration {} ({name}, owner {owner_email}).",
            reply.body["integrationId"]
        );
    }
    Ok(crate::exit::OK)
}

async fn integration_get(conn: ConnArgs) -> Result<u8, CliError> {
    let api = Api::from_args(&conn)?;
    let reply = api
        .call_ok(reqwest::Method::GET, "/v2/crm/integrations", None)
        .await?;
    if api.json {
        print_json(&reply.body);
        return Ok(crate::exit::OK);
    }
    let list = reply
        .parse::<intake_model::wire::IntegrationList>("GET /v2/crm/integrations")?
        .integrations;
    if list.is_empty() {
        crate::outln!("No integration registered.");
    }
    for i in list {
        crate::outln!(
            "Integration {}: {} (owner {})",
            i.integration_id,
            i.name,
            i.owner_email
        );
    }
    Ok(crate::exit::OK)
}

async fn integration_delete(
    client_request_id: Option<String>,
    wait: bool,
    conn: ConnArgs,
) -> Result<u8, CliError> {
    let api = Api::from_args(&conn)?;
    let integration = api.integration_id().await?;
    let crid = client_request_id.unwrap_or_else(upload::new_client_request_id);
    let path = format!(
        "/v2/crm/integrations?integrationId={integration}&clientRequestId={}",
        enc(&crid)
    );
    let sent = api.call(reqwest::Method::DELETE, &path, None).await?;
    let reply = upload::accepted(&api, integration, &crid, sent).await?;
    if !wait {
        if api.json {
            print_json(&reply.body);
        } else {
            crate::outln!("Deleting integration {integration} (clientRequestId {crid}).");
            crate::outln!(
                "Follow it with: intake status {crid} --integration-id {integration} --wait"
            );
        }
        return Ok(crate::exit::OK);
    }
    if !api.json {
        crate::outln!("Deleting integration {integration} (clientRequestId {crid})...");
    }
    let status = upload::wait_for(&api, integration, &crid, None).await?;
    upload::print_status(&api, &crid, &status);
    Ok(upload::status_exit_code(&status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types_parse_forgivingly() {
        assert_eq!(parse_type("CONTACT"), Ok(ObjectType::Contact));
        assert_eq!(parse_type("business-user"), Ok(ObjectType::BusinessUser));
        assert!(parse_type("person").unwrap_err().contains("ACCOUNT"));
    }
}
