//! `intake serve` and the database options every server-side command shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use intake_server::auth_cache::AuthCache;
use intake_server::{AppState, Spool, WorkerConfig};
use intake_store::{auth, RateLimits, Store};
use serde::Deserialize;

use crate::exit;

/// Where the data lives; shared by `serve` and every `admin` command.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Directory of the SQLite database and the upload spool [default: ./intake-data]
    #[arg(long, env = "INTAKE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir]
    #[arg(long, env = "INTAKE_DATABASE_URL", global = true)]
    pub database: Option<String>,
    /// Optional TOML config file with the same settings (snake_case keys)
    #[arg(long, env = "INTAKE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "INTAKE_LISTEN")]
    pub listen: Option<String>,
    /// Directory of the upload spool; must be shared by every instance of one database
    /// [default: DATA_DIR/spool]
    #[arg(long, env = "INTAKE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Calls per second per company; 0 switches the limit off [default: 3]
    #[arg(long, env = "INTAKE_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<u32>,
    /// Calls per day per company; 0 switches the limit off [default: 10000]
    #[arg(long, env = "INTAKE_RATE_LIMIT_PER_DAY")]
    pub rate_limit_per_day: Option<u32>,
    /// Seconds a worker holds a request without a heartbeat before another may take it over
    /// [default: 30]
    #[arg(long, env = "INTAKE_LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
    /// Lines the worker stores per transaction [default: 40000]
    #[arg(long, env = "INTAKE_BATCH_LINES")]
    pub batch_lines: Option<usize>,
    /// Seconds a verified credential is trusted before it is looked up again (a revoked key
    /// stops working after at most this long); 0 looks up every call [default: 5]
    #[arg(long, env = "INTAKE_AUTH_CACHE_SECONDS")]
    pub auth_cache_seconds: Option<u64>,
}

/// The config file: every key optional; command-line flags and environment win over it.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    database: Option<String>,
    listen: Option<String>,
    spool_dir: Option<PathBuf>,
    rate_limit_per_second: Option<u32>,
    rate_limit_per_day: Option<u32>,
    lease_seconds: Option<u64>,
    batch_lines: Option<usize>,
    auth_cache_seconds: Option<u64>,
}

fn read_config(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The resolved data settings.
pub struct DataConfig {
    pub data_dir: PathBuf,
    pub database: String,
}

fn resolve_data(args: &DataArgs, file: &ConfigFile) -> anyhow::Result<DataConfig> {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("intake-data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let database = args
        .database
        .clone()
        .or_else(|| file.database.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("intake.db").display()));
    Ok(DataConfig { data_dir, database })
}

/// Opens the database the data options name (running migrations).
pub async fn open_store(args: &DataArgs) -> anyhow::Result<(DataConfig, Arc<dyn Store>)> {
    let file = read_config(args.config.as_deref())?;
    let config = resolve_data(args, &file)?;
    let store = intake_store::open(&config.database)
        .await
        .with_context(|| format!("cannot open database {}", config.database))?;
    Ok((config, store))
}

pub async fn run(args: ServeArgs) -> u8 {
    init_logging();
    match serve(args).await {
        Ok(()) => exit::OK,
        Err(err) => {
            eprintln!("intake serve: {err:#}");
            exit::UNREACHABLE
        }
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = read_config(args.data.config.as_deref())?;
    let data = resolve_data(&args.data, &file)?;
    let store = intake_store::open(&data.database)
        .await
        .with_context(|| format!("cannot open database {}", data.database))?;
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    ensure_initial_credentials(store.as_ref(), &data.data_dir, address).await?;
    let spool_dir = args
        .spool_dir
        .or(file.spool_dir)
        .unwrap_or_else(|| data.data_dir.join("spool"));
    let state = AppState {
        store: store.clone(),
        spool: Spool::open(&spool_dir).await?,
        auth_cache: Arc::new(AuthCache::new(Duration::from_secs(
            args.auth_cache_seconds
                .or(file.auth_cache_seconds)
                .unwrap_or(5),
        ))),
        rate_limits: RateLimits {
            per_second: args
                .rate_limit_per_second
                .or(file.rate_limit_per_second)
                .unwrap_or(3),
            per_day: args
                .rate_limit_per_day
                .or(file.rate_limit_per_day)
                .unwrap_or(10_000),
        },
    };
    let worker = WorkerConfig {
        lease: Duration::from_secs(
            args.lease_seconds
                .or(file.lease_seconds)
                .unwrap_or(30)
                .max(1),
        ),
        batch_lines: args
            .batch_lines
            .or(file.batch_lines)
            .unwrap_or(40_000)
            .max(1),
    };
    tracing::info!(%address, database = store.backend(), "intake listening");
    // Scripts and tests read this line to find the port.
    println!("listening on http://{address}");
    intake_server::serve(listener, state, worker, shutdown_signal()).await?;
    tracing::info!("intake stopped");
    Ok(())
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
/// key and writes them, readable by the owner only, to `initial-credentials.json`.
async fn ensure_initial_credentials(
    store: &dyn Store,
    data_dir: &Path,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    if !store.list_companies().await?.is_empty() {
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
    println!(
        "created company 'default'; its access key is in {}",
        path.display()
    );
    Ok(())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
