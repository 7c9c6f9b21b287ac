//! Webhooks over real HTTP on both backends, against a real receiver on loopback (the
//! server runs with --webhook-allow-private-networks): signed deliveries, retries after a
//! 500 and after a hang, a delivery across a restart while the receiver was down, the
//! delivery log, and the 400s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::backend_tests;
use crate::harness::{Server, Site};

backend_tests!(
    a_finished_request_is_delivered_signed,
    a_500_and_a_hang_are_retried_and_the_worker_goes_on,
    a_delivery_survives_a_restart_while_the_receiver_is_down,
    bad_webhooks_are_refused,
);

const SECRET: &str = "a-secret-of-24-characters";

/// One delivery as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How the receiver answers its n-th request (0-based): a status, or a hang of 15 s.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Hang,
}

struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A receiver on 127.0.0.1 (`port` 0 for any): answers per `script`, then 200.
async fn receiver(port: u16, script: Vec<Answer>) -> Receiver {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            let script = script.clone();
            async move {
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Got {
                        headers,
                        body: body.to_vec(),
                    });
                    seen.len() - 1
                };
                match script.get(n).copied().unwrap_or(Answer::Status(200)) {
                    Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(15)).await;
                        StatusCode::OK
                    }
                }
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver { url, got, task }
}

fn check_signature(got: &Got) -> Value {
    let signature = got.headers["intake-signature"].to_str().unwrap();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature {signature}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&got.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature is the body's HMAC with the secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t.parse::<i64>().unwrap()).abs() < 120, "t={t}");
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        got.headers["intake-delivery"].to_str().unwrap(),
        body["deliveryId"].as_str().unwrap()
    );
    body
}

