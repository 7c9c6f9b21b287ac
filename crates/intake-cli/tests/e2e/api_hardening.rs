//! The server's hardening: a worker that no request can stall, revocation within the
//! credential cache's time, bounded bodies read only after the scope check, the envelope on
//! every error a handler or layer makes and on those hyper answers itself, and a spool
//! shared by several instances.

use std::time::{Duration, Instant};

use intake_model::wire::{ErrorEnvelope, RequestState, RequestStatusReply};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::backend_tests;
use crate::harness::{spool_files, spool_files_once_settled, Backend, Server, Site};

backend_tests!(
    worker_survives_a_nul_line,
    revoked_key_stops_within_the_cache_time,
    bodies_are_read_after_the_scope_check_and_bounded,
    multipart_framing_is_bounded,
    two_data_files_are_refused,
    texts_in_the_clients_terms,
    control_characters_in_inputs,
    errors_of_layers_have_the_envelope,
);

const LINE: &str = "{\"objectId\":\"c1\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}\n";

/// Polls request-status until DONE or FAILED, for at most `limit`.
async fn wait_final(server: &Server, id: i64, crid: &str, limit: Duration) -> RequestStatusReply {
    let started = Instant::now();
    loop {
        let reply = server.status(id, crid).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let status: RequestStatusReply = reply.parse();
        if status.status.is_final() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "request {crid} still {:?} after {limit:?}",
            status.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn worker_survives_a_nul_line(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    // A NUL in a key, twice: the duplicate key's error text holds the NUL.
    let nul = "{\"objectId\":\"a\",\"modifiedDate\":\"2024-01-03T23:45:57Z\",\"x\\u0000\":1,\"x\\u0000\":2}\n";
    assert_eq!(server.upload(id, "CONTACT", "nul", nul).await.status, 201);
    assert_eq!(
        server.upload(id, "CONTACT", "after", LINE).await.status,
        201
    );
    let first = wait_final(&server, id, "nul", Duration::from_secs(60)).await;
    if first.status == RequestState::Failed {
        assert!(first.total_error_count >= 1, "{first:?}");
        assert!(!first.errors.is_empty(), "the cause is listed: {first:?}");
    }
    let after = wait_final(&server, id, "after", Duration::from_secs(60)).await;
    assert_eq!(after.status, RequestState::Done, "{after:?}");
    assert_eq!(after.total_success_count, 1);

    // Also after a restart, nothing is stuck.
    drop(server);
    let server = site.start(&[]);
    assert_eq!(
        server.upload(id, "CONTACT", "later", LINE).await.status,
        201
    );
    let later = wait_final(&server, id, "later", Duration::from_secs(60)).await;
    assert_eq!(later.status, RequestState::Done, "{later:?}");
    assert!(spool_files_once_settled(site.path()).await.is_empty());
}

async fn revoked_key_stops_within_the_cache_time(site: Site) {
    let server = site.start(&["--auth-cache-seconds", "2"]);
    let out = site.intake(&["admin", "key", "create", "--company", "default", "--json"]);
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let other = Server::with_credentials(
        &server,
        key["accessKey"].as_str().unwrap(),
        key["accessKeySecret"].as_str().unwrap(),
    );
    // Polled every 0.3 s, so the cached entry is hit again and again.
    for _ in 0..5 {
        assert_eq!(other.get("/v2/crm/integrations").await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let revoke = site.intake(&["admin", "key", "revoke", key["accessKey"].as_str().unwrap()]);
    assert!(revoke.status.success());
    let revoked_at = Instant::now();
    loop {
        let reply = other.get("/v2/crm/integrations").await;
        if reply.status == 401 {
            assert_eq!(reply.error(), "Invalid credentials");
            break;
        }
        assert_eq!(reply.status, 200);
        // 2 s of cache, one poll interval, and room for a loaded machine.
        assert!(
            revoked_at.elapsed() < Duration::from_millis(2_900),
            "a revoked key still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A response read from a raw connection: status, lowercase head, body.
struct RawReply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` (in the background: the server may stop reading it) and reads one
/// response, within 10 s.
async fn raw_exchange(server: &Server, request: Vec<u8>) -> RawReply {
    let address = server.url.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        // Keep the connection open until the response is read.
        tokio::time::sleep(Duration::from_secs(15)).await;
        drop(writer);
    });
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap())
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return;
                }
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    sending.abort();
    assert!(
        read.is_ok(),
        "no response within 10 s: {:?}",
        String::from_utf8_lossy(&received)
    );
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    RawReply {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line"),
        head: head.to_lowercase(),
        body: body.to_string(),
    }
}

fn basic(server: &Server) -> String {
    let request = server.req(Method::GET, "/").build().unwrap();
    request.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The reply is the envelope, with the request id of its header.
fn envelope(reply: &RawReply) -> ErrorEnvelope {
    assert!(
        reply.head.contains("content-type: application/json"),
        "{}",
        reply.head
    );
    let envelope: ErrorEnvelope = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("not the envelope: {e}: {}", reply.body));
    assert!(
        reply
            .head
            .contains(&format!("x-request-id: {}", envelope.request_id)),
        "{}",
        reply.head
    );
    envelope
}

async fn bodies_are_read_after_the_scope_check_and_bounded(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let out = site.intake(&[
        "admin",
        "token",
        "create",
        "--company",
        "default",
        "--scope",
        "api:crm:upload",
        "--json",
    ]);
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token["token"].as_str().unwrap();
    let get = |authorization: &str| {
        format!(
            "GET /v2/crm/entities?integrationId={id}&objectType=CONTACT HTTP/1.1\r\n\
             Host: intake\r\nAuthorization: {authorization}\r\n\
             Content-Type: application/json\r\nContent-Length: 600000000\r\n\r\n[\"c1\""
        )
        .into_bytes()
    };
    // A 600 MB body is announced and never sent: the answer comes without it.
    let denied = raw_exchange(&server, get(&format!("Bearer {token}"))).await;
    assert_eq!(denied.status, 401, "{}", denied.body);
    // Too large to read and drop: the connection is closed after the answer.
    assert!(
        denied.head.contains("\r\nconnection: close"),
        "{}",
        denied.head
    );
    assert_eq!(
        envelope(&denied).errors,
        ["You don't have permission to use 'api:crm:get-objects' in your app."]
    );
    let too_large = raw_exchange(&server, get(&basic(&server))).await;
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    assert_eq!(
        envelope(&too_large).errors,
        ["Request body is larger than the 1048576-byte limit"]
    );

    // JSON bodies: 1 MiB at most, also when sent whole (raw: the answer may come, and the
    // connection close, before the client has sent it all).
    let with_body = |line: &str, body: &[u8]| {
        let mut request = format!(
            "{line} HTTP/1.1\r\nHost: intake\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            basic(&server),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    };
    let big_name = "n".repeat(2 << 20);
    let registration = serde_json::to_vec(&json!({"name": big_name, "ownerEmail": "a@b.io"}));
    let register = raw_exchange(
        &server,
        with_body("PUT /v2/crm/integrations", &registration.unwrap()),
    )
    .await;
    assert_eq!(register.status, 413);
    assert_eq!(
        envelope(&register).errors,
        ["Request body is larger than the 1048576-byte limit"]
    );
    let ids: Vec<String> = (0..100_000).map(|i| format!("id-{i:010}")).collect();
    let many = raw_exchange(
        &server,
        with_body(
            &format!("GET /v2/crm/entities?integrationId={id}&objectType=CONTACT"),
            &serde_json::to_vec(&ids).unwrap(),
        ),
    )
    .await;
    assert_eq!(many.status, 413);
    envelope(&many);
    // 100 ids fit easily.
    let hundred: Vec<&str> = ids.iter().take(100).map(String::as_str).collect();
    assert_eq!(
        server.objects(id, "CONTACT", &hundred).await["id-0000000099"],
        Value::Null
    );
}

fn upload_head(server: &Server, id: i64, crid: &str, length: u64) -> String {
    format!(
        "POST /v2/crm/entities?integrationId={id}&objectType=CONTACT&clientRequestId={crid} HTTP/1.1\r\n\
         Host: intake\r\nAuthorization: {}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {length}\r\n\r\n",
        basic(server)
    )
}

async fn multipart_framing_is_bounded(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    // Bytes before the first boundary, never ending.
    let mut preamble = upload_head(&server, id, "framing", 100_000_000).into_bytes();
    preamble.extend(std::iter::repeat_n(b'a', 1 << 20));
    let reply = raw_exchange(&server, preamble).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let errors = envelope(&reply).errors;
    assert!(
        errors[0].starts_with("Malformed multipart/form-data body: "),
        "{errors:?}"
    );

    // A part header that never ends.
    let mut header = upload_head(&server, id, "framing", 100_000_000).into_bytes();
    header.extend_from_slice(
        b"--XYZ\r\nContent-Disposition: form-data; name=\"dataFile\"; filename=\"a\"\r\nX-Long: ",
    );
    header.extend(std::iter::repeat_n(b'a', 1 << 20));
    let reply = raw_exchange(&server, header).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let errors = envelope(&reply).errors;
    assert!(
        errors[0].starts_with("Malformed multipart/form-data body: "),
        "{errors:?}"
    );

    // Nothing was kept, and the clientRequestId is still free.
    assert!(spool_files(site.path()).is_empty());
    assert_eq!(
        server.upload(id, "CONTACT", "framing", LINE).await.status,
        201
    );
}

async fn two_data_files_are_refused(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let form = reqwest::multipart::Form::new()
        .part(
            "dataFile",
            reqwest::multipart::Part::bytes(LINE.as_bytes().to_vec()).file_name("a.ldjson"),
        )
        .part(
            "dataFile",
            reqwest::multipart::Part::bytes(LINE.as_bytes().to_vec()).file_name("b.ldjson"),
        );
    let reply = server
        .send(
            server
                .req(
                    Method::POST,
                    &format!(
                        "/v2/crm/entities?integrationId={id}&objectType=CONTACT&clientRequestId=two"
                    ),
                )
                .multipart(form),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        "Malformed multipart/form-data body: the dataFile part appears more than once"
    );
    assert!(spool_files(site.path()).is_empty());
    assert_eq!(server.upload(id, "CONTACT", "two", LINE).await.status, 201);
}

async fn texts_in_the_clients_terms(site: Site) {
    let server = site.start(&[]);
    for body in ["null", "[]", "\"CRM\"", "1"] {
        let reply = server
            .send(
                server
                    .req(Method::PUT, "/v2/crm/integrations")
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.error(),
            "Request body must be a JSON object with name and ownerEmail"
        );
    }
    let id = server.register().await;
    let not_multipart = server
        .send(
            server
                .req(
                    Method::POST,
                    &format!(
                        "/v2/crm/entities?integrationId={id}&objectType=CONTACT&clientRequestId=j"
                    ),
                )
                .json(&json!([LINE])),
        )
        .await;
    assert_eq!(not_multipart.status, 415);
    assert_eq!(not_multipart.error(), "Unsupported Media Type");
}

async fn control_characters_in_inputs(site: Site) {
    let server = site.start(&[]);
    for (body, field) in [
        (json!({"name": "a\u{0}b", "ownerEmail": "a@b.io"}), "name"),
        (
            json!({"name": "ab", "ownerEmail": "a\u{0}@b.io"}),
            "ownerEmail",
        ),
    ] {
        let reply = server
            .send(server.req(Method::PUT, "/v2/crm/integrations").json(&body))
            .await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
        assert_eq!(
            reply.error(),
            format!("Field [{field}] must not contain control characters")
        );
    }
    let id = server.register().await;
    let schema = server
        .send(
            server
                .req(
                    Method::POST,
                    &format!("/v2/crm/entity-schema?integrationId={id}&objectType=ACCOUNT"),
                )
                .json(&json!([{"uniqueName": "t\u{0}", "label": "T", "type": "STRING"}])),
        )
        .await;
    assert_eq!(schema.status, 400, "{:?}", schema.body);
    assert_eq!(
        schema.error(),
        "Field [uniqueName] must not contain control characters"
    );
    let base = format!("/v2/crm/entities?integrationId={id}&objectType=CONTACT");
    let by_body = server
        .send(server.req(Method::GET, &base).json(&["c\u{0}1"]))
        .await;
    assert_eq!(by_body.status, 400, "{:?}", by_body.body);
    assert_eq!(
        by_body.error(),
        "Field [objectsCrmIds] must not contain control characters"
    );
    let by_query = server.get(&format!("{base}&objectsCrmIds=c%001")).await;
    assert_eq!(by_query.status, 400, "{:?}", by_query.body);
    assert_eq!(
        by_query.error(),
        "Field [objectsCrmIds] must not contain control characters"
    );
}

async fn errors_of_layers_have_the_envelope(site: Site) {
    let server = site.start(&[]);
    // Errors the router and its layers make: the envelope.
    let request = |head: &str| format!("{head}\r\nHost: intake\r\n\r\n").into_bytes();
    for (head, status) in [
        ("GET /nothing HTTP/1.1", 404),
        ("PATCH /v2/crm/integrations HTTP/1.1", 405),
        ("GET /v2/crm/integrations HTTP/1.1", 401),
    ] {
        let reply = raw_exchange(&server, request(head)).await;
        assert_eq!(reply.status, status, "{head}: {}", reply.body);
        assert_eq!(envelope(&reply).errors.len(), 1);
    }
    let register = format!(
        "PUT /v2/crm/integrations HTTP/1.1\r\nHost: intake\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{{",
        basic(&server)
    );
    let reply = raw_exchange(&server, register.into_bytes()).await;
    assert_eq!(reply.status, 413);
    envelope(&reply);

    // What hyper answers before a request exists has the envelope too (see
    // `errors_hyper_answers_have_the_envelope`).
    let reply = raw_exchange(
        &server,
        b"PUT /v2/crm/integrations HTTP/1.1\r\nHost: intake\r\nContent-Length: x\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(envelope(&reply).errors, ["Invalid Content-Length header"]);
}

/// Reads one response from `stream`: until the server closes the connection when
/// `to_close`, else until the body of its `content-length` is in. Within 10 s.
async fn read_reply(case: &str, stream: &mut (impl AsyncRead + Unpin), to_close: bool) -> RawReply {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            if let (false, Some(end)) =
                (to_close, received.windows(4).position(|w| w == b"\r\n\r\n"))
            {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if received.len() >= end + 4 + length {
                    return;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(err) => panic!(
                    "{case}: reset ({err}) after {:?}",
                    String::from_utf8_lossy(&received)
                ),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{case}: no whole response within 10 s: {:?}",
        String::from_utf8_lossy(&received)
    );
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    RawReply {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line"),
        head: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// The answer to a request hyper refuses: the envelope with a fresh id and `text`, a
/// `content-length` that is the body's, and the connection closed after it.
fn assert_refused(case: &str, reply: &RawReply, status: u16, text: &str) {
    assert_eq!(
        reply.status, status,
        "{case}: {}\r\n\r\n{}",
        reply.head, reply.body
    );
    let envelope = envelope(reply);
    assert_eq!(envelope.errors, [text], "{case}: {}", reply.body);
    assert!(
        (17..=19).contains(&envelope.request_id.len())
            && envelope
                .request_id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{:?}",
        envelope.request_id
    );
    assert!(
        reply
            .head
            .contains(&format!("\r\ncontent-length: {}\r\n", reply.body.len())),
        "{}",
        reply.head
    );
    assert!(
        reply.head.contains("\r\nconnection: close"),
        "{}",
        reply.head
    );
}

/// An answer given before its request's body was read (here a 415 for the wrong content
/// type, a 413 over the activity limit) says `Connection: close`, so a keep-alive client
/// never sends its next request down the connection hyper is closing: each of many such
/// pairs on one pooled client gets its answer (without the header, some next requests met
/// a broken pipe). An answer after the whole body was read keeps the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_before_the_body_close_the_connection() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    // 120 calls within a second or so: over the default limit of /intake/v1.
    let server = site.start(&["--intake-rate-limit-per-second", "0"]);
    server.register().await;
    let batch = |content_type: &'static str, body: String| {
        server
            .req(Method::POST, "/intake/v1/associations/batch")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let wrong_type = "{}\n".repeat(20_000);
    let too_many = "{}\n".repeat(100_001);
    for round in 0..40 {
        let refused = batch("text/csv", wrong_type.clone()).await.unwrap();
        assert_eq!(refused.status(), 415, "round {round}");
        assert_eq!(refused.headers()["connection"], "close", "round {round}");
        let over = batch("application/x-ndjson", too_many.clone())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(over.status(), 413, "round {round}");
        let answered = batch("application/x-ndjson", String::new())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(answered.status(), 200, "round {round}");
        assert!(
            answered.headers().get("connection").is_none(),
            "round {round}: {:?}",
            answered.headers()
        );
    }
}

/// A refusal decided before the body is read (a used clientRequestId) waits for a small
/// body to come in and reads it, rather than closing a connection with unread bytes in it:
/// the kernel would reset it, and a client still writing its body would see a broken pipe
/// or a reset instead of the 409 (and could take its retry's 409 for an earlier try that
/// got through). The connection then closes cleanly, as the answer says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_a_small_body_reads_it_then_closes_cleanly() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let id = server.register().await;
    let first = server.upload(id, "CONTACT", "used", LINE).await;
    assert_eq!(first.status, 201, "{:?}", first.body);

    let body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"dataFile\"; filename=\"f.ldjson\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n{LINE}\r\n--b--\r\n"
    );
    let head = format!(
        "POST /v2/crm/entities?integrationId={id}&objectType=CONTACT&clientRequestId=used \
         HTTP/1.1\r\nHost: intake\r\nAuthorization: {}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        basic(&server),
        body.len()
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server has the head and can refuse now; the body comes a little later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    // Read to the end of the connection: a reset panics in read_reply.
    let refused = read_reply("used clientRequestId", &mut stream, true).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        envelope(&refused).errors,
        ["Client request id has already been used"]
    );
    assert!(
        refused.head.contains("connection: close"),
        "{}",
        refused.head
    );
}

/// The requests hyper cannot parse, which it answers itself before a request exists: the
/// answer is the envelope all the same, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_hyper_answers_have_the_envelope() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let address = server.url.trim_start_matches("http://").to_string();
    let head =
        |line: &str, headers: &str| format!("{line}\r\nHost: intake\r\n{headers}\r\n").into_bytes();
    let many_headers: String = (0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    // Over hyper's 400 KB read buffer whatever the reads: it may take a head up to about
    // twice that in when it comes in large reads.
    let huge_header = format!("X-Huge: {}\r\n", "v".repeat(2_000_000));
    let long_query = format!("GET /health?q={} HTTP/1.1", "a".repeat(70_000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "Content-Length: abc",
            head(
                "PUT /v2/crm/integrations HTTP/1.1",
                "Content-Length: abc\r\n",
            ),
            400,
            "Invalid Content-Length header",
        ),
        (
            "two Content-Lengths",
            [
                head(
                    "PUT /v2/crm/integrations HTTP/1.1",
                    "Content-Length: 2\r\nContent-Length: 3\r\n",
                ),
                b"{}".to_vec(),
            ]
            .concat(),
            400,
            "Invalid Content-Length header",
        ),
        (
            "0xFF in the target",
            head("GET /he\u{0}lth HTTP/1.1", "")
                .into_iter()
                .map(|b| if b == 0 { 0xFF } else { b })
                .collect(),
            400,
            "Invalid request URI",
        ),
        (
            "a long query",
            head(&long_query, ""),
            414,
            "Request URI too long",
        ),
        (
            "200 headers",
            head("GET /health HTTP/1.1", &many_headers),
            431,
            "Request header fields too large",
        ),
        (
            "a 2 MB header",
            head("GET /health HTTP/1.1", &huge_header),
            431,
            "Request header fields too large",
        ),
    ];
    for (case, request, status, text) in cases {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        // In the background: the server stops reading at the error. The connection stays
        // open until the answer is read.
        let sending = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            tokio::time::sleep(Duration::from_secs(15)).await;
            drop(writer);
        });
        let reply = read_reply(case, &mut reader, true).await;
        sending.abort();
        assert_refused(case, &reply, status, text);
    }

    // On a connection that served a request first, the same.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(&head("GET /health HTTP/1.1", ""))
        .await
        .unwrap();
    let served = read_reply("before", &mut stream, false).await;
    assert_eq!(served.status, 200, "{}", served.body);
    stream
        .write_all(&head("GET /health HTTP/1.1", "Content-Length: -1\r\n"))
        .await
        .unwrap();
    assert_refused(
        "after a request",
        &read_reply("after a request", &mut stream, true).await,
        400,
        "Invalid Content-Length header",
    );

    // And the server goes on serving, with the envelope on its own errors as before.
    assert_eq!(server.get("/health").await.status, 200);
    let reply = raw_exchange(&server, head("GET /nothing HTTP/1.1", "")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(envelope(&reply).errors, ["Not Found"]);
    assert!(!reply.head.contains("connection: close"), "{}", reply.head);
}
/// Several instances share one spool: at start, an instance removes only the `.part` files
/// that no upload can still be writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_cleanup_keeps_other_instances_uploads() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let spool = site.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .replace(['.', '/'], "_");
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let name = |n: u8, owner: &str| format!("{n:032x}.ldjson{owner}.part");
    let another_host = name(1, ".otherhost-12345");
    let gone_process = name(2, &format!(".{host}-{gone_pid}"));
    let old = name(3, ".otherhost-1");
    let no_owner = name(4, "");
    let live_process = name(5, &format!(".{host}-{}", std::process::id()));
    for file in [&another_host, &gone_process, &old, &no_owner, &live_process] {
        std::fs::write(spool.join(file), LINE).unwrap();
    }
    let touched = std::process::Command::new("touch")
        .args(["-d", "25 hours ago"])
        .arg(spool.join(&old))
        .status()
        .unwrap();
    assert!(touched.success());

    let server = site.start(&[]);
    let mut left: Vec<String> = spool_files(site.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [another_host, no_owner, live_process]);

    // Uploads still go through, and leave nothing behind.
    let id = server.register().await;
    assert_eq!(server.upload(id, "CONTACT", "c", LINE).await.status, 201);
    server.wait_done(id, "c").await;
    assert_eq!(spool_files(site.path()).len(), 3);
}

/// A complete spool file whose request was never registered (a crash between the file's
/// rename and the request's insert), or whose request is finished, is removed at start once
/// it is old enough; a young one, or one named by an earlier version, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_spool_files_are_removed() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let mut server = site.start(&[]);
    let id = server.register().await;
    assert_eq!(server.upload(id, "CONTACT", "done", LINE).await.status, 201);
    server.wait_done(id, "done").await;
    // A request whose errors generation is pointed at: its files stay, however old.
    assert_eq!(
        server.upload(id, "CONTACT", "bad", "{}\n").await.status,
        201
    );
    server.wait_done(id, "bad").await;
    assert!(server.terminate().success());
    let sidecar_files = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".errors") || n.ends_with(".index") || n.ends_with(".failed"))
            .collect();
        names.sort();
        names
    };
    let kept_sidecar = sidecar_files(site.path());
    assert!(!kept_sidecar.is_empty());
    let out = site.intake(&["admin", "company", "list", "--json"]);
    let companies: Value = serde_json::from_slice(&out.stdout).unwrap();
    let company = companies[0]["id"].as_i64().unwrap();

    let spool = site.path().join("spool");
    let never = format!("{:032x}.{company}.never.ldjson", 1);
    let finished = format!("{:032x}.{company}.done.ldjson", 2);
    let young = format!("{:032x}.{company}.young.ldjson", 3);
    let earlier_version = format!("{:032x}.ldjson", 4);
    for file in [&never, &finished, &young, &earlier_version] {
        std::fs::write(spool.join(file), LINE).unwrap();
    }
    // The generations of a worker that died before committing them: removed when old.
    let dead_generation = [
        format!("{finished}.0badcafe.errors"),
        format!("{finished}.0badcafe.index"),
        format!("{never}.12345678.errors"),
    ];
    let young_generation = format!("{young}.87654321.errors");
    for file in dead_generation.iter().chain([&young_generation]) {
        std::fs::write(spool.join(file), "{}\n").unwrap();
    }
    let spool_path = spool.clone();
    let old_files = [&never, &finished, &earlier_version]
        .into_iter()
        .cloned()
        .chain(dead_generation.iter().cloned())
        .chain(kept_sidecar.iter().cloned());
    for file in old_files {
        let touched = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(spool_path.join(file))
            .status()
            .unwrap();
        assert!(touched.success());
    }

    let _server = site.start(&[]);
    let mut expected = vec![young, earlier_version];
    expected.sort();
    let started = Instant::now();
    loop {
        let mut left: Vec<String> = spool_files(site.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut sidecars_expected = kept_sidecar.clone();
        sidecars_expected.push(young_generation.clone());
        sidecars_expected.sort();
        let sidecars_left = sidecar_files(site.path());
        if left == expected && sidecars_left == sidecars_expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "left in the spool: {left:?}, {sidecars_left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A lost database connection is transient: the request is resumed, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_are_retried_not_failed() {
    use sqlx::Connection;
    let Some(site) = Site::new(Backend::Postgres).await else {
        return;
    };
    let server = site.start(&["--batch-lines", "2000"]);
    let id = server.register().await;
    let lines = 200_000;
    let file: String = (0..lines)
        .map(|i| format!("{{\"objectId\":\"c{i}\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}}\n"))
        .collect();
    assert_eq!(server.upload(id, "CONTACT", "big", file).await.status, 201);
    let mut admin = sqlx::PgConnection::connect(&site.database).await.unwrap();
    let started = Instant::now();
    let mut cut = 0;
    loop {
        let reply = server.status(id, "big").await;
        if reply.status == 200 {
            let status: RequestStatusReply = reply.parse();
            if status.status.is_final() {
                assert_eq!(status.status, RequestState::Done, "{status:?}");
                assert_eq!(status.total_success_count, lines);
                assert!(cut > 0, "finished before its connections could be cut");
                break;
            }
            if status.status == RequestState::InProgress && cut < 3 {
                // Every connection of the server to its database, at once.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .execute(&mut admin)
                .await
                .unwrap();
                cut += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
