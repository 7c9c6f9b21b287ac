//! Connection settings (flags, environment, config file), the HTTP client with its retry
//! rules, and the replies every client command maps to an exit code.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::error::CliError;
use crate::settings::{default_data_dir, keys_of, Layered, Source, DEFAULT_DATA_DIR};

/// Connection options shared by every command that talks to a server.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    #[command(flatten)]
    pub settings: ConnSettings,
    /// TOML file with url, access_key, access_key_secret, token, integration_id, max_retries
    /// [default: ~/.config/intake/client.toml when it exists]
    #[arg(long, env = "INTAKE_CLIENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data dir of a local server: when no URL and no credentials are given anywhere, they
    /// are read from its initial-credentials.json
    #[arg(long, env = "INTAKE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print the API's JSON responses (one per line) instead of text
    #[arg(long)]
    pub json: bool,
    /// Where each setting came from, filled by `resolve`.
    #[arg(skip)]
    pub sources: HashMap<String, Source>,
}

/// The connection settings: each a flag, an `INTAKE_*` variable and a key of the client
/// config file (its field name); the URL and the access key also take Gong's `GONG_*`
/// names, after Intake's and before the file.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct ConnSettings {
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
    /// Retries after the first try, on 429, 5xx and connection errors
    #[arg(long, env = "INTAKE_MAX_RETRIES", default_value_t = 4)]
    pub max_retries: u32,
}

fn default_config_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    let path = base.join("intake").join("client.toml");
    path.is_file().then_some(path)
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
    /// How long `Retry-After` asks to wait (from seconds or an HTTP date).
    pub retry_after: Option<Duration>,
}

impl Reply {
    /// The body as one of the wire contract's types (`intake_model::wire`).
    pub fn parse<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, CliError> {
        serde_json::from_str(&self.text)
            .map_err(|e| CliError::Failed(format!("unexpected answer to {what}: {e}")))
    }

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

/// The longest `Retry-After` we wait for; beyond it the 429 is reported.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// First backoff delay (plus up to as much again of jitter); doubles on each retry up to
/// `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The backoff between tries: exponential with jitter, so that several clients do not retry
/// in lockstep; `max_retries` retries after the first try.
fn backoff(max_retries: u32) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(FIRST_BACKOFF)
        .with_factor(2.0)
        .with_max_delay(MAX_BACKOFF)
        .with_max_times(max_retries as usize)
        .with_jitter()
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3),
/// which is turned into the time left from `now` (zero when it is past).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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

/// How one try ended, when it did not give a final response.
enum Attempt {
    /// 429 or 5xx: retried.
    Status(Reply),
    /// No response (connection refused or reset, timeout): retried.
    Connect(reqwest::Error),
    /// Not worth another try.
    Fatal(CliError),
}

/// The rank of a credential's source: flags and `INTAKE_*` (0) before `GONG_*` (1) before
/// the config file (2); lower wins.
fn rank(source: Source) -> u8 {
    match source {
        Source::Flag | Source::Env => 0,
        Source::FallbackEnv => 1,
        _ => 2,
    }
}

/// The first credentials a local server wrote into its data dir.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitialCredentials {
    url: String,
    access_key: String,
    access_key_secret: String,
}

impl ConnArgs {
    /// Resolves the settings: flag > `INTAKE_*` environment > `GONG_*` environment > config
    /// file > default. When none of url, key, secret or token is given anywhere, they are
    /// taken from `initial-credentials.json` in the data dir, when it is there (said once on
    /// stderr).
    pub fn resolve(&mut self, matches: &ArgMatches) -> Result<(), CliError> {
        let config = self.config.clone().or_else(default_config_path);
        let (mut settings, mut sources) = Layered::new(&self.settings, matches)
            .env_fallback("url", "GONG_BASE_URL")
            .env_fallback("access_key", "GONG_ACCESS_KEY")
            .env_fallback("access_key_secret", "GONG_ACCESS_KEY_SECRET")
            .file_at(config.as_deref(), &keys_of::<ConnSettings>())?
            .finish_with_sources()?;
        let unset = |key: &str| sources.get(key).is_none_or(|s| *s == Source::Unset);
        if ["url", "access_key", "access_key_secret", "token"]
            .iter()
            .all(|k| unset(k))
        {
            let data_dir = if self.data_dir.as_os_str().is_empty() {
                default_data_dir()
            } else {
                self.data_dir.clone()
            };
            let path = data_dir.join("initial-credentials.json");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let found: InitialCredentials = serde_json::from_str(&text)
                    .map_err(|e| CliError::Usage(format!("invalid {}: {e}", path.display())))?;
                eprintln!(
                    "note: no server or credentials given: using {} with the access key in {}",
                    found.url,
                    path.display()
                );
                settings.url = Some(found.url);
                settings.access_key = Some(found.access_key);
                settings.access_key_secret = Some(found.access_key_secret);
                for key in ["url", "access_key", "access_key_secret"] {
                    sources.insert(key.to_string(), Source::File);
                }
            }
        }
        self.settings = settings;
        self.sources = sources;
        Ok(())
    }
}