async fn add_webhook(server: &Server, url: &str) -> String {
    let reply = server
        .post_json(
            "/intake/v1/webhooks",
            &json!({"url": url, "secret": SECRET}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["webhookId"].as_str().unwrap().to_owned()
}

async fn upload_and_wait(server: &Server, integration: i64, crid: &str) {
    let line = "{\"objectId\":\"c1\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n";
    assert_eq!(
        server
            .upload(integration, "CONTACT", crid, line)
            .await
            .status,
        201
    );
    server.wait_done(integration, crid).await;
}

/// Waits until the webhook's delivery log has one for `crid` in `state`.
async fn wait_delivery(server: &Server, webhook: &str, crid: &str, state: &str) -> Value {
    for _ in 0..1200 {
        let log = server
            .get(&format!("/intake/v1/webhooks/{webhook}/deliveries"))
            .await;
        assert_eq!(log.status, 200, "{}", log.text);
        if let Some(d) = log.body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["clientRequestId"] == crid && d["state"] == state)
        {
            return d.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {state} delivery of {crid}");
}

const ALLOW: &str = "--webhook-allow-private-networks";

async fn a_finished_request_is_delivered_signed(site: Site) {
    let hook = receiver(0, vec![]).await;
    let server = site.start(&[ALLOW]);
    let integration = server.register().await;
    let id = add_webhook(&server, &hook.url).await;
    let listed = server.get("/intake/v1/webhooks").await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["webhooks"][0]["webhookId"], id);
    assert_eq!(listed.body["webhooks"][0]["url"], hook.url);
    assert!(!listed.text.contains(SECRET), "{}", listed.text);
    upload_and_wait(&server, integration, "r1").await;
    let delivery = wait_delivery(&server, &id, "r1", "DELIVERED").await;
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["lastStatus"], 200);
    assert_eq!(delivery["event"], "request.finished");
    assert!(delivery["deliveredAt"].is_string());
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let body = check_signature(&got[0]);
    assert_eq!(body["event"], "request.finished");
    assert_eq!(body["deliveryId"], delivery["deliveryId"]);
    assert_eq!(body["integrationId"], integration);
    assert_eq!(body["request"]["clientRequestId"], "r1");
    assert_eq!(body["request"]["status"], "DONE");
    assert_eq!(body["request"]["totalSuccessCount"], 1);
    // The metric counts it.
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("intake_webhook_deliveries_total{outcome=\"delivered\"} 1"),
        "{text}"
    );
    // Removed: no more deliveries, its log is gone.
    let removed = server
        .req(
            reqwest::Method::DELETE,
            &format!("/intake/v1/webhooks/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let again = server
        .send(server.req(
            reqwest::Method::DELETE,
            &format!("/intake/v1/webhooks/{id}"),
        ))
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.error(), "No webhook with this webhookId");
    let log = server
        .get(&format!("/intake/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(log.status, 404);
    // The CLI: add, list, deliveries, remove.
    let out = server
        .cli(&["webhook", "add", &hook.url, "--secret", SECRET])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = server.cli(&["webhook", "list", "--json"]).await;
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli_id = listed["webhookId"].as_str().unwrap().to_owned();
    upload_and_wait(&server, integration, "r2").await;
    wait_delivery(&server, &cli_id, "r2", "DELIVERED").await;
    let out = server.cli(&["webhook", "deliveries", &cli_id]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("r2") && text.contains("DELIVERED"), "{text}");
    let out = server.cli(&["webhook", "remove", &cli_id]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = server.cli(&["webhook", "remove", &cli_id]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Another company sees none of it.
    let other = site.other_company(&server, "other");
    assert_eq!(
        other.get("/intake/v1/webhooks").await.body["webhooks"],
        json!([])
    );
}

async fn a_500_and_a_hang_are_retried_and_the_worker_goes_on(site: Site) {
    let failing = receiver(0, vec![Answer::Status(500)]).await;
    let hanging = receiver(0, vec![Answer::Hang]).await;
    let server = site.start(&[ALLOW, "--webhook-retry-base-ms", "100"]);
    let integration = server.register().await;
    let on_500 = add_webhook(&server, &failing.url).await;
    let on_hang = add_webhook(&server, &hanging.url).await;
    upload_and_wait(&server, integration, "r1").await;
    // The 500 is retried and arrives.
    let delivered = wait_delivery(&server, &on_500, "r1", "DELIVERED").await;
    assert_eq!(delivered["attempts"], 2);
    assert_eq!(delivered["lastStatus"], 200);
    let got = failing.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (first, second) = (check_signature(&got[0]), check_signature(&got[1]));
    assert_eq!(first["deliveryId"], second["deliveryId"]);
    // While the other receiver hangs, the worker finishes more requests.
    upload_and_wait(&server, integration, "r2").await;
    upload_and_wait(&server, integration, "r3").await;
    // The hang times out (10 s), is retried and arrives.
    let delivered = wait_delivery(&server, &on_hang, "r1", "DELIVERED").await;
    assert_eq!(delivered["attempts"], 2);
    for crid in ["r2", "r3"] {
        wait_delivery(&server, &on_hang, crid, "DELIVERED").await;
    }
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("intake_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{text}"
    );
}

async fn a_delivery_survives_a_restart_while_the_receiver_is_down(site: Site) {
    // A port nothing listens on (yet).
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let flags = [ALLOW, "--webhook-retry-base-ms", "2000"];
    let mut server = site.start(&flags);
    let integration = server.register().await;
    let id = add_webhook(&server, &format!("http://127.0.0.1:{port}/hook")).await;
    upload_and_wait(&server, integration, "r1").await;
    // The first attempt finds no receiver.
    for _ in 0..400 {
        let log = server
            .get(&format!("/intake/v1/webhooks/{id}/deliveries"))
            .await;
        let d = &log.body["deliveries"][0];
        if d["attempts"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(d["state"], "PENDING");
            assert_eq!(d["lastStatus"], Value::Null);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.kill();
    let hook = receiver(port, vec![]).await;
    let server = site.start(&flags);
    let delivered = wait_delivery(&server, &id, "r1", "DELIVERED").await;
    assert!(delivered["attempts"].as_u64().unwrap() >= 2, "{delivered}");
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(check_signature(&got[0])["request"]["clientRequestId"], "r1");
    // Registered with the flag, the target is skipped by a server without it: FAILED,
    // never sent.
    drop(server);
    let server = site.start(&[]);
    upload_and_wait(&server, integration, "r2").await;
    let skipped = wait_delivery(&server, &id, "r2", "FAILED").await;
    assert_eq!(skipped["attempts"], 0);
    assert_eq!(skipped["lastStatus"], Value::Null);
    assert_eq!(hook.got.lock().unwrap().len(), 1);
}

async fn bad_webhooks_are_refused(site: Site) {
    let server = site.start(&[]);
    server.register().await;
    for (url, secret, text) in [
        (
            "ftp://example.com/x",
            SECRET,
            "Field [url] must be an absolute http(s) URL",
        ),
        (
            "not a url",
            SECRET,
            "Field [url] must be an absolute http(s) URL",
        ),
        (
            "https://93.184.215.14/x",
            "short",
            "Field [secret] must be at least 16 characters",
        ),
        (
            "https://no-such-host.invalid/x",
            SECRET,
            "Field [url] cannot be resolved",
        ),
        (
            "http://127.0.0.1:9/x",
            SECRET,
            "loopback or private address (127.0.0.1)",
        ),
        (
            "http://localhost:9/x",
            SECRET,
            "loopback or private address",
        ),
        ("http://10.1.2.3/x", SECRET, "(10.1.2.3)"),
        ("http://172.16.0.1/x", SECRET, "(172.16.0.1)"),
        ("http://192.168.1.1/x", SECRET, "(192.168.1.1)"),
        ("http://169.254.169.254/x", SECRET, "(169.254.169.254)"),
        ("http://100.64.0.1/x", SECRET, "(100.64.0.1)"),
        ("http://0.0.0.0/x", SECRET, "(0.0.0.0)"),
        ("http://[::1]/x", SECRET, "(::1)"),
        ("http://[fd00::1]/x", SECRET, "(fd00::1)"),
        ("http://[fe80::1]/x", SECRET, "(fe80::1)"),
        ("http://[::ffff:127.0.0.1]/x", SECRET, "(::ffff:127.0.0.1)"),
    ] {
        let reply = server
            .post_json(
                "/intake/v1/webhooks",
                &json!({"url": url, "secret": secret}),
            )
            .await;
        assert_eq!(reply.status, 400, "{url}: {}", reply.text);
        assert!(reply.error().contains(text), "{url}: {}", reply.text);
    }
    for body in [
        json!({"url": "https://93.184.215.14/x"}),
        json!({"url": 5, "secret": SECRET}),
    ] {
        let reply = server.post_json("/intake/v1/webhooks", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
    }
    assert_eq!(
        server.get("/intake/v1/webhooks").await.body["webhooks"],
        json!([])
    );
    // A public address is taken (nothing is sent until a request finishes).
    let reply = server
        .post_json(
            "/intake/v1/webhooks",
            &json!({"url": "https://93.184.215.14/hook", "secret": SECRET}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    for path in [
        "/intake/v1/webhooks/999999/deliveries",
        "/intake/v1/webhooks/x/deliveries",
    ] {
        assert_eq!(server.get(path).await.status, 404, "{path}");
    }
    // Writing needs intake:write.
    let token = site.token("intake:read");
    let denied = server
        .http
        .post(server.url("/intake/v1/webhooks"))
        .bearer_auth(token)
        .json(&json!({"url": "https://93.184.215.14/hook", "secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
}
