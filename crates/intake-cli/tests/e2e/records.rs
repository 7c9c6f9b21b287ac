//! Records and their history (`/intake/v1/records/...`) and the conventions of Intake's own
//! API, on both backends.

use std::collections::BTreeMap;

use intake_model::wire::intake::{RecordReply, RecordsPage, VersionsReply};
use serde_json::Value;

use crate::backend_tests;
use crate::harness::{Reply, Server, Site};

backend_tests!(
    records_are_listed_by_id_as_of_a_time,
    paging_holds_while_uploads_land,
    a_record_and_its_versions,
    bad_inputs_name_the_parameter,
    tenancy_scopes_and_the_intake_rate_limit,
);

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

fn contact(id: &str, modified: &str, extra: &str) -> String {
    format!("{{\"objectId\":\"{id}\",\"modifiedDate\":\"{modified}\"{extra}}}\n")
}

async fn upload_done(server: &Server, integration: i64, crid: &str, lines: &str) {
    let accepted = server.upload(integration, "CONTACT", crid, lines).await;
    assert_eq!(accepted.status, 201, "{:?}", accepted.body);
    let done = server.wait_done(integration, crid).await;
    assert_eq!(done.body["status"], "DONE", "{:?}", done.body);
}

/// Every page of a listing, following its cursors; the objects' ids and bodies.
async fn all_pages(server: &Server, path: &str) -> (Vec<usize>, Vec<Value>) {
    let (mut sizes, mut objects) = (vec![], vec![]);
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_string(),
        };
        let reply = server.get(&url).await;
        assert_eq!(reply.status, 200, "{url}: {:?}", reply.body);
        let page: RecordsPage = reply.parse();
        assert_eq!(page.records.current_page_size, page.objects.len());
        sizes.push(page.objects.len());
        objects.extend(
            page.objects
                .iter()
                .map(|o| serde_json::from_str::<Value>(o.get()).unwrap()),
        );
        match page.records.cursor {
            Some(c) => cursor = Some(c),
            None => return (sizes, objects),
        }
    }
}

fn ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["objectId"].as_str().unwrap().to_string())
        .collect()
}

