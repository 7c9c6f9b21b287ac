//! `intake webhook add|list|remove|deliveries`: the company's webhooks
//! (`/intake/v1/webhooks...`).

use clap::Subcommand;
use serde_json::{json, Value};

use super::conn::{enc, Api, CliError, ConnArgs};

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Register a webhook: every finished request is POSTed to URL, signed with SECRET
    #[command(after_help = super::EXIT_CODES)]
    Add {
        /// http(s) URL to POST to
        #[arg(value_name = "URL")]
        target: String,
        /// At least 16 characters; signs each delivery (Intake-Signature)
        #[arg(long)]
        secret: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the company's webhooks
    #[command(after_help = super::EXIT_CODES)]
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove a webhook (its pending deliveries are dropped)
    #[command(after_help = super::EXIT_CODES)]
    Remove {
        webhook_id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// The latest 100 deliveries of a webhook, newest first
    #[command(after_help = super::EXIT_CODES)]
    Deliveries {
        webhook_id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

impl WebhookCommand {
    pub fn conn_mut(&mut self) -> &mut ConnArgs {
        match self {
            WebhookCommand::Add { conn, .. }
            | WebhookCommand::List { conn }
            | WebhookCommand::Remove { conn, .. }
            | WebhookCommand::Deliveries { conn, .. } => conn,
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn run(command: WebhookCommand) -> Result<u8, CliError> {
    match command {
        WebhookCommand::Add {
            target,
            secret,
            conn,
        } => {
            let api = Api::from_args(&conn)?;
            let body = json!({"url": target, "secret": secret});
            let reply = api
                .call_ok(reqwest::Method::POST, "/intake/v1/webhooks", Some(&body))
                .await?;
            if api.json {
                super::print_json(&reply.body);
            } else {
                crate::outln!("webhook {} added", text(&reply.body["webhookId"]));
            }
        }
        WebhookCommand::List { conn } => {
            let api = Api::from_args(&conn)?;
            let reply = api
                .call_ok(reqwest::Method::GET, "/intake/v1/webhooks", None)
                .await?;
            for hook in reply.body["webhooks"].as_array().into_iter().flatten() {
                if api.json {
                    super::print_json(hook);
                } else {
                    crate::outln!(
                        "{}  {}  {}",
                        text(&hook["webhookId"]),
                        text(&hook["createdAt"]),
                        text(&hook["url"])
                    );
                }
            }
        }
        WebhookCommand::Remove { webhook_id, conn } => {
            let api = Api::from_args(&conn)?;
            let path = format!("/intake/v1/webhooks/{}", enc(&webhook_id));
            api.call_ok(reqwest::Method::DELETE, &path, None).await?;
            if !api.json {
                crate::outln!("webhook {webhook_id} removed");
            }
        }
        WebhookCommand::Deliveries { webhook_id, conn } => {
            let api = Api::from_args(&conn)?;
            let path = format!("/intake/v1/webhooks/{}/deliveries", enc(&webhook_id));
            let reply = api.call_ok(reqwest::Method::GET, &path, None).await?;
            for d in reply.body["deliveries"].as_array().into_iter().flatten() {
                if api.json {
                    super::print_json(d);
                } else {
                    crate::outln!(
                        "{}  {}  {}  {}  attempts {}  last status {}  {}",
                        text(&d["deliveryId"]),
                        text(&d["createdAt"]),
                        text(&d["clientRequestId"]),
                        text(&d["state"]),
                        text(&d["attempts"]),
                        text(&d["lastStatus"]),
                        text(&d["deliveredAt"])
                    );
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