impl Api {
    /// The connection `args` name, once `ConnArgs::resolve` has laid their layers.
    pub fn from_args(args: &ConnArgs) -> Result<Api, CliError> {
        let settings = &args.settings;
        let source = |key: &str| args.sources.get(key).copied().unwrap_or(Source::Unset);
        let url = settings.url.clone().ok_or_else(|| {
            CliError::Usage(
                "no server URL: give --url, set INTAKE_URL or put url in the config file".into(),
            )
        })?;
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "the server URL must start with http:// or https://: {url}"
            )));
        }

        // Each credential with the rank of where it came from (lower wins).
        let ranked =
            |key: &str, value: &Option<String>| value.clone().map(|v| (rank(source(key)), v));
        let key = ranked("access_key", &settings.access_key);
        let secret = ranked("access_key_secret", &settings.access_key_secret);
        let token = ranked("token", &settings.token);
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
            max_retries: settings.max_retries,
            integration_id: settings.integration_id,
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
        let tries = AtomicU32::new(0);
        let outcome = (|| {
            tries.fetch_add(1, Ordering::Relaxed);
            let request = make();
            async move {
                let builder = request.await.map_err(Attempt::Fatal)?;
                let reply = match builder.send().await {
                    Ok(response) => read_reply(response).await,
                    Err(e) => Err(e),
                };
                match reply {
                    Ok(reply) if reply.status == 429 || reply.status >= 500 => {
                        Err(Attempt::Status(reply))
                    }
                    Ok(reply) => Ok(reply),
                    Err(e) if e.is_builder() || e.is_redirect() => Err(Attempt::Fatal(
                        CliError::Failed(format!("{what}: {}", error_chain(&e))),
                    )),
                    Err(e) => Err(Attempt::Connect(e)),
                }
            }
        })
        .retry(backoff(self.max_retries))
        .when(|attempt| match attempt {
            Attempt::Fatal(_) => false,
            // Longer than we would wait: report the 429 instead.
            Attempt::Status(reply) => {
                reply.status != 429 || reply.retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER)
            }
            Attempt::Connect(_) => true,
        })
        .adjust(|attempt, next| match (attempt, next) {
            (Attempt::Status(reply), Some(_)) if reply.status == 429 => reply.retry_after.or(next),
            _ => next,
        })
        .notify(|attempt, delay| {
            let retry = tries.load(Ordering::Relaxed);
            let reason = match attempt {
                Attempt::Status(reply) => format!(
                    "HTTP {} ({})",
                    reply.status,
                    reply.errors().into_iter().next().unwrap_or_default()
                ),
                Attempt::Connect(e) => error_chain(e),
                Attempt::Fatal(_) => return,
            };
            eprintln!(
                "warning: {what}: {reason}; retrying in {:.1} s (retry {retry} of {})",
                delay.as_secs_f64(),
                self.max_retries
            );
        })
        .await;
        let attempts = tries.load(Ordering::Relaxed);
        match outcome {
            Ok(reply) | Err(Attempt::Status(reply)) => Ok(Sent { reply, attempts }),
            Err(Attempt::Connect(e)) => Err(CliError::Unreachable(format!(
                "could not connect: {what}: {} ({attempts} tries)",
                error_chain(&e)
            ))),
            Err(Attempt::Fatal(e)) => Err(e),
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

    /// The integration id given by flag, environment or config file, if any.
    pub fn given_integration_id(&self) -> Option<i64> {
        self.integration_id
    }

    /// The integration id: given, or the company's only integration.
    pub async fn integration_id(&self) -> Result<i64, CliError> {
        if let Some(id) = self.integration_id {
            return Ok(id);
        }
        let reply = self
            .call_ok(reqwest::Method::GET, "/v2/crm/integrations", None)
            .await?;
        let list = reply
            .parse::<intake_model::wire::IntegrationList>("GET /v2/crm/integrations")?
            .integrations;
        match list.as_slice() {
            [] => Err(CliError::Failed(
                "no integration is registered: run `intake integration register --name NAME \
                 --owner-email EMAIL` first"
                    .into(),
            )),
            [one] => Ok(one.integration_id),
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

pub(super) async fn read_reply(response: reqwest::Response) -> Result<Reply, reqwest::Error> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
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
        use backon::BackoffBuilder;
        let delays: Vec<Duration> = backoff(40).build().collect();
        assert_eq!(delays.len(), 40);
        assert!(delays[0] >= FIRST_BACKOFF && delays[0] <= FIRST_BACKOFF * 2);
        assert!(delays[1] >= FIRST_BACKOFF * 2);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF * 2));
        assert_eq!(backoff(0).build().next(), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms HTTP still allows.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:38 1994", now),
            Some(Duration::from_secs(1))
        );
        // A date in the past: no wait.
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(enc("abc-_1"), "abc-_1");
        assert_eq!(enc("a b&c"), "a%20b%26c");
    }
}
