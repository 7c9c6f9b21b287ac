//! Starts real `intake serve` processes on port 0 over a temporary data dir, on SQLite or on
//! a fresh PostgreSQL database, and talks HTTP to them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_intake");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL database made for one test and dropped after it: the store's shared helper
/// (it skips loudly when PostgreSQL is unreachable, unless `INTAKE_REQUIRE_POSTGRES=1`).
pub use intake_store::testing::TestDatabase;

/// Where a server keeps its data: a temporary directory and a database URL.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub database: String,
    _pg: Option<TestDatabase>,
}

impl Site {
    pub async fn new(backend: Backend) -> Option<Site> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("intake.db").display()),
                None,
            ),
            Backend::Postgres => {
                let db = TestDatabase::create().await?;
                (db.url.clone(), Some(db))
            }
        };
        Some(Site {
            dir,
            database,
            _pg: pg,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `intake` with this site's data options appended.
    pub fn intake(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.data_args());
        Command::new(BIN).args(&all).output().expect("run intake")
    }

    /// Runs an `intake admin ... --json` command that must succeed; its JSON.
    pub fn admin_json(&self, args: &[&str]) -> Value {
        let out = self.intake(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A new bearer token of company `default` with one scope.
    pub fn token(&self, scope: &str) -> String {
        let created = self.admin_json(&[
            "admin",
            "token",
            "create",
            "--company",
            "default",
            "--scope",
            scope,
            "--json",
        ]);
        created["token"].as_str().unwrap().to_owned()
    }

    /// `server` as seen by a new company `name` with an access key of its own.
    pub fn other_company(&self, server: &Server, name: &str) -> Server {
        self.admin_json(&["admin", "company", "create", name, "--json"]);
        let key = self.admin_json(&["admin", "key", "create", "--company", name, "--json"]);
        Server::with_credentials(
            server,
            key["accessKey"].as_str().unwrap(),
            key["accessKeySecret"].as_str().unwrap(),
        )
    }

    pub fn data_args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.path().display().to_string(),
            "--database".into(),
            self.database.clone(),
        ]
    }

    /// Starts a server on this site with the rate limits off and a short lease.
    pub fn start(&self, extra: &[&str]) -> Server {
        let mut args = vec!["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(self.data_args());
        args.extend([
            "--spool-dir".into(),
            self.path().join("spool").display().to_string(),
        ]);
        let defaults = [
            ("--rate-limit-per-second", "0"),
            ("--rate-limit-per-day", "0"),
            ("--lease-seconds", "2"),
        ];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::fs::File::create(
            self.path()
                .join(format!("server-{}.log", rand::random::<u32>())),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(&args)
            .env("INTAKE_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start intake serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let creds: Value = serde_json::from_str(
            &std::fs::read_to_string(self.path().join("initial-credentials.json"))
                .expect("initial credentials written on first start"),
        )
        .unwrap();
        Server {
            url,
            key: creds["accessKey"].as_str().unwrap().to_string(),
            secret: creds["accessKeySecret"].as_str().unwrap().to_string(),
            child: Some(child),
            http: reqwest::Client::new(),
        }
    }
}

pub struct Server {
    pub url: String,
    pub key: String,
    pub secret: String,
    child: Option<Child>,
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response read whole: status, headers and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    /// The body as it came.
    pub text: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("body of a {status} is not JSON: {text:?}"));
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// The body as one of the wire contract's types (`intake_model::wire`).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text).unwrap_or_else(|err| {
            panic!(
                "body of a {} is not a {}: {err}: {}",
                self.status,
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    /// The error envelope's texts (panics when the body is not an envelope).
    pub fn errors(&self) -> Vec<String> {
        self.parse::<intake_model::wire::ErrorEnvelope>().errors
    }

    /// The first error text ("" when the body is no error envelope).
    pub fn error(&self) -> String {
        serde_json::from_str::<intake_model::wire::ErrorEnvelope>(&self.text)
            .ok()
            .and_then(|envelope| envelope.errors.into_iter().next())
            .unwrap_or_default()
    }
}

impl Server {
    /// The same server, seen with other credentials.
    pub fn with_credentials(server: &Server, key: &str, secret: &str) -> Server {
        Server {
            url: server.url.clone(),
            key: key.to_string(),
            secret: secret.to_string(),
            child: None,
            http: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("a server this test started")
            .id()
    }

    /// SIGKILL, no clean-up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.url, path_and_query)
    }

    pub fn req(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path_and_query))
            .basic_auth(&self.key, Some(&self.secret))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.send(self.req(reqwest::Method::GET, path_and_query))
            .await
    }

    pub async fn register(&self) -> i64 {
        let reply = self
            .send(
                self.req(reqwest::Method::PUT, "/v2/crm/integrations")
                    .json(&serde_json::json!({"name": "CRM", "ownerEmail": "owner@example.com"})),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply
            .parse::<intake_model::wire::IntegrationRegistered>()
            .integration_id
    }

    pub async fn upload(
        &self,
        integration: i64,
        object_type: &str,
        crid: &str,
        data: impl Into<Vec<u8>>,
    ) -> Reply {
        let part = reqwest::multipart::Part::bytes(data.into()).file_name("data.ldjson");
        let form = reqwest::multipart::Form::new().part("dataFile", part);
        let path = format!("/v2/crm/entities?integrationId={integration}&objectType={object_type}&clientRequestId={crid}");
        self.send(self.req(reqwest::Method::POST, &path).multipart(form))
            .await
    }

    pub async fn status(&self, integration: i64, crid: &str) -> Reply {
        self.get(&format!(
            "/v2/crm/request-status?integrationId={integration}&clientRequestId={crid}"
        ))
        .await
    }

    /// Polls request-status until DONE or FAILED.
    pub async fn wait_done(&self, integration: i64, crid: &str) -> Reply {
        for _ in 0..3000 {
            let reply = self.status(integration, crid).await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            let status = reply.parse::<intake_model::wire::RequestStatusReply>();
            if status.status.is_final() {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("request {crid} did not finish");
    }

    /// Uploads one LDJSON line per object (each with `modifiedDate` `modified` unless it
    /// has one) and waits until the request is DONE with no failed line.
    pub async fn put_objects(
        &self,
        integration: i64,
        object_type: &str,
        crid: &str,
        modified: &str,
        objects: &[Value],
    ) {
        let mut text = String::new();
        for object in objects {
            let mut object = object.clone();
            if object.get("modifiedDate").is_none() {
                object["modifiedDate"] = Value::String(modified.to_owned());
            }
            text.push_str(&object.to_string());
            text.push('\n');
        }
        let reply = self.upload(integration, object_type, crid, text).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        let done = self.wait_done(integration, crid).await;
        assert_eq!(done.body["status"], "DONE", "{:?}", done.body);
        assert_eq!(
            done.body["totalErrorCount"]
                .as_u64()
                .expect("totalErrorCount"),
            0,
            "{:?}",
            done.body
        );
    }

    /// Runs an `intake` client command against this server with its credentials, and no
    /// setting from the environment or a config file.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args).args([
            "--url",
            &self.url,
            "--access-key",
            &self.key,
            "--access-key-secret",
            &self.secret,
        ]);
        for (key, _) in std::env::vars() {
            if key.starts_with("INTAKE_") || key.starts_with("GONG_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("XDG_CONFIG_HOME", "/nonexistent-intake-test-config");
        cmd.kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("intake finished within 2 minutes")
            .expect("run intake")
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path_and_query: &str, body: &Value) -> Reply {
        self.send(self.req(reqwest::Method::POST, path_and_query).json(body))
            .await
    }

    pub async fn objects(&self, integration: i64, object_type: &str, ids: &[&str]) -> Value {
        let reply = self
            .send(
                self.req(
                    reqwest::Method::GET,
                    &format!(
                        "/v2/crm/entities?integrationId={integration}&objectType={object_type}"
                    ),
                )
                .json(&ids),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["crmObjectsMap"].clone()
    }
}

/// The spool files left once the worker has had up to 5 s to remove what it finished: a
/// request is DONE when its transaction commits, and its spool file goes just after.
pub async fn spool_files_once_settled(dir: &Path) -> Vec<PathBuf> {
    for _ in 0..100 {
        if spool_files(dir).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    spool_files(dir)
}

/// The uploads in the spool (not the sidecar files of every error, which stay).
pub fn spool_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("spool"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let name = p.to_string_lossy();
                    !name.ends_with(".errors")
                        && !name.ends_with(".failed")
                        && !name.ends_with(".index")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Declares each test once per backend: `backend_tests!(name, ...)` expects
/// `async fn name(site: Site)` and makes `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let site = $crate::harness::Site::new($crate::harness::Backend::Sqlite).await.unwrap();
                    super::$name(site).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(site) = $crate::harness::Site::new($crate::harness::Backend::Postgres).await {
                        super::$name(site).await;
                    }
                }
            )*
        }
    };
}
