//! The CLI's hardening: one server per SQLite data dir, closed pipes, an unreachable
//! PostgreSQL, and the quick start without credentials.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Backend, Site};
use crate::settings::{command, show, Serve};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits for `child` to exit within `limit` (killing it otherwise, and failing).
fn wait_within(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("still running after {limit:?}: {}", show(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_sqlite_data_dir() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let lock = std::fs::read_to_string(site.path().join("serve.lock")).unwrap();
    assert_eq!(lock.trim(), server.pid().to_string());

    // A second server on the same data dir refuses to start, naming the holder.
    let mut args = vec!["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(site.data_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = command(&refs, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_within(second, Duration::from_secs(30));
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!("pid {}", server.pid())),
        "{}",
        show(&out)
    );
    assert!(!stdout(&out).contains("listening on"), "{}", show(&out));

    // Admin commands work beside the server, and the server is unharmed.
    let out = site.intake(&["admin", "company", "list"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(server.get("/v2/crm/integrations").await.status, 200);

    // Once the holder is gone (even killed), the next server starts.
    drop(server);
    let server = site.start(&[]);
    assert_eq!(server.get("/v2/crm/integrations").await.status, 200);
}

/// A reader that goes away early (`intake status … | head -1`, `intake get … | true`): no
/// panic, no exit 101, the command's own exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stdout_is_not_a_panic() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let id = server.register().await;
    let mut file = String::new();
    for i in 0..50 {
        // Every other line broken: the status lists errors, many lines to print.
        if i % 2 == 0 {
            file.push_str(&format!(
                "{{\"objectId\":\"c{i}\",\"modifiedDate\":\"2024-01-02T03:04:05Z\"}}\n"
            ));
        } else {
            file.push_str("not json\n");
        }
    }
    assert_eq!(
        server.upload(id, "CONTACT", "piped", file).await.status,
        201
    );
    server.wait_done(id, "piped").await;

    let conn = [
        "--url",
        &server.url,
        "--access-key",
        &server.key,
        "--access-key-secret",
        &server.secret,
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["status", "piped"],
        vec!["status", "piped", "--json"],
        vec!["get", "--type", "CONTACT", "c0", "c2", "c4", "c1"],
        vec!["integration", "get"],
        vec!["schema", "list"],
    ];
    for mut args in commands {
        args.extend_from_slice(&conn);
        // The exit code when the output is read.
        let read = command(&args, &[]).output().unwrap();
        assert!(!read.stdout.is_empty(), "{args:?}: {}", show(&read));
        let mut child = command(&args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the command prints anything: every write meets a broken pipe.
        drop(child.stdout.take());
        let out = wait_within(child, Duration::from_secs(60));
        assert_ne!(code(&out), 101, "{args:?}: {}", show(&out));
        assert_eq!(code(&out), code(&read), "{args:?}: {}", show(&out));
        assert!(
            !stderr(&out).contains("panicked") && !stderr(&out).contains("Broken pipe"),
            "{args:?}: {}",
            show(&out)
        );
    }
    // Offline commands too.
    let data = site.path().join("gen.ldjson");
    std::fs::write(&data, "not json\n".repeat(5000)).unwrap();
    let data = data.display().to_string();
    for args in [
        vec!["gen", "--type", "DEAL", "--count", "100000"],
        vec!["validate", &data, "--type", "DEAL"],
    ] {
        let mut child = command(&args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = wait_within(child, Duration::from_secs(60));
        assert_ne!(code(&out), 101, "{args:?}: {}", show(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", show(&out));
    }
}

/// `serve` against a PostgreSQL nobody listens on: exit 3, the failure said once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_unreachable_postgres_exits_3_saying_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://postgres@127.0.0.1:1/x";
    let data = dir.path().display().to_string();
    let child = command(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--database",
            url,
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = wait_within(child, Duration::from_secs(90));
    assert_eq!(code(&out), 3, "{}", show(&out));
    let text = stderr(&out);
    let said = format!("intake serve: cannot open database {url}");
    assert_eq!(text.matches(&said).count(), 1, "{}", show(&out));
    let line = text.lines().find(|l| l.contains(&said)).unwrap();
    // No cause repeated ("pool timed out: pool timed out").
    let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} said twice: {line}"
        );
    }
    assert!(!text.contains("panicked"), "{}", show(&out));
    assert!(!stdout(&out).contains("listening on"), "{}", show(&out));
}

/// README's quick start: a fresh server's data dir in the current directory is enough, at
/// the default rate limits, with no credentials given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_finds_the_first_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("intake-data");
    let data_arg = data.display().to_string();
    let _server = Serve::start(
        &["--data-dir", &data_arg, "--listen", "127.0.0.1:0"],
        &[],
        &dir.path().join("server.log"),
    );
    let in_dir = |args: &[&str], cwd: &Path| {
        command(args, &[])
            .current_dir(cwd)
            .output()
            .expect("run intake")
    };

    let out = in_dir(
        &[
            "integration",
            "register",
            "--name",
            "my CRM",
            "--owner-email",
            "me@example.com",
        ],
        dir.path(),
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("Registered integration"),
        "{}",
        show(&out)
    );
    assert_eq!(
        stderr(&out).matches("initial-credentials.json").count(),
        1,
        "said once: {}",
        show(&out)
    );

    std::fs::write(
        dir.path().join("contacts.ldjson"),
        "{\"objectId\":\"c1\",\"modifiedDate\":\"2024-01-03T23:45:57Z\",\"emailAddress\":\"ann@acme.com\"}\n",
    )
    .unwrap();
    let out = in_dir(
        &[
            "upload",
            "contacts.ldjson",
            "--type",
            "CONTACT",
            "--client-request-id",
            "first",
            "--wait",
        ],
        dir.path(),
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("DONE: 1 line succeeded, 0 failed"),
        "{}",
        show(&out)
    );

    // Elsewhere, with the data dir named by the environment.
    let out = command(
        &["get", "--type", "CONTACT", "c1"],
        &[("INTAKE_DATA_DIR", &data_arg)],
    )
    .current_dir("/")
    .output()
    .unwrap();
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("ann@acme.com"), "{}", show(&out));

    // Anything given by hand: the data dir is not looked at.
    let out = in_dir(
        &["integration", "get", "--url", "http://127.0.0.1:1"],
        dir.path(),
    );
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert!(
        !stderr(&out).contains("initial-credentials"),
        "{}",
        show(&out)
    );
}
