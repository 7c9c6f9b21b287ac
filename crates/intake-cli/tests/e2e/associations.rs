//! Associations (`/intake/v1/associations`, its batch and settings) and Gong's data-privacy
//! look-ups and erasure, over real HTTP on both backends, rule by rule (INTAKE-API.md,
//! "Associations").

use serde_json::{json, Value};

use crate::backend_tests;
use crate::harness::{Reply, Server, Site};

backend_tests!(
    associations_follow_the_rules,
    associations_fields_are_the_stored_record,
    associations_time_of_call_reads_the_history,
    associations_settings_make_parties_internal_and_exclude_domains,
    associations_batch_answers_each_line_in_order,
    associations_bad_input,
    associations_tenancy_and_scopes,
    data_privacy_lookups,
    data_privacy_erasure_forgets_a_person,
    associate_command_prints_text_json_and_batches,
    associations_survive_integration_delete_and_replay,
);

const T0: &str = "2024-01-01T00:00:00Z";
const START: &str = "2024-05-01T10:00:00Z";

/// The world of the rules: users, accounts, contacts, a lead and deals.
async fn seed(server: &Server, integration: i64) {
    server
        .put_objects(
            integration,
            "BUSINESS_USER",
            "users",
            T0,
            &[
                json!({"objectId": "u7", "emailAddress": "John.Doe@OurCo.com"}),
                json!({"objectId": "u8", "emailAddress": "gone@ourco.com", "isDeleted": true}),
            ],
        )
        .await;
    server
        .put_objects(
            integration,
            "ACCOUNT",
            "accounts",
            T0,
            &[
                json!({"objectId": "a1", "name": "Acme", "domains": ["www.Acme.com"]}),
                json!({"objectId": "a2", "name": "Partner", "domains": ["partner.io"]}),
                json!({"objectId": "a3", "name": "Gmail lovers", "domains": ["gmail.com"]}),
                json!({"objectId": "a4", "name": "Lead account"}),
            ],
        )
        .await;
    server
        .put_objects(integration, "CONTACT", "contacts", T0, &[
            json!({"objectId": "c1", "emailAddress": "ann@acme.com", "phoneNumber": "+1 (912) 507-4395",
                   "accountId": "a1", "firstName": "Ann", "modifiedDate": "2024-01-03T00:00:00Z"}),
            json!({"objectId": "c2", "emailAddress": "ANN@acme.com", "accountId": "a9",
                   "modifiedDate": "2024-01-02T00:00:00Z"}),
            json!({"objectId": "c3", "emailAddress": "carl@other.org", "accountId": "a2"}),
            json!({"objectId": "c4", "emailAddress": "ann@acme.com", "isDeleted": true}),
        ])
        .await;
    server
        .put_objects(
            integration,
            "LEAD",
            "leads",
            T0,
            &[json!({
            "objectId": "l1", "emailAddress": "lee@lead.io", "convertedToContactId": "c3",
            "convertedToAccountId": "a4", "convertedToDealId": "d5"})],
        )
        .await;
    let deal = |id: &str, account: &str, owner: &str, status: &str, close: Option<&str>| {
        let mut d =
            json!({"objectId": id, "accountId": account, "ownerId": owner, "status": status});
        if let Some(close) = close {
            d["closeDate"] = json!(close);
        }
        d
    };
    let mut late = deal("d6", "a1", "u7", "OPEN", Some("2024-05-01"));
    late["createdDate"] = json!("2024-06-01T00:00:00Z");
    server
        .put_objects(
            integration,
            "DEAL",
            "deals",
            T0,
            &[
                deal("d1", "a1", "u7", "OPEN", Some("2024-05-10")),
                deal("d2", "a1", "u9", "OPEN", Some("2024-05-02")),
                deal("d3", "a1", "u7", "WON", Some("2024-03-01")),
                deal("d4", "a1", "u7", "LOST", Some("2024-04-20")),
                deal("d5", "a4", "u7", "OPEN", None),
                late,
                deal("d7", "a2", "u9", "OPEN", Some("2024-05-01")),
            ],
        )
        .await;
}

async fn seeded(site: &Site) -> (Server, i64) {
    let server = site.start(&[]);
    let integration = server.register().await;
    seed(&server, integration).await;
    (server, integration)
}

fn activity(timing: &str, parties: Value) -> Value {
    json!({"startTime": START, "timing": timing, "parties": parties})
}

/// The answer without its `requestId` (checked to be there).
fn answer_of(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut body = reply.body.clone();
    let request_id = body.as_object_mut().unwrap().remove("requestId");
    assert!(request_id.is_some_and(|id| id.as_str().is_some_and(|s| !s.is_empty())));
    body
}

