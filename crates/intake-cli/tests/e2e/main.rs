//! End-to-end tests: the real `intake` binary, over real HTTP, on SQLite and PostgreSQL.

mod api;
mod cli;
mod cluster;
mod hardening;
mod harness;
mod tiers;
