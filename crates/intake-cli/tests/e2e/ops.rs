//! The operator's endpoints over real HTTP: `/ready` against a missing spool, an unapplied
//! migration and a dropped database (while `/health` stays 200), `/metrics` counters moved
//! by an upload by exactly its amounts (and switched off), JSON logs, `/openapi.json`
//! against the router's every route, Swagger UI at `/docs` with nothing from outside, and
//! the sample config file accepted by the server.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Backend, Server, Site};

crate::backend_tests!(
    ready_names_what_is_not_ready,
    metrics_move_by_what_an_upload_did,
    json_logs_have_a_line_per_request_and_per_finished_upload,
);

/// An answer read whole, whatever its body.
async fn fetch(server: &Server, path: &str) -> (u16, String, String) {
    let response = server
        .http
        .get(server.url(path))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// `GET path` without credentials, its body JSON.
async fn anonymous(server: &Server, path: &str) -> crate::harness::Reply {
    server.send(server.http.get(server.url(path))).await
}

/// Runs one statement on the site's database, beside the server.
async fn execute(site: &Site, sql: &str) {
    if site.database.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&site.database).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&site.database).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn ready_names_what_is_not_ready(site: Site) {
    let server = site.start(&[]);
    let ready = anonymous(&server, "/ready").await;
    assert_eq!(
        (ready.status, ready.text.as_str()),
        (200, r#"{"status":"ready"}"#)
    );

    // The spool is a file now: nothing can be written there.
    let spool = site.path().join("spool");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, "not a directory").unwrap();
    let ready = anonymous(&server, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let errors = ready.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spool: "), "{errors:?}");
    assert!(!ready.body["requestId"].as_str().unwrap().is_empty());
    assert_eq!(anonymous(&server, "/health").await.status, 200);
    std::fs::remove_file(&spool).unwrap();
    std::fs::create_dir(&spool).unwrap();
    assert_eq!(anonymous(&server, "/ready").await.status, 200);

    // A migration of this version that the database does not have.
    execute(&site, "DELETE FROM _sqlx_migrations WHERE version = 5").await;
    let ready = anonymous(&server, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(
        ready.errors(),
        vec!["migrations: not applied: 0005".to_string()]
    );
    assert_eq!(anonymous(&server, "/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_goes_503_when_the_postgres_database_is_dropped() {
    let Some(site) = Site::new(Backend::Postgres).await else {
        return;
    };
    let server = site.start(&[]);
    assert_eq!(anonymous(&server, "/ready").await.status, 200);
    let name = site
        .database
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(&intake_store::testing::base_url())
        .await
        .unwrap();
    use sqlx::Connection;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    let ready = anonymous(&server, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let errors = ready.errors();
    assert!(
        !errors.is_empty() && errors.iter().all(|e| e.starts_with("database: ")),
        "{errors:?}"
    );
    let health = anonymous(&server, "/health").await;
    assert_eq!(
        (health.status, health.text.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
}

/// The samples of a scrape: each series (name and labels, as written) and its value.
async fn scrape(server: &Server) -> Vec<(String, f64)> {
    let (status, content_type, text) = fetch(server, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert_eq!(text.lines().last(), Some("# EOF"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// The value of `series` (0 when absent).
fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

async fn metrics_move_by_what_an_upload_did(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let before = scrape(&server).await;
    for name in [
        "intake_http_requests",
        "intake_http_request_duration_seconds",
        "intake_upload_bytes",
        "intake_lines_processed",
        "intake_requests",
        "intake_request_processing_seconds",
        "intake_lease_takeovers",
        "intake_webhook_deliveries",
    ] {
        let (_, _, text) = fetch(&server, "/metrics").await;
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} "))),
            "{name} is not registered:\n{text}"
        );
    }

    let file = "{\"objectId\":\"c1\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n\
                {\"objectId\":\"c2\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n\
                {\"objectId\":\"c3\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n\
                {\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n";
    let reply = server.upload(id, "CONTACT", "m1", file).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let done = server.wait_done(id, "m1").await;
    assert_eq!(done.body["status"], "FAILED", "{}", done.text);
    assert_eq!(anonymous(&server, "/no/such/path").await.status, 404);

    // The worker counts the request's time just after its final status is stored.
    let processed = "intake_request_processing_seconds_count";
    let mut after = scrape(&server).await;
    for _ in 0..100 {
        if value(&after, processed) > value(&before, processed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape(&server).await;
    }
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("intake_upload_bytes_total"), file.len() as f64);
    assert_eq!(
        moved(r#"intake_lines_processed_total{object_type="CONTACT",outcome="success"}"#),
        3.0
    );
    assert_eq!(
        moved(r#"intake_lines_processed_total{object_type="CONTACT",outcome="error"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"intake_http_requests_total{route="/v2/crm/entities",method="POST",status="201"}"#),
        1.0
    );
    assert!(
        moved(
            r#"intake_http_requests_total{route="/v2/crm/request-status",method="GET",status="200"}"#
        ) >= 1.0
    );
    assert_eq!(
        moved(r#"intake_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"intake_http_request_duration_seconds_count{route="/v2/crm/entities"}"#),
        1.0
    );
    // Every scrape before this one is counted too.
    assert!(
        moved(r#"intake_http_requests_total{route="/metrics",method="GET",status="200"}"#) >= 1.0
    );
    assert_eq!(moved(processed), 1.0);
    assert_eq!(value(&after, "intake_lease_takeovers_total"), 0.0);
    for (status, count) in [
        ("PENDING", 0.0),
        ("IN_PROGRESS", 0.0),
        ("DONE", 0.0),
        ("FAILED", 1.0),
    ] {
        assert_eq!(
            value(&after, &format!("intake_requests{{status=\"{status}\"}}")),
            count,
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&["--metrics", "false"]);
    let reply = anonymous(&server, "/metrics").await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.errors(), vec!["Not Found".to_string()]);
}

/// The server's stderr, each line as JSON (the harness writes it to `server-*.log`).
fn json_log_lines(site: &Site) -> Vec<Value> {
    let log = std::fs::read_dir(site.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("server-")
        })
        .expect("the server's log");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

async fn json_logs_have_a_line_per_request_and_per_finished_upload(site: Site) {
    let server = site.start(&["--log-format", "json"]);
    let id = server.register().await;
    let file = "{\"objectId\":\"a1\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n\
                {\"objectId\":\"a2\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n\
                {\"objectId\":\"a3\"}\n";
    let reply = server.upload(id, "ACCOUNT", "j1", file).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    server.wait_done(id, "j1").await;

    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = json_log_lines(&site);
        if lines.iter().any(|l| l["message"] == "request finished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let access = lines
        .iter()
        .find(|l| l["message"] == "request" && l["requestId"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line for request {request_id}: {lines:#?}"));
    assert_eq!(access["method"], "POST");
    assert_eq!(access["route"], "/v2/crm/entities");
    assert_eq!(access["status"], 201);
    assert!(access["milliseconds"].as_f64().is_some(), "{access}");
    assert_eq!(access["level"], "INFO");

    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished")
        .unwrap_or_else(|| panic!("no finished request: {lines:#?}"));
    assert_eq!(finished["clientRequestId"], "j1");
    assert_eq!(finished["objectType"], "ACCOUNT");
    assert_eq!(finished["lines"], 3);
    assert_eq!(finished["successes"], 2);
    assert_eq!(finished["errors"], 1);
    assert!(finished["seconds"].as_f64().is_some(), "{finished}");
}

/// The router's operations, (method, path with its parameters as `{}`), read from axum's
/// `Debug` of the router (axum has no public way to list routes): each route id's path, and
/// the methods of its `allow_header`. Swagger UI's own files (`/docs/...`) and the web
/// console's pages (`/ui/...`) are no operations.
fn routed_operations() -> BTreeSet<(String, String)> {
    let text = format!("{:?}", intake_server::routes());
    let routes = text.split("fallback_router").next().unwrap();
    let (methods_part, paths_part) = routes.split_once("node: Node").unwrap();
    let number = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_digit()).collect() };
    let mut methods = std::collections::HashMap::new();
    for chunk in methods_part.split("RouteId(").skip(1) {
        let id = number(chunk);
        let allowed = chunk
            .split_once("allow_header: Bytes(b\"")
            .map(|(_, rest)| rest.split('"').next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("route {id} has no methods in {chunk}"));
        methods.insert(id, allowed);
    }
    let mut operations = BTreeSet::new();
    for chunk in paths_part.split("RouteId(").skip(1) {
        let id = number(chunk);
        let path = chunk.split('"').nth(1).unwrap();
        // Swagger UI's files, and the web console's pages: no API operations.
        if path.starts_with("/docs/") || path == "/ui" || path.starts_with("/ui/") {
            continue;
        }
        for method in methods[&id].split(',').filter(|m| *m != "HEAD") {
            operations.insert((method.to_owned(), normalise(path)));
        }
    }
    assert!(
        operations.len() > 20,
        "the router walk found {operations:?}"
    );
    operations
}

/// A path with each `{parameter}` as `{}`.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route_of_the_router() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let (status, content_type, text) = fetch(&server, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );

    let spec = oas3::from_json(&text).expect("an OpenAPI 3.1 document");
    let version = spec
        .validate_version()
        .expect("a version this parser takes");
    assert_eq!((version.major, version.minor), (3, 1));
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .map(|(path, method, _)| (method.as_str().to_owned(), normalise(&path)))
        .collect();
    let routed = routed_operations();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations no route serves: {unrouted:?}"
    );

    // Every reference resolves, and each operation has an id and a success answer.
    let document: Value = serde_json::from_str(&text).unwrap();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["operationId"].is_string(), "{method} {path}");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{method} {path} has no success answer"
            );
        }
    }
    // Gong's names where Gong's document is right.
    let upload = &document["paths"]["/v2/crm/entities"]["post"];
    assert_eq!(upload["operationId"], "uploadCrmData");
    let params: Vec<&str> = upload["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["integrationId", "objectType", "clientRequestId"]);
    assert!(document["paths"]["/v2/crm/entities"]["get"]["requestBody"].is_object());
    for name in [
        "ErrorResponse",
        "RequestStatusResponse",
        "AsyncProcessingResponse",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
}

/// The `src` and `href` values of an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for rest in html.split(attribute).skip(1) {
            found.push(rest.split('"').next().unwrap().to_owned());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_load_only_what_the_server_serves() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&[]);
    let (status, content_type, html) = fetch(&server, "/docs").await;
    assert_eq!(status, 200, "{html}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let assets = links(&html);
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        assert!(
            !asset.contains("//") && !asset.contains(':'),
            "{asset} is not of this origin"
        );
        let (status, _, body) = fetch(
            &server,
            &format!("/docs/{}", asset.trim_start_matches("./")),
        )
        .await;
        assert_eq!(status, 200, "{asset}");
        if asset.ends_with(".css") {
            assert!(
                !body.contains("url(http") && !body.contains("@import"),
                "{asset}"
            );
        }
    }
    let (_, _, initializer) = fetch(&server, "/docs/swagger-initializer.js").await;
    assert!(
        initializer.contains(r#""url": "/openapi.json""#),
        "{initializer}"
    );
    // No validator badge (Swagger UI would load it from outside).
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );
    assert!(!initializer.contains("http"), "{initializer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_config_file_is_accepted() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/intake.toml");
    // The harness's flags (listen, data dir, database, spool) win over the file.
    let server = site.start(&["--config", sample]);
    assert_eq!(anonymous(&server, "/ready").await.status, 200);
    assert_eq!(fetch(&server, "/metrics").await.0, 200);
}
