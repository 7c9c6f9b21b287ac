//! The requests list, one request, and cancel (`/intake/v1/requests...`) over real HTTP on
//! both backends.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::harness::{Server, Site};

backend_tests!(
    requests_are_listed_newest_first_with_filters_and_paging,
    one_request_and_its_errors,
    cancel_stops_an_upload_and_gong_sees_it_failed,
    requests_and_cancel_commands,
);

fn contacts(n: usize, bad_every: usize) -> String {
    (0..n)
        .map(|i| {
            if bad_every > 0 && i % bad_every == 0 {
                format!("{{\"objectId\":\"c{i}\"}}\n")
            } else {
                format!("{{\"objectId\":\"c{i}\",\"modifiedDate\":\"2024-01-01T00:00:00Z\",\"emailAddress\":\"p{i}@acme.com\"}}\n")
            }
        })
        .collect()
}

async fn list(server: &Server, query: &str) -> Value {
    let reply = server.get(&format!("/intake/v1/requests{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn crids(page: &Value) -> Vec<String> {
    page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["clientRequestId"].as_str().unwrap().to_owned())
        .collect()
}

async fn requests_are_listed_newest_first_with_filters_and_paging(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let text = contacts(3, 0);
    for (crid, object_type) in [("r1", "CONTACT"), ("r2", "ACCOUNT"), ("r3", "CONTACT")] {
        let body = if object_type == "ACCOUNT" {
            "{\"objectId\":\"a1\"}\n".to_owned()
        } else {
            text.clone()
        };
        assert_eq!(
            server
                .upload(integration, object_type, crid, body)
                .await
                .status,
            201
        );
        server.wait_done(integration, crid).await;
    }
    let page = list(&server, "").await;
    assert_eq!(crids(&page), ["r3", "r2", "r1"]);
    assert_eq!(page["records"], json!({"currentPageSize": 3}));
    let r1 = &page["requests"][2];
    assert_eq!(r1["kind"], "UPLOAD");
    assert_eq!(r1["objectType"], "CONTACT");
    assert_eq!(r1["status"], "DONE");
    assert_eq!(r1["totalSuccessCount"], 3);
    assert_eq!(r1["totalErrorCount"], 0);
    assert_eq!(r1["fileBytes"], text.len());
    for key in ["createdAt", "startedAt", "finishedAt"] {
        let t = r1[key].as_str().unwrap_or_else(|| panic!("{key}: {r1}"));
        assert!(t.ends_with('Z') && t.len() == 24, "{key}: {t}");
    }
    assert!(r1["startedAt"].as_str() <= r1["finishedAt"].as_str());
    // r2 failed its only line: FAILED.
    assert_eq!(page["requests"][1]["status"], "FAILED");

    assert_eq!(crids(&list(&server, "?status=FAILED").await), ["r2"]);
    assert_eq!(
        crids(&list(&server, "?objectType=CONTACT").await),
        ["r3", "r1"]
    );
    assert_eq!(
        crids(
            &list(
                &server,
                "?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z"
            )
            .await
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        crids(&list(&server, "?since=2000-01-01T00:00:00Z").await).len(),
        3
    );

    // Paging: one a page, the filters repeated beside the cursor.
    let first = list(&server, "?objectType=CONTACT&limit=1").await;
    assert_eq!(crids(&first), ["r3"]);
    let cursor = first["records"]["cursor"].as_str().unwrap().to_owned();
    let second = list(
        &server,
        &format!("?objectType=CONTACT&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(crids(&second), ["r1"]);
    assert!(second["records"].get("cursor").is_none());
    // The cursor of another listing, or garbage: 400.
    let other = server
        .get(&format!("/intake/v1/requests?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(other.status, 400);
    assert!(
        other.error().starts_with("Parameter [cursor]"),
        "{}",
        other.text
    );
    for (query, name) in [
        ("?status=done", "status"),
        ("?objectType=contact", "objectType"),
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
        ("?cursor=zz", "cursor"),
    ] {
        let bad = server.get(&format!("/intake/v1/requests{query}")).await;
        assert_eq!(bad.status, 400, "{query}");
        assert!(
            bad.error().starts_with(&format!("Parameter [{name}]")),
            "{query}: {}",
            bad.text
        );
    }

    // Another company sees none of them; a deleted integration's requests stay listed.
    let other = site.other_company(&server, "other");
    let none = other
        .get(&format!("/intake/v1/requests?integrationId={integration}"))
        .await;
    assert_eq!(none.status, 404);
    assert_eq!(none.error(), "Unknown integrationId");
    let deleted = server
        .send(server.req(
            reqwest::Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={integration}&clientRequestId=gone"),
        ))
        .await;
    assert_eq!(deleted.status, 201);
    server.wait_done(integration, "gone").await;
    let page = list(&server, &format!("?integrationId={integration}")).await;
    assert_eq!(crids(&page), ["gone", "r3", "r2", "r1"]);
    assert_eq!(page["requests"][0]["kind"], "DELETE_INTEGRATION");
    assert_eq!(page["requests"][0]["objectType"], Value::Null);
    assert_eq!(page["requests"][0]["fileBytes"], Value::Null);
    let none = server.get("/intake/v1/requests").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.error(), "No active integration");
}

async fn one_request_and_its_errors(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    assert_eq!(
        server
            .upload(integration, "CONTACT", "bad", contacts(30, 1))
            .await
            .status,
        201
    );
    server.wait_done(integration, "bad").await;
    let reply = server.get("/intake/v1/requests/bad").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["request"]["clientRequestId"], "bad");
    assert_eq!(reply.body["request"]["totalErrorCount"], 30);
    let errors = reply.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20);
    assert_eq!(errors[0]["line"], 1);
    assert!(
        errors[0]["description"]
            .as_str()
            .unwrap()
            .contains("modifiedDate"),
        "{}",
        reply.text
    );
    let missing = server.get("/intake/v1/requests/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error(), "No request with this clientRequestId");
    let other = site.other_company(&server, "other");
    assert_eq!(other.get("/intake/v1/requests/bad").await.status, 404);
}

async fn cancel_stops_an_upload_and_gong_sees_it_failed(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let lines = 200_000;
    assert_eq!(
        server
            .upload(integration, "CONTACT", "big", contacts(lines, 0))
            .await
            .status,
        201
    );
    let cancel = server
        .send(server.req(reqwest::Method::POST, "/intake/v1/requests/big/cancel"))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(cancel.body["request"]["status"], "CANCELLED");
    assert!(cancel.body["request"]["finishedAt"].is_string());
    // Gong's view: FAILED, with the cancel on line 0, counted.
    let status = server.wait_done(integration, "big").await;
    assert_eq!(status.body["status"], "FAILED");
    assert_eq!(
        status.body["errors"][0],
        json!({"line": 0, "description": "Request cancelled"})
    );
    let done = status.body["totalSuccessCount"].as_u64().unwrap();
    assert!(done < lines as u64, "the upload ran to its end: {done}");
    assert_eq!(status.body["totalErrorCount"], 1);
    // What was applied stays applied and the worker stops: nothing moves any more.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let later = server.status(integration, "big").await;
    assert_eq!(later.body["totalSuccessCount"], done, "{}", later.text);
    let listed = server.get("/intake/v1/requests?status=CANCELLED").await;
    assert_eq!(listed.body["requests"][0]["clientRequestId"], "big");
    let records = server.get("/intake/v1/records/CONTACT?limit=1000").await;
    assert_eq!(
        records.body["records"]["currentPageSize"].as_u64().unwrap(),
        done.min(1000),
        "{}",
        records.text
    );
    // Again, or a finished request: 409; an unknown one: 404.
    let again = server
        .send(server.req(reqwest::Method::POST, "/intake/v1/requests/big/cancel"))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.error(),
        "The request has already finished (CANCELLED)"
    );
    assert_eq!(
        server
            .upload(integration, "CONTACT", "small", contacts(2, 0))
            .await
            .status,
        201
    );
    server.wait_done(integration, "small").await;
    let finished = server
        .send(server.req(reqwest::Method::POST, "/intake/v1/requests/small/cancel"))
        .await;
    assert_eq!(finished.status, 409);
    assert_eq!(finished.error(), "The request has already finished (DONE)");
    let unknown = server
        .send(server.req(reqwest::Method::POST, "/intake/v1/requests/nope/cancel"))
        .await;
    assert_eq!(unknown.status, 404);
    // Cancel needs intake:write.
    let token = site.token("intake:read");
    let denied = server
        .http
        .post(server.url("/intake/v1/requests/small/cancel"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
}

async fn requests_and_cancel_commands(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    for crid in ["one", "two"] {
        assert_eq!(
            server
                .upload(integration, "CONTACT", crid, contacts(2, 0))
                .await
                .status,
            201
        );
        server.wait_done(integration, crid).await;
    }
    let out = server.cli(&["requests"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("created") && lines[0].contains("clientRequestId"),
        "{text}"
    );
    assert!(
        lines[1].contains("two") && lines[1].contains("DONE"),
        "{text}"
    );
    assert!(lines[2].contains("one"), "{text}");
    let out = server
        .cli(&["requests", "--status", "FAILED", "--json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let out = server.cli(&["requests", "--status", "nope"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = server.cli(&["cancel", "one"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already finished"),
        "{out:?}"
    );
}
