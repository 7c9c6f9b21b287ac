//! The deal board, `GET /intake/v1/deal-board` (docs/API.md), and
//! `intake board`: every rule of the contract on both backends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::backend_tests;
use crate::harness::{Reply, Server, Site};

backend_tests!(
    board_columns_deals_and_hidden,
    board_statuses,
    board_as_of_shows_the_board_as_it_stood,
    board_bad_parameters,
    board_tenancy_and_scope,
    board_command_prints_text_and_json,
    board_keeps_the_latest_version_of_each_record,
    board_counts_each_deal_once_after_a_restart_mid_upload,
    board_projection_goes_with_the_integration,
    board_of_a_store_from_before_the_projection,
);

const T0: &str = "2024-01-01T00:00:00Z";

/// One LDJSON line per object, each with `modifiedDate` `modified` unless it has one.
fn ldjson(modified: &str, objects: &[Value]) -> String {
    let mut out = String::new();
    for object in objects {
        let mut object = object.clone();
        if object.get("modifiedDate").is_none() {
            object["modifiedDate"] = json!(modified);
        }
        out.push_str(&object.to_string());
        out.push('\n');
    }
    out
}

/// Uploads the objects and waits until the request is DONE with no failed line.
async fn put(server: &Server, integration: i64, object_type: &str, crid: &str, text: String) {
    let reply = server.upload(integration, object_type, crid, text).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let done = server.wait_done(integration, crid).await;
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

/// The board's answer without its `requestId` (checked to be there).
fn board_of(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut body = reply.body.clone();
    let request_id = body
        .as_object_mut()
        .unwrap()
        .remove("requestId")
        .expect("requestId");
    assert!(request_id.as_str().is_some_and(|s| !s.is_empty()));
    body
}

async fn board(server: &Server, query: &str) -> Value {
    board_of(&server.get(&format!("/intake/v1/deal-board{query}")).await)
}

/// Stages, accounts and users that every case below starts from (modifiedDate T0).
async fn seed(server: &Server, integration: i64) {
    let stages = [
        json!({"objectId": "s-b", "name": "Bravo", "sortOrder": 2}),
        json!({"objectId": "s-a", "name": "Alpha", "sortOrder": 2, "isActive": true}),
        json!({"objectId": "s-first", "name": "First", "sortOrder": 1}),
        json!({"objectId": "s-old", "name": "Old", "sortOrder": 3, "isActive": false}),
        json!({"objectId": "s-idle", "name": "Idle", "sortOrder": 4, "isActive": false}),
        json!({"objectId": "s-gone", "name": "Gone", "sortOrder": 5, "isDeleted": true}),
        json!({"objectId": "s-gone-idle", "name": "Gone idle", "sortOrder": 6, "isDeleted": true}),
    ];
    put(server, integration, "STAGE", "stages", ldjson(T0, &stages)).await;
    let accounts = [
        json!({"objectId": "a1", "name": "Acme"}),
        json!({"objectId": "a2", "name": "Deleted Inc", "isDeleted": true}),
        json!({"objectId": "a4"}),
    ];
    put(
        server,
        integration,
        "ACCOUNT",
        "accounts",
        ldjson(T0, &accounts),
    )
    .await;
    let users = [
        json!({"objectId": "u1", "emailAddress": "ann@acme.com"}),
        json!({"objectId": "u2", "emailAddress": "bob@acme.com", "isDeleted": true}),
    ];
    put(
        server,
        integration,
        "BUSINESS_USER",
        "users",
        ldjson(T0, &users),
    )
    .await;
}

fn deal(id: &str, stage: &str, close: &str, amount: Value) -> Value {
    let mut d = json!({"objectId": id, "name": format!("Deal {id}"), "accountId": "a1",
        "ownerId": "u1", "closeDate": close, "stage": stage, "status": "OPEN"});
    if !amount.is_null() {
        d["amount"] = amount;
    }
    d
}

fn with(mut object: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            object.as_object_mut().unwrap().remove(key);
        } else {
            object[key] = value.clone();
        }
    }
    object
}

