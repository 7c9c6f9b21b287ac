//! End-to-end tests: the real `intake` binary, over real HTTP, on SQLite and PostgreSQL.

mod harness;
mod api;
mod cli;
