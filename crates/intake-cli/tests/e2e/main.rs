//! End-to-end tests: the real `intake` binary, over real HTTP, on SQLite and PostgreSQL.

mod api;
mod api_hardening;
mod association_worlds;
mod associations;
mod board;
mod cli;
mod cluster;
mod connections;
mod console;
mod errors;
mod hardening;
mod harness;
mod ops;
mod records;
mod requests;
mod settings;
mod tiers;
mod webhooks;
