//! `intake`: the server (`serve`), its administration (`admin`) and the client commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod client;
mod serve;

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

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    /// The request failed or some lines failed.
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// Could not connect, authenticate or open the database.
    pub const UNREACHABLE: u8 = 3;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Admin(command) => admin::run(command).await,
            Command::Client(command) => client::run(command).await,
        }
    });
    ExitCode::from(code)
}
