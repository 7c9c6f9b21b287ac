//! Timeouts and limits on connections: header read, keep-alive idle, body idle, the cap on
//! connections, and the shutdown deadline, over raw TCP and real HTTP.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{spool_files, Backend, Server, Site};

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Reads until the peer closes (Ok(0) or an error) or `limit` passes; returns when it
/// closed, `None` if it did not.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends GET /health on `stream` and reads its whole response.
async fn health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("\"ok\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_read_and_keep_alive_timeouts() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[
        "--header-read-timeout-seconds",
        "1",
        "--keep-alive-timeout-seconds",
        "3",
    ]);

    // Half a header: closed after the header-read timeout.
    let mut half = TcpStream::connect(address(&server)).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut half, Duration::from_secs(10))
        .await
        .expect("a half header is closed");
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );

    // Nothing at all: the same.
    let mut silent = TcpStream::connect(address(&server)).await.unwrap();
    let closed = closed_within(&mut silent, Duration::from_secs(10))
        .await
        .expect("a silent connection is closed");
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );

    // A keep-alive connection between requests has the keep-alive timeout, not the
    // header-read one.
    let mut kept = TcpStream::connect(address(&server)).await.unwrap();
    assert!(health(&mut kept).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(health(&mut kept).await.starts_with("HTTP/1.1 200"));
    let closed = closed_within(&mut kept, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(
        closed >= Duration::from_millis(2800),
        "closed after {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[
        "--max-connections",
        "2",
        "--header-read-timeout-seconds",
        "60",
    ]);
    let mut first = TcpStream::connect(address(&server)).await.unwrap();
    let second = TcpStream::connect(address(&server)).await.unwrap();
    assert!(health(&mut first).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A third connection is not served while two are open.
    let mut third = TcpStream::connect(address(&server)).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(1500), third.read(&mut buf)).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");

    // Once one closes, it is.
    drop(second);
    let start = Instant::now();
    let mut response = Vec::new();
    while !String::from_utf8_lossy(&response).contains("\"ok\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
            .await
            .expect("served once a connection closed")
            .unwrap();
        assert!(n > 0);
        response.extend_from_slice(&buf[..n]);
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
}

/// A multipart upload whose file comes in `chunks` lines, `pause` apart.
fn trickling_upload(
    server: &Server,
    integration: i64,
    crid: &str,
    chunks: usize,
    pause: Duration,
) -> reqwest::RequestBuilder {
    let stream = futures_util::stream::unfold(0usize, move |i| async move {
        if i >= chunks {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let line = format!("{{\"objectId\":\"t{i}\",\"modifiedDate\":\"2024-01-02T03:04:05Z\"}}\n");
        Some((Ok::<Vec<u8>, std::io::Error>(line.into_bytes()), i + 1))
    });
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("trickle.ldjson");
    let form = reqwest::multipart::Form::new().part("dataFile", part);
    server
        .req(
            reqwest::Method::POST,
            &format!(
                "/v2/crm/entities?integrationId={integration}&objectType=CONTACT&clientRequestId={crid}"
            ),
        )
        .multipart(form)
}

/// Waits until the spool holds a file being received.
async fn until_receiving(site: &Site) {
    for _ in 0..200 {
        if !spool_files(site.path()).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the upload never reached the spool");
}

/// SIGTERM while an upload trickles in: the server stops within the shutdown deadline, and
/// the half upload leaves no request and no spool file; its clientRequestId stays unused.
async fn sigterm_with_a_trickling_upload(site: Site) {
    let mut server = site.start(&["--shutdown-timeout-seconds", "2"]);
    let id = server.register().await;
    let upload = trickling_upload(&server, id, "trickle", 1000, Duration::from_millis(100));
    let sent = tokio::spawn(async move { upload.send().await });
    until_receiving(&site).await;

    let start = Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        let exit = server.terminate();
        (exit, server)
    })
    .await
    .unwrap();
    let took = start.elapsed();
    assert!(exit.0.success(), "{:?}", exit.0);
    assert!(took < Duration::from_secs(6), "stopped after {took:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "the request in flight had until the deadline: {took:?}"
    );
    let reply = sent.await.unwrap();
    assert!(
        reply.as_ref().map_or(true, |r| !r.status().is_success()),
        "{reply:?}"
    );
    assert_eq!(spool_files(site.path()), Vec::<std::path::PathBuf>::new());

    let server = site.start(&[]);
    assert_ne!(server.status(id, "trickle").await.status, 200);
    let again = server
        .upload(
            id,
            "CONTACT",
            "trickle",
            "{\"objectId\":\"t\",\"modifiedDate\":\"2024-01-02T03:04:05Z\"}\n",
        )
        .await;
    assert_eq!(again.status, 201, "{:?}", again.body);
}

/// A client that stops sending its body: the upload fails after the body-idle timeout and
/// leaves nothing.
async fn stalled_upload_fails_after_the_body_idle_timeout(site: Site) {
    let server = site.start(&["--body-idle-timeout-seconds", "1"]);
    let id = server.register().await;
    let upload = trickling_upload(&server, id, "stalled", 2, Duration::from_secs(5));
    let start = Instant::now();
    let reply = upload.send().await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "failed after {took:?}");
    assert!(
        reply.as_ref().map_or(true, |r| !r.status().is_success()),
        "{reply:?}"
    );
    // Nothing left: no spool file, no request, the clientRequestId unused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(spool_files(site.path()), Vec::<std::path::PathBuf>::new());
    assert_ne!(server.status(id, "stalled").await.status, 200);
    let again = server
        .upload(
            id,
            "CONTACT",
            "stalled",
            "{\"objectId\":\"t\",\"modifiedDate\":\"2024-01-02T03:04:05Z\"}\n",
        )
        .await;
    assert_eq!(again.status, 201, "{:?}", again.body);
}

crate::backend_tests!(
    sigterm_with_a_trickling_upload,
    stalled_upload_fails_after_the_body_idle_timeout
);

/// More connections than the server has file descriptors: `accept` fails with EMFILE for
/// the excess, the loop backs off and goes on, and once idle connections time out new
/// requests are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_goes_on_past_the_file_descriptor_limit() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 64 && exec \"$0\" \"$@\"",
            crate::harness::BIN,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--rate-limit-per-second",
            "0",
            "--header-read-timeout-seconds",
            "1",
        ])
        .env_remove("INTAKE_CONFIG")
        .env_remove("INTAKE_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("listening").unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let address = url.trim_start_matches("http://").to_string();

    // Twice the descriptors the server has, all silent.
    let mut idle = Vec::new();
    for _ in 0..128 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let start = Instant::now();
    let reply = http
        .get(format!("{url}/health"))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    let reply = reply.unwrap_or_else(|e| panic!("not served: {e}\n{log}"));
    assert_eq!(reply.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(log.contains("accept failed"), "EMFILE was met: {log}");
    drop(idle);
}
