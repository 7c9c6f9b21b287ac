//! The client commands (being written).

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {}

pub async fn run(command: ClientCommand) -> u8 {
    match command {}
}
