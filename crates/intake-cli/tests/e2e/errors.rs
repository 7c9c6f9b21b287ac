//! Every error of an upload, paged and streamed, and its failed lines byte for byte
//! (`/intake/v1/requests/{crid}/errors` and `/failed-lines`), over real HTTP on both
//! backends; resumed processing keeps each error once.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::harness::{Server, Site};

backend_tests!(
    every_error_is_listed_paged_and_streamed,
    failed_lines_come_back_byte_for_byte,
    a_resumed_upload_keeps_each_error_once,
    errors_and_failed_lines_commands,
    a_large_all_bad_file_is_read_back_from_its_spool_file,
);

const GOOD: &str = r#""modifiedDate":"2024-01-01T00:00:00Z","emailAddress":"p@acme.com""#;

/// A bad line as expected back: (line, objectId, field, its bytes as sent).
type Bad = (u64, Option<String>, Option<String>, Vec<u8>);

/// What a line is expected to report: none when valid, else its objectId and field.
type Expect<'a> = Option<(Option<&'a str>, Option<&'a str>)>;

/// A file of `n` CONTACT lines where line `i` (1-based) is bad in one of five ways when
/// `i % 2 == 1`; returns it and, for each bad line, (line, objectId, field, its bytes).
fn mixed(n: usize) -> (Vec<u8>, Vec<Bad>) {
    let mut file = Vec::new();
    let mut bad = Vec::new();
    for i in 1..=n {
        let id = format!("c{i}");
        let (line, expect): (String, Expect) = if i % 2 == 0 {
            (format!(r#"{{"objectId":"{id}",{GOOD}}}"#), None)
        } else {
            match (i / 2) % 5 {
                0 => (
                    format!(r#"{{"objectId":"{id}"}}"#),
                    Some((Some(id.as_str()), Some("modifiedDate"))),
                ),
                1 => ("not json at all".to_owned(), Some((None, None))),
                2 => (
                    format!(
                        r#"{{"objectId":"{id}","modifiedDate":"2024-01-01T00:00:00Z","emailAddress":"nope"}}"#
                    ),
                    Some((Some(id.as_str()), Some("emailAddress"))),
                ),
                3 => (
                    format!(r#"{{"objectId":"bad id!",{GOOD}}}"#),
                    Some((None, Some("objectId"))),
                ),
                _ => (
                    // A duplicate of line 2's record: valid, but its id is taken.
                    format!(r#"{{"objectId":"c2",{GOOD}, "x": "é\t"}}"#),
                    Some((Some("c2"), Some("objectId"))),
                ),
            }
        };
        // The first line has a BOM; every third ends in CRLF.
        if i == 1 {
            file.extend_from_slice(b"\xEF\xBB\xBF");
        }
        file.extend_from_slice(line.as_bytes());
        file.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
        if let Some((object_id, field)) = expect {
            bad.push((
                i as u64,
                object_id.map(str::to_owned),
                field.map(str::to_owned),
                line.into_bytes(),
            ));
        }
    }
    (file, bad)
}

async fn every_page(server: &Server, crid: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/intake/v1/requests/{crid}/errors?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let errors = page.body["errors"].as_array().unwrap().clone();
        assert_eq!(page.body["records"]["currentPageSize"], errors.len());
        all.extend(errors);
        match page.body["records"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    all
}

async fn ndjson(server: &Server, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut request = server.req(reqwest::Method::GET, path);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn every_error_is_listed_paged_and_streamed(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let (file, bad) = mixed(101);
    assert_eq!(
        server
            .upload(integration, "CONTACT", "mixed", file)
            .await
            .status,
        201
    );
    let status = server.wait_done(integration, "mixed").await;
    assert_eq!(status.body["totalErrorCount"], bad.len());
    assert_eq!(bad.len(), 51);

    let all = every_page(&server, "mixed", 7).await;
    assert_eq!(all.len(), bad.len());
    for (got, (line, object_id, field, _)) in all.iter().zip(&bad) {
        assert_eq!(got["line"], *line, "{got}");
        assert_eq!(
            got.get("objectId").and_then(Value::as_str),
            object_id.as_deref(),
            "{got}"
        );
        assert_eq!(
            got.get("field").and_then(Value::as_str),
            field.as_deref(),
            "{got}"
        );
        assert!(got["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_eq!(
        all[0],
        json!({"line": 1, "objectId": "c1", "field": "modifiedDate",
               "description": "Mandatory field [modifiedDate] is missing or empty"})
    );
    // One page of 1000 holds them all; the default page is 100.
    assert_eq!(every_page(&server, "mixed", 1000).await, all);
    // The request itself lists the first 20, the same way.
    let one = server.get("/intake/v1/requests/mixed").await;
    assert_eq!(one.body["errors"].as_array().unwrap()[..], all[..20]);

    // Streamed: the same errors, one JSON a line.
    let (code, content_type, body) = ndjson(
        &server,
        "/intake/v1/requests/mixed/errors",
        Some("application/x-ndjson"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/x-ndjson");
    let streamed: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(streamed, all);

    // Bad cursors: garbage, another request's, one that points inside an error.
    assert_eq!(
        server
            .upload(integration, "CONTACT", "other", mixed(9).0)
            .await
            .status,
        201
    );
    server.wait_done(integration, "other").await;
    let first = server.get("/intake/v1/requests/other/errors?limit=1").await;
    let foreign = first.body["records"]["cursor"].as_str().unwrap().to_owned();
    let inside = intake_cursor_at(&foreign, 3);
    for cursor in ["zz".to_owned(), foreign, inside] {
        let reply = server
            .get(&format!("/intake/v1/requests/mixed/errors?cursor={cursor}"))
            .await;
        assert_eq!(reply.status, 400, "{cursor}: {}", reply.text);
        assert!(
            reply.error().starts_with("Parameter [cursor]"),
            "{}",
            reply.text
        );
    }
    for limit in ["0", "1001", "x"] {
        let reply = server
            .get(&format!("/intake/v1/requests/mixed/errors?limit={limit}"))
            .await;
        assert_eq!(reply.status, 400);
    }

    // A request without errors lists none; a cancelled one has its line 0 first.
    let good = format!("{{\"objectId\":\"g1\",{GOOD}}}\n");
    assert_eq!(
        server
            .upload(integration, "CONTACT", "good", good)
            .await
            .status,
        201
    );
    server.wait_done(integration, "good").await;
    let none = server.get("/intake/v1/requests/good/errors").await;
    assert_eq!(none.body["errors"], json!([]));
    assert!(none.body["records"].get("cursor").is_none());
    let big: String = (0..200_000)
        .map(|i| format!("{{\"objectId\":\"b{i}\",{GOOD}}}\n"))
        .collect();
    assert_eq!(
        server
            .upload(integration, "CONTACT", "big", big)
            .await
            .status,
        201
    );
    let cancel = server
        .send(server.req(reqwest::Method::POST, "/intake/v1/requests/big/cancel"))
        .await;
    assert_eq!(cancel.status, 200);
    let errors = every_page(&server, "big", 100).await;
    assert_eq!(
        errors,
        [json!({"line": 0, "description": "Request cancelled"})]
    );

    // Unknown, or another company's: 404.
    for path in [
        "/intake/v1/requests/nope/errors",
        "/intake/v1/requests/nope/failed-lines",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.error(), "No request with this clientRequestId");
    }
    let other = site.other_company(&server, "other");
    assert_eq!(
        other.get("/intake/v1/requests/mixed/errors").await.status,
        404
    );
    assert_eq!(
        other
            .get("/intake/v1/requests/mixed/failed-lines")
            .await
            .status,
        404
    );
}

/// A cursor like `cursor` (of this server's errors) whose byte offset is `offset`.
fn intake_cursor_at(cursor: &str, offset: u64) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut value: Value = serde_json::from_slice(&engine.decode(cursor).unwrap()).unwrap();
    value["o"] = json!(offset);
    engine.encode(serde_json::to_vec(&value).unwrap())
}

async fn failed_lines_come_back_byte_for_byte(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let (file, bad) = mixed(60);
    assert_eq!(
        server
            .upload(integration, "CONTACT", "m", file)
            .await
            .status,
        201
    );
    server.wait_done(integration, "m").await;
    let (code, content_type, body) =
        ndjson(&server, "/intake/v1/requests/m/failed-lines", None).await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/x-ndjson");
    let expected: Vec<u8> = bad
        .iter()
        .flat_map(|(_, _, _, line)| line.iter().copied().chain([b'\n']))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(body, expected);
    // Sent again, fixed, they pass.
    let fixed = String::from_utf8(body)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, _)| format!("{{\"objectId\":\"fixed{i}\",{GOOD}}}\n"))
        .collect::<String>();
    assert_eq!(
        server
            .upload(integration, "CONTACT", "again", fixed)
            .await
            .status,
        201
    );
    assert_eq!(
        server.wait_done(integration, "again").await.body["status"],
        "DONE"
    );
    // A request with no failed line: empty. The files outlive the spool file.
    let (code, _, body) = ndjson(&server, "/intake/v1/requests/again/failed-lines", None).await;
    assert_eq!((code, body.len()), (200, 0));
    assert!(crate::harness::spool_files_once_settled(site.path())
        .await
        .is_empty());
    let (_, _, body) = ndjson(&server, "/intake/v1/requests/m/failed-lines", None).await;
    assert_eq!(body, expected);
    // An integration delete removes them with its data.
    let deleted = server
        .send(server.req(
            reqwest::Method::DELETE,
            &format!("/v2/crm/integrations?integrationId={integration}&clientRequestId=gone"),
        ))
        .await;
    assert_eq!(deleted.status, 201);
    server.wait_done(integration, "gone").await;
    let sidecars = std::fs::read_dir(site.path().join("spool"))
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.ends_with(".errors") || name.ends_with(".failed") || name.ends_with(".index")
        })
        .count();
    assert_eq!(sidecars, 0);
}

/// The names of the files in the spool directory with `suffix`.
fn spool_dir_files(site: &Site, suffix: &str) -> Vec<String> {
    std::fs::read_dir(site.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .collect()
}

/// Failed lines over 8 MiB and over half of their file are not copied: they are read back
/// from the spool file, which stays with its request, until an erasure copies them out
/// (without the erased person's) or an integration delete removes it.
async fn a_large_all_bad_file_is_read_back_from_its_spool_file(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let pad = "x".repeat(200);
    let mut file = Vec::new();
    let mut expected = Vec::new();
    for i in 1..=45_000 {
        let line = if i == 7 {
            format!(
                r#"{{"objectId":"c{i}","modifiedDate":"no","emailAddress":"gone@acme.com","n":"{pad}"}}"#
            )
        } else {
            format!(r#"{{"objectId":"c{i}","modifiedDate":"no","n":"{pad}"}}"#)
        };
        file.extend_from_slice(line.as_bytes());
        file.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n" });
        expected.push(line);
    }
    let response = server.upload(integration, "CONTACT", "big", file).await;
    assert_eq!(response.status, 201);
    let status = server.wait_done(integration, "big").await;
    assert_eq!(status.body["totalErrorCount"], 45_000);
    let joined: String = expected.iter().map(|l| format!("{l}\n")).collect();
    let (code, _, body) = ndjson(&server, "/intake/v1/requests/big/failed-lines", None).await;
    assert_eq!(code, 200);
    assert!(body == joined.as_bytes(), "failed lines differ");
    // The spool file stayed (its lines were not copied), beside an index and the errors.
    assert_eq!(crate::harness::spool_files(site.path()).len(), 1);
    assert_eq!(spool_dir_files(&site, ".index").len(), 1);
    assert!(spool_dir_files(&site, ".failed").is_empty());

    // An erasure copies the lines out without the person's, and the spool file goes.
    let erased = server
        .send(server.req(
            reqwest::Method::POST,
            "/v2/data-privacy/erase-data-for-email-address?emailAddress=gone@acme.com",
        ))
        .await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    assert!(crate::harness::spool_files(site.path()).is_empty());
    assert_eq!(spool_dir_files(&site, ".failed").len(), 1);
    let (_, _, body) = ndjson(&server, "/intake/v1/requests/big/failed-lines", None).await;
    let without: String = expected
        .iter()
        .filter(|l| !l.contains("gone@acme.com"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        body == without.as_bytes(),
        "failed lines after the erasure differ"
    );
    for name in std::fs::read_dir(site.path().join("spool")).unwrap() {
        let bytes = std::fs::read(name.unwrap().path()).unwrap();
        assert!(!bytes.windows(13).any(|w| w == b"gone@acme.com"));
    }
    let all = every_page(&server, "big", 1000).await;
    assert_eq!(all.len(), 45_000);
}

async fn a_resumed_upload_keeps_each_error_once(site: Site) {
    // Small batches, and a kill while the file is being processed: the next start
    // resumes from the checkpoint and must list every error exactly once.
    let mut server = site.start(&["--batch-lines", "500"]);
    let integration = server.register().await;
    let lines = 60_000;
    let file: String = (1..=lines)
        .map(|i| format!("{{\"objectId\":\"c{i}\",\"modifiedDate\":\"no\"}}\n"))
        .collect();
    assert_eq!(
        server
            .upload(integration, "CONTACT", "bad", file)
            .await
            .status,
        201
    );
    // Wait until some of it is stored, then kill the server.
    for _ in 0..600 {
        let one = server.get("/intake/v1/requests/bad").await;
        if one.body["request"]["totalErrorCount"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill();
    let server = site.start(&["--batch-lines", "500"]);
    let status = server.wait_done(integration, "bad").await;
    assert_eq!(status.body["totalErrorCount"], lines);
    let all = every_page(&server, "bad", 1000).await;
    assert_eq!(all.len(), lines);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["line"], i + 1);
        assert_eq!(e["objectId"], format!("c{}", i + 1));
    }
    let (_, _, body) = ndjson(&server, "/intake/v1/requests/bad/failed-lines", None).await;
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), lines);
}

async fn errors_and_failed_lines_commands(site: Site) {
    let server = site.start(&[]);
    let integration = server.register().await;
    let (file, bad) = mixed(80);
    assert_eq!(
        server
            .upload(integration, "CONTACT", "m", file.clone())
            .await
            .status,
        201
    );
    server.wait_done(integration, "m").await;
    // `intake errors CRID`: every error, one JSON a line, to stdout or a file.
    let out = server.cli(&["errors", "m"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed, every_page(&server, "m", 1000).await);
    let to = site.path().join("errors.ldjson");
    let out = server
        .cli(&["errors", "m", "--output", to.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&to).unwrap().lines().count(),
        bad.len()
    );
    // `intake failed-lines CRID -o FILE`: byte for byte.
    let to = site.path().join("failed.ldjson");
    let out = server
        .cli(&["failed-lines", "m", "-o", to.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let expected: Vec<u8> = bad
        .iter()
        .flat_map(|(_, _, _, line)| line.iter().copied().chain([b'\n']))
        .collect();
    assert_eq!(std::fs::read(&to).unwrap(), expected);
    let out = server.cli(&["errors", "nope"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // `intake upload --wait` says where the rest of the errors are.
    let path = site.path().join("again.ldjson");
    std::fs::write(&path, &file).unwrap();
    let out = server
        .cli(&[
            "upload",
            path.to_str().unwrap(),
            "--type",
            "CONTACT",
            "--client-request-id",
            "again",
            "--wait",
        ])
        .await;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("intake errors again"), "{text}");
    assert!(text.contains("intake failed-lines again"), "{text}");
}
