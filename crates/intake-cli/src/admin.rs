//! `intake admin`: companies, access keys and tokens, administered straight on the database
//! (safe while the server runs).

use clap::{ArgMatches, Args, Subcommand};
use intake_store::{auth, Store};

use crate::error::CliError;
use crate::exit;
use crate::serve::{open_store, DataArgs};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Companies (tenants).
    #[command(subcommand)]
    Company(CompanyCommand),
    /// Access keys (Basic authentication, every operation).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Bearer tokens with scopes.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Args, Debug)]
pub struct Common {
    #[command(flatten)]
    data: DataArgs,
    /// Print JSON
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum CompanyCommand {
    /// Create a company.
    Create {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// List companies.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an access key and print it with its secret (shown only once).
    Create {
        #[arg(long)]
        company: String,
        #[command(flatten)]
        common: Common,
    },
    /// List access keys.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Revoke an access key.
    Revoke {
        access_key: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a bearer token with the given scopes and print it (shown only once).
    Create {
        #[arg(long)]
        company: String,
        /// A scope such as api:crm:upload (repeat for several)
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List tokens.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a token by its id (the part before the dot).
    Revoke {
        token_id: String,
        #[command(flatten)]
        common: Common,
    },
}

pub async fn run(command: AdminCommand, matches: &ArgMatches) -> u8 {
    match execute(command, matches).await {
        Ok(()) => exit::OK,
        Err(err) => err.report_as("intake admin", false),
    }
}

async fn company_id(store: &dyn Store, name: &str) -> Result<i64, CliError> {
    store
        .company_by_name(name)
        .await?
        .map(|c| c.id)
        .ok_or_else(|| CliError::Failed(format!("no company named {name}")))
}

fn print_json(value: &impl serde::Serialize) {
    crate::outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

async fn execute(command: AdminCommand, matches: &ArgMatches) -> Result<(), CliError> {
    match command {
        AdminCommand::Company(CompanyCommand::Create { name, common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            let company = store.create_company(&name).await.map_err(|e| match e {
                e @ intake_store::StoreError::CompanyExists(_) => CliError::Failed(e.to_string()),
                other => other.into(),
            })?;
            if common.json {
                print_json(&company);
            } else {
                crate::outln!("created company {}", company.name);
            }
        }
        AdminCommand::Company(CompanyCommand::List { common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            let companies = store.list_companies().await?;
            if common.json {
                print_json(&companies);
            } else {
                for c in companies {
                    crate::outln!("{}", c.name);
                }
            }
        }
        AdminCommand::Key(KeyCommand::Create { company, common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            let id = company_id(store.as_ref(), &company).await?;
            let (key, secret) = auth::create_access_key(store.as_ref(), id).await?;
            if common.json {
                print_json(&serde_json::json!({ "accessKey": key, "accessKeySecret": secret }));
            } else {
                crate::outln!("access key:        {key}\naccess key secret: {secret}");
            }
        }
        AdminCommand::Key(KeyCommand::List { common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            let keys = store.list_access_keys().await?;
            if common.json {
                print_json(&keys);
            } else {
                for k in keys {
                    let state = if k.revoked { "revoked" } else { "active" };
                    crate::outln!("{}\t{}\t{state}", k.access_key, k.company);
                }
            }
        }
        AdminCommand::Key(KeyCommand::Revoke { access_key, common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            if !store.revoke_access_key(&access_key).await? {
                return Err(CliError::Failed(format!("no access key {access_key}")));
            }
            crate::outln!("revoked {access_key}");
        }
        AdminCommand::Token(TokenCommand::Create {
            company,
            scopes,
            common,
        }) => {
            if let Some(unknown) = scopes
                .iter()
                .find(|s| intake_model::wire::Scope::parse(s).is_none())
            {
                let known: Vec<&str> = intake_model::wire::Scope::TABLE
                    .iter()
                    .map(|(_, name)| *name)
                    .collect();
                return Err(CliError::Usage(format!(
                    "unknown scope {unknown:?}; one of {}",
                    known.join(", ")
                )));
            }
            let (_, store) = open_store(&common.data, matches).await?;
            let id = company_id(store.as_ref(), &company).await?;
            let token = auth::create_token(store.as_ref(), id, &scopes).await?;
            if common.json {
                print_json(&serde_json::json!({ "token": token }));
            } else {
                crate::outln!("{token}");
            }
        }
        AdminCommand::Token(TokenCommand::List { common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            let tokens = store.list_tokens().await?;
            if common.json {
                print_json(&tokens);
            } else {
                for t in tokens {
                    let state = if t.revoked { "revoked" } else { "active" };
                    crate::outln!(
                        "{}\t{}\t{}\t{state}",
                        t.token_id,
                        t.company,
                        t.scopes.join(",")
                    );
                }
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { token_id, common }) => {
            let (_, store) = open_store(&common.data, matches).await?;
            if !store.revoke_token(&token_id).await? {
                return Err(CliError::Failed(format!("no token {token_id}")));
            }
            crate::outln!("revoked {token_id}");
        }
    }
    Ok(())
}
