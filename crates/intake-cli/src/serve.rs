//! `intake serve` and the database options every server-side command shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgMatches, Args, FromArgMatches};
use intake_server::auth_cache::AuthCache;
use intake_server::listener::ConnectionLimits;
use intake_server::{AppState, Spool, WorkerConfig};
use intake_store::{auth, RateLimits, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::error_chain;
use crate::error::CliError;
use crate::exit;
use crate::settings::{keys_of, read_toml, Layered, DEFAULT_DATA_DIR};

/// Where the data lives; shared by `serve` and every `admin` command.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct DataSettings {
    /// Directory of the SQLite database and the upload spool
    #[arg(long, env = "INTAKE_DATA_DIR", global = true, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir]
    #[arg(long, env = "INTAKE_DATABASE_URL", global = true)]
    pub database: Option<String>,
}

/// The data options with the config file that may hold them.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    #[command(flatten)]
    pub settings: DataSettings,
    /// Optional TOML config file with the same settings (snake_case keys)
    #[arg(long, env = "INTAKE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub settings: ServeSettings,
}

/// The settings of `intake serve` besides the data options. Each is a flag, an environment
/// variable and a key of the config file (its field name); see `crate::settings`.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct ServeSettings {
    /// Address to listen on
    #[arg(long, env = "INTAKE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory of the upload spool; must be shared by every instance of one database
    /// [default: DATA_DIR/spool]
    #[arg(long, env = "INTAKE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Calls per second per company; 0 switches the limit off
    #[arg(long, env = "INTAKE_RATE_LIMIT_PER_SECOND", default_value_t = 3)]
    pub rate_limit_per_second: u32,
    /// Calls per day per company; 0 switches the limit off
    #[arg(long, env = "INTAKE_RATE_LIMIT_PER_DAY", default_value_t = 10_000)]
    pub rate_limit_per_day: u32,
    /// Seconds a worker holds a request without a heartbeat before another may take it over
    #[arg(long, env = "INTAKE_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
    /// Lines the worker stores per transaction
    #[arg(long, env = "INTAKE_BATCH_LINES", default_value_t = 40_000)]
    pub batch_lines: usize,
    /// Seconds a verified credential is trusted before it is looked up again (a revoked key
    /// stops working after at most this long); 0 looks up every call
    #[arg(long, env = "INTAKE_AUTH_CACHE_SECONDS", default_value_t = 5)]
    pub auth_cache_seconds: u64,
    /// Calls per second per company to Intake's own API (/intake/v1), counted apart from
    /// the Gong-compatible limits; 0 switches the limit off
    #[arg(
        long,
        env = "INTAKE_INTAKE_RATE_LIMIT_PER_SECOND",
        default_value_t = 100
    )]
    pub intake_rate_limit_per_second: u32,
    /// Seconds a client has to send a request's head, from the connection's start or from
    /// the first byte after an idle keep-alive; then the connection is closed
    #[arg(long, env = "INTAKE_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,
    /// Seconds the server waits for the next chunk of a request body; then the request fails
    /// (an upload leaves nothing)
    #[arg(long, env = "INTAKE_BODY_IDLE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub body_idle_timeout_seconds: u64,
    /// Seconds an idle keep-alive connection stays open
    #[arg(long, env = "INTAKE_KEEP_ALIVE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub keep_alive_timeout_seconds: u64,
    /// Open connections at most; more wait to be accepted until one closes
    #[arg(long, env = "INTAKE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Seconds requests in flight may take to finish on shutdown; then their connections are
    /// closed (a half upload leaves nothing)
    #[arg(long, env = "INTAKE_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub shutdown_timeout_seconds: u64,
    /// Serve the Prometheus series at GET /metrics (false: a 404)
    #[arg(
        long,
        env = "INTAKE_METRICS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub metrics: bool,
    /// Milliseconds before a failed webhook delivery is tried again; doubled after each
    /// further failure
    #[arg(long, env = "INTAKE_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub webhook_retry_base_ms: u64,
    /// Attempts of a webhook delivery at most; then it is FAILED
    #[arg(long, env = "INTAKE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,
    /// Let webhooks target loopback, private, link-local and shared addresses (refused
    /// otherwise, at registration and at delivery)
    #[arg(
        long,
        env = "INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub webhook_allow_private_networks: bool,
    /// Log lines on stderr: `text`, or `json` (one JSON object a line)
    #[arg(long, env = "INTAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Mark the web console's session cookie `Secure` (it is also marked on requests that
    /// came with `X-Forwarded-Proto: https`)
    #[arg(
        long,
        env = "INTAKE_UI_SECURE_COOKIES",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub ui_secure_cookies: bool,
    /// Minutes a web console session may stay unused before it ends
    #[arg(long, env = "INTAKE_UI_SESSION_IDLE_MINUTES", default_value_t = 60)]
    pub ui_session_idle_minutes: u64,
}

