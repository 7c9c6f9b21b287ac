//! The one error type of the `intake` binary and its exit codes, for every command.
//!
//! | exit | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the request failed, or some lines failed (also: the database said no, e.g. `admin key revoke` of an unknown key, `admin company create` of a name in use) |
//! | 2 | usage error: a bad flag value, a missing argument (clap's own exit code), a bad or unreadable config file, an unreadable local input file |
//! | 3 | could not connect, authenticate, or open the database (or listen) |
//!
//! Decision (the contract is silent): an admin command whose arguments name something the
//! database does not hold, or already holds, exits 1 like a client request the server
//! refuses (404/409); 2 is kept for what is wrong before anything is looked up.

use crate::client::Reply;

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    /// The request failed or some lines failed.
    pub const FAILED: u8 = 1;
    /// Bad arguments, config file or local input.
    pub const USAGE: u8 = 2;
    /// Could not connect, authenticate or open the database.
    pub const UNREACHABLE: u8 = 3;
}

/// Why a command failed; each maps to an exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments, config file or local input: exit 2.
    Usage(String),
    /// Could not connect (after the retries), open the database or listen: exit 3.
    Unreachable(String),
    /// 401/403: exit 3.
    Auth(Reply),
    /// Any other error response: exit 1.
    Api(Reply),
    /// Anything else that failed: exit 1.
    Failed(String),
}

impl CliError {
    /// The exit code of this error.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::Unreachable(_) | CliError::Auth(_) => exit::UNREACHABLE,
            CliError::Api(reply) if matches!(reply.status, 401 | 403) => exit::UNREACHABLE,
            CliError::Api(_) | CliError::Failed(_) => exit::FAILED,
        }
    }

    /// Prints the error to stderr, each line prefixed with `prefix` (e.g. `error` or
    /// `intake serve`), and returns the exit code. With `json`, an error body of the API
    /// also goes to stdout.
    pub fn report_as(&self, prefix: &str, json: bool) -> u8 {
        match self {
            CliError::Usage(msg) | CliError::Failed(msg) | CliError::Unreachable(msg) => {
                eprintln!("{prefix}: {msg}");
            }
            CliError::Auth(reply) | CliError::Api(reply) => {
                if json && !reply.body.is_null() {
                    crate::output::println(&reply.body);
                }
                for e in reply.errors() {
                    eprintln!("{prefix}: {e}");
                }
                let rid = reply
                    .request_id()
                    .map(|r| format!(", requestId {r}"))
                    .unwrap_or_default();
                match reply.status {
                    401 | 403 => {
                        eprintln!("(HTTP {}{rid}: authentication failed; check the access key and secret or the token)", reply.status);
                    }
                    429 => {
                        let after = reply
                            .retry_after
                            .map(|d| format!("; retry after {} s", d.as_secs_f64().ceil()))
                            .unwrap_or_default();
                        eprintln!("(HTTP 429{rid}: rate limited{after})");
                    }
                    status => {
                        eprintln!("(HTTP {status}{rid})");
                    }
                }
            }
        }
        self.code()
    }

    /// `report_as("error", json)`: how the client commands report.
    pub fn report(&self, json: bool) -> u8 {
        self.report_as("error", json)
    }
}

/// A failure of the store (opening or querying the database) that is not one of the
/// outcomes a command maps itself: the database could not be reached or used, exit 3.
impl From<intake_store::StoreError> for CliError {
    fn from(err: intake_store::StoreError) -> CliError {
        CliError::Unreachable(crate::client::error_chain(&err))
    }
}
