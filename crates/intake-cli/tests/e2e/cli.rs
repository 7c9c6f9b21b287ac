//! Tests of the client commands: the real `intake` binary against a real server (SQLite), the
//! offline commands, and the retry rules against a small scripted HTTP server.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Backend, Server, Site, BIN};

/// Runs `intake` with the given arguments, isolated from the caller's environment and config.
async fn intake(args: &[&str]) -> Output {
    intake_env(args, &[]).await
}

async fn intake_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("INTAKE_") || key.starts_with("GONG_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-intake-test-config");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("intake finished within 2 minutes")
        .expect("run intake")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// Every JSON document printed on stdout (one per line).
fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn json_one(out: &Output) -> Value {
    let mut all = json_lines(out);
    assert_eq!(all.len(), 1, "{}", show(out));
    all.remove(0)
}

/// `args` followed by the connection flags of `server`.
fn with_conn(server: &Server, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend([
        "--url".to_string(),
        server.url.clone(),
        "--access-key".into(),
        server.key.clone(),
        "--access-key-secret".into(),
        server.secret.clone(),
    ]);
    all
}

async fn run(server: &Server, args: &[&str]) -> Output {
    let all = with_conn(server, args);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    intake(&refs).await
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const BAD_CONTACTS: &str = concat!(
    r#"{"objectId":"c-1","modifiedDate":"2024-01-02T03:04:05Z","emailAddress":"a@example.com"}"#,
    "\n",
    r#"{"modifiedDate":"2024-01-02T03:04:05Z"}"#,
    "\n",
    "\n",
    "this is not json\n",
    r#"{"objectId":"c-2","modifiedDate":"2024-01-02T03:04:05Z"}"#,
    "\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_wait_status_and_get() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let dir = site.path();

    let out = run(
        &server,
        &[
            "integration",
            "register",
            "--name",
            "CRM",
            "--owner-email",
            "o@example.com",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("Registered integration"),
        "{}",
        show(&out)
    );

    // A good generated file: DONE, exit 0.
    let good = dir.join("good.ldjson");
    let out = intake(&[
        "gen",
        "--type",
        "CONTACT",
        "--count",
        "50",
        "--seed",
        "7",
        "--output",
        p(&good),
    ])
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = run(
        &server,
        &["upload", p(&good), "--type", "CONTACT", "--wait"],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("DONE: 50 lines succeeded, 0 failed"),
        "{}",
        show(&out)
    );

    // A bad file: FAILED, exit 1, every error with its line.
    let bad = write(dir, "bad.ldjson", BAD_CONTACTS);
    let out = run(
        &server,
        &[
            "upload",
            p(&bad),
            "--type",
            "CONTACT",
            "--wait",
            "--client-request-id",
            "bad-1",
        ],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAILED: 2 lines succeeded, 2 failed"),
        "{}",
        show(&out)
    );
    assert!(
        text.contains("line 2: Mandatory field [objectId] is missing or empty"),
        "{}",
        show(&out)
    );
    assert!(text.contains("line 4: "), "{}", show(&out));

    // The same with --json: the request-status body, parsed back.
    let out = run(
        &server,
        &[
            "upload",
            p(&bad),
            "--type",
            "contact",
            "--wait",
            "--json",
            "--client-request-id",
            "bad-2",
        ],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let status = json_one(&out);
    assert_eq!(status["status"], "FAILED");
    assert_eq!(status["clientRequestId"], "bad-2");
    assert_eq!(status["totalSuccessCount"], 2);
    assert_eq!(status["totalErrorCount"], 2);
    let lines: Vec<u64> = status["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 4]);

    // A reused clientRequestId is a 409 on the first try: reported, exit 1.
    let out = run(
        &server,
        &[
            "upload",
            p(&bad),
            "--type",
            "CONTACT",
            "--client-request-id",
            "bad-1",
        ],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains("Client request id has already been used"),
        "{}",
        show(&out)
    );

    // Upload without --wait, then status.
    let out = run(
        &server,
        &[
            "upload",
            p(&bad),
            "--type",
            "CONTACT",
            "--json",
            "--client-request-id",
            "bad-3",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(json_one(&out)["clientRequestId"], "bad-3");
    let out = run(&server, &["status", "bad-3", "--wait"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stdout(&out).contains("line 2: Mandatory field [objectId]"),
        "{}",
        show(&out)
    );
    let out = run(&server, &["status", "bad-1", "--json"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert_eq!(json_one(&out)["status"], "FAILED");
    let out = run(&server, &["status", "no-such-request"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));

    // Several files in one call, in turn: the worst outcome wins.
    let out = run(
        &server,
        &[
            "upload",
            p(&good),
            p(&bad),
            "--type",
            "CONTACT",
            "--wait",
            "--json",
            "--client-request-id",
            "pair",
        ],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let all = json_lines(&out);
    assert_eq!(all.len(), 2, "{}", show(&out));
    assert_eq!(
        (
            all[0]["clientRequestId"].as_str(),
            all[0]["status"].as_str()
        ),
        (Some("pair-1"), Some("DONE"))
    );
    assert_eq!(
        (
            all[1]["clientRequestId"].as_str(),
            all[1]["status"].as_str()
        ),
        (Some("pair-2"), Some("FAILED"))
    );

    // Get objects back.
    let out = run(&server, &["get", "--type", "CONTACT", "c-1", "nobody"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("c-1:") && text.contains("a@example.com"),
        "{}",
        show(&out)
    );
    assert!(text.contains("nobody: not found"), "{}", show(&out));
    let out = run(
        &server,
        &["get", "--type", "CONTACT", "--json", "c-1", "c-2", "nobody"],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let body = json_one(&out);
    assert_eq!(
        body["crmObjectsMap"]["c-1"]["emailAddress"],
        "a@example.com"
    );
    assert!(body["crmObjectsMap"]["c-2"].is_object());
    assert!(body["crmObjectsMap"]["nobody"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_integration_commands() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let dir = site.path();

    // No integration yet.
    let out = run(&server, &["integration", "get"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("No integration registered"),
        "{}",
        show(&out)
    );
    let out = run(&server, &["schema", "list"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains("intake integration register"),
        "{}",
        show(&out)
    );

    let out = run(
        &server,
        &[
            "integration",
            "register",
            "--name",
            "My CRM",
            "--owner-email",
            "o@example.com",
            "--json",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let id = json_one(&out)["integrationId"]
        .as_i64()
        .expect("integrationId is an integer");
    let out = run(
        &server,
        &[
            "integration",
            "register",
            "--name",
            "Again",
            "--owner-email",
            "o@example.com",
        ],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains("already has an active GENERIC CRM integration"),
        "{}",
        show(&out)
    );

    let out = run(&server, &["integration", "get"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains(&format!("Integration {id}: My CRM (owner o@example.com)")),
        "{}",
        show(&out)
    );
    let out = run(&server, &["integration", "get", "--json"]).await;
    assert_eq!(
        json_one(&out)["integrations"][0]["integrationId"].as_i64(),
        Some(id)
    );

    // Schema: upload, list (text and JSON), then use it offline and online.
    let schema = write(
        dir,
        "schema.json",
        r#"[{"uniqueName":"tier","label":"Tier","type":"PICKLIST","orderedValueList":["gold","silver"]},
            {"uniqueName":"revenue","label":"Revenue","type":"CURRENCY"}]"#,
    );
    let out = run(
        &server,
        &["schema", "upload", p(&schema), "--type", "ACCOUNT"],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("Schema of ACCOUNT replaced: 2 fields"),
        "{}",
        show(&out)
    );
    let broken = write(
        dir,
        "broken.json",
        r#"[{"uniqueName":"x","label":"X","type":"NOPE"}]"#,
    );
    let out = run(
        &server,
        &["schema", "upload", p(&broken), "--type", "ACCOUNT"],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let out = run(&server, &["schema", "list"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ACCOUNT (2 fields)")
            && text.contains("tier")
            && text.contains("values: gold, silver"),
        "{}",
        show(&out)
    );
    let out = run(&server, &["schema", "list", "--type", "ACCOUNT", "--json"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let listed = json_one(&out);
    let fields = listed["objectTypeToSelectedFields"]["ACCOUNT"]
        .as_array()
        .unwrap();
    assert_eq!(fields.len(), 2);
    let listed_path = write(dir, "listed.json", &listed.to_string());

    let accounts = write(
        dir,
        "accounts.ldjson",
        concat!(
            r#"{"objectId":"a-1","modifiedDate":"2024-01-02T03:04:05Z","tier":"gold"}"#,
            "\n",
            r#"{"objectId":"a-2","modifiedDate":"2024-01-02T03:04:05Z","tier":"bronze"}"#,
            "\n"
        ),
    );
    for schema_file in [&schema, &listed_path] {
        let out = intake(&[
            "validate",
            p(&accounts),
            "--type",
            "ACCOUNT",
            "--schema",
            p(schema_file),
        ])
        .await;
        assert_eq!(code(&out), 1, "{}", show(&out));
        assert!(stdout(&out).contains("line 2: "), "{}", show(&out));
        assert!(
            stdout(&out).contains("1 line valid, 1 line failed"),
            "{}",
            show(&out)
        );
    }
    let out = run(
        &server,
        &["upload", p(&accounts), "--type", "ACCOUNT", "--wait"],
    )
    .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(stdout(&out).contains("line 2: "), "{}", show(&out));

    // Delete and follow it.
    let out = run(
        &server,
        &[
            "integration",
            "delete",
            "--wait",
            "--client-request-id",
            "del-1",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("DONE"), "{}", show(&out));
    let out = run(&server, &["integration", "get", "--json"]).await;
    assert_eq!(json_one(&out)["integrations"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_env_and_config_and_exit_codes() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let dir = site.path();

    // Gong's environment names.
    let out = intake_env(
        &["integration", "get"],
        &[
            ("GONG_BASE_URL", &server.url),
            ("GONG_ACCESS_KEY", &server.key),
            ("GONG_ACCESS_KEY_SECRET", &server.secret),
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    // Intake's names, with the URL from the environment.
    let out = intake_env(
        &["integration", "get"],
        &[
            ("INTAKE_URL", &server.url),
            ("INTAKE_ACCESS_KEY", &server.key),
            ("INTAKE_ACCESS_KEY_SECRET", &server.secret),
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    // A config file, by flag and by environment; flags win over it.
    let config = write(
        dir,
        "client.toml",
        &format!(
            "url = \"{}\"\naccess_key = \"{}\"\naccess_key_secret = \"{}\"\n",
            server.url, server.key, server.secret
        ),
    );
    let out = intake(&["integration", "get", "--config", p(&config)]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = intake_env(
        &["integration", "get"],
        &[("INTAKE_CLIENT_CONFIG", p(&config))],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = intake(&[
        "integration",
        "get",
        "--config",
        p(&config),
        "--access-key-secret",
        "wrong",
    ])
    .await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    // The default config location.
    let xdg = dir.join("xdg");
    std::fs::create_dir_all(xdg.join("intake")).unwrap();
    std::fs::copy(&config, xdg.join("intake").join("client.toml")).unwrap();
    let out = intake_env(&["integration", "get"], &[("XDG_CONFIG_HOME", p(&xdg))]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));

    // 401: exit 3.
    let out = intake(&[
        "integration",
        "get",
        "--url",
        &server.url,
        "--access-key",
        &server.key,
        "--access-key-secret",
        "wrong",
    ])
    .await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    let out = intake(&[
        "integration",
        "get",
        "--url",
        &server.url,
        "--token",
        "not-a-token",
        "--json",
    ])
    .await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert!(json_one(&out)["errors"].is_array(), "{}", show(&out));

    // A bearer token: works for its scope, 401 (exit 3) naming the missing scope otherwise.
    let made = site.intake(&[
        "admin",
        "token",
        "create",
        "--company",
        "default",
        "--scope",
        "api:crm:integrations:read",
        "--json",
    ]);
    assert!(made.status.success(), "{}", show(&made));
    let token: Value = serde_json::from_slice(&made.stdout).unwrap();
    let token = token["token"].as_str().unwrap();
    let out = intake(&["integration", "get", "--url", &server.url, "--token", token]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = intake_env(
        &["schema", "list", "--integration-id", "1"],
        &[("INTAKE_URL", &server.url), ("INTAKE_TOKEN", token)],
    )
    .await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert!(stderr(&out).contains("api:crm:schema"), "{}", show(&out));

    // Connection refused: exit 3.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = intake(&[
        "integration",
        "get",
        "--url",
        &url,
        "--access-key",
        "k",
        "--access-key-secret",
        "s",
        "--max-retries",
        "1",
    ])
    .await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert!(stderr(&out).contains("could not connect"), "{}", show(&out));

    // Usage errors: exit 2.
    let out = intake(&[
        "integration",
        "get",
        "--access-key",
        "k",
        "--access-key-secret",
        "s",
    ])
    .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = intake(&["integration", "get", "--url", &server.url]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = run(
        &server,
        &["upload", "/nonexistent/file.ldjson", "--type", "CONTACT"],
    )
    .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = run(&server, &["upload", p(&config), "--type", "PERSON"]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = intake(&["validate", "/nonexistent/file.ldjson", "--type", "CONTACT"]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = intake(&[
        "gen",
        "--type",
        "DEAL",
        "--count",
        "1",
        "--invalid-ratio",
        "2",
    ])
    .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_gen_offline() {
    let dir = tempfile::tempdir().unwrap();
    for ty in [
        "ACCOUNT",
        "CONTACT",
        "DEAL",
        "LEAD",
        "BUSINESS_USER",
        "STAGE",
    ] {
        let out = intake(&["gen", "--type", ty, "--count", "200", "--seed", "3"]).await;
        assert_eq!(code(&out), 0, "{}", show(&out));
        assert_eq!(stdout(&out).lines().count(), 200);
        let again = intake(&["gen", "--type", ty, "--count", "200", "--seed", "3"]).await;
        assert_eq!(out.stdout, again.stdout, "gen is deterministic for {ty}");
        let file = dir.path().join(format!("{ty}.ldjson"));
        std::fs::write(&file, &out.stdout).unwrap();
        let out = intake(&["validate", p(&file), "--type", ty]).await;
        assert_eq!(code(&out), 0, "{ty}: {}", show(&out));
        assert!(
            stdout(&out).contains("200 lines valid, 0 lines failed"),
            "{}",
            show(&out)
        );
    }

    // A share of invalid lines: every error printed, in text and in JSON.
    let file = dir.path().join("mixed.ldjson");
    let out = intake(&[
        "gen",
        "--type",
        "CONTACT",
        "--count",
        "500",
        "--seed",
        "9",
        "--invalid-ratio",
        "0.2",
        "-o",
        p(&file),
    ])
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = intake(&["validate", p(&file), "--type", "CONTACT", "--json"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let report = json_one(&out);
    let failed = report["totalErrorCount"].as_u64().unwrap();
    assert!(failed > 50 && failed < 150, "{report}");
    assert_eq!(report["totalSuccessCount"].as_u64().unwrap() + failed, 500);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(
        errors.len() as u64,
        failed,
        "every error is listed, not only 20"
    );
    assert!(errors
        .windows(2)
        .all(|w| w[0]["line"].as_u64() < w[1]["line"].as_u64()));
    let out = intake(&["validate", p(&file), "--type", "CONTACT"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let printed = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("line "))
        .count() as u64;
    assert_eq!(printed, failed);
    assert!(stdout(&out).contains(&format!("{failed} lines failed")));

    // Exact messages with their lines.
    let bad = write(dir.path(), "bad.ldjson", BAD_CONTACTS);
    let out = intake(&["validate", p(&bad), "--type", "CONTACT"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stdout(&out).contains("line 2: Mandatory field [objectId] is missing or empty"),
        "{}",
        show(&out)
    );
    assert!(stdout(&out).contains("line 4: "), "{}", show(&out));

    // A broken schema file is a usage error.
    let schema = write(dir.path(), "schema.json", r#"[{"uniqueName":"x"}]"#);
    let out = intake(&[
        "validate",
        p(&bad),
        "--type",
        "CONTACT",
        "--schema",
        p(&schema),
    ])
    .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
}

// ---- Retry rules, against a scripted HTTP server ----

enum Step {
    /// Answer with this status, extra headers and JSON body.
    Reply(u16, Vec<(&'static str, &'static str)>, &'static str),
    /// Read the request, then close the connection without answering.
    Drop,
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    body: Vec<u8>,
    at: Instant,
}

struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    async fn start(steps: Vec<Step>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for step in steps {
                let (mut socket, _) = listener.accept().await.unwrap();
                let Some(request) = read_request(&mut socket).await else {
                    continue;
                };
                log.lock().unwrap().push(request);
                match step {
                    Step::Drop => drop(socket),
                    Step::Reply(status, headers, body) => {
                        let mut head = format!(
                            "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                            body.len()
                        );
                        for (k, v) in headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(body.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                }
            }
        });
        Scripted { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body).
async fn read_request(socket: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        if k == "content-length" {
            length = v.trim().parse::<usize>().ok();
        } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let mut body = buf[head_end..].to_vec();
    if chunked {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let length = length.unwrap_or(0);
        while body.len() < length {
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen {
        method,
        target,
        body,
        at,
    })
}

const ACCEPTED: &str = r#"{"requestId":"abcdefghijklmnopq","clientRequestId":"crid-1"}"#;
const FILE: &str = "{\"objectId\":\"c-1\",\"modifiedDate\":\"2024-01-02T03:04:05Z\"}\n";

async fn scripted_upload(scripted: &Scripted, dir: &Path, extra: &[&str]) -> Output {
    let file = write(dir, "one.ldjson", FILE);
    let mut args = vec![
        "upload",
        p(&file),
        "--type",
        "CONTACT",
        "--client-request-id",
        "crid-1",
        "--integration-id",
        "7",
        "--url",
        &scripted.url,
        "--access-key",
        "k",
        "--access-key-secret",
        "s",
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    intake(&refs).await
}

fn assert_same_upload_twice(seen: &[Seen]) {
    assert!(seen.len() >= 2, "{seen:?}");
    for s in &seen[..2] {
        assert_eq!(s.method, "POST");
        assert_eq!(
            s.target,
            "/v2/crm/entities?integrationId=7&objectType=CONTACT&clientRequestId=crid-1"
        );
        let body = String::from_utf8_lossy(&s.body);
        assert!(
            body.contains("name=\"dataFile\"") && body.contains(FILE.trim()),
            "the whole file is sent again: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_429_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(vec![
        Step::Reply(
            429,
            vec![("Retry-After", "1")],
            r#"{"requestId":"r1","errors":["Too many requests"]}"#,
        ),
        Step::Reply(201, vec![], ACCEPTED),
    ])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &["--json"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(json_one(&out)["clientRequestId"], "crid-1");
    let seen = scripted.seen();
    assert_eq!(seen.len(), 2);
    assert_same_upload_twice(&seen);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_429_honours_retry_after_as_an_http_date() {
    let dir = tempfile::tempdir().unwrap();
    // Two seconds ahead, in whole seconds: the client waits between one and two.
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    let date: &'static str = Box::leak(httpdate::fmt_http_date(at).into_boxed_str());
    let scripted = Scripted::start(vec![
        Step::Reply(
            429,
            vec![("Retry-After", date)],
            r#"{"requestId":"r1","errors":["Too many requests"]}"#,
        ),
        Step::Reply(201, vec![], ACCEPTED),
    ])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &["--json"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let seen = scripted.seen();
    assert_eq!(seen.len(), 2);
    assert_same_upload_twice(&seen);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?} for {date}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_500_then_success() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(vec![
        Step::Reply(
            500,
            vec![],
            r#"{"requestId":"r1","errors":["Internal Server Error"]}"#,
        ),
        Step::Reply(201, vec![], ACCEPTED),
    ])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &[]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("clientRequestId crid-1"),
        "{}",
        show(&out)
    );
    assert!(stderr(&out).contains("HTTP 500"), "{}", show(&out));
    assert_same_upload_twice(&scripted.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let error = r#"{"requestId":"r1","errors":["Service Unavailable"]}"#;
    let scripted = Scripted::start(vec![
        Step::Reply(503, vec![], error),
        Step::Reply(503, vec![], error),
        Step::Reply(201, vec![], ACCEPTED),
    ])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &["--max-retries", "1"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains("Service Unavailable"),
        "{}",
        show(&out)
    );
    assert_eq!(scripted.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_after_lost_response_is_resolved_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(vec![
        Step::Drop,
        Step::Reply(409, vec![], r#"{"requestId":"r2","errors":["Client request id has already been used"]}"#),
        Step::Reply(
            200,
            vec![],
            r#"{"requestId":"r3","status":"PENDING","errors":[],"totalErrorCount":0,"totalSuccessCount":0}"#,
        ),
    ])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &[]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("clientRequestId crid-1"),
        "{}",
        show(&out)
    );
    let seen = scripted.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_same_upload_twice(&seen);
    assert_eq!(seen[2].method, "GET");
    assert_eq!(
        seen[2].target,
        "/v2/crm/request-status?integrationId=7&clientRequestId=crid-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_on_first_try_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(vec![Step::Reply(
        409,
        vec![],
        r#"{"requestId":"r2","errors":["Client request id has already been used"]}"#,
    )])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &[]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains("Client request id has already been used"),
        "{}",
        show(&out)
    );
    assert_eq!(scripted.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_after_retry_without_request_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(vec![
        Step::Reply(500, vec![], r#"{"requestId":"r1","errors":["boom"]}"#),
        Step::Reply(
            409,
            vec![],
            r#"{"requestId":"r2","errors":["Client request id has already been used"]}"#,
        ),
        Step::Reply(
            404,
            vec![],
            r#"{"requestId":"r3","errors":["Unknown clientRequestId"]}"#,
        ),
    ])
    .await;
    let out = scripted_upload(&scripted, dir.path(), &[]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        stderr(&out).contains("Client request id has already been used"),
        "{}",
        show(&out)
    );
    assert_eq!(scripted.seen().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_conflict_after_lost_response_finds_the_integration() {
    let scripted = Scripted::start(vec![
        Step::Drop,
        Step::Reply(
            409,
            vec![],
            r#"{"requestId":"r2","errors":["Your organization already has an active GENERIC CRM integration."]}"#,
        ),
        Step::Reply(
            200,
            vec![],
            r#"{"requestId":"r3","integrations":[{"integrationId":8617003328131465321,"name":"CRM","ownerEmail":"o@example.com"}]}"#,
        ),
    ])
    .await;
    let out = intake(&[
        "integration",
        "register",
        "--name",
        "CRM",
        "--owner-email",
        "o@example.com",
        "--json",
        "--url",
        &scripted.url,
        "--access-key",
        "k",
        "--access-key-secret",
        "s",
    ])
    .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(
        json_one(&out)["integrationId"].as_i64(),
        Some(8617003328131465321),
        "ids beyond 53 bits stay exact"
    );
    let seen = scripted.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        (seen[0].method.as_str(), seen[1].method.as_str()),
        ("PUT", "PUT")
    );
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(
        (seen[2].method.as_str(), seen[2].target.as_str()),
        ("GET", "/v2/crm/integrations")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_history_commands() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let dir = site.path();
    let integration = server.register().await;
    let first = write(
        dir,
        "first.ldjson",
        concat!(
            r#"{"objectId":"r1","modifiedDate":"2024-01-01T00:00:00Z","title":"old"}"#,
            "\n",
            r#"{"objectId":"r2","modifiedDate":"2024-01-01T00:00:00Z"}"#,
            "\n",
        ),
    );
    let second = write(
        dir,
        "second.ldjson",
        concat!(
            r#"{"objectId":"r1","modifiedDate":"2024-02-01T00:00:00Z","title":"new"}"#,
            "\n",
            r#"{"objectId":"r2","modifiedDate":"2024-02-01T00:00:00Z","isDeleted":true}"#,
            "\n",
        ),
    );
    for (file, crid) in [(&first, "first"), (&second, "second")] {
        let out = run(
            &server,
            &[
                "upload",
                p(file),
                "--type",
                "CONTACT",
                "--client-request-id",
                crid,
                "--wait",
            ],
        )
        .await;
        assert_eq!(code(&out), 0, "{}", show(&out));
    }
    assert!(integration > 0);

    // Now: one record, one JSON line, ready to upload again.
    let out = run(&server, &["records", "CONTACT"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let now = json_lines(&out);
    assert_eq!(now.len(), 1, "{}", show(&out));
    assert_eq!(
        (&now[0]["objectId"], &now[0]["title"]),
        (&"r1".into(), &"new".into())
    );
    // As it stood in January: both, r1 still old; deleted ones when asked for.
    let out = run(
        &server,
        &["records", "contact", "--as-of", "2024-01-15T00:00:00Z"],
    )
    .await;
    let then = json_lines(&out);
    assert_eq!(then.len(), 2, "{}", show(&out));
    assert_eq!(then[0]["title"], "old");
    let out = run(
        &server,
        &[
            "records",
            "CONTACT",
            "--include-deleted",
            "--page-size",
            "1",
        ],
    )
    .await;
    let all = json_lines(&out);
    assert_eq!(all.len(), 2, "{}", show(&out));
    assert_eq!(all[1]["isDeleted"], true);
    let out = run(&server, &["records", "CONTACT", "--json"]).await;
    assert_eq!(json_one(&out)["records"]["currentPageSize"], 1);

    // History: oldest first, where each version came from, which is current.
    let out = run(&server, &["history", "CONTACT", "r1"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("2024-01-01T00:00:00.000Z  from first line 1"),
        "{text}"
    );
    assert!(lines[1].contains(r#""title":"old""#), "{text}");
    assert!(
        lines[2].starts_with("2024-02-01T00:00:00.000Z  from second line 1"),
        "{text}"
    );
    assert!(lines[2].ends_with("[current]"), "{text}");
    let out = run(&server, &["history", "CONTACT", "r2", "--json"]).await;
    let versions = json_one(&out);
    assert_eq!(versions["versions"][1]["isDeleted"], true);
    // A record that never existed: the API's 404, exit 1.
    let out = run(&server, &["history", "CONTACT", "nope"]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(stderr(&out).contains("No such record"), "{}", show(&out));
}