/// How `serve` writes its log lines.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The log format in force, once logging is set up.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The keys of the server's config file: the data options and the serve settings. `admin`
/// reads the same file and takes only the data options from it.
fn config_keys() -> Vec<String> {
    let mut keys = keys_of::<DataSettings>();
    keys.extend(keys_of::<ServeSettings>());
    keys
}

/// The config file named by `--config`, read once.
struct ConfigFile {
    table: toml::Table,
    path: PathBuf,
}

impl ConfigFile {
    /// Reads the file and checks every key in it, also those the command does not use
    /// (`admin` takes only the data options), so that a file one command accepts every
    /// command accepts.
    fn read(path: Option<&Path>) -> Result<Option<ConfigFile>, CliError> {
        let Some(path) = path else {
            return Ok(None);
        };
        let file = ConfigFile {
            table: read_toml(path)?,
            path: path.to_path_buf(),
        };
        // The defaults (and environment) of `serve`, for the file's values to be checked
        // against; were the environment itself invalid, the command reports that on its own.
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        if let Ok(matches) = command.try_get_matches_from(["serve"]) {
            if let Ok(args) = ServeArgs::from_arg_matches(&matches) {
                ConfigFile::layer(Some(&file), &args.data.settings, &matches)?;
                ConfigFile::layer(Some(&file), &args.settings, &matches)?;
            }
        }
        Ok(Some(file))
    }

    fn layer<T: Serialize + DeserializeOwned>(
        file: Option<&ConfigFile>,
        parsed: &T,
        matches: &ArgMatches,
    ) -> Result<T, CliError> {
        let layered = Layered::new(parsed, matches);
        match file {
            Some(f) => layered.file(&f.table, &config_keys(), &f.path)?.finish(),
            None => layered.finish(),
        }
    }
}

/// The resolved data settings.
pub struct DataConfig {
    pub data_dir: PathBuf,
    pub database: String,
}

fn resolve_data(
    args: &DataArgs,
    file: Option<&ConfigFile>,
    matches: &ArgMatches,
) -> Result<DataConfig, CliError> {
    let settings = ConfigFile::layer(file, &args.settings, matches)?;
    let data_dir = settings.data_dir;
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        CliError::Unreachable(format!(
            "cannot create data dir {}: {e}",
            data_dir.display()
        ))
    })?;
    let database = settings
        .database
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("intake.db").display()));
    Ok(DataConfig { data_dir, database })
}

/// Opens the database a URL names (running migrations). A malformed URL is a usage error;
/// any other failure means the database could not be opened (exit 3), reported once with
/// its causes.
async fn open_database(url: &str) -> Result<Arc<dyn Store>, CliError> {
    intake_store::open(url).await.map_err(|err| match err {
        intake_store::StoreError::Url(_) => CliError::Usage(err.to_string()),
        other => CliError::Unreachable(format!(
            "cannot open database {url}: {}",
            error_chain(&other)
        )),
    })
}

/// Opens the database the data options name (running migrations).
pub async fn open_store(
    args: &DataArgs,
    matches: &ArgMatches,
) -> Result<(DataConfig, Arc<dyn Store>), CliError> {
    let file = ConfigFile::read(args.config.as_deref())?;
    let config = resolve_data(args, file.as_ref(), matches)?;
    let store = open_database(&config.database).await?;
    Ok((config, store))
}