/// The deals of the cases below.
fn deals() -> Vec<Value> {
    vec![
        deal("d1", "s-first", "2024-03-01", json!(100)),
        deal("d2", "s-first", "2024-02-01", json!(50.50)),
        // No amount: 0. Same closeDate as d2: objectId order.
        deal("d3", "s-first", "2024-02-01T10:00:00Z", Value::Null),
        // Deleted account and user; unknown account and user.
        with(
            deal("d4", "s-a", "2024-05-01", json!(7000)),
            json!({"accountId": "a2", "ownerId": "u2"}),
        ),
        with(
            deal("d5", "s-b", "2024-05-01", json!(1e3)),
            json!({"accountId": "a9", "ownerId": "u9"}),
        ),
        // The account without a name of its own has the default one.
        with(
            deal("d6", "s-old", "2024-01-15", json!(1)),
            json!({"accountId": "a4"}),
        ),
        deal("d7", "s-gone", "2024-01-20", json!(2)),
        // Hidden, with every reason.
        json!({"objectId": "h1", "ownerId": "", "stage": "", "status": "OPEN"}),
        with(
            deal("h2", "nope", "2024-01-01", json!(5)),
            json!({"name": null}),
        ),
        with(
            deal("h3", "s-a", "2024-01-01", json!(5)),
            json!({"accountId": "", "stage": null}),
        ),
        with(
            deal("h0", "s-first", "2024-01-01", json!(5)),
            json!({"closeDate": null}),
        ),
        // Deleted: nowhere, whatever the status.
        with(
            deal("x1", "s-first", "2024-01-01", json!(5)),
            json!({"isDeleted": true}),
        ),
        with(
            deal("x2", "nope", "2024-01-01", json!(5)),
            json!({"isDeleted": true, "accountId": null}),
        ),
        // Other statuses.
        with(
            deal("w1", "s-idle", "2024-04-01", json!(10)),
            json!({"status": "WON"}),
        ),
        with(
            deal("w2", "s-a", "2024-04-02", json!(20)),
            json!({"status": "WON"}),
        ),
        with(
            deal("l1", "s-a", "2024-04-03", json!(30)),
            json!({"status": "LOST", "closeDate": null}),
        ),
    ]
}

fn shown(
    id: &str,
    account: (&str, Value),
    owner: (&str, Value),
    amount: Value,
    close: &str,
) -> Value {
    json!({"objectId": id, "name": format!("Deal {id}"), "accountId": account.0,
        "accountName": account.1, "ownerId": owner.0, "ownerEmail": owner.1,
        "amount": amount, "closeDate": close, "status": "OPEN"})
}

fn acme() -> (&'static str, Value) {
    ("a1", json!("Acme"))
}

fn ann() -> (&'static str, Value) {
    ("u1", json!("ann@acme.com"))
}

fn column(
    id: &str,
    name: &str,
    order: i64,
    active: bool,
    total: Value,
    deals: Vec<Value>,
) -> Value {
    json!({"objectId": id, "name": name, "sortOrder": order, "isActive": active,
        "dealCount": deals.len(), "totalAmount": total, "deals": deals})
}

/// The OPEN board of `seed` + `deals`.
fn open_board() -> Value {
    json!({
        "asOf": null,
        "stages": [
            column("s-first", "First", 1, true, json!(150.5), vec![
                shown("d2", acme(), ann(), json!(50.5), "2024-02-01"),
                shown("d3", acme(), ann(), json!(0), "2024-02-01"),
                shown("d1", acme(), ann(), json!(100), "2024-03-01"),
            ]),
            column("s-a", "Alpha", 2, true, json!(7000), vec![
                shown("d4", ("a2", Value::Null), ("u2", Value::Null), json!(7000), "2024-05-01"),
            ]),
            column("s-b", "Bravo", 2, true, json!(1000), vec![
                shown("d5", ("a9", Value::Null), ("u9", Value::Null), json!(1000.0), "2024-05-01"),
            ]),
            column("s-old", "Old", 3, false, json!(1), vec![
                shown("d6", ("a4", json!("Account_#a4")), ann(), json!(1), "2024-01-15"),
            ]),
            column("s-gone", "Gone", 5, false, json!(2), vec![
                shown("d7", acme(), ann(), json!(2), "2024-01-20"),
            ]),
        ],
        "hidden": [
            {"objectId": "h0", "name": "Deal h0", "reasons": ["missing closeDate"]},
            {"objectId": "h1", "name": "Deal_#h1", "reasons":
                ["missing accountId", "missing ownerId", "missing closeDate", "missing stage"]},
            {"objectId": "h2", "name": "Deal_#h2", "reasons": ["unknown stage [nope]"]},
            {"objectId": "h3", "name": "Deal h3", "reasons": ["missing accountId", "missing stage"]},
        ],
    })
}

