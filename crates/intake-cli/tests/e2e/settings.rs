//! Settings in layers (flag > environment > config file > default) and the exit codes of
//! `serve` and `admin`, with real `intake` processes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::harness::BIN;

/// `intake` with the given arguments and environment, isolated from the caller's.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
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
    cmd
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run intake")
}

pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `serve` started with exactly these arguments, killed on drop.
pub struct Serve {
    pub child: Child,
    pub url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `intake serve ARGS` and waits for its "listening on" line.
    pub fn start(args: &[&str], env: &[(&str, &str)], log: &Path) -> Serve {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let mut child = command(&all, env)
            .env("INTAKE_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start intake serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!(
                    "server exited before listening: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ),
            };
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Serve { child, url }
    }

    /// The statuses of `n` GET /v2/crm/integrations with the credentials in `data_dir`.
    pub async fn statuses(&self, data_dir: &Path, n: usize) -> Vec<u16> {
        let creds: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(data_dir.join("initial-credentials.json")).unwrap(),
        )
        .unwrap();
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..n {
            let reply = http
                .get(format!("{}/v2/crm/integrations", self.url))
                .basic_auth(
                    creds["accessKey"].as_str().unwrap(),
                    creds["accessKeySecret"].as_str(),
                )
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .unwrap();
            statuses.push(reply.status().as_u16());
        }
        statuses
    }
}

/// The server URL `initial-credentials.json` in `data_dir` names.
fn server_url_in(data_dir: &Path) -> String {
    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir.join("initial-credentials.json")).unwrap(),
    )
    .unwrap();
    creds["url"].as_str().unwrap().to_string()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// The daily limit is the setting seen here: 2 from the file lets two calls through; the
/// environment and then a flag win over the file; the file's `data_dir` is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_settings_flag_over_env_over_file_over_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = dir.path().join("intake.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nrate_limit_per_day = 2\nrate_limit_per_second = 0\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let config_arg = config.display().to_string();

    // The file over the defaults (the default listen address and daily limit are not used).
    let server = Serve::start(&["--config", &config_arg], &[], &log);
    assert!(data.join("initial-credentials.json").is_file());
    assert_eq!(server.statuses(&data, 3).await, [200, 200, 429]);
    drop(server);
    let first_url = server_url_in(&data);

    // The environment over the file; the config file named by the environment.
    let server = Serve::start(
        &[],
        &[
            ("INTAKE_CONFIG", &config_arg),
            ("INTAKE_RATE_LIMIT_PER_DAY", "3"),
        ],
        &log,
    );
    assert_eq!(server.statuses(&data, 4).await, [200, 200, 200, 429]);
    // A later start on another port writes its address into the credentials file, so that
    // the CLI run without a server named goes to it.
    // (Each start takes a port of its own: the first one's address is gone.)
    assert_eq!(server_url_in(&data), server.url, "first start: {first_url}");
    drop(server);

    // A flag over the environment.
    let server = Serve::start(
        &["--config", &config_arg, "--rate-limit-per-day", "0"],
        &[("INTAKE_RATE_LIMIT_PER_DAY", "3")],
        &log,
    );
    assert_eq!(server.statuses(&data, 5).await, [200; 5]);
}

/// Usage errors exit 2 in `serve` and `admin` alike: a bad flag value, a missing argument, a
/// bad or missing config file. What the database says no to exits 1; a database that cannot
/// be opened exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_in_serve_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let unknown = write("unknown.toml", "data_dir = \"x\"\ncolour = \"blue\"\n");
    let wrong_type = write("wrong.toml", "lease_seconds = \"long\"\n");
    let broken = write("broken.toml", "data_dir = \n");
    // admin reads the server's file: its serve keys are allowed there.
    let serve_keys = write(
        "serve.toml",
        &format!("data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nbatch_lines = 10\n"),
    );

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["admin", "company", "list", "--config", &unknown],
            "unknown key `colour`",
        ),
        (
            vec!["admin", "company", "list", "--config", &wrong_type],
            "`lease_seconds`",
        ),
        (
            vec!["admin", "company", "list", "--config", &broken],
            "invalid config file",
        ),
        (
            vec![
                "admin",
                "key",
                "list",
                "--config",
                "/nonexistent/intake.toml",
            ],
            "cannot read config file",
        ),
        (
            vec!["admin", "key", "create", "--data-dir", &data],
            "--company",
        ),
        (
            vec!["admin", "token", "create", "--company", "x"],
            "--scope",
        ),
        (
            vec!["admin", "company", "create", "--bogus", "x"],
            "--bogus",
        ),
        (
            vec![
                "admin",
                "company",
                "list",
                "--database",
                "mysql://x/y",
                "--data-dir",
                &data,
            ],
            "expected sqlite://PATH or postgres://",
        ),
        (vec!["serve", "--config", &unknown], "unknown key `colour`"),
        (vec!["serve", "--config", &wrong_type], "`lease_seconds`"),
        (vec!["serve", "--rate-limit-per-second", "many"], "many"),
        (
            vec![
                "integration",
                "get",
                "--config",
                &unknown,
                "--url",
                "http://x",
            ],
            "unknown key",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&args, &[]);
        assert_eq!(code(&out), 2, "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {}", show(&out));
        assert!(!stderr.contains("panicked"), "{}", show(&out));
    }

    // A file with serve keys is fine for admin; what the database refuses exits 1.
    let out = run(
        &[
            "admin",
            "company",
            "create",
            "acme",
            "--config",
            &serve_keys,
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = run(
        &["admin", "company", "create", "acme", "--data-dir", &data],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", show(&out));
    let out = run(
        &[
            "admin",
            "key",
            "create",
            "--company",
            "nobody",
            "--data-dir",
            &data,
        ],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no company named nobody"),
        "{}",
        show(&out)
    );
    let out = run(
        &["admin", "key", "revoke", "IKnothing", "--data-dir", &data],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", show(&out));

    // A database that cannot be opened: exit 3.
    let blocked = dir.path().join("not-a-dir");
    std::fs::write(&blocked, "").unwrap();
    let url = format!("sqlite://{}/intake.db", blocked.display());
    let out = run(
        &[
            "admin",
            "company",
            "list",
            "--database",
            &url,
            "--data-dir",
            &data,
        ],
        &[],
    );
    assert_eq!(code(&out), 3, "{}", show(&out));
}
