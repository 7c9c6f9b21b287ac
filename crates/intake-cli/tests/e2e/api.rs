//! The API of docs/API.md, operation by operation, on both backends.

use reqwest::Method;
use serde_json::{json, Value};

use intake_model::wire::{
    Accepted, ErrorEnvelope, IntegrationInfo, IntegrationList, ObjectsReply, RequestState,
    RequestStatusReply,
};

use crate::backend_tests;
use crate::harness::{spool_files, spool_files_once_settled, Reply, Server, Site};

backend_tests!(
    integration_lifecycle,
    errors_have_the_envelope,
    authentication_and_scopes,
    upload_parameter_errors,
    seed_examples,
    history_keeps_every_version,
    file_rules_and_line_numbers,
    request_status_lists_twenty_errors,
    custom_field_schema,
    get_entities_inputs,
    companies_do_not_see_each_other,
    rate_limits,
    restart_in_the_middle_of_processing,
);

fn assert_request_id(reply: &Reply) {
    let id = reply.body["requestId"].as_str().expect("requestId in body");
    assert!((17..=19).contains(&id.len()), "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{id}"
    );
    assert_eq!(reply.headers["x-request-id"].to_str().unwrap(), id);
}

async fn integration_lifecycle(site: Site) {
    let server = site.start(&[]);
    let empty = server.get("/v2/crm/integrations").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["integrations"], json!([]));

    let id = server.register().await;
    assert!(id > 1 << 53, "integration ids need more than 53 bits: {id}");
    let listed = server.get("/v2/crm/integrations").await;
    assert_request_id(&listed);
    let listed: IntegrationList = listed.parse();
    assert_eq!(
        listed.integrations,
        [IntegrationInfo {
            integration_id: id,
            name: "CRM".into(),
            owner_email: "owner@example.com".into(),
        }]
    );
    // The raw text carries the id as a bare integer.
    let text = server
        .req(Method::GET, "/v2/crm/integrations")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!("\"integrationId\":{id}")), "{text}");

    let second = server
        .send(
            server
                .req(Method::PUT, "/v2/crm/integrations")
                .json(&json!({"name": "B", "ownerEmail": "b@example.com"})),
        )
        .await;
    assert_eq!(second.status, 409);
    assert!(second
        .error()
        .starts_with("Your organization already has an active GENERIC CRM integration"));

    for (body, text) in [
        (
            json!({"ownerEmail": "a@example.com"}),
            "Mandatory field [name] is missing or empty",
        ),
        (
            json!({"name": "x", "ownerEmail": "not-an-email"}),
            "Field [ownerEmail] must be a valid email address",
        ),
    ] {
        let reply = server
            .send(server.req(Method::PUT, "/v2/crm/integrations").json(&body))
            .await;
        assert_eq!(reply.status, 400);
        assert!(reply.error().starts_with(text), "{}", reply.error());
    }

    // Something to delete.
    server
        .upload(
            id,
            "ACCOUNT",
            "acc-1",
            "{\"objectId\":\"a1\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}\n",
        )
        .await;
    server.wait_done(id, "acc-1").await;

    let deleted = server
        .send(server.req(
            Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={id}&clientRequestId=del-1"),
        ))
        .await;
    assert_eq!(deleted.status, 201, "{:?}", deleted.body);
    assert_eq!(deleted.parse::<Accepted>().client_request_id, "del-1");
    let done = server.wait_done(id, "del-1").await;
    assert_eq!(
        done.parse::<RequestStatusReply>().status,
        RequestState::Done
    );
    assert_eq!(
        server.get("/v2/crm/integrations").await.body["integrations"],
        json!([])
    );
    // The id namespace is shared with uploads.
    let reused = server
        .send(server.req(
            Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={id}&clientRequestId=acc-1"),
        ))
        .await;
    assert_eq!(
        reused.status, 400,
        "the integration is gone: {:?}",
        reused.body
    );
    let objects = server
        .send(
            server
                .req(
                    Method::GET,
                    &format!("/v2/crm/entities?integrationId={id}&objectType=ACCOUNT"),
                )
                .json(&["a1"]),
        )
        .await;
    assert_eq!(objects.status, 400, "a deleted integration is unknown");

    let again = server.register().await;
    assert_ne!(again, id);
    let reused = server
        .send(server.req(
            Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={again}&clientRequestId=acc-1"),
        ))
        .await;
    assert_eq!(reused.status, 409);
    assert_eq!(reused.error(), "Client request id has already been used");
    assert_eq!(
        server.objects(again, "ACCOUNT", &["a1"]).await,
        json!({"a1": null})
    );
}