async fn seeded(site: &Site) -> (Server, i64) {
    let server = site.start(&[]);
    let integration = server.register().await;
    seed(&server, integration).await;
    put(&server, integration, "DEAL", "deals", ldjson(T0, &deals())).await;
    (server, integration)
}

async fn board_columns_deals_and_hidden(site: Site) {
    let (server, integration) = seeded(&site).await;
    let open = board(&server, "").await;
    assert_eq!(open, open_board());
    // Amounts are written as they were sent.
    let raw = server.get("/intake/v1/deal-board").await.text;
    assert!(raw.contains(r#""amount":50.5,"#), "{raw}");
    assert!(raw.contains(r#""amount":1000.0,"#), "{raw}");
    assert!(raw.contains(r#""totalAmount":150.5,"#), "{raw}");
    assert!(raw.contains(r#""totalAmount":7000,"#), "{raw}");
    assert!(raw.starts_with(r#"{"requestId":"#), "{raw}");
    // The same with status=OPEN and with the integrationId named.
    assert_eq!(board(&server, "?status=OPEN").await, open_board());
    assert_eq!(
        board(
            &server,
            &format!("?integrationId={integration}&status=OPEN")
        )
        .await,
        open_board()
    );
}

async fn board_statuses(site: Site) {
    let (server, _) = seeded(&site).await;
    let won = board(&server, "?status=WON").await;
    let won_deal = |id: &str, close: &str, amount: i64| {
        with(
            shown(id, acme(), ann(), json!(amount), close),
            json!({"status": "WON"}),
        )
    };
    assert_eq!(
        won,
        json!({
            "asOf": null,
            "stages": [
                column("s-first", "First", 1, true, json!(0), vec![]),
                column("s-a", "Alpha", 2, true, json!(20), vec![won_deal("w2", "2024-04-02", 20)]),
                column("s-b", "Bravo", 2, true, json!(0), vec![]),
                column("s-idle", "Idle", 4, false, json!(10), vec![won_deal("w1", "2024-04-01", 10)]),
            ],
            "hidden": [],
        })
    );
    let lost = board(&server, "?status=LOST").await;
    assert_eq!(
        lost,
        json!({
            "asOf": null,
            "stages": [
                column("s-first", "First", 1, true, json!(0), vec![]),
                column("s-a", "Alpha", 2, true, json!(0), vec![]),
                column("s-b", "Bravo", 2, true, json!(0), vec![]),
            ],
            "hidden": [{"objectId": "l1", "name": "Deal l1", "reasons": ["missing closeDate"]}],
        })
    );
    let all = board(&server, "?status=ALL").await;
    let ids = |v: &Value| -> Vec<(String, Vec<String>)> {
        v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let deals = c["deals"].as_array().unwrap();
                assert_eq!(c["dealCount"], json!(deals.len()));
                (
                    c["objectId"].as_str().unwrap().to_owned(),
                    deals
                        .iter()
                        .map(|d| d["objectId"].as_str().unwrap().to_owned())
                        .collect(),
                )
            })
            .collect()
    };
    let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(&all),
        vec![
            ("s-first".to_owned(), s(&["d2", "d3", "d1"])),
            ("s-a".to_owned(), s(&["w2", "d4"])),
            ("s-b".to_owned(), s(&["d5"])),
            ("s-old".to_owned(), s(&["d6"])),
            ("s-idle".to_owned(), s(&["w1"])),
            ("s-gone".to_owned(), s(&["d7"])),
        ]
    );
    assert_eq!(all["stages"][1]["totalAmount"], json!(7020));
    let hidden: Vec<&str> = all["hidden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["objectId"].as_str().unwrap())
        .collect();
    assert_eq!(hidden, ["h0", "h1", "h2", "h3", "l1"]);
}

async fn board_as_of_shows_the_board_as_it_stood(site: Site) {
    let (server, integration) = seeded(&site).await;
    let later = "2024-06-01T00:00:00Z";
    // Later: d1 moves to s-a with another amount, d2 is deleted, h0 gets its closeDate,
    // a new deal, Acme renamed, ann's email changed, s-old active again, a new stage.
    let changes = [
        with(
            deal("d1", "s-a", "2024-03-01", json!(99)),
            json!({"modifiedDate": later}),
        ),
        with(
            deal("d2", "s-first", "2024-02-01", json!(1)),
            json!({"modifiedDate": later, "isDeleted": true}),
        ),
        with(
            deal("h0", "s-first", "2024-01-01", json!(5)),
            json!({"modifiedDate": later}),
        ),
        with(
            deal("n1", "s-new", "2024-07-01", json!(3)),
            json!({"modifiedDate": later}),
        ),
    ];
    put(
        &server,
        integration,
        "DEAL",
        "later-deals",
        ldjson(later, &changes),
    )
    .await;
    put(
        &server,
        integration,
        "ACCOUNT",
        "later-accounts",
        ldjson(later, &[json!({"objectId": "a1", "name": "Acme 2"})]),
    )
    .await;
    put(
        &server,
        integration,
        "BUSINESS_USER",
        "later-users",
        ldjson(
            later,
            &[json!({"objectId": "u1", "emailAddress": "ann@new.example"})],
        ),
    )
    .await;
    put(
        &server,
        integration,
        "STAGE",
        "later-stages",
        ldjson(
            later,
            &[
                json!({"objectId": "s-new", "name": "New", "sortOrder": 1}),
                json!({"objectId": "s-old", "name": "Old", "sortOrder": 3, "isActive": true}),
            ],
        ),
    )
    .await;

    // As it stood before the changes: the first board, asOf echoed.
    for (query, echoed) in [
        ("?asOf=2024-03-01T00:00:00Z", "2024-03-01T00:00:00.000Z"),
        (
            "?asOf=2024-03-01T02:00:00.250%2B02:00",
            "2024-03-01T00:00:00.000Z",
        ),
        ("?asOf=2024-05-31T23:59:59Z", "2024-05-31T23:59:59.000Z"),
    ] {
        let mut expected = open_board();
        expected["asOf"] = json!(echoed);
        assert_eq!(board(&server, query).await, expected, "{query}");
    }
    // Before anything existed: no stage, no deal.
    assert_eq!(
        board(&server, "?asOf=2023-12-31T23:59:59Z").await,
        json!({"asOf": "2023-12-31T23:59:59.000Z", "stages": [], "hidden": []})
    );

    // Now.
    let now = board(&server, "").await;
    let acme2 = || ("a1", json!("Acme 2"));
    let ann2 = || ("u1", json!("ann@new.example"));
    assert_eq!(
        now,
        json!({
            "asOf": null,
            "stages": [
                column("s-first", "First", 1, true, json!(5), vec![
                    // h0 now shown, its closeDate before d3's.
                    shown("h0", acme2(), ann2(), json!(5), "2024-01-01"),
                    shown("d3", acme2(), ann2(), json!(0), "2024-02-01"),
                ]),
                column("s-new", "New", 1, true, json!(3), vec![
                    shown("n1", acme2(), ann2(), json!(3), "2024-07-01"),
                ]),
                column("s-a", "Alpha", 2, true, json!(7099), vec![
                    shown("d1", acme2(), ann2(), json!(99), "2024-03-01"),
                    shown("d4", ("a2", Value::Null), ("u2", Value::Null), json!(7000), "2024-05-01"),
                ]),
                column("s-b", "Bravo", 2, true, json!(1000), vec![
                    shown("d5", ("a9", Value::Null), ("u9", Value::Null), json!(1000.0), "2024-05-01"),
                ]),
                column("s-old", "Old", 3, true, json!(1), vec![
                    shown("d6", ("a4", json!("Account_#a4")), ann2(), json!(1), "2024-01-15"),
                ]),
                column("s-gone", "Gone", 5, false, json!(2), vec![
                    shown("d7", acme2(), ann2(), json!(2), "2024-01-20"),
                ]),
            ],
            "hidden": [
                {"objectId": "h1", "name": "Deal_#h1", "reasons":
                    ["missing accountId", "missing ownerId", "missing closeDate", "missing stage"]},
                {"objectId": "h2", "name": "Deal_#h2", "reasons": ["unknown stage [nope]"]},
                {"objectId": "h3", "name": "Deal h3", "reasons": ["missing accountId", "missing stage"]},
            ],
        })
    );
    // Between the two: n1 already names s-new, which did not exist yet (a stage that is
    // not there is unknown).
    let before_stage = "2024-06-01T00:00:00Z";
    let early_stages = [
        json!({"objectId": "s-later", "name": "Later", "sortOrder": 1,
        "modifiedDate": "2024-09-01T00:00:00Z"}),
    ];
    put(
        &server,
        integration,
        "STAGE",
        "stage-later",
        ldjson(later, &early_stages),
    )
    .await;
    let early_deal = [with(
        deal("n2", "s-later", "2024-07-01", json!(3)),
        json!({"modifiedDate": "2024-08-01T00:00:00Z"}),
    )];
    put(
        &server,
        integration,
        "DEAL",
        "deal-later",
        ldjson(later, &early_deal),
    )
    .await;
    let between = board(&server, "?asOf=2024-08-15T00:00:00Z").await;
    assert_eq!(
        between["hidden"].as_array().unwrap().last().unwrap(),
        &json!({"objectId": "n2", "name": "Deal n2", "reasons": ["unknown stage [s-later]"]})
    );
    let at_change = board(&server, &format!("?asOf={before_stage}")).await;
    assert_eq!(at_change["stages"][1]["objectId"], "s-new");
}

async fn board_bad_parameters(site: Site) {
    let server = site.start(&[]);
    // No integration yet.
    let none = server.get("/intake/v1/deal-board").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.error(), "No active integration");
    let integration = server.register().await;
    let cases = [
        (
            "status=open",
            "Parameter [status] must be one of OPEN, WON, LOST, ALL, got [open]",
        ),
        (
            "status=CLOSED",
            "Parameter [status] must be one of OPEN, WON, LOST, ALL, got [CLOSED]",
        ),
        (
            "asOf=yesterday",
            "Parameter [asOf] must be an ISO-8601 datetime with Z or ±HH:MM, got [yesterday]",
        ),
        (
            "asOf=2024-01-01",
            "Parameter [asOf] must be an ISO-8601 datetime with Z or ±HH:MM, got [2024-01-01]",
        ),
        (
            "integrationId=abc",
            "Parameter [integrationId] must be a positive 64-bit integer, got [abc]",
        ),
    ];
    for (query, text) in cases {
        let reply = server.get(&format!("/intake/v1/deal-board?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {:?}", reply.body);
        assert_eq!(reply.error(), text, "{query}");
        assert!(reply.body["requestId"].as_str().is_some(), "{query}");
    }
    let unknown = server
        .get(&format!(
            "/intake/v1/deal-board?integrationId={}",
            integration + 1
        ))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error(), "Unknown integrationId");
    // An empty store: no columns, nothing hidden. Empty values are absent ones (the
    // convention of every query parameter): OPEN, now.
    for query in ["", "?status=&asOf="] {
        assert_eq!(
            board(&server, query).await,
            json!({"asOf": null, "stages": [], "hidden": []})
        );
    }
}

async fn board_tenancy_and_scope(site: Site) {
    let (server, integration) = seeded(&site).await;
    let other = site.other_company(&server, "other");
    let none = other.get("/intake/v1/deal-board").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.error(), "No active integration");
    let foreign = other
        .get(&format!(
            "/intake/v1/deal-board?integrationId={integration}"
        ))
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error(), "Unknown integrationId");
    let own = other.register().await;
    assert_eq!(
        board(&other, "").await,
        json!({"asOf": null, "stages": [], "hidden": []})
    );
    let theirs = [deal("o1", "s-first", "2024-01-01", json!(1))];
    put(&other, own, "DEAL", "other-deals", ldjson(T0, &theirs)).await;
    assert_eq!(
        board(&other, "?status=ALL").await,
        json!({"asOf": null, "stages": [], "hidden": [
            {"objectId": "o1", "name": "Deal o1", "reasons": ["unknown stage [s-first]"]}]})
    );
    // Ours is untouched by theirs.
    assert_eq!(board(&server, "").await, open_board());

    // Bearer tokens: intake:read is needed.
    let token = |scope: &str| site.token(scope);
    let call = |token: String| {
        let request = server
            .http
            .get(server.url("/intake/v1/deal-board"))
            .bearer_auth(token);
        async move { Reply::from(request.send().await.unwrap()).await }
    };
    let denied = call(token("api:crm:get-objects")).await;
    assert_eq!(denied.status, 401, "{:?}", denied.body);
    assert_eq!(
        denied.error(),
        "You don't have permission to use 'intake:read' in your app."
    );
    let allowed = call(token("intake:read")).await;
    assert_eq!(board_of(&allowed), open_board());
    let anonymous = Reply::from(
        server
            .http
            .get(server.url("/intake/v1/deal-board"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, 401);
}

async fn board_command_prints_text_and_json(site: Site) {
    let (server, _) = seeded(&site).await;
    let out = server.cli(&["board", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let mut printed: Value = serde_json::from_str(&text).unwrap();
    printed
        .as_object_mut()
        .unwrap()
        .remove("requestId")
        .unwrap();
    assert_eq!(printed, open_board());

    let out = server
        .cli(&[
            "board",
            "--status",
            "LOST",
            "--as-of",
            "2024-03-01T00:00:00Z",
            "--json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["asOf"], "2024-03-01T00:00:00.000Z");
    assert_eq!(printed["hidden"][0]["objectId"], "l1");

    let out = server.cli(&["board"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = "\
Deal board (OPEN deals, now): 5 stages, 7 deals shown, 4 hidden

First [s-first] - 3 deals, total 150.5
  closeDate   deal          amount  account    owner
  2024-02-01  Deal d2 [d2]    50.5  Acme [a1]  ann@acme.com [u1]
  2024-02-01  Deal d3 [d3]       0  Acme [a1]  ann@acme.com [u1]
  2024-03-01  Deal d1 [d1]     100  Acme [a1]  ann@acme.com [u1]

Alpha [s-a] - 1 deal, total 7000
  closeDate   deal          amount  account  owner
  2024-05-01  Deal d4 [d4]    7000  ? [a2]   ? [u2]

Bravo [s-b] - 1 deal, total 1000
  closeDate   deal          amount  account  owner
  2024-05-01  Deal d5 [d5]  1000.0  ? [a9]   ? [u9]

Old [s-old] (inactive) - 1 deal, total 1
  closeDate   deal          amount  account           owner
  2024-01-15  Deal d6 [d6]       1  Account_#a4 [a4]  ann@acme.com [u1]

Gone [s-gone] (inactive) - 1 deal, total 2
  closeDate   deal          amount  account    owner
  2024-01-20  Deal d7 [d7]       2  Acme [a1]  ann@acme.com [u1]

Hidden (4):
  Deal h0 [h0]: missing closeDate
  Deal_#h1 [h1]: missing accountId, missing ownerId, missing closeDate, missing stage
  Deal_#h2 [h2]: unknown stage [nope]
  Deal h3 [h3]: missing accountId, missing stage
";
    assert_eq!(text, expected);

    let out = server.cli(&["board", "--status", "LOST"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "\
Deal board (LOST deals, now): 3 stages, 0 deals shown, 1 hidden

First [s-first] - 0 deals, total 0
  (no deals)

Alpha [s-a] - 0 deals, total 0
  (no deals)

Bravo [s-b] - 0 deals, total 0
  (no deals)

Hidden (1):
  Deal l1 [l1]: missing closeDate
"
    );

    let out = server.cli(&["board", "--status", "open"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Parameter [status] must be one of OPEN, WON, LOST, ALL, got [open]"),
        "{err}"
    );
}

/// The column a deal is shown in and the deal as shown, or `None` when not shown.
fn shown_in(board: &Value, id: &str) -> Option<(String, Value)> {
    board["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|column| {
            column["deals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["objectId"] == id)
                .map(|d| (column["objectId"].as_str().unwrap().to_owned(), d.clone()))
        })
}

/// Every objectId on the board, shown or hidden.
fn all_ids(board: &Value) -> Vec<String> {
    let mut ids: Vec<String> = board["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["deals"].as_array().unwrap().iter())
        .chain(board["hidden"].as_array().unwrap())
        .map(|d| d["objectId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Versions that arrive out of order, a delete and a re-create, of deals, accounts and
/// users: the board shows each record's latest version, now and as of any time between.
async fn board_keeps_the_latest_version_of_each_record(site: Site) {
    let (server, integration) = seeded(&site).await;
    let (t2, t3) = ("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z");
    let at = |d: Value, t: &str| with(d, json!({"modifiedDate": t}));
    let uploads = [
        // d1 at t3, then an older version of it (t2) in a later upload.
        (
            "DEAL",
            "d1-t3",
            vec![at(deal("d1", "s-b", "2024-03-01", json!(300)), t3)],
        ),
        (
            "DEAL",
            "d1-t2",
            vec![at(deal("d1", "s-a", "2024-03-01", json!(200)), t2)],
        ),
        // d2 deleted at t2, back at t3 in another stage.
        (
            "DEAL",
            "d2-deleted",
            vec![at(
                with(
                    deal("d2", "s-first", "2024-02-01", json!(1)),
                    json!({"isDeleted": true}),
                ),
                t2,
            )],
        ),
        (
            "DEAL",
            "d2-back",
            vec![at(deal("d2", "s-a", "2024-02-15", json!(5)), t3)],
        ),
        (
            "ACCOUNT",
            "a1-t2",
            vec![at(json!({"objectId": "a1", "name": "Acme 2"}), t2)],
        ),
        (
            "BUSINESS_USER",
            "u1-deleted",
            vec![at(json!({"objectId": "u1", "isDeleted": true}), t2)],
        ),
        (
            "BUSINESS_USER",
            "u1-back",
            vec![at(
                json!({"objectId": "u1", "emailAddress": "ann@again.example"}),
                t3,
            )],
        ),
    ];
    for (object_type, crid, objects) in uploads {
        put(
            &server,
            integration,
            object_type,
            crid,
            ldjson(T0, &objects),
        )
        .await;
    }

    let now = board(&server, "").await;
    let (column, d1) = shown_in(&now, "d1").unwrap();
    assert_eq!((column.as_str(), &d1["amount"]), ("s-b", &json!(300)));
    assert_eq!(d1["accountName"], "Acme 2");
    assert_eq!(d1["ownerEmail"], "ann@again.example");
    let (column, d2) = shown_in(&now, "d2").unwrap();
    assert_eq!((column.as_str(), &d2["amount"]), ("s-a", &json!(5)));
    assert_eq!(d2["closeDate"], "2024-02-15");
    let s_a = &now["stages"][1];
    assert_eq!(s_a["objectId"], "s-a");
    assert_eq!(s_a["totalAmount"], json!(7005));
    let ids: Vec<&str> = s_a["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["objectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d2", "d4"]);

    // At t2: the version that came last but is older; d2 deleted; ann deleted.
    let then = board(&server, &format!("?asOf={t2}")).await;
    let (column, d1) = shown_in(&then, "d1").unwrap();
    assert_eq!((column.as_str(), &d1["amount"]), ("s-a", &json!(200)));
    assert_eq!(d1["accountName"], "Acme 2");
    assert_eq!(d1["ownerEmail"], Value::Null);
    assert_eq!(shown_in(&then, "d2"), None);
    assert!(!all_ids(&then).contains(&"d2".to_owned()));

    // Just before t2: the first board.
    let mut expected = open_board();
    expected["asOf"] = json!("2024-01-31T23:59:59.000Z");
    assert_eq!(board(&server, "?asOf=2024-01-31T23:59:59Z").await, expected);
}

/// A server killed while it stores deals resumes from its checkpoint: the board shows
/// each deal once.
async fn board_counts_each_deal_once_after_a_restart_mid_upload(site: Site) {
    let mut server = site.start(&["--batch-lines", "1000"]);
    let integration = server.register().await;
    seed(&server, integration).await;
    let count = 40_000u64;
    let file: String = (0..count)
        .map(|i| {
            format!(
                "{{\"objectId\":\"big{i:05}\",\"modifiedDate\":\"{T0}\",\"accountId\":\"a1\",\
                 \"ownerId\":\"u1\",\"closeDate\":\"2024-02-01\",\"stage\":\"s-first\",\
                 \"amount\":{}}}\n",
                i % 7
            )
        })
        .collect();
    assert_eq!(
        server.upload(integration, "DEAL", "big", file).await.status,
        201
    );
    loop {
        let status = server.status(integration, "big").await;
        assert_ne!(
            status.body["status"], "DONE",
            "finished before it could be interrupted"
        );
        if status.body["status"] == "IN_PROGRESS"
            && status.body["totalSuccessCount"].as_u64().unwrap() > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let server = site.start(&["--batch-lines", "1000"]);
    let done = server.wait_done(integration, "big").await;
    assert_eq!(done.body["totalSuccessCount"], count, "{:?}", done.body);
    let expected_ids: Vec<String> = (0..count).map(|i| format!("big{i:05}")).collect();
    let total: u64 = (0..count).map(|i| i % 7).sum();
    for query in ["", "?asOf=2024-01-01T00:00:00Z"] {
        let now = board(&server, query).await;
        let first = &now["stages"][0];
        assert_eq!(first["objectId"], "s-first", "{query}");
        assert_eq!(first["dealCount"], count, "{query}");
        assert_eq!(first["totalAmount"], total, "{query}");
        assert_eq!(all_ids(&now), expected_ids, "{query}");
    }
}

/// How many rows of the board projection an integration has, read from the database.
async fn projection_rows(site: &Site, integration: i64) -> i64 {
    let sql = "SELECT count(*) FROM board_facts WHERE integration_id = $1";
    if site.database.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&site.database).await.unwrap();
        let n = sqlx::query_scalar(sql)
            .bind(integration)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&site.database).await.unwrap();
        let n = sqlx::query_scalar(sql)
            .bind(integration)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

/// Deleting the integration removes its projection with its versions; the next
/// integration starts with an empty board.
async fn board_projection_goes_with_the_integration(site: Site) {
    let (server, integration) = seeded(&site).await;
    // 3 accounts, 2 users, 16 deals.
    assert_eq!(projection_rows(&site, integration).await, 21);
    let deleted = server
        .send(server.req(
            reqwest::Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={integration}&clientRequestId=del"),
        ))
        .await;
    assert_eq!(deleted.status, 201, "{:?}", deleted.body);
    assert_eq!(
        server.wait_done(integration, "del").await.body["status"],
        "DONE"
    );
    assert_eq!(projection_rows(&site, integration).await, 0);
    server.register().await;
    assert_eq!(
        board(&server, "?status=ALL").await,
        json!({"asOf": null, "stages": [], "hidden": []})
    );
}

/// A store written before the projection existed (simulated: its table dropped and its
/// migration forgotten) gets it from the stored bodies on the next start: the same board,
/// now and as of any time.
async fn board_of_a_store_from_before_the_projection(site: Site) {
    let (mut server, integration) = seeded(&site).await;
    let later = [with(
        deal("d1", "s-a", "2024-03-01", json!(99.90)),
        json!({"modifiedDate": "2024-06-01T00:00:00Z", "name": "Quote \" and \\ and \u{e9}"}),
    )];
    put(&server, integration, "DEAL", "later", ldjson(T0, &later)).await;
    let queries = ["", "?status=ALL", "?asOf=2024-03-01T00:00:00Z"];
    let mut before = Vec::new();
    for query in queries {
        before.push(server.get(&format!("/intake/v1/deal-board{query}")).await);
    }
    server.kill();

    let statements = [
        "DROP TABLE board_facts",
        "DELETE FROM _sqlx_migrations WHERE version = 4",
    ];
    if site.database.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&site.database).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&site.database).await.unwrap();
        // A store from before the projection had one table of versions (the recent tiers
        // came later): what a merge had not moved yet goes there, as migration 0004 reads
        // that table.
        for sql in [
            "INSERT INTO record_versions SELECT * FROM recent_versions_0 ON CONFLICT DO NOTHING",
            "INSERT INTO record_versions SELECT * FROM recent_versions_1 ON CONFLICT DO NOTHING",
            "TRUNCATE recent_versions_0, recent_versions_1",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }

    let server = site.start(&[]);
    assert_eq!(projection_rows(&site, integration).await, 22);
    for (query, before) in queries.iter().zip(before) {
        let after = server.get(&format!("/intake/v1/deal-board{query}")).await;
        assert_eq!(board_of(&after), board_of(&before), "{query}");
        // Byte for byte, but for the request id.
        let strip = |r: &Reply| {
            let id = r.body["requestId"].as_str().unwrap().to_owned();
            r.text.replacen(&id, "", 1)
        };
        assert_eq!(strip(&after), strip(&before), "{query}");
    }
    let mut expected = open_board();
    expected["asOf"] = json!("2024-03-01T00:00:00.000Z");
    assert_eq!(board(&server, "?asOf=2024-03-01T00:00:00Z").await, expected);
}