async fn associate(server: &Server, body: &Value) -> Value {
    answer_of(&server.post_json("/intake/v1/associations", body).await)
}

/// (objectType, objectId, reasons) of each object of a `context` list.
fn matched(context: &Value) -> Vec<(String, String, Vec<String>)> {
    let Some(systems) = context.as_array() else {
        panic!("context is not a list: {context}");
    };
    if systems.is_empty() {
        return Vec::new();
    }
    assert_eq!(systems.len(), 1, "{context}");
    assert_eq!(systems[0]["system"], "Generic");
    let objects = systems[0]["objects"].as_array().unwrap();
    assert!(
        !objects.is_empty(),
        "a Generic entry without objects: {context}"
    );
    objects
        .iter()
        .map(|o| {
            (
                o["objectType"].as_str().unwrap().to_owned(),
                o["objectId"].as_str().unwrap().to_owned(),
                o["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn m(object_type: &str, id: &str, reasons: &[&str]) -> (String, String, Vec<String>) {
    (
        object_type.to_owned(),
        id.to_owned(),
        reasons.iter().map(|r| r.to_string()).collect(),
    )
}

fn rules_parties() -> Value {
    json!([
        {"emailAddress": "ann@acme.com", "phoneNumber": "+1 (912) 507-4395", "name": "Ann"},
        {"emailAddress": "john.doe@ourco.com", "name": "John"},
        {"emailAddress": "someone@eu.acme.com"},
        {"emailAddress": "x@gmail.com"},
        {"phoneNumber": "912.507.4395", "title": "CFO"},
        {"emailAddress": "Lee@Lead.io"},
        {"emailAddress": "gone@ourco.com"}
    ])
}

async fn associations_follow_the_rules(site: Site) {
    let (server, _) = seeded(&site).await;
    let answer = associate(&server, &activity("Now", rules_parties())).await;
    let parties = answer["parties"].as_array().unwrap();
    assert_eq!(parties.len(), 7);
    // Parties come back as sent, plus affiliation and context.
    assert_eq!(parties[0]["name"], "Ann");
    assert_eq!(parties[0]["phoneNumber"], "+1 (912) 507-4395");
    assert_eq!(parties[4]["title"], "CFO");
    let affiliations: Vec<&str> = parties
        .iter()
        .map(|p| p["affiliation"].as_str().unwrap())
        .collect();
    assert_eq!(
        affiliations,
        ["External", "Internal", "External", "External", "Unknown", "External", "External"]
    );
    // Rule 3: the contacts with the email, newest first; the deleted c4 takes no part.
    assert_eq!(
        matched(&parties[0]["context"]),
        [
            m("Contact", "c1", &["emailAddress"]),
            m("Contact", "c2", &["emailAddress"])
        ]
    );
    // Rule 2: the user, and nothing else.
    assert_eq!(
        matched(&parties[1]["context"]),
        [m("User", "u7", &["emailAddress"])]
    );
    assert_eq!(parties[2]["context"], json!([]));
    assert_eq!(parties[3]["context"], json!([]));
    // By phone (last 10 digits) when there is no email.
    assert_eq!(
        matched(&parties[4]["context"]),
        [m("Contact", "c1", &["phoneNumber"])]
    );
    // A lead, and the contact it was converted to right after it.
    assert_eq!(
        matched(&parties[5]["context"]),
        [
            m("Lead", "l1", &["emailAddress"]),
            m("Contact", "c3", &["lead:l1"])
        ]
    );
    // A deleted user makes no party internal.
    assert_eq!(parties[6]["context"], json!([]));

    // Rules 4 and 5: accounts first (by objectId), then the deals; the owner rule keeps
    // only u7's deals; ordered by distance of closeDate, none last.
    assert_eq!(
        matched(&answer["context"]),
        [
            m("Account", "a1", &["contact:c1", "domain:www.Acme.com"]),
            m("Account", "a2", &["contact:c3"]),
            m("Account", "a4", &["lead:l1"]),
            m("Opportunity", "d1", &["account:a1", "owner:u7"]),
            m("Opportunity", "d4", &["account:a1", "owner:u7"]),
            m("Opportunity", "d5", &["account:a4", "lead:l1", "owner:u7"]),
        ]
    );

    // Without the internal party, no owner rule: every candidate, at most 5.
    let external: Vec<Value> = rules_parties()
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "John")
        .cloned()
        .collect();
    let answer = associate(&server, &activity("Now", json!(external))).await;
    assert_eq!(
        matched(&answer["context"]),
        [
            m("Account", "a1", &["contact:c1", "domain:www.Acme.com"]),
            m("Account", "a2", &["contact:c3"]),
            m("Account", "a4", &["lead:l1"]),
            m("Opportunity", "d7", &["account:a2"]),
            m("Opportunity", "d2", &["account:a1"]),
            m("Opportunity", "d1", &["account:a1"]),
            m("Opportunity", "d4", &["account:a1"]),
            m("Opportunity", "d5", &["account:a4", "lead:l1"]),
        ]
    );
    // A party of a domain only: its account, not a parent's free-mail one.
    let answer = associate(
        &server,
        &activity("Now", json!([{"emailAddress": "x@mail.gmail.com"}])),
    )
    .await;
    assert_eq!(answer["context"], json!([]));
}

async fn associations_fields_are_the_stored_record(site: Site) {
    let (server, integration) = seeded(&site).await;
    let answer = associate(
        &server,
        &activity("Now", json!([{"emailAddress": "ann@acme.com"}])),
    )
    .await;
    let object = &answer["parties"][0]["context"][0]["objects"][0];
    assert_eq!(object["objectId"], "c1");
    assert_eq!(object["timing"], "Now");
    let fields = object["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    // Every key of the record as GET /v2/crm/entities returns it, in its order.
    let reply = server
        .send(
            server
                .req(
                    reqwest::Method::GET,
                    &format!("/v2/crm/entities?integrationId={integration}&objectType=CONTACT"),
                )
                .json(&["c1"]),
        )
        .await;
    let stored = reply.body["crmObjectsMap"]["c1"].clone();
    let stored_keys: Vec<&str> = {
        // The key order of the raw text.
        let text = &reply.text;
        let start = text.find("\"c1\":{").unwrap();
        let mut keys: Vec<(usize, &str)> = stored
            .as_object()
            .unwrap()
            .keys()
            .map(|k| {
                (
                    text[start..].find(&format!("\"{k}\":")).unwrap(),
                    k.as_str(),
                )
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    };
    assert_eq!(names, stored_keys);
    for field in fields {
        assert_eq!(
            field["value"],
            stored[field["name"].as_str().unwrap()],
            "{field}"
        );
    }
    assert!(names.contains(&"modifiedDate") && names.contains(&"objectId"));
}

async fn associations_time_of_call_reads_the_history(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    server
        .put_objects(
            integration,
            "CONTACT",
            "v1",
            "2024-01-01T00:00:00Z",
            &[
                json!({"objectId": "t1", "emailAddress": "old@acme.com"}),
                json!({"objectId": "t2", "emailAddress": "back@acme.com"}),
            ],
        )
        .await;
    server
        .put_objects(
            integration,
            "CONTACT",
            "v2",
            "2024-03-01T00:00:00Z",
            &[
                json!({"objectId": "t1", "emailAddress": "new@acme.com"}),
                json!({"objectId": "t2", "emailAddress": "back@acme.com"}),
                json!({"objectId": "t3", "emailAddress": "late@acme.com"}),
            ],
        )
        .await;
    // t2 was deleted in between (a version older than the last one, sent last).
    server
        .put_objects(
            integration,
            "CONTACT",
            "v3",
            "2024-01-15T00:00:00Z",
            &[json!({"objectId": "t2", "isDeleted": true})],
        )
        .await;
    let ask = |email: &str, timing: &str, at: &str| json!({"startTime": at, "timing": timing, "parties": [{"emailAddress": email}]});
    let found = |answer: &Value| -> Vec<String> {
        matched(&answer["parties"][0]["context"])
            .into_iter()
            .map(|(_, id, _)| id)
            .collect()
    };
    let feb = "2024-02-01T00:00:00+01:00";
    let cases = [
        ("old@acme.com", "TimeOfCall", feb, vec!["t1"]),
        ("new@acme.com", "TimeOfCall", feb, vec![]),
        ("old@acme.com", "Now", feb, vec![]),
        ("new@acme.com", "Now", feb, vec!["t1"]),
        ("late@acme.com", "TimeOfCall", feb, vec![]),
        (
            "late@acme.com",
            "TimeOfCall",
            "2024-03-01T00:00:00Z",
            vec!["t3"],
        ),
        ("back@acme.com", "TimeOfCall", feb, vec![]),
        (
            "back@acme.com",
            "TimeOfCall",
            "2024-01-10T00:00:00Z",
            vec!["t2"],
        ),
        ("back@acme.com", "Now", feb, vec!["t2"]),
    ];
    for (email, timing, at, want) in cases {
        let answer = associate(&server, &ask(email, timing, at)).await;
        assert_eq!(found(&answer), want, "{email} {timing} {at}: {answer}");
    }
    // The record as it stood: its fields are the old version's, `timing` echoed.
    let answer = associate(&server, &ask("old@acme.com", "TimeOfCall", feb)).await;
    let object = &answer["parties"][0]["context"][0]["objects"][0];
    assert_eq!(object["timing"], "TimeOfCall");
    let fields: Vec<(String, Value)> = object["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_owned(), f["value"].clone()))
        .collect();
    assert!(fields.contains(&("emailAddress".into(), json!("old@acme.com"))));
    assert!(fields.contains(&("modifiedDate".into(), json!("2024-01-01T00:00:00Z"))));
}

async fn associations_settings_make_parties_internal_and_exclude_domains(site: Site) {
    let (server, _) = seeded(&site).await;
    let settings = server.get("/intake/v1/settings").await;
    assert_eq!(settings.status, 200, "{}", settings.text);
    assert_eq!(settings.body["internalDomains"], json!([]));
    assert_eq!(settings.body["excludedDomains"], json!([]));

    let put = |body: Value| {
        let request = server
            .req(reqwest::Method::PUT, "/intake/v1/settings")
            .json(&body);
        server.send(request)
    };
    let reply = put(json!({"internalDomains": ["https://www.Acme.com:443/x", "acme.com"]})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["internalDomains"], json!(["acme.com"]));
    assert_eq!(reply.body["excludedDomains"], json!([]));
    assert_eq!(
        server.get("/intake/v1/settings").await.body["internalDomains"],
        json!(["acme.com"])
    );
    // A party of an internal domain (or a subdomain) is Internal, with no user and
    // nothing else.
    let answer = associate(
        &server,
        &activity(
            "Now",
            json!([{"emailAddress": "ann@acme.com"}, {"emailAddress": "x@eu.acme.com"}]),
        ),
    )
    .await;
    for party in answer["parties"].as_array().unwrap() {
        assert_eq!(party["affiliation"], "Internal");
        assert_eq!(party["context"], json!([]));
    }
    assert_eq!(answer["context"], json!([]));

    // Excluded domains: no account by domain (subdomains included); a list left out
    // becomes empty.
    let reply = put(json!({"excludedDomains": ["acme.com"]})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["internalDomains"], json!([]));
    let answer = associate(
        &server,
        &activity("Now", json!([{"emailAddress": "someone@eu.acme.com"}])),
    )
    .await;
    assert_eq!(answer["parties"][0]["affiliation"], "External");
    assert_eq!(answer["context"], json!([]));

    // Bad settings: 400 naming the entry; nothing changes.
    let bad = put(json!({"internalDomains": ["ok.com", "not a domain"]})).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(
        bad.error(),
        "Field [internalDomains[1]] must be a domain name, got [not a domain]"
    );
    let bad = put(json!({"excludedDomains": "acme.com"})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.error(),
        "Field [excludedDomains] must be an array of domain names"
    );
    assert_eq!(
        server.get("/intake/v1/settings").await.body["excludedDomains"],
        json!(["acme.com"])
    );
}

async fn associations_batch_answers_each_line_in_order(site: Site) {
    let (server, _) = seeded(&site).await;
    let single = associate(&server, &activity("Now", rules_parties())).await;
    let lines = [
        activity("Now", rules_parties()).to_string(),
        String::new(),
        "{".to_owned(),
        json!({"startTime": START, "timing": "now", "parties": [{"emailAddress": "a@b.c"}]})
            .to_string(),
        "   ".to_owned(),
        activity("Now", json!([{"phoneNumber": "9125074395"}])).to_string(),
    ];
    let body = format!("\u{feff}{}\r\n", lines.join("\n"));
    let send = |body: String, content_type: &'static str| {
        let request = server
            .req(reqwest::Method::POST, "/intake/v1/associations/batch")
            .header("content-type", content_type)
            .body(body);
        async move { request.send().await.unwrap() }
    };
    let response = send(body.clone(), "application/x-ndjson").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 4, "{text}");
    let numbers: Vec<u64> = answers
        .iter()
        .map(|a| a["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 3, 4, 6]);
    let mut first = answers[0].clone();
    first.as_object_mut().unwrap().remove("line");
    assert_eq!(first, single);
    assert_eq!(
        answers[1]["errors"][0],
        "Request body is not valid JSON (line 1, column 1)"
    );
    assert_eq!(
        answers[2]["errors"][0],
        "Field [timing] must be Now or TimeOfCall (case-sensitive), got [now]"
    );
    assert_eq!(
        matched(&answers[3]["parties"][0]["context"]),
        [m("Contact", "c1", &["phoneNumber"])]
    );

    // Not LDJSON: 415 with the envelope.
    let reply = Reply::from(send(body, "text/csv").await).await;
    assert_eq!(reply.status, 415);
    assert_eq!(reply.error(), "Unsupported Media Type");
    // Over 100,000 activities: 413, nothing answered.
    let many = "{}\n".repeat(100_001);
    let reply = Reply::from(send(many, "application/x-ndjson").await).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(
        reply.error(),
        "Request body holds more than the limit of 100000 activities"
    );
    // Over 50 MB: 413.
    let big = "x".repeat(50 * 1024 * 1024 + 1);
    let reply = Reply::from(send(big, "application/x-ndjson").await).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    // The spool keeps nothing of any batch.
    let left = crate::harness::spool_files_once_settled(&site.path().join("spool")).await;
    assert!(left.is_empty(), "{left:?}");
}

async fn associations_bad_input(site: Site) {
    let (server, _) = seeded(&site).await;
    let cases = [
        (
            json!([]),
            "Request body must be a JSON object with startTime and parties",
        ),
        (
            json!({"parties": [{"emailAddress": "a@b.c"}]}),
            "Mandatory field [startTime] is missing or empty",
        ),
        (
            json!({"startTime": "yesterday", "parties": [{"emailAddress": "a@b.c"}]}),
            "Field [startTime] must be an ISO-8601 datetime with Z or ±HH:MM, got [yesterday]",
        ),
        (
            json!({"startTime": START, "timing": "Later", "parties": [{"emailAddress": "a@b.c"}]}),
            "Field [timing] must be Now or TimeOfCall (case-sensitive), got [Later]",
        ),
        (
            json!({"startTime": START}),
            "Mandatory field [parties] is missing or empty",
        ),
        (
            json!({"startTime": START, "parties": []}),
            "Field [parties] must hold 1 to 500 parties, got 0",
        ),
        (
            json!({"startTime": START, "parties": "ann"}),
            "Field [parties] must be an array of 1 to 500 party objects",
        ),
        (
            json!({"startTime": START, "parties": [{"name": "Ann"}]}),
            "Field [parties[0]] must have an emailAddress or a phoneNumber",
        ),
        (
            json!({"startTime": START, "parties": [{"emailAddress": "ann"}]}),
            "Field [parties[0].emailAddress] must contain an @, got [ann]",
        ),
        (
            json!({"startTime": START, "parties": [{"emailAddress": 7}]}),
            "Field [parties[0].emailAddress] must be a string",
        ),
        (
            json!({"startTime": START, "parties": [7]}),
            "Field [parties[0]] must be a JSON object",
        ),
    ];
    for (body, want) in cases {
        let reply = server.post_json("/intake/v1/associations", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.error(), want, "{body}");
        assert!(reply.body["requestId"].as_str().is_some());
    }
    // Every problem is named.
    let reply = server
        .post_json(
            "/intake/v1/associations",
            &json!({"timing": "x", "parties": [{"emailAddress": "ann"}, {}]}),
        )
        .await;
    assert_eq!(reply.errors().len(), 4, "{}", reply.text);
    let parties: Vec<Value> = (0..501)
        .map(|i| json!({"emailAddress": format!("p{i}@x.io")}))
        .collect();
    let reply = server
        .post_json(
            "/intake/v1/associations",
            &json!({"startTime": START, "parties": parties}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        "Field [parties] must hold 1 to 500 parties, got 501"
    );
    let reply = server
        .send(
            server
                .req(reqwest::Method::POST, "/intake/v1/associations")
                .body("{"),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        "Request body is not valid JSON (line 1, column 1)"
    );
    // Over 1 MB: 413 with the envelope.
    let huge = json!({"startTime": START, "parties": [{"emailAddress": "a@b.c", "name": "x".repeat(1 << 20)}]});
    // On a connection of its own: the server answers before reading the body and closes
    // that connection.
    let alone = reqwest::Client::new()
        .post(server.url("/intake/v1/associations"))
        .basic_auth(&server.key, Some(&server.secret))
        .json(&huge);
    let reply = server.send(alone).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.error().contains("limit"), "{}", reply.text);
    let reply = server
        .post_json(
            "/intake/v1/associations?integrationId=x",
            &activity("Now", rules_parties()),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.error().starts_with("Parameter [integrationId]"),
        "{}",
        reply.text
    );
}

async fn associations_tenancy_and_scopes(site: Site) {
    let (server, integration) = seeded(&site).await;
    let other = site.other_company(&server, "other");
    let body = activity("Now", rules_parties());
    let none = other.post_json("/intake/v1/associations", &body).await;
    assert_eq!(none.status, 404);
    assert_eq!(none.error(), "No active integration");
    let foreign = other
        .post_json(
            &format!("/intake/v1/associations?integrationId={integration}"),
            &body,
        )
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error(), "Unknown integrationId");
    let own = other.register().await;
    // Their integration sees none of ours.
    let answer = associate(&other, &body).await;
    assert_eq!(answer["context"], json!([]));
    assert!(answer["parties"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["context"] == json!([])));
    let settings = other
        .get(&format!("/intake/v1/settings?integrationId={own}"))
        .await;
    assert_eq!(settings.status, 200);

    let call = |token: String, method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = server
            .http
            .request(method, server.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { Reply::from(request.send().await.unwrap()).await }
    };
    let denied = call(
        site.token("api:crm:get-objects"),
        reqwest::Method::POST,
        "/intake/v1/associations",
        Some(body.clone()),
    )
    .await;
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.error(),
        "You don't have permission to use 'intake:read' in your app."
    );
    let allowed = call(
        site.token("intake:read"),
        reqwest::Method::POST,
        "/intake/v1/associations",
        Some(body),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    // Settings are written with intake:write only.
    let denied = call(
        site.token("intake:read"),
        reqwest::Method::PUT,
        "/intake/v1/settings",
        Some(json!({"internalDomains": ["acme.com"]})),
    )
    .await;
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.error(),
        "You don't have permission to use 'intake:write' in your app."
    );
    let allowed = call(
        site.token("intake:write"),
        reqwest::Method::PUT,
        "/intake/v1/settings",
        Some(json!({"internalDomains": ["acme.com"]})),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    // The data-privacy calls have Gong's own scopes.
    let denied = call(
        site.token("intake:read"),
        reqwest::Method::GET,
        "/v2/data-privacy/data-for-email-address?emailAddress=ann@acme.com",
        None,
    )
    .await;
    assert_eq!(
        denied.error(),
        "You don't have permission to use 'api:data-privacy:read' in your app."
    );
    let denied = call(
        site.token("api:data-privacy:read"),
        reqwest::Method::POST,
        "/v2/data-privacy/erase-data-for-email-address?emailAddress=ann@acme.com",
        None,
    )
    .await;
    assert_eq!(
        denied.error(),
        "You don't have permission to use 'api:data-privacy:delete' in your app."
    );
    let allowed = call(
        site.token("api:data-privacy:read"),
        reqwest::Method::GET,
        "/v2/data-privacy/data-for-email-address?emailAddress=ann@acme.com",
        None,
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
}

async fn data_privacy_lookups(site: Site) {
    let (server, integration) = seeded(&site).await;
    let reply = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=Ann@Acme.com")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let keys: Vec<&String> = reply.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        6,
        "requestId, emails, calls, meetings, customerData, customerEngagement: {keys:?}"
    );
    for list in ["emails", "calls", "meetings", "customerEngagement"] {
        assert_eq!(reply.body[list], json!([]), "{list}");
    }
    let objects = reply.body["customerData"][0]["objects"].as_array().unwrap();
    assert_eq!(reply.body["customerData"][0]["system"], "Generic");
    let ids: Vec<&str> = objects
        .iter()
        .map(|o| o["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(objects[0]["objectType"], "Contact");
    let id = objects[0]["id"].as_str().unwrap();
    assert!(
        id.bytes().all(|b| b.is_ascii_digit()) && id.len() <= 20,
        "{id}"
    );
    let mirror: Value = serde_json::from_str(objects[0]["mirrorId"].as_str().unwrap()).unwrap();
    assert_eq!(
        mirror,
        json!({"integrationId": integration.to_string(), "crmObjectType": "CONTACT", "crmId": "c1"})
    );
    // The same id in every call.
    let again = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=ann@acme.com")
        .await;
    assert_eq!(again.body["customerData"][0]["objects"][0]["id"], id);

    let reply = server
        .get("/v2/data-privacy/data-for-phone-number?phoneNumber=%2B1%20912-507-4395")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["suppliedPhoneNumber"], "+1 912-507-4395");
    assert_eq!(
        reply.body["matchingPhoneNumbers"],
        json!(["+1 (912) 507-4395"])
    );
    assert_eq!(reply.body["emailAddresses"], json!(["ann@acme.com"]));
    let lead = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=lee@lead.io")
        .await;
    assert_eq!(
        lead.body["customerData"][0]["objects"][0]["objectType"],
        "Lead"
    );
    let nobody = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=nobody@acme.com")
        .await;
    assert_eq!(nobody.body["customerData"], json!([]));
    // Gong's rules for the number: a + and a country code first.
    let bad = server
        .get("/v2/data-privacy/data-for-phone-number?phoneNumber=9125074395")
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.error().starts_with("Parameter [phoneNumber]"),
        "{}",
        bad.text
    );
    let missing = server.get("/v2/data-privacy/data-for-email-address").await;
    assert_eq!(missing.status, 400);
}

async fn data_privacy_erasure_forgets_a_person(site: Site) {
    let (server, integration) = seeded(&site).await;
    // Ann's history: a second version of c1, and a failed line quoting her address.
    server
        .put_objects(
            integration,
            "CONTACT",
            "ann-again",
            "2024-02-01T00:00:00Z",
            &[json!({
            "objectId": "c1", "emailAddress": "ann@acme.com", "phoneNumber": "+1 (912) 507-4395",
            "accountId": "a1", "title": "CEO"})],
        )
        .await;
    let bad = "{\"objectId\":\"zz\",\"modifiedDate\":\"2024-01-01T00:00:00Z\",\"domains\":[\"ann@acme.com\"]}\n";
    let reply = server.upload(integration, "ACCOUNT", "bad-ann", bad).await;
    assert_eq!(reply.status, 201);
    let status = server.wait_done(integration, "bad-ann").await;
    assert!(status.text.contains("ann@acme.com"), "{}", status.text);

    let holds_address = |site: &Site| {
        ["intake.db", "intake.db-wal"].iter().any(|name| {
            std::fs::read(site.path().join(name)).is_ok_and(|bytes| {
                bytes
                    .windows(12)
                    .any(|w| w.eq_ignore_ascii_case(b"ann@acme.com"))
            })
        })
    };
    let sqlite = site.database.starts_with("sqlite:");
    // The check below could fail: the files hold the address now.
    assert!(!sqlite || holds_address(&site));
    let erase = server
        .send(server.req(
            reqwest::Method::POST,
            "/v2/data-privacy/erase-data-for-email-address?emailAddress=ANN@acme.com",
        ))
        .await;
    assert_eq!(erase.status, 200, "{}", erase.text);
    assert!(erase.body["requestId"].as_str().is_some());

    // Nothing of c1, c2 or c4 is readable any more, by any path.
    let objects = server
        .objects(integration, "CONTACT", &["c1", "c2", "c3", "c4"])
        .await;
    assert_eq!(objects["c1"], Value::Null);
    assert_eq!(objects["c2"], Value::Null);
    assert!(objects["c3"].is_object());
    for id in ["c1", "c2", "c4"] {
        let one = server
            .get(&format!("/intake/v1/records/CONTACT/{id}"))
            .await;
        assert_eq!(one.status, 404, "{id}: {}", one.text);
        let versions = server
            .get(&format!("/intake/v1/records/CONTACT/{id}/versions"))
            .await;
        assert_eq!(versions.status, 404, "{id}: {}", versions.text);
        let past = server
            .get(&format!(
                "/intake/v1/records/CONTACT/{id}?asOf=2024-01-05T00:00:00Z"
            ))
            .await;
        assert_eq!(past.status, 404, "{id}: {}", past.text);
    }
    let listed = server
        .get("/intake/v1/records/CONTACT?includeDeleted=true")
        .await;
    assert!(!listed.text.contains("ann@acme.com"), "{}", listed.text);
    let lookup = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=ann@acme.com")
        .await;
    assert_eq!(lookup.body["customerData"], json!([]));
    let phone = server
        .get("/v2/data-privacy/data-for-phone-number?phoneNumber=%2B19125074395")
        .await;
    assert_eq!(phone.body["customerData"], json!([]));
    for timing in ["Now", "TimeOfCall"] {
        let answer = associate(
            &server,
            &activity(
                timing,
                json!([{"emailAddress": "ann@acme.com"}, {"phoneNumber": "9125074395"}]),
            ),
        )
        .await;
        assert!(!answer.to_string().contains("\"c1\""), "{answer}");
        assert_eq!(answer["parties"][0]["context"], json!([]));
    }
    // The error that quoted her address no longer does.
    let status = server.status(integration, "bad-ann").await;
    assert!(!status.text.contains("ann@acme.com"), "{}", status.text);
    assert_eq!(status.body["totalErrorCount"], 1);
    // Nor does the list of every error, and her failed line is gone; no sidecar file in
    // the spool holds the address any more.
    let errors = server.get("/intake/v1/requests/bad-ann/errors").await;
    assert_eq!(errors.status, 200, "{}", errors.text);
    assert_eq!(
        errors.body["errors"],
        json!([{"line": 1, "field": "domains",
                "description": "Error text erased by a data-privacy request"}])
    );
    let failed = server
        .req(
            reqwest::Method::GET,
            "/intake/v1/requests/bad-ann/failed-lines",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    assert_eq!(failed.text().await.unwrap(), "");
    for entry in std::fs::read_dir(site.path().join("spool")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(12)
                .any(|w| w.eq_ignore_ascii_case(b"ann@acme.com")),
            "{} holds the address",
            path.display()
        );
    }

    // On SQLite, none of the address's bytes are left in the database files.
    if sqlite {
        assert!(
            !holds_address(&site),
            "the database still holds the address"
        );
        for name in ["intake.db", "intake.db-wal"] {
            let Ok(bytes) = std::fs::read(site.path().join(name)) else {
                continue;
            };
            let digits = b"9125074395";
            assert!(
                !bytes.windows(digits.len()).any(|w| w == digits),
                "{name} still holds the phone key"
            );
        }
    }
    // A later upload brings the person back, as in Gong.
    server
        .put_objects(
            integration,
            "CONTACT",
            "ann-back",
            T0,
            &[json!({
            "objectId": "c1", "emailAddress": "ann@acme.com"})],
        )
        .await;
    let lookup = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=ann@acme.com")
        .await;
    assert_eq!(
        lookup.body["customerData"][0]["objects"][0]["externalId"],
        "c1"
    );
}

async fn associate_command_prints_text_json_and_batches(site: Site) {
    let (server, _) = seeded(&site).await;
    let out = server
        .cli(&[
            "associate",
            "--email",
            "ann@acme.com",
            "--email",
            "john.doe@ourco.com",
            "--at",
            START,
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = "\
ann@acme.com — External
    Contact c1 (Ann) because emailAddress
    Contact c2 because emailAddress
john.doe@ourco.com — Internal
    User u7 (John.Doe@OurCo.com) because emailAddress

Accounts and deals:
    Account a1 (Acme) because contact:c1
    Opportunity d1 (Deal_#d1), status OPEN, closeDate 2024-05-10 because account:a1, owner:u7
    Opportunity d4 (Deal_#d4), status LOST, closeDate 2024-04-20 because account:a1, owner:u7
";
    assert_eq!(text, expected);

    let out = server
        .cli(&[
            "associate",
            "--phone",
            "912 507 4395",
            "--at",
            START,
            "--time-of-call",
            "--json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["parties"][0]["affiliation"], "Unknown");
    assert_eq!(
        matched(&printed["parties"][0]["context"]),
        [m("Contact", "c1", &["phoneNumber"])]
    );
    assert_eq!(
        printed["parties"][0]["context"][0]["objects"][0]["timing"],
        "TimeOfCall"
    );

    let file = site.path().join("activities.ldjson");
    let answers = site.path().join("answers.ldjson");
    std::fs::write(
        &file,
        format!("{}\nnot json\n", activity("Now", rules_parties())),
    )
    .unwrap();
    let out = server
        .cli(&[
            "associate",
            "--batch",
            file.to_str().unwrap(),
            "-o",
            answers.to_str().unwrap(),
        ])
        .await;
    // One bad line: exit 1, and the answer still written for every line.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let written = std::fs::read_to_string(&answers).unwrap();
    let lines: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 1);
    assert!(lines[0]["parties"].is_array());
    assert!(lines[1]["errors"].is_array());
    let usage = server.cli(&["associate"]).await;
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}

async fn associations_survive_integration_delete_and_replay(site: Site) {
    let (server, integration) = seeded(&site).await;
    // The same file again (a replay changes nothing), then a delete of the integration:
    // its keys go with it, and a new integration starts empty.
    server
        .put_objects(
            integration,
            "CONTACT",
            "again",
            T0,
            &[json!({
            "objectId": "c1", "emailAddress": "ann@acme.com", "phoneNumber": "+1 (912) 507-4395",
            "accountId": "a1", "firstName": "Ann", "modifiedDate": "2024-01-03T00:00:00Z"})],
        )
        .await;
    let answer = associate(
        &server,
        &activity("Now", json!([{"emailAddress": "ann@acme.com"}])),
    )
    .await;
    assert_eq!(
        matched(&answer["parties"][0]["context"]),
        [
            m("Contact", "c1", &["emailAddress"]),
            m("Contact", "c2", &["emailAddress"])
        ]
    );
    let reply = server
        .send(server.req(
            reqwest::Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={integration}&clientRequestId=gone"),
        ))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    server.wait_done(integration, "gone").await;
    let fresh = server.register().await;
    assert_ne!(fresh, integration);
    let answer = associate(&server, &activity("Now", rules_parties())).await;
    assert_eq!(answer["context"], json!([]));
    assert!(answer["parties"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["context"] == json!([])));
    let lookup = server
        .get("/v2/data-privacy/data-for-email-address?emailAddress=ann@acme.com")
        .await;
    assert_eq!(lookup.body["customerData"], json!([]));
}