pub async fn run(args: ServeArgs, matches: &ArgMatches) -> u8 {
    match serve(args, matches).await {
        Ok(()) => exit::OK,
        Err(err) => match &err {
            // In JSON, stderr holds nothing but JSON lines: the error is one of them.
            CliError::Usage(msg) | CliError::Failed(msg) | CliError::Unreachable(msg)
                if LOG_FORMAT.get() == Some(&LogFormat::Json) =>
            {
                tracing::error!("intake serve: {msg}");
                err.code()
            }
            _ => err.report_as("intake serve", false),
        },
    }
}

/// Sets up the log on stderr, in `format`, filtered by `INTAKE_LOG` (default
/// `info,sqlx=warn`). In JSON, each line is one object: `timestamp`, `level`, `target`, the
/// event's fields (`message` among them) at the top level, and `span` with the fields of
/// the request being served, when there is one.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    let _ = LOG_FORMAT.set(format);
}

async fn serve(args: ServeArgs, matches: &ArgMatches) -> Result<(), CliError> {
    let file = ConfigFile::read(args.data.config.as_deref())?;
    let data = resolve_data(&args.data, file.as_ref(), matches)?;
    let settings = ConfigFile::layer(file.as_ref(), &args.settings, matches)?;
    init_logging(settings.log_format);
    // Held until the server exits (the OS drops the lock with the process).
    let _lock = if data.database.starts_with("sqlite:") {
        Some(lock_data_dir(&data.data_dir)?)
    } else {
        None
    };
    let store = open_database(&data.database).await?;
    let listen = settings.listen;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot listen on {listen}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Unreachable(format!("cannot listen on {listen}: {e}")))?;
    ensure_initial_credentials(store.as_ref(), &data.data_dir, address)
        .await
        .map_err(|e| CliError::Unreachable(format!("{e:#}")))?;
    let spool_dir = settings
        .spool_dir
        .unwrap_or_else(|| data.data_dir.join("spool"));
    let spool = Spool::open(&spool_dir).await.map_err(|e| {
        CliError::Unreachable(format!(
            "cannot open the spool {}: {}",
            spool_dir.display(),
            error_chain(&e)
        ))
    })?;
    let state = AppState {
        store: store.clone(),
        spool,
        auth_cache: Arc::new(AuthCache::new(Duration::from_secs(
            settings.auth_cache_seconds,
        ))),
        rate_limits: RateLimits {
            per_second: settings.rate_limit_per_second,
            per_day: settings.rate_limit_per_day,
        },
        intake_rate_limits: RateLimits {
            per_second: settings.intake_rate_limit_per_second,
            per_day: 0,
        },
        metrics: Arc::new(intake_server::metrics::Metrics::new(settings.metrics)),
        console: intake_server::console::ConsoleSettings {
            secure_cookies: settings.ui_secure_cookies,
            session_idle: Duration::from_secs(settings.ui_session_idle_minutes.max(1) * 60),
        },
        webhooks: intake_server::webhooks::WebhookConfig {
            retry_base: Duration::from_millis(settings.webhook_retry_base_ms.max(1)),
            max_attempts: settings.webhook_max_attempts.max(1),
            allow_private: settings.webhook_allow_private_networks,
        },
    };
    let worker = WorkerConfig {
        lease: Duration::from_secs(settings.lease_seconds.max(1)),
        batch_lines: settings.batch_lines.max(1),
    };
    tracing::info!(%address, database = store.backend(), "intake listening");
    // Scripts and tests read this line to find the port.
    crate::outln!("listening on http://{address}");
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(settings.header_read_timeout_seconds.max(1)),
        body_idle_timeout: Duration::from_secs(settings.body_idle_timeout_seconds.max(1)),
        keep_alive_timeout: Duration::from_secs(settings.keep_alive_timeout_seconds.max(1)),
        max_connections: settings.max_connections.max(1),
        shutdown_timeout: Duration::from_secs(settings.shutdown_timeout_seconds),
    };
    intake_server::serve(listener, state, worker, limits, shutdown_signal())
        .await
        .map_err(|e| CliError::Failed(format!("serving failed: {e}")))?;
    tracing::info!("intake stopped");
    Ok(())
}

/// The name of the lock file in the data dir.
const LOCK_FILE: &str = "serve.lock";