async fn records_are_listed_by_id_as_of_a_time(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let first: String = (0..25)
        .map(|i| contact(&format!("c{i:02}"), T1, r#","title":"v1""#))
        .collect();
    upload_done(&server, integration, "first", &first).await;
    // c03 changes, c07 is deleted, and c30 appears, a month later.
    let second = [
        contact("c03", T2, r#","title":"v2""#),
        contact("c07", T2, r#","isDeleted":true"#),
        contact("c30", T2, r#","title":"v2""#),
    ]
    .concat();
    upload_done(&server, integration, "second", &second).await;

    // Now: 25 records, c07 gone; pages of 10 in objectId order, no cursor on the last.
    let (sizes, now) = all_pages(&server, "/intake/v1/records/CONTACT?limit=10").await;
    assert_eq!(sizes, [10, 10, 5]);
    let mut expected: Vec<String> = (0..25)
        .filter(|i| *i != 7)
        .map(|i| format!("c{i:02}"))
        .collect();
    expected.push("c30".into());
    assert_eq!(ids(&now), expected);
    let c03 = now.iter().find(|o| o["objectId"] == "c03").unwrap();
    assert_eq!(c03["title"], "v2");
    // Each object is exactly what GET /v2/crm/entities answers.
    let entities = server.objects(integration, "CONTACT", &["c03"]).await;
    assert_eq!(&entities["c03"], c03);

    // A deleted record, when asked for, is a stub.
    let (_, with_deleted) =
        all_pages(&server, "/intake/v1/records/CONTACT?includeDeleted=true").await;
    assert_eq!(with_deleted.len(), 26);
    let c07 = with_deleted
        .iter()
        .find(|o| o["objectId"] == "c07")
        .unwrap();
    assert_eq!(
        c07,
        &serde_json::json!({"objectId": "c07", "modifiedDate": "2024-02-01T00:00:00.000Z", "isDeleted": true})
    );

    // As of the first upload's time: 25 records, all at v1; before it, nothing.
    let (_, then) = all_pages(
        &server,
        "/intake/v1/records/CONTACT?asOf=2024-01-15T00:00:00.000%2B01:00",
    )
    .await;
    assert_eq!(
        ids(&then),
        (0..25).map(|i| format!("c{i:02}")).collect::<Vec<_>>()
    );
    assert!(then.iter().all(|o| o["title"] == "v1"));
    let (sizes, before) = all_pages(
        &server,
        "/intake/v1/records/CONTACT?asOf=2023-12-31T23:59:59Z",
    )
    .await;
    assert_eq!((sizes, before.len()), (vec![0], 0));
    // Another type of the same integration is empty.
    let (_, accounts) = all_pages(&server, "/intake/v1/records/ACCOUNT").await;
    assert!(accounts.is_empty());
}

async fn paging_holds_while_uploads_land(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let lines: String = (0..30)
        .map(|i| contact(&format!("p{:02}", i * 2), T1, ""))
        .collect();
    upload_done(&server, integration, "before", &lines).await;

    let first = server.get("/intake/v1/records/CONTACT?limit=12").await;
    let first: RecordsPage = first.parse();
    let mut seen = ids(&first
        .objects
        .iter()
        .map(|o| serde_json::from_str(o.get()).unwrap())
        .collect::<Vec<Value>>());
    assert_eq!(seen.len(), 12);
    // Between pages: new records before and after the cursor, and a newer version of one
    // not listed yet.
    let between = [
        contact("p01", T2, ""),
        contact("p99", T2, ""),
        contact("p40", T2, r#","title":"changed""#),
    ]
    .concat();
    upload_done(&server, integration, "between", &between).await;
    let mut cursor = first.records.cursor.expect("more pages");
    loop {
        let reply = server
            .get(&format!(
                "/intake/v1/records/CONTACT?limit=12&cursor={cursor}"
            ))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let page: RecordsPage = reply.parse();
        seen.extend(ids(&page
            .objects
            .iter()
            .map(|o| serde_json::from_str(o.get()).unwrap())
            .collect::<Vec<Value>>()));
        match page.records.cursor {
            Some(c) => cursor = c,
            None => break,
        }
    }
    // Every record that existed at the start exactly once; the new one after the cursor is
    // there, the one before it is not (it sorts before what was already read).
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &seen {
        *counts.entry(id).or_default() += 1;
    }
    for i in 0..30 {
        assert_eq!(
            counts.get(format!("p{:02}", i * 2).as_str()),
            Some(&1),
            "{seen:?}"
        );
    }
    assert_eq!(counts.get("p99"), Some(&1));
    assert_eq!(counts.get("p01"), None);
}

async fn a_record_and_its_versions(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    upload_done(
        &server,
        integration,
        "one",
        &[
            contact("x", T1, r#","title":"first""#),
            contact("y", T1, ""),
        ]
        .concat(),
    )
    .await;
    // A second and a third version of x: one newer, one older than the first (history only).
    upload_done(
        &server,
        integration,
        "two",
        &[
            contact("y", T1, ""),
            contact("x", T2, r#","title":"second""#),
        ]
        .concat(),
    )
    .await;
    upload_done(
        &server,
        integration,
        "three",
        &contact("x", "2023-06-01T00:00:00Z", r#","title":"older""#),
    )
    .await;

    let now: RecordReply = server.get("/intake/v1/records/CONTACT/x").await.parse();
    let now: Value = serde_json::from_str(now.object.unwrap().get()).unwrap();
    assert_eq!(now["title"], "second");
    let then: RecordReply = server
        .get("/intake/v1/records/CONTACT/x?asOf=2024-01-20T00:00:00Z")
        .await
        .parse();
    let then: Value = serde_json::from_str(then.object.unwrap().get()).unwrap();
    assert_eq!(then["title"], "first");
    let before = server
        .get("/intake/v1/records/CONTACT/x?asOf=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body["object"], Value::Null);

    let versions = server.get("/intake/v1/records/CONTACT/x/versions").await;
    assert_eq!(versions.status, 200, "{:?}", versions.body);
    let versions: VersionsReply = versions.parse();
    let summary: Vec<(String, String, u64, bool, bool)> = versions
        .versions
        .iter()
        .map(|v| {
            (
                v.modified_date.clone(),
                v.client_request_id.clone(),
                v.line,
                v.current,
                v.is_deleted,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "2023-06-01T00:00:00.000Z".into(),
                "three".into(),
                1,
                false,
                false
            ),
            (
                "2024-01-01T00:00:00.000Z".into(),
                "one".into(),
                1,
                false,
                false
            ),
            (
                "2024-02-01T00:00:00.000Z".into(),
                "two".into(),
                2,
                true,
                false
            ),
        ]
    );
    for v in &versions.versions {
        assert!(v.received_at.ends_with(".000Z"), "{}", v.received_at);
        assert!(v.received_at.as_str() > "2025-01-01", "{}", v.received_at);
    }
    let first: Value = serde_json::from_str(versions.versions[1].object.get()).unwrap();
    assert_eq!(first["title"], "first");

    // Deleted now: null, its history still there, the deletion its current version.
    upload_done(
        &server,
        integration,
        "four",
        &contact("x", "2024-03-01T00:00:00Z", r#","isDeleted":true"#),
    )
    .await;
    let gone = server.get("/intake/v1/records/CONTACT/x").await;
    assert_eq!((gone.status, &gone.body["object"]), (200, &Value::Null));
    let versions: VersionsReply = server
        .get("/intake/v1/records/CONTACT/x/versions")
        .await
        .parse();
    let last = versions.versions.last().unwrap();
    assert!(last.current && last.is_deleted);

    // Never existed: 404 for the record and its versions, with the envelope.
    for path in [
        "/intake/v1/records/CONTACT/nope",
        "/intake/v1/records/CONTACT/nope/versions",
        "/intake/v1/records/LEAD/x",
    ] {
        let missing = server.get(path).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(missing.error(), "No such record in this integration");
    }
}

async fn bad_inputs_name_the_parameter(site: Site) {
    let server = site.start(&[]);
    // No integration yet.
    let none = server.get("/intake/v1/records/CONTACT").await;
    assert_eq!(
        (none.status, none.error()),
        (404, "No active integration".into())
    );
    let integration = server.register().await;
    upload_done(
        &server,
        integration,
        "some",
        &(0..3)
            .map(|i| contact(&format!("b{i}"), T1, ""))
            .collect::<String>(),
    )
    .await;
    let cases = [
        ("/intake/v1/records/contact", "objectType"),
        ("/intake/v1/records/CONTACT?asOf=yesterday", "[asOf]"),
        ("/intake/v1/records/CONTACT?asOf=2024-01-01", "[asOf]"),
        ("/intake/v1/records/CONTACT?limit=0", "[limit]"),
        ("/intake/v1/records/CONTACT?limit=1001", "[limit]"),
        ("/intake/v1/records/CONTACT?limit=ten", "[limit]"),
        (
            "/intake/v1/records/CONTACT?includeDeleted=yes",
            "[includeDeleted]",
        ),
        (
            "/intake/v1/records/CONTACT?integrationId=abc",
            "[integrationId]",
        ),
        ("/intake/v1/records/CONTACT?cursor=!!!", "[cursor]"),
        ("/intake/v1/records/CONTACT/b1?asOf=noon", "[asOf]"),
        ("/intake/v1/records/CONTACT/a%00b", "control characters"),
        ("/intake/v1/records/CONTACT/a%00b/versions", "control characters"),
        // A forged cursor, JSON as the server writes them but with a NUL in it.
        (
            "/intake/v1/records/CONTACT?cursor=eyJpIjoxLCJ0IjoiQ09OVEFDVCIsIm8iOm51bGwsImQiOmZhbHNlLCJhIjoiXHUwMDAwIn0",
            "[cursor]",
        ),
    ];
    for (path, named) in cases {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {:?}", reply.body);
        assert!(reply.error().contains(named), "{path}: {}", reply.error());
        assert_eq!(reply.errors().len(), 1);
    }
    let unknown = server
        .get("/intake/v1/records/CONTACT?integrationId=12345")
        .await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (404, "Unknown integrationId".into())
    );
    // A cursor is good only with the filters it was made with.
    let page: RecordsPage = server
        .get("/intake/v1/records/CONTACT?limit=1")
        .await
        .parse();
    let cursor = page.records.cursor.unwrap();
    for other in [
        format!("/intake/v1/records/CONTACT?limit=1&includeDeleted=true&cursor={cursor}"),
        format!("/intake/v1/records/ACCOUNT?limit=1&cursor={cursor}"),
        format!("/intake/v1/records/CONTACT?asOf={T2}&cursor={cursor}"),
    ] {
        let reply = server.get(&other).await;
        assert_eq!(reply.status, 400, "{other}");
        assert!(reply.error().contains("[cursor]"));
    }
    let same = server
        .get(&format!(
            "/intake/v1/records/CONTACT?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(same.body["objects"][0]["objectId"], "b1");
}

async fn bearer_get(server: &Server, token: &str, path: &str) -> Reply {
    Reply::from(
        server
            .http
            .get(server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn tenancy_scopes_and_the_intake_rate_limit(site: Site) {
    let server = site.start(&[
        "--rate-limit-per-second",
        "1",
        "--intake-rate-limit-per-second",
        "3",
    ]);
    let integration = server.register().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let accepted = server
        .upload(integration, "CONTACT", "mine", contact("secret", T1, ""))
        .await;
    assert_eq!(accepted.status, 201);
    // One Gong call a second: poll slowly.
    let mut done = false;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        done = server.status(integration, "mine").await.body["status"] == "DONE";
        if done {
            break;
        }
    }
    assert!(done);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // The Gong-compatible limit is used up; the intake API counts apart, 3 a second.
    assert_eq!(server.get("/v2/crm/integrations").await.status, 200);
    assert_eq!(server.get("/v2/crm/integrations").await.status, 429);
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(server.get("/intake/v1/records/CONTACT").await);
    }
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200, 429]
    );
    assert!(statuses[3].headers.contains_key("retry-after"));
    assert_eq!(statuses[0].body["objects"][0]["objectId"], "secret");

    // Another company sees none of it: no integration of its own, and this one's id is
    // unknown to it.
    let other = site.other_company(&server, "other");
    let theirs = other.get("/intake/v1/records/CONTACT").await;
    assert_eq!(
        (theirs.status, theirs.error()),
        (404, "No active integration".into())
    );
    let foreign = other
        .get(&format!(
            "/intake/v1/records/CONTACT/secret?integrationId={integration}"
        ))
        .await;
    assert_eq!(
        (foreign.status, foreign.error()),
        (404, "Unknown integrationId".into())
    );

    // Tokens: intake:read reads; a CRM-only token is refused, the scope named.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reader = site.token("intake:read");
    let crm_only = site.token("api:crm:upload");
    let unknown = site.intake(&[
        "admin",
        "token",
        "create",
        "--company",
        "default",
        "--scope",
        "intake:reed",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("intake:read"));
    let read = bearer_get(
        &server,
        &reader,
        "/intake/v1/records/CONTACT/secret/versions",
    )
    .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    let refused = bearer_get(&server, &crm_only, "/intake/v1/records/CONTACT").await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.error(),
        "You don't have permission to use 'intake:read' in your app."
    );
}
