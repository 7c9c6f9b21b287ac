//! `intake`: the server (`serve`), its administration (`admin`) and the client commands.

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

mod admin;
mod client;
mod error;
mod output;
mod serve;
mod settings;

pub use error::exit;

#[derive(Parser)]
#[command(
    name = "intake",
    version,
    about = "A self-hosted server for Gong's generic CRM API, and its client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the background worker.
    Serve(serve::ServeArgs),
    /// Administer companies, access keys and tokens, straight on the database.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// The matches of the innermost subcommand, where its arguments are.
fn leaf(matches: &ArgMatches) -> &ArgMatches {
    let mut current = matches;
    while let Some((_, sub)) = current.subcommand() {
        current = sub;
    }
    current
}

fn main() -> ExitCode {
    // Bad flags and missing arguments: clap prints them and exits 2 (`exit::USAGE`).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let matches = leaf(&matches);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args, matches).await,
            Command::Admin(command) => admin::run(command, matches).await,
            Command::Client(command) => client::run(command, matches).await,
        }
    });
    ExitCode::from(code)
}