/// One server per SQLite data dir: takes an exclusive lock on `DATA_DIR/serve.lock` and
/// writes this process's pid into it; a second `serve` on the same data dir is refused,
/// naming the holder's pid (exit 3). Admin commands take no lock and run beside the server.
/// PostgreSQL needs none (several instances share it by design).
///
/// Decision: the lock is on the data dir, as every SQLite server has one; two data dirs
/// pointed with `--database` at one SQLite file are not caught (the README already says a
/// second server on one file may not run).
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, CliError> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join(LOCK_FILE);
    let cannot =
        |e: std::io::Error| CliError::Unreachable(format!("cannot lock {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(cannot)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("pid {holder}")
            };
            return Err(CliError::Unreachable(format!(
                "another intake serve ({holder}) is running on the data dir {}: it holds {}; \
                 one server per SQLite database (use PostgreSQL for several)",
                data_dir.display(),
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
    }
    file.set_len(0).map_err(cannot)?;
    file.rewind().map_err(cannot)?;
    writeln!(file, "{}", std::process::id()).map_err(cannot)?;
    file.flush().map_err(cannot)?;
    Ok(file)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: no new requests, handing back unfinished work");
}

/// On the very first start (no company at all), creates company `default` with one access
/// key and writes them, readable by the owner only, to `initial-credentials.json`. On a
/// later start, the file (when it is still there) gets this start's address: the CLI, run
/// without a server named, goes where the server listens now.
async fn ensure_initial_credentials(
    store: &dyn Store,
    data_dir: &Path,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    if !store.list_companies().await?.is_empty() {
        refresh_initial_url(&data_dir.join("initial-credentials.json"), address);
        return Ok(());
    }
    let company = match store.create_company("default").await {
        Ok(company) => company,
        // Another instance got there first.
        Err(intake_store::StoreError::CompanyExists(_)) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let (key, secret) = auth::create_access_key(store, company.id).await?;
    let path = data_dir.join("initial-credentials.json");
    let body = serde_json::json!({
        "company": company.name,
        "url": format!("http://{address}"),
        "accessKey": key,
        "accessKeySecret": secret,
    });
    write_private(&path, &serde_json::to_string_pretty(&body)?)?;
    crate::outln!(
        "created company 'default'; its access key is in {}",
        path.display()
    );
    Ok(())
}

/// Writes this start's address into `initial-credentials.json`, if the file is there and
/// names another; a file that cannot be read or written is left as it is (said in the log).
fn refresh_initial_url(path: &Path, address: std::net::SocketAddr) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let url = format!("http://{address}");
    let mut body: serde_json::Value = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(err) => {
            tracing::warn!("{} is not JSON, left as it is: {err}", path.display());
            return;
        }
    };
    if body.get("url").and_then(|u| u.as_str()) == Some(url.as_str()) {
        return;
    }
    body["url"] = serde_json::Value::String(url);
    let written = serde_json::to_string_pretty(&body)
        .map_err(std::io::Error::other)
        .and_then(|text| write_private(path, &text));
    if let Err(err) = written {
        tracing::warn!(
            "cannot write this start's address into {}: {err}",
            path.display()
        );
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dist/intake.toml` holds every setting of `serve` with its default: a key set to the
    /// default, or, for a setting without one, a commented-out example (`# key = ...`).
    #[test]
    fn the_sample_config_file_has_every_setting_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/intake.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        let keys = config_keys();
        for key in table.keys() {
            assert!(keys.contains(key), "{key} in {path} is no setting");
        }
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            if !keys.iter().any(|k| k == key) {
                continue;
            }
            let defaults = arg.get_default_values();
            match (table.get(key), defaults.first()) {
                (Some(value), Some(default)) => {
                    let written = match value {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    assert_eq!(
                        written,
                        default.to_string_lossy(),
                        "{key}: {path} says {written}, the default is {default:?}"
                    );
                }
                (None, None) => assert!(
                    text.lines().any(|l| l.starts_with(&format!("# {key} = "))),
                    "{key} (no default) has no commented-out example in {path}"
                ),
                (None, Some(default)) => {
                    panic!("{key} (default {default:?}) is missing from {path}")
                }
                (Some(value), None) => {
                    panic!("{key} has no default, but {path} sets it to {value}")
                }
            }
        }
    }
}
