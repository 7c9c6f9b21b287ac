//! Connection settings (flags, environment, config file), the HTTP client with its retry
//! rules, and the errors every client command maps to an exit code.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use crate::exit;

/// Connection options shared by every command that talks to a server.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (also GONG_BASE_URL)
    #[arg(long, env = "INTAKE_URL")]
    pub url: Option<String>,
    /// Access key for Basic authentication (also GONG_ACCESS_KEY)
    #[arg(long, env = "INTAKE_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret of the access key (also GONG_ACCESS_KEY_SECRET)
    #[arg(long, env = "INTAKE_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: Option<String>,
    /// Bearer token, instead of an access key
    #[arg(long, env = "INTAKE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Integration id [default: the company's integration, found with GET /v2/crm/integrations]
    #[arg(long, env = "INTAKE_INTEGRATION_ID")]
    pub integration_id: Option<i64>,
    /// TOML file with url, access_key, access_key_secret, token, integration_id
    /// [default: ~/.config/intake/client.toml when it exists]
    #[arg(long, env = "INTAKE_CLIENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Retries after the first try, on 429, 5xx and connection errors [default: 4]
    #[arg(long, env = "INTAKE_MAX_RETRIES")]
    pub max_retries: Option<u32>,
    /// Print the API's JSON responses (one per line) instead of text
    #[arg(long)]
    pub json: bool,
}

/// The client config file. Flags and environment win over it.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    url: Option<String>,
    access_key: Option<String>,
    access_key_secret: Option<String>,
    token: Option<String>,
    integration_id: Option<i64>,
    max_retries: Option<u32>,
}

fn default_config_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    let path = base.join("intake").join("client.toml");
    path.is_file().then_some(path)
}

fn read_config(explicit: Option<&Path>) -> Result<ConfigFile, CliError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match default_config_path() {
            Some(p) => p,
            None => return Ok(ConfigFile::default()),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Usage(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| CliError::Usage(format!("invalid config file {}: {e}", path.display())))
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Clone, Debug)]
pub enum Auth {
    Basic { key: String, secret: String },
    Bearer(String),
}

/// Everything a command needs to talk to the server.
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    max_retries: u32,
    integration_id: Option<i64>,
    pub json: bool,
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The JSON body, or `Null` when the body is not JSON (see `text`).
    pub body: Value,
    pub text: String,
    pub retry_after: Option<u64>,
}

impl Reply {
    /// The `errors` of the error envelope, or a description of a body without them.
    pub fn errors(&self) -> Vec<String> {
        let listed: Vec<String> = self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !listed.is_empty() {
            return listed;
        }
        let text = self.text.trim();
        if text.is_empty() {
            vec![format!("HTTP {} with an empty body", self.status)]
        } else {
            let short: String = text.chars().take(300).collect();
            vec![short]
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        self.body["requestId"].as_str()
    }
}

/// A response and how many tries it took.
pub struct Sent {
    pub reply: Reply,
    pub attempts: u32,
}

/// Why a command failed; each maps to an exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or local input: exit 2.
    Usage(String),
    /// Could not connect (after the retries): exit 3.
    Unreachable(String),
    /// 401/403: exit 3.
    Auth(Reply),
    /// Any other error response: exit 1.
    Api(Reply),
    /// Anything else that failed: exit 1.
    Failed(String),
}

impl CliError {
    /// Prints the error (to stderr; with `--json` the error body also goes to stdout) and
    /// returns the exit code.
    pub fn report(&self, json: bool) -> u8 {
        match self {
            CliError::Usage(msg) => {
                eprintln!("error: {msg}");
                exit::USAGE
            }
            CliError::Unreachable(msg) => {
                eprintln!("error: could not connect: {msg}");
                exit::UNREACHABLE
            }
            CliError::Failed(msg) => {
                eprintln!("error: {msg}");
                exit::FAILED
            }
            CliError::Auth(reply) | CliError::Api(reply) => {
                if json && !reply.body.is_null() {
                    println!("{}", reply.body);
                }
                for e in reply.errors() {
                    eprintln!("error: {e}");
                }
                let rid = reply
                    .request_id()
                    .map(|r| format!(", requestId {r}"))
                    .unwrap_or_default();
                match reply.status {
                    401 | 403 => {
                        eprintln!("(HTTP {}{rid}: authentication failed; check the access key and secret or the token)", reply.status);
                        exit::UNREACHABLE
                    }
                    429 => {
                        let after = reply
                            .retry_after
                            .map(|s| format!("; retry after {s} s"))
                            .unwrap_or_default();
                        eprintln!("(HTTP 429{rid}: rate limited{after})");
                        exit::FAILED
                    }
                    status => {
                        eprintln!("(HTTP {status}{rid})");
                        exit::FAILED
                    }
                }
            }
        }
    }
}

pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// The longest `Retry-After` we wait for; beyond it the 429 is reported.
const MAX_RETRY_AFTER: u64 = 120;
/// First backoff delay; doubles on each retry up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn backoff(retry: u32) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
    let base = base.min(MAX_BACKOFF);
    // Up to 25% jitter, so that several clients do not retry in lockstep.
    let jitter = rand::random::<f64>() * 0.25;
    base.mul_f64(1.0 + jitter)
}

/// The error and every cause, e.g. "error sending request: connection refused".
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}

impl Api {
    /// Resolves the connection settings: flag > INTAKE_* environment > GONG_* environment >
    /// config file.
    pub fn from_args(args: &ConnArgs) -> Result<Api, CliError> {
        let file = read_config(args.config.as_deref())?;
        let url = args
            .url
            .clone()
            .or_else(|| env_nonempty("GONG_BASE_URL"))
            .or(file.url)
            .ok_or_else(|| {
                CliError::Usage(
                    "no server URL: give --url, set INTAKE_URL or put url in the config file"
                        .into(),
                )
            })?;
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "the server URL must start with http:// or https://: {url}"
            )));
        }

        // Each credential with the rank of where it came from (lower wins).
        let ranked = |flag: &Option<String>, gong: Option<&str>, file: &Option<String>| {
            if let Some(v) = flag.clone().filter(|v| !v.is_empty()) {
                Some((0, v))
            } else if let Some(v) = gong.and_then(env_nonempty) {
                Some((1, v))
            } else {
                file.clone().filter(|v| !v.is_empty()).map(|v| (2, v))
            }
        };
        let key = ranked(&args.access_key, Some("GONG_ACCESS_KEY"), &file.access_key);
        let secret = ranked(
            &args.access_key_secret,
            Some("GONG_ACCESS_KEY_SECRET"),
            &file.access_key_secret,
        );
        let token = ranked(&args.token, None, &file.token);
        let basic = match (key, secret) {
            (Some((rk, key)), Some((rs, secret))) => Some((rk.min(rs), key, secret)),
            (Some(_), None) => {
                return Err(CliError::Usage(
                    "an access key needs its secret: give --access-key-secret".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(CliError::Usage(
                    "an access key secret needs its key: give --access-key".into(),
                ))
            }
            (None, None) => None,
        };
        let auth = match (basic, token) {
            (Some((rb, key, secret)), Some((rt, token))) => {
                if rt < rb {
                    Auth::Bearer(token)
                } else {
                    Auth::Basic { key, secret }
                }
            }
            (Some((_, key, secret)), None) => Auth::Basic { key, secret },
            (None, Some((_, token))) => Auth::Bearer(token),
            (None, None) => {
                return Err(CliError::Usage(
                    "no credentials: give --access-key and --access-key-secret, or --token \
                     (or set INTAKE_ACCESS_KEY and INTAKE_ACCESS_KEY_SECRET)"
                        .into(),
                ))
            }
        };
        let max_retries = args
            .max_retries
            .or(file.max_retries)
            .unwrap_or(DEFAULT_MAX_RETRIES);
        let http = reqwest::Client::builder()
            .user_agent(concat!("intake-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            base: url,
            auth,
            max_retries,
            integration_id: args.integration_id.or(file.integration_id),
            json: args.json,
        })
    }

    /// A request to `path_and_query` (starting with `/v2/crm/`) with the credentials.
    pub fn request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
    ) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query));
        match &self.auth {
            Auth::Basic { key, secret } => builder.basic_auth(key, Some(secret)),
            Auth::Bearer(token) => builder.bearer_auth(token),
        }
    }

    /// Sends the request `make` builds, again on 429 (after `Retry-After`), 5xx and connection
    /// errors, with exponential backoff, up to `max_retries` times. `make` is called for each
    /// try (an upload re-opens its file). Returns the last response, whatever its status;
    /// `Unreachable` when the last try could not connect.
    pub async fn send<F, Fut>(&self, what: &str, mut make: F) -> Result<Sent, CliError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, CliError>>,
    {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let retries_left = attempt <= self.max_retries;
            let builder = make().await?;
            let outcome = match builder.send().await {
                Ok(response) => read_reply(response).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(reply) => {
                    let retryable = reply.status == 429 || reply.status >= 500;
                    if !retryable || !retries_left {
                        return Ok(Sent {
                            reply,
                            attempts: attempt,
                        });
                    }
                    let delay = match (reply.status, reply.retry_after) {
                        (429, Some(after)) if after > MAX_RETRY_AFTER => {
                            return Ok(Sent {
                                reply,
                                attempts: attempt,
                            })
                        }
                        (429, Some(after)) => Duration::from_secs(after),
                        _ => backoff(attempt),
                    };
                    let reason = reply.errors().into_iter().next().unwrap_or_default();
                    eprintln!(
                        "warning: {what}: HTTP {} ({reason}); retrying in {:.1} s (retry {attempt} of {})",
                        reply.status,
                        delay.as_secs_f64(),
                        self.max_retries
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    if e.is_builder() || e.is_redirect() {
                        return Err(CliError::Failed(format!("{what}: {}", error_chain(&e))));
                    }
                    if !retries_left {
                        return Err(CliError::Unreachable(format!(
                            "{what}: {} ({} tries)",
                            error_chain(&e),
                            attempt
                        )));
                    }
                    let delay = backoff(attempt);
                    eprintln!(
                        "warning: {what}: {}; retrying in {:.1} s (retry {attempt} of {})",
                        error_chain(&e),
                        delay.as_secs_f64(),
                        self.max_retries
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// `send` of a request without a body (or with a small JSON one), with a timeout.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        json: Option<&Value>,
    ) -> Result<Sent, CliError> {
        let what = format!(
            "{method} {}",
            path_and_query.split('?').next().unwrap_or_default()
        );
        self.send(&what, || {
            let mut builder = self
                .request(method.clone(), path_and_query)
                .timeout(Duration::from_secs(120));
            if let Some(body) = json {
                builder = builder.json(body);
            }
            std::future::ready(Ok(builder))
        })
        .await
    }

    /// `call`, then any non-2xx becomes an error.
    pub async fn call_ok(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        json: Option<&Value>,
    ) -> Result<Reply, CliError> {
        ok(self.call(method, path_and_query, json).await?.reply)
    }

    /// The integration id: given, or the company's only integration.
    pub async fn integration_id(&self) -> Result<i64, CliError> {
        if let Some(id) = self.integration_id {
            return Ok(id);
        }
        let reply = self
            .call_ok(reqwest::Method::GET, "/v2/crm/integrations", None)
            .await?;
        let list = reply.body["integrations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match list.as_slice() {
            [] => Err(CliError::Failed(
                "no integration is registered: run `intake integration register --name NAME \
                 --owner-email EMAIL` first"
                    .into(),
            )),
            [one] => one["integrationId"].as_i64().ok_or_else(|| {
                CliError::Failed(format!("integration without a valid integrationId: {one}"))
            }),
            _ => Err(CliError::Usage(
                "the company has several integrations: choose one with --integration-id".into(),
            )),
        }
    }
}

/// Maps a non-2xx reply to its error.
pub fn ok(reply: Reply) -> Result<Reply, CliError> {
    match reply.status {
        s if (200..300).contains(&s) => Ok(reply),
        401 | 403 => Err(CliError::Auth(reply)),
        _ => Err(CliError::Api(reply)),
    }
}

async fn read_reply(response: reqwest::Response) -> Result<Reply, reqwest::Error> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        body,
        text,
        retry_after,
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn enc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= FIRST_BACKOFF && backoff(1) <= FIRST_BACKOFF.mul_f64(1.25));
        assert!(backoff(2) >= FIRST_BACKOFF * 2);
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.25));
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(enc("abc-_1"), "abc-_1");
        assert_eq!(enc("a b&c"), "a%20b%26c");
    }
}