async fn errors_have_the_envelope(site: Site) {
    let server = site.start(&[]);
    let unknown = server.get("/v2/crm/nothing-here").await;
    assert_eq!(unknown.status, 404);
    assert_request_id(&unknown);
    let envelope: ErrorEnvelope = unknown.parse();
    assert_eq!(envelope.errors.len(), 1);
    assert_eq!(
        unknown.headers["x-request-id"].to_str().unwrap(),
        envelope.request_id
    );

    let wrong_method = server
        .send(server.req(Method::PATCH, "/v2/crm/integrations"))
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.error(), "Method Not Allowed");
    assert_request_id(&wrong_method);

    let bad_json = server
        .send(
            server
                .req(Method::PUT, "/v2/crm/integrations")
                .body("{nope"),
        )
        .await;
    assert_eq!(bad_json.status, 400);
    assert_request_id(&bad_json);
    assert_eq!(bad_json.errors().len(), 1);

    let health = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    use std::os::unix::fs::PermissionsExt;
    let credentials = std::fs::metadata(site.path().join("initial-credentials.json")).unwrap();
    assert_eq!(
        credentials.permissions().mode() & 0o777,
        0o600,
        "readable by the owner only"
    );
}

async fn authentication_and_scopes(site: Site) {
    // The credential cache off: a revoked key must fail at once.
    let server = site.start(&["--auth-cache-seconds", "0"]);
    let none = Reply::from(
        server
            .http
            .get(server.url("/v2/crm/integrations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, 401);
    assert!(none.headers.contains_key("www-authenticate"));
    assert_request_id(&none);

    let wrong = Reply::from(
        server
            .http
            .get(server.url("/v2/crm/integrations"))
            .basic_auth(&server.key, Some("wrong"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let garbage = Reply::from(
        server
            .http
            .get(server.url("/v2/crm/integrations"))
            .header("authorization", "Basic !!!")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(garbage.status, 401);

    let out = site.intake(&[
        "admin",
        "token",
        "create",
        "--company",
        "default",
        "--scope",
        "api:crm:integrations:read",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token["token"].as_str().unwrap();
    let read = Reply::from(
        server
            .http
            .get(server.url("/v2/crm/integrations"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read.status, 200);
    let register = Reply::from(
        server
            .http
            .put(server.url("/v2/crm/integrations"))
            .bearer_auth(token)
            .json(&json!({"name": "x", "ownerEmail": "x@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(register.status, 401);
    assert_eq!(
        register.error(),
        "You don't have permission to use 'api:crm:integration:register' in your app."
    );
    let bad_token = Reply::from(
        server
            .http
            .get(server.url("/v2/crm/integrations"))
            .bearer_auth(format!("{token}x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad_token.status, 401);

    // A revoked key no longer works.
    let out = site.intake(&["admin", "key", "create", "--company", "default", "--json"]);
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (k, s) = (
        key["accessKey"].as_str().unwrap(),
        key["accessKeySecret"].as_str().unwrap(),
    );
    let ok = server
        .http
        .get(server.url("/v2/crm/integrations"))
        .basic_auth(k, Some(s))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(site.intake(&["admin", "key", "revoke", k]).status.success());
    let revoked = server
        .http
        .get(server.url("/v2/crm/integrations"))
        .basic_auth(k, Some(s))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
}

async fn upload_parameter_errors(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let line = "{\"objectId\":\"c1\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}\n";
    let post = |query: String| server.req(Method::POST, &format!("/v2/crm/entities?{query}"));
    let form = || {
        reqwest::multipart::Form::new().part(
            "dataFile",
            reqwest::multipart::Part::bytes(line.as_bytes().to_vec()),
        )
    };

    let cases = [
        (
            "objectType=CONTACT&clientRequestId=a".to_string(),
            "Mandatory field [integrationId] is missing or empty",
        ),
        (
            format!("integrationId={id}&clientRequestId=a"),
            "Mandatory field [objectType] is missing or empty",
        ),
        (
            format!("integrationId={id}&objectType=CONTACT"),
            "Mandatory field [clientRequestId] is missing or empty",
        ),
        (
            format!("integrationId={id}&objectType=contact&clientRequestId=a"),
            "Field [objectType] must be one of",
        ),
        (
            format!("integrationId={id}&objectType=CONTACT&clientRequestId=a%20b"),
            "Field [clientRequestId] must be",
        ),
        (
            "integrationId=abc&objectType=CONTACT&clientRequestId=a".to_string(),
            "Field [integrationId] must be",
        ),
        (
            "integrationId=12345&objectType=CONTACT&clientRequestId=a".to_string(),
            "Unknown integrationId [12345]",
        ),
    ];
    for (query, text) in cases {
        let reply = server.send(post(query.clone()).multipart(form())).await;
        assert_eq!(reply.status, 400, "{query}");
        assert!(
            reply.error().starts_with(text),
            "{query}: {}",
            reply.error()
        );
    }
    let long_id = "x".repeat(129);
    let reply = server
        .send(
            post(format!(
                "integrationId={id}&objectType=CONTACT&clientRequestId={long_id}"
            ))
            .multipart(form()),
        )
        .await;
    assert_eq!(reply.status, 400);

    let q = format!("integrationId={id}&objectType=CONTACT&clientRequestId=r1");
    let no_part = server
        .send(post(q.clone()).multipart(reqwest::multipart::Form::new().text("other", "x")))
        .await;
    assert_eq!(no_part.status, 400);
    assert_eq!(no_part.error(), "dataFile part is missing");
    let empty = server
        .send(
            post(q.clone()).multipart(
                reqwest::multipart::Form::new()
                    .part("dataFile", reqwest::multipart::Part::bytes(Vec::new())),
            ),
        )
        .await;
    assert_eq!(empty.status, 400);
    let not_multipart = server.send(post(q.clone()).body(line)).await;
    assert_eq!(not_multipart.status, 415);
    // Rejected uploads leave the id free and nothing in the spool.
    assert!(
        spool_files(site.path()).is_empty(),
        "{:?}",
        spool_files(site.path())
    );
    let accepted = server.upload(id, "CONTACT", "r1", line).await;
    assert_eq!(accepted.status, 201, "{:?}", accepted.body);
    assert_eq!(accepted.body["clientRequestId"], "r1");
    assert_request_id(&accepted);
    let again = server.upload(id, "CONTACT", "r1", line).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error(), "Client request id has already been used");
    assert_eq!(
        server.wait_done(id, "r1").await.body["totalSuccessCount"],
        1
    );

    // Any part content type and file name, and none.
    let part = reqwest::multipart::Part::bytes(line.replace("c1", "c2").into_bytes())
        .mime_str("application/x-whatever")
        .unwrap();
    let odd = server
        .send(
            post(format!(
                "integrationId={id}&objectType=CONTACT&clientRequestId=r2"
            ))
            .multipart(reqwest::multipart::Form::new().part("dataFile", part)),
        )
        .await;
    assert_eq!(odd.status, 201);

    // Over 200 MB: 413, nothing kept, the id stays free.
    let big = vec![b' '; 209_715_201];
    let too_big = server.upload(id, "CONTACT", "big-1", big).await;
    assert_eq!(too_big.status, 413);
    assert!(spool_files(site.path())
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".part")));
    let small = server
        .upload(id, "CONTACT", "big-1", line.replace("c1", "c3"))
        .await;
    assert_eq!(small.status, 201);
}

const SEED_BUSINESS_USER: &str = r#"{"objectId": "user1_Id_In_The_CRM", "emailAddress": "john.doe@acme.com", "modifiedDate": "2019-01-03T23:45:57+01:00"}
{"objectId": "user2_Id_In_The_CRM", "isDeleted": true, "emailAddress": "john.taylor@acme.com", "modifiedDate": "2019-01-03T23:45:57+01:00"}
"#;
const SEED_STAGE: &str = r#"{"objectId": "discovery", "name": "Discovery", "isActive": true, "sortOrder": 1}
{"objectId": "won", "modifiedDate": "2019-01-03T23:45:57+01:00", "name": "Closed Won", "isActive": true, "sortOrder": 5}
"#;
const SEED_ACCOUNT: &str = r#"{"objectId": "5ybyh6n6n65", "modifiedDate": "2019-01-03T23:45:57+01:00", "url": "https://crm.com/accounts/5ybyh6n6n65", "name": "PBR", "domains": ["pbr.com", "pbr.gov"], "type": "Investor"}
{"objectId": "gfjhty756th", "modifiedDate": "2019-01-03T22:45:57Z", "name": "PBR", "domains": ["pbr.com", "pbr.gov"], "isDeleted": true}
"#;
const SEED_CONTACT: &str = r#"{"objectId": "5zbwd7n5n65", "modifiedDate": "2019-01-03T23:45:57+01:00", "url": "https://crm.com/contacts/5zbwd7n5n65", "accountId": "5ybyh6n6n65", "emailAddress": "john.smith@acme.com", "firstName": "john", "lastName": "smith", "phoneNumber": "(912) 507-4395"}"#;
const SEED_LEAD: &str = r#"{"objectId": "4v5bt54t553", "modifiedDate": "2019-01-03T23:45:57+01:00", "url": "https://crm.com/leads/45k4j5j5k44", "emailAddress": "jane.doe@acme.com", "firstName": "Jane", "lastName": "Doe", "title": "VP Special Effects", "phoneNumber": "(912) 507-4395"}
{"objectId": "gf4543gf6th", "modifiedDate": "2019-01-03T22:45:57Z", "emailAddress": "john.smith@acme.com", "firstName": "John", "lastName": "Smith", "isDeleted": true}
{"objectId": "63473hjg53h", "modifiedDate": "2019-01-03T23:45:57+01:00", "emailAddress": "bob.smith@acme.com", "firstName": "Bob", "lastName": "Smith", "convertedToDealId": "dkfj8dfgf87", "convertedToContactId": "87grhn74hg6", "convertedToAccountId": "6sjk47jf78d"}
"#;
const SEED_DEAL: &str = r#"{"objectId": "8608553", "modifiedDate": "2022-02-04T18:24:59Z", "url": "http://crm.com/deals/8608553", "accountId": "5ybyh6n6n65", "ownerId": "5486951", "name": "Deal name", "createdDate": "2022-02-04T17:57:23Z", "closeDate": "2022-09-04", "status": OPEN, "stage": "discovery", "amount": 7000, "custom_field_1": "2022-02-04T17:57:23.000Z", "custom_field_2": null}"#;

async fn seed_examples(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    for (t, data) in [
        ("BUSINESS_USER", SEED_BUSINESS_USER),
        ("STAGE", SEED_STAGE),
        ("ACCOUNT", SEED_ACCOUNT),
        ("CONTACT", SEED_CONTACT),
        ("LEAD", SEED_LEAD),
        ("DEAL", SEED_DEAL),
    ] {
        assert_eq!(
            server
                .upload(id, t, &format!("seed-{t}"), data)
                .await
                .status,
            201
        );
    }
    for t in ["BUSINESS_USER", "STAGE", "ACCOUNT", "CONTACT", "LEAD"] {
        let done = server.wait_done(id, &format!("seed-{t}")).await;
        assert_eq!(done.body["status"], "DONE", "{t}: {:?}", done.body);
        assert_eq!(done.body["totalErrorCount"], 0);
    }
    let deal: RequestStatusReply = server.wait_done(id, "seed-DEAL").await.parse();
    assert_eq!(deal.status, RequestState::Failed);
    assert_eq!(deal.total_error_count, 1);
    assert_eq!(deal.total_success_count, 0);
    assert_eq!(deal.errors[0].line, 1);
    assert!(deal.errors[0].description.contains("JSON"));

    let users = server
        .objects(
            id,
            "BUSINESS_USER",
            &["user1_Id_In_The_CRM", "user2_Id_In_The_CRM"],
        )
        .await;
    assert_eq!(
        users["user1_Id_In_The_CRM"]["emailAddress"],
        "john.doe@acme.com"
    );
    assert_eq!(users["user2_Id_In_The_CRM"], Value::Null);

    let stages = server.objects(id, "STAGE", &["discovery", "won"]).await;
    assert_eq!(stages["discovery"]["name"], "Discovery");
    assert_eq!(stages["won"]["sortOrder"], 5);

    let accounts = server
        .objects(id, "ACCOUNT", &["5ybyh6n6n65", "gfjhty756th", "nope"])
        .await;
    assert_eq!(
        accounts["5ybyh6n6n65"]["domains"],
        json!(["pbr.com", "pbr.gov"])
    );
    assert_eq!(
        accounts["5ybyh6n6n65"]["type"], "Investor",
        "custom fields are kept"
    );
    assert_eq!(accounts["gfjhty756th"], Value::Null);
    assert_eq!(accounts["nope"], Value::Null);

    let contacts = server.objects(id, "CONTACT", &["5zbwd7n5n65"]).await;
    assert_eq!(contacts["5zbwd7n5n65"]["phoneNumber"], "(912) 507-4395");
    let leads = server
        .objects(id, "LEAD", &["4v5bt54t553", "gf4543gf6th", "63473hjg53h"])
        .await;
    assert_eq!(leads["gf4543gf6th"], Value::Null);
    assert_eq!(leads["63473hjg53h"]["convertedToDealId"], "dkfj8dfgf87");

    // The seed's deal with its status quoted: stored with its defaults.
    let fixed = SEED_DEAL
        .replace("OPEN", "\"OPEN\"")
        .replace("\"name\": \"Deal name\", ", "");
    server.upload(id, "DEAL", "seed-DEAL-fixed", fixed).await;
    assert_eq!(
        server.wait_done(id, "seed-DEAL-fixed").await.body["status"],
        "DONE"
    );
    let deals = server.objects(id, "DEAL", &["8608553"]).await;
    assert_eq!(deals["8608553"]["name"], "Deal_#8608553");
    assert_eq!(deals["8608553"]["amount"], 7000);
    assert_eq!(deals["8608553"]["status"], "OPEN");

    // Defaults of an account and a deal that say little.
    server
        .upload(id, "DEAL", "defaults", "{\"objectId\":\"d2\",\"modifiedDate\":\"2022-01-01T00:00:00Z\",\"closeDate\":\"2022-09-04T10:00:00Z\"}\n")
        .await;
    server.wait_done(id, "defaults").await;
    let d2 = &server.objects(id, "DEAL", &["d2"]).await["d2"];
    assert_eq!(d2["status"], "OPEN");
    assert_eq!(d2["amount"], 0);
    assert_eq!(d2["closeDate"], "2022-09-04");

    // A deleted stage stays, inactive.
    server
        .upload(id, "STAGE", "stage-del", "{\"objectId\":\"won\",\"modifiedDate\":\"2020-01-03T23:45:57Z\",\"name\":\"Closed Won\",\"isDeleted\":true}\n")
        .await;
    server.wait_done(id, "stage-del").await;
    let won = &server.objects(id, "STAGE", &["won"]).await["won"];
    assert_eq!(won["isActive"], false);
}

async fn history_keeps_every_version(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let line = |date: &str, name: &str| {
        format!("{{\"objectId\":\"acc\",\"modifiedDate\":\"{date}\",\"name\":\"{name}\"}}\n")
    };
    let steps = [
        ("h1", line("2020-01-02T00:00:00Z", "second"), "second"),
        ("h2", line("2020-01-01T00:00:00Z", "first"), "second"), // older: history only
        ("h3", line("2020-01-02T00:00:00Z", "tie"), "tie"),      // tie: the later upload wins
        (
            "h4",
            line("2020-01-03T00:00:00+05:00", "earlier-utc"),
            "earlier-utc",
        ),
    ];
    for (crid, data, expected) in steps {
        server.upload(id, "ACCOUNT", crid, data).await;
        let done = server.wait_done(id, crid).await;
        assert_eq!(done.body["status"], "DONE");
        assert_eq!(
            done.body["totalSuccessCount"], 1,
            "older lines count as successes"
        );
        assert_eq!(
            server.objects(id, "ACCOUNT", &["acc"]).await["acc"]["name"],
            expected,
            "after {crid}"
        );
    }
    // Deleted, then a newer version brings it back.
    server
        .upload(
            id,
            "ACCOUNT",
            "h5",
            "{\"objectId\":\"acc\",\"modifiedDate\":\"2021-01-01T00:00:00Z\",\"isDeleted\":true}\n",
        )
        .await;
    server.wait_done(id, "h5").await;
    assert_eq!(
        server.objects(id, "ACCOUNT", &["acc"]).await["acc"],
        Value::Null
    );
    server
        .upload(id, "ACCOUNT", "h6", line("2021-01-02T00:00:00Z", "back"))
        .await;
    server.wait_done(id, "h6").await;
    let back = &server.objects(id, "ACCOUNT", &["acc"]).await["acc"];
    assert_eq!(back["name"], "back");
    assert!(
        back.get("domains").is_none(),
        "a line is the full state: {back}"
    );
}

async fn file_rules_and_line_numbers(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let file = "\u{feff}{\"objectId\":\"c1\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}\r\n\
                \r\n\
                   \n\
                {\"objectId\":\"c1\",\"modifiedDate\":\"2020-01-02T00:00:00Z\"}\r\n\
                [1,2]\n\
                {\"modifiedDate\":\"2020-01-01T00:00:00Z\"}\n\
                {\"objectId\":\"c2\",\"modifiedDate\":\"2020-01-01T00:00:00.123Z\"}\n\
                {\"objectId\":\"c3\",\"modifiedDate\":\"2020-01-01T00:00:00Z\",\"emailAddress\":\"x@y.io\"}";
    server.upload(id, "CONTACT", "rules", file).await;
    let done: RequestStatusReply = server.wait_done(id, "rules").await.parse();
    assert_eq!(done.status, RequestState::Failed);
    assert_eq!(done.total_success_count, 2);
    assert_eq!(done.total_error_count, 4);
    let errors = &done.errors;
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![4, 5, 6, 7]);
    assert_eq!(
        errors[0].description,
        "Duplicate objectId [c1] in file: send multiple updates of a record in separate files"
    );
    assert_eq!(errors[1].description, "Line is not a JSON object");
    assert_eq!(
        errors[2].description,
        "Mandatory field [objectId] is missing or empty"
    );
    assert_eq!(
        errors[3].description,
        "Field [modifiedDate] must be an ISO-8601 datetime without milliseconds"
    );
    let objects = server.objects(id, "CONTACT", &["c1", "c3"]).await;
    assert_eq!(objects["c1"]["modifiedDate"], "2020-01-01T00:00:00Z");
    assert_eq!(objects["c3"]["emailAddress"], "x@y.io");

    // A file of blank lines only is accepted and succeeds with nothing.
    server.upload(id, "CONTACT", "blank", "\n\n  \n").await;
    let blank = server.wait_done(id, "blank").await;
    assert_eq!(blank.body["status"], "DONE");
    assert_eq!(blank.body["totalSuccessCount"], 0);
    // The spool is emptied once processed.
    assert!(spool_files_once_settled(site.path()).await.is_empty());
}

async fn request_status_lists_twenty_errors(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let mut file = String::new();
    for i in 0..50 {
        if i % 2 == 0 {
            file.push_str(&format!("{{\"objectId\":\"u{i}\",\"modifiedDate\":\"2020-01-01T00:00:00Z\",\"emailAddress\":\"u{i}@example.com\"}}\n"));
        } else {
            file.push_str(&format!("{{\"objectId\":\"u{i}\",\"modifiedDate\":\"2020-01-01T00:00:00Z\",\"emailAddress\":\"bad\"}}\n"));
        }
    }
    server.upload(id, "BUSINESS_USER", "users", file).await;
    let done: RequestStatusReply = server.wait_done(id, "users").await.parse();
    assert_eq!(done.status, RequestState::Failed);
    assert_eq!(done.total_error_count, 25, "{done:?}");
    assert_eq!(done.total_success_count, 25);
    assert_eq!(done.errors.len(), 20);
    assert_eq!(done.errors[0].line, 2);
    assert_eq!(done.errors[19].line, 40);

    let unknown = server.status(id, "never-sent").await;
    assert_eq!(unknown.status, 404);
    assert_request_id(&unknown);
    let wrong_integration = server.status(id + 1, "users").await;
    assert_eq!(wrong_integration.status, 404);
}

async fn custom_field_schema(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let schema_url = |t: &str| format!("/v2/crm/entity-schema?integrationId={id}&objectType={t}");
    let fields = json!([
        {"uniqueName": "tier", "label": "Tier", "type": "PICKLIST", "orderedValueList": ["gold", "silver"]},
        {"uniqueName": "score", "label": "Score", "type": "PERCENT"},
        {"uniqueName": "parent", "label": "Parent", "type": "REFERENCE", "referenceTo": "ACCOUNT"}
    ]);
    let posted = server
        .send(
            server
                .req(Method::POST, &schema_url("ACCOUNT"))
                .json(&fields),
        )
        .await;
    assert!(
        posted.status == 200 || posted.status == 201,
        "{:?}",
        posted.body
    );

    let listed = server.get(&schema_url("ACCOUNT")).await;
    let account_fields = listed.body["objectTypeToSelectedFields"]["ACCOUNT"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(account_fields.len(), 3);
    let tier = account_fields
        .iter()
        .find(|f| f["uniqueName"] == "tier")
        .unwrap();
    assert_eq!(tier["name"], "tier");
    assert_eq!(tier["type"], "PICKLIST");
    let all = server
        .get(&format!("/v2/crm/entity-schema?integrationId={id}"))
        .await;
    assert_eq!(all.body["objectTypeToSelectedFields"]["CONTACT"], json!([]));

    let bad = server
        .send(
            server
                .req(Method::POST, &schema_url("ACCOUNT"))
                .json(&json!([{"uniqueName": "x", "label": "X", "type": "REFERENCE"}])),
        )
        .await;
    assert_eq!(bad.status, 400);
    let missing = server
        .send(
            server
                .req(Method::POST, &schema_url("ACCOUNT"))
                .json(&json!([fields[0].clone()])),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.error().contains("score") && missing.error().contains("parent"),
        "{}",
        missing.error()
    );
    let wrong_type = server
        .send(server.req(Method::POST, &schema_url("STAGE")).json(&fields))
        .await;
    assert_eq!(wrong_type.status, 400);

    let data = "{\"objectId\":\"a1\",\"modifiedDate\":\"2020-01-01T00:00:00Z\",\"tier\":\"gold\",\"score\":50,\"note\":\"free\"}\n\
                {\"objectId\":\"a2\",\"modifiedDate\":\"2020-01-01T00:00:00Z\",\"tier\":\"bronze\"}\n\
                {\"objectId\":\"a3\",\"modifiedDate\":\"2020-01-01T00:00:00Z\",\"score\":101}\n";
    server.upload(id, "ACCOUNT", "custom", data).await;
    let done = server.wait_done(id, "custom").await;
    assert_eq!(done.body["totalSuccessCount"], 1);
    assert_eq!(done.body["totalErrorCount"], 2);
    let errors = done.body["errors"].as_array().unwrap();
    assert!(errors[0]["description"]
        .as_str()
        .unwrap()
        .contains("[tier]"));
    assert!(errors[1]["description"]
        .as_str()
        .unwrap()
        .contains("[score]"));
    let a1 = &server.objects(id, "ACCOUNT", &["a1"]).await["a1"];
    assert_eq!(a1["tier"], "gold");
    assert_eq!(a1["note"], "free");

    // Deleting a field removes its values; changing a type drops the old values.
    let next = json!([
        {"uniqueName": "tier", "label": "Tier", "type": "PICKLIST", "orderedValueList": ["gold"], "isDeleted": true},
        {"uniqueName": "score", "label": "Score", "type": "STRING"},
        {"uniqueName": "parent", "label": "Parent", "type": "REFERENCE", "referenceTo": "ACCOUNT"}
    ]);
    let replaced = server
        .send(server.req(Method::POST, &schema_url("ACCOUNT")).json(&next))
        .await;
    assert!(
        replaced.status == 200 || replaced.status == 201,
        "{:?}",
        replaced.body
    );
    let a1 = &server.objects(id, "ACCOUNT", &["a1"]).await["a1"];
    assert!(a1.get("tier").is_none(), "{a1}");
    assert!(a1.get("score").is_none(), "{a1}");
    assert_eq!(a1["note"], "free");
    let listed = server.get(&schema_url("ACCOUNT")).await;
    assert_eq!(
        listed.body["objectTypeToSelectedFields"]["ACCOUNT"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn get_entities_inputs(site: Site) {
    let server = site.start(&[]);
    let id = server.register().await;
    let mut file = String::new();
    for i in 0..150 {
        file.push_str(&format!(
            "{{\"objectId\":\"k{i}\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}}\n"
        ));
    }
    server.upload(id, "CONTACT", "many", file).await;
    server.wait_done(id, "many").await;
    let base = format!("/v2/crm/entities?integrationId={id}&objectType=CONTACT");

    let by_query = server
        .get(&format!("{base}&objectsCrmIds=k1,k2&objectsCrmIds=k3"))
        .await;
    assert_eq!(by_query.status, 200);
    let map = by_query.parse::<ObjectsReply>().crm_objects_map;
    let ids: Vec<&str> = map.0.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["k1", "k2", "k3"], "in the order asked");
    let k3: Value = serde_json::from_str(map.get("k3").unwrap().get()).unwrap();
    assert_eq!(k3["objectId"], "k3");

    // Bodies come back as stored (keys in line order), ids once each.
    let text = server
        .req(Method::GET, &base)
        .json(&["k1", "k1", "nope"])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.starts_with("{\"crmObjectsMap\":{\"k1\":{\"objectId\":\"k1\",\"modifiedDate\":"),
        "{text}"
    );
    assert!(text.contains("\"nope\":null"), "{text}");
    assert_eq!(text.matches("\"k1\":").count(), 1, "{text}");

    let no_ids = server.get(&base).await;
    assert_eq!(no_ids.status, 415);
    assert_eq!(no_ids.error(), "Unsupported Media Type");
    let not_array = server
        .send(server.req(Method::GET, &base).json(&json!({"ids": 1})))
        .await;
    assert_eq!(not_array.status, 400);
    let empty = server
        .send(server.req(Method::GET, &base).json(&json!([])))
        .await;
    assert_eq!(empty.status, 400);

    let ids: Vec<String> = (0..150).map(|i| format!("k{i}")).collect();
    let many = server.send(server.req(Method::GET, &base).json(&ids)).await;
    let map = many.parse::<ObjectsReply>().crm_objects_map;
    assert_eq!(map.0.len(), 100);
    assert!(map.0.iter().any(|(id, _)| id == "k99"));
    assert!(!map.0.iter().any(|(id, _)| id == "k100"));
    let bad_type = server
        .send(
            server
                .req(
                    Method::GET,
                    &format!("/v2/crm/entities?integrationId={id}&objectType=THING"),
                )
                .json(&["k1"]),
        )
        .await;
    assert_eq!(bad_type.status, 400);
}

async fn companies_do_not_see_each_other(site: Site) {
    let server = site.start(&[]);
    let a_integration = server.register().await;
    server
        .upload(
            a_integration,
            "ACCOUNT",
            "shared-name",
            "{\"objectId\":\"a1\",\"modifiedDate\":\"2020-01-01T00:00:00Z\"}\n",
        )
        .await;
    server.wait_done(a_integration, "shared-name").await;

    assert!(site
        .intake(&["admin", "company", "create", "other"])
        .status
        .success());
    let out = site.intake(&["admin", "key", "create", "--company", "other", "--json"]);
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let other = Server::with_credentials(
        &server,
        key["accessKey"].as_str().unwrap(),
        key["accessKeySecret"].as_str().unwrap(),
    );

    assert_eq!(
        other.get("/v2/crm/integrations").await.body["integrations"],
        json!([])
    );
    let foreign = other.status(a_integration, "shared-name").await;
    assert_eq!(foreign.status, 404);
    let objects = other
        .send(
            other
                .req(
                    Method::GET,
                    &format!("/v2/crm/entities?integrationId={a_integration}&objectType=ACCOUNT"),
                )
                .json(&["a1"]),
        )
        .await;
    assert_eq!(objects.status, 400);
    assert!(objects.error().contains("Unknown integrationId"));
    // Each company has its own integration and its own request id namespace.
    let b_integration = other.register().await;
    let reply = other
        .upload(
            b_integration,
            "ACCOUNT",
            "shared-name",
            "{\"objectId\":\"a1\",\"modifiedDate\":\"2021-01-01T00:00:00Z\",\"name\":\"B\"}\n",
        )
        .await;
    assert_eq!(reply.status, 201);
    other.wait_done(b_integration, "shared-name").await;
    assert_eq!(
        other.objects(b_integration, "ACCOUNT", &["a1"]).await["a1"]["name"],
        "B"
    );
    assert_eq!(
        server.objects(a_integration, "ACCOUNT", &["a1"]).await["a1"]["name"],
        "Account_#a1"
    );
    let delete_foreign = other
        .send(other.req(
            Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={a_integration}&clientRequestId=x"),
        ))
        .await;
    assert_eq!(delete_foreign.status, 400);
    assert_eq!(
        server.get("/v2/crm/integrations").await.body["integrations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn rate_limits(site: Site) {
    let server = site.start(&["--rate-limit-per-second", "3", "--rate-limit-per-day", "0"]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let reply = server.get("/v2/crm/integrations").await;
        if reply.status == 429 {
            retry_after = Some(
                reply.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
            assert_eq!(reply.error(), "API request limit exceeded");
            assert_request_id(&reply);
        }
        statuses.push(reply.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 3,
        "{statuses:?}"
    );
    assert!(retry_after.unwrap() >= 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(server.get("/v2/crm/integrations").await.status, 200);
    drop(server);

    let daily = site.start(&["--rate-limit-per-second", "0", "--rate-limit-per-day", "2"]);
    // The first server's calls of today count too on a shared database; on SQLite the
    // counter is the process's. Either way the third call of this one is over.
    let mut last = 0;
    for _ in 0..3 {
        last = daily.get("/v2/crm/integrations").await.status;
    }
    assert_eq!(last, 429);
}

async fn restart_in_the_middle_of_processing(site: Site) {
    let mut server = site.start(&[]);
    let id = server.register().await;
    let mut file = Vec::new();
    intake_model::gen::write_lines(
        &mut file,
        intake_model::ObjectType::Contact,
        200_000,
        7,
        0.01,
    )
    .unwrap();
    let expected = uninterrupted_counts(&file);
    assert_eq!(
        server
            .upload(id, "CONTACT", "big", file.clone())
            .await
            .status,
        201
    );
    // Kill it while it works.
    loop {
        let status = server.status(id, "big").await;
        let done = status.body["totalSuccessCount"].as_u64().unwrap();
        if status.body["status"] == "IN_PROGRESS" && done > 0 {
            break;
        }
        assert_ne!(
            status.body["status"], "DONE",
            "finished before it could be interrupted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill();
    let server = site.start(&[]);
    let done = server.wait_done(id, "big").await;
    assert_eq!(
        done.body["totalSuccessCount"], expected.0,
        "{:?}",
        done.body
    );
    assert_eq!(done.body["totalErrorCount"], expected.1);
    let first_errors: Vec<u64> = done.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(first_errors, expected.2);
}

/// (successes, errors, first 20 error lines) of a file, computed offline.
fn uninterrupted_counts(file: &[u8]) -> (u64, u64, Vec<u64>) {
    let mut report = intake_model::Report::new(false);
    for outcome in intake_model::FileValidator::new(
        file,
        intake_model::ObjectType::Contact,
        intake_model::Schema::empty(),
    ) {
        report.add(&outcome.unwrap());
    }
    (
        report.success_count,
        report.error_count,
        report.first_errors.iter().map(|e| e.line).collect(),
    )
}
