//! The web console (`/ui/`): sessions, cookies and CSRF over plain HTTP on both backends,
//! and every page in a real browser (Debian's Chromium driven through chromedriver with
//! fantoccini, headless) against a real `intake serve`.
//!
//! The browser test skips with a notice when `/usr/bin/chromedriver` is absent, unless
//! `INTAKE_REQUIRE_BROWSER=1` (as in CI), where it fails. Screenshots of each page are
//! written to `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::backend_tests;
use crate::harness::{Backend, Server, Site};

backend_tests!(
    sign_in_sessions_csrf_and_cookies,
    a_revoked_key_ends_its_sessions,
);

const T0: &str = "2024-01-01T00:00:00Z";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden CSRF field of the page's (first) form.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The `Set-Cookie` headers of a response that set `name`.
fn set_cookies(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|v| v.starts_with(&format!("{name}=")))
        .collect()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

/// Signs in over plain HTTP: (the session cookie's `Set-Cookie`, the session id).
async fn sign_in(server: &Server, extra: &[(&str, &str)]) -> (String, String) {
    let client = http();
    let mut get = client.get(server.url("/ui/sign-in"));
    for (k, v) in extra {
        get = get.header(*k, *v);
    }
    let form = get.send().await.unwrap();
    assert_eq!(form.status(), 200);
    let token_cookie = set_cookies(&form, "intake_sign_in").pop().expect("cookie");
    let token = cookie_value(&token_cookie);
    let html = form.text().await.unwrap();
    assert_eq!(csrf_of(&html), token);
    let mut post = client
        .post(server.url("/ui/sign-in"))
        .header(COOKIE, format!("intake_sign_in={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("accessKey", server.key.as_str()),
            ("accessKeySecret", server.secret.as_str()),
        ]);
    for (k, v) in extra {
        post = post.header(*k, *v);
    }
    let signed = post.send().await.unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()[LOCATION], "/ui/uploads");
    let session = set_cookies(&signed, "intake_session")
        .pop()
        .expect("a session cookie");
    let id = cookie_value(&session);
    (session, id)
}

async fn page(server: &Server, path: &str, session: &str) -> (u16, String) {
    let reply = http()
        .get(server.url(path))
        .header(COOKIE, format!("intake_session={session}"))
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

async fn sign_in_sessions_csrf_and_cookies(site: Site) {
    let server = site.start(&[]);
    server.register().await;
    let client = http();

    // Without a session every page goes to the sign-in form.
    for path in [
        "/ui/uploads",
        "/ui/nothing-here",
        "/ui/uploads/x",
        "/ui/records",
        "/ui/deal-board",
        "/ui/associations",
    ] {
        let reply = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), 303, "{path}");
        assert_eq!(reply.headers()[LOCATION], "/ui/sign-in", "{path}");
    }

    // The sign-in form's CSRF cookie, and its fields.
    let form = client.get(server.url("/ui/sign-in")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csp = form.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let token_cookie = set_cookies(&form, "intake_sign_in").pop().unwrap();
    let token = cookie_value(&token_cookie);
    let html = form.text().await.unwrap();
    assert!(html.contains("name=\"accessKey\"") && html.contains("name=\"accessKeySecret\""));
    let post = |fields: Vec<(&'static str, String)>, cookie: Option<String>| {
        let mut request = client.post(server.url("/ui/sign-in")).form(&fields);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send()
    };
    let right = |csrf: Option<&str>| {
        let mut fields = vec![
            ("accessKey", server.key.clone()),
            ("accessKeySecret", server.secret.clone()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf.to_owned()));
        }
        fields
    };

    // No CSRF token, a wrong one, or no cookie: 403 and no session.
    for (fields, cookie) in [
        (right(None), Some(format!("intake_sign_in={token}"))),
        (
            right(Some("forged")),
            Some(format!("intake_sign_in={token}")),
        ),
        (right(Some(&token)), None),
    ] {
        let reply = post(fields, cookie).await.unwrap();
        assert_eq!(reply.status(), 403);
        assert!(set_cookies(&reply, "intake_session").is_empty());
        assert!(reply.text().await.unwrap().contains("CSRF"));
    }

    // A wrong secret: 401, the form again, no session.
    let reply = post(
        vec![
            ("accessKey", server.key.clone()),
            ("accessKeySecret", "wrong".into()),
            ("csrf", token.clone()),
        ],
        Some(format!("intake_sign_in={token}")),
    )
    .await
    .unwrap();
    assert_eq!(reply.status(), 401);
    assert!(set_cookies(&reply, "intake_session").is_empty());
    assert!(reply
        .text()
        .await
        .unwrap()
        .contains("Wrong access key or secret"));

    // The session cookie: HttpOnly, SameSite=Strict, Path=/ui, not Secure over plain HTTP.
    let (set_cookie, session) = sign_in(&server, &[]).await;
    let attrs = attributes(&set_cookie);
    assert!(attrs.contains(&"HttpOnly".to_owned()), "{set_cookie}");
    assert!(
        attrs.contains(&"SameSite=Strict".to_owned()),
        "{set_cookie}"
    );
    assert!(attrs.contains(&"Path=/ui".to_owned()), "{set_cookie}");
    assert!(!attrs.contains(&"Secure".to_owned()), "{set_cookie}");
    assert!(session.len() >= 43, "{session}");
    // Behind a TLS proxy it is Secure.
    let (behind_tls, _) = sign_in(&server, &[("x-forwarded-proto", "https")]).await;
    assert!(attributes(&behind_tls).contains(&"Secure".to_owned()));

    // Signed in: every page, with the navigation bar.
    for path in [
        "/ui/uploads",
        "/ui/records",
        "/ui/deal-board",
        "/ui/associations",
    ] {
        let (status, html) = page(&server, path, &session).await;
        assert_eq!(status, 200, "{path}: {html}");
        for link in [
            ">Uploads</a>",
            ">Records</a>",
            ">Deal board</a>",
            ">Associations</a>",
            ">Sign out</button>",
        ] {
            assert!(html.contains(link), "{path}: {link}");
        }
    }
    let (status, html) = page(&server, "/ui/uploads/nope", &session).await;
    assert_eq!(status, 404);
    assert!(
        html.contains("No request with this clientRequestId"),
        "{html}"
    );
    // Errors are pages, with the navigation bar.
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains(">Sign out</button>"));
    let (status, html) = page(&server, "/ui/nothing-here", &session).await;
    assert_eq!(status, 404);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    let csrf = csrf_of(&page(&server, "/ui/uploads", &session).await.1);

    // A POST without the session's token: 403, and nothing changes (still signed in).
    for (path, fields) in [
        ("/ui/sign-out", vec![]),
        ("/ui/sign-out", vec![("csrf", "forged")]),
        ("/ui/associations", vec![("emails", "a@b.com")]),
        ("/ui/uploads/x/cancel", vec![]),
    ] {
        let reply = client
            .post(server.url(path))
            .header(COOKIE, format!("intake_session={session}"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 403, "{path}");
    }
    assert_eq!(page(&server, "/ui/uploads", &session).await.0, 200);

    // Sign out: the session has ended, the cookie is removed.
    let out = client
        .post(server.url("/ui/sign-out"))
        .header(COOKIE, format!("intake_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()[LOCATION], "/ui/sign-in");
    let removed = set_cookies(&out, "intake_session").pop().unwrap();
    assert!(attributes(&removed).contains(&"Max-Age=0".to_owned()));
    let after = client
        .get(server.url("/ui/uploads"))
        .header(COOKIE, format!("intake_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);

    // --ui-secure-cookies: Secure over plain HTTP too.
    drop(server);
    let secure = site.start(&["--ui-secure-cookies"]);
    let (set_cookie, _) = sign_in(&secure, &[]).await;
    assert!(attributes(&set_cookie).contains(&"Secure".to_owned()));
}

async fn a_revoked_key_ends_its_sessions(site: Site) {
    let server = site.start(&["--auth-cache-seconds", "0"]);
    server.register().await;
    let (_, session) = sign_in(&server, &[]).await;
    assert_eq!(page(&server, "/ui/uploads", &session).await.0, 200);
    let revoked = site.intake(&["admin", "key", "revoke", &server.key]);
    assert!(revoked.status.success(), "{revoked:?}");
    let reply = http()
        .get(server.url("/ui/uploads"))
        .header(COOKIE, format!("intake_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 303);
    assert_eq!(reply.headers()[LOCATION], "/ui/sign-in");
}

// ---- In a real browser -------------------------------------------------------------------

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("INTAKE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "INTAKE_REQUIRE_BROWSER=1 but {CHROMEDRIVER} is absent (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: {CHROMEDRIVER} is absent; the browser tests of the console did not run"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, port };
    let status = format!("http://127.0.0.1:{port}/status");
    for _ in 0..200 {
        if let Ok(reply) = reqwest::get(&status).await {
            if reply.status().is_success() {
                return Some(driver);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-default-apps"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session")
}

/// Every resource the page loaded and every URL it names is on the server's origin.
async fn assert_same_origin(client: &Client, origin: &str) {
    let urls = client
        .execute(
            "const urls = performance.getEntriesByType('resource').map(e => e.name);
             urls.push(location.href);
             document.querySelectorAll('[src],[href],[action]').forEach(e =>
               ['src', 'href', 'action'].forEach(a => { if (e[a]) urls.push(String(e[a])); }));
             return urls;",
            vec![],
        )
        .await
        .unwrap();
    let urls = urls.as_array().unwrap();
    assert!(!urls.is_empty());
    for url in urls {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&format!("{origin}/")),
            "{url} leaves {origin}"
        );
    }
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn text_of(client: &Client, css: &str) -> String {
    texts_of(client, css)
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("nothing matches {css}"))
}

async fn click(client: &Client, locator: Locator<'_>) {
    client
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("{locator:?}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The rendered texts of the elements `css` selects, read in one go (the live script may
/// replace a part of the page between two WebDriver calls).
async fn texts_of(client: &Client, css: &str) -> Vec<String> {
    let texts = client
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText.trim());",
            vec![json!(css)],
        )
        .await
        .unwrap();
    texts
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// A world to look at: stages, accounts, users, contacts, deals (two of them hidden, one
/// with two versions) and an upload of contacts with 130 failed lines out of 150.
async fn seed(server: &Server) -> i64 {
    let integration = server.register().await;
    let stages = [
        json!({"objectId": "s1", "name": "Discovery", "sortOrder": 1}),
        json!({"objectId": "s2", "name": "Proposal", "sortOrder": 2}),
        json!({"objectId": "s3", "name": "Negotiation", "sortOrder": 3}),
    ];
    server
        .put_objects(integration, "STAGE", "stages", T0, &stages)
        .await;
    let accounts = [
        json!({"objectId": "a1", "name": "Acme", "domains": ["acme.com"]}),
        json!({"objectId": "a2", "name": "Globex"}),
    ];
    server
        .put_objects(integration, "ACCOUNT", "accounts", T0, &accounts)
        .await;
    let users = [json!({"objectId": "u1", "emailAddress": "owner@ourco.com"})];
    server
        .put_objects(integration, "BUSINESS_USER", "users", T0, &users)
        .await;
    let contacts = [
        json!({"objectId": "c1", "accountId": "a1", "firstName": "Ann",
                           "emailAddress": "ann@acme.com"}),
    ];
    server
        .put_objects(integration, "CONTACT", "contacts", T0, &contacts)
        .await;
    let deal = |id: &str, stage: &str, amount: i64| {
        json!({"objectId": id, "name": format!("Deal {id}"), "accountId": "a1", "ownerId": "u1",
               "amount": amount, "closeDate": "2024-06-01", "stage": stage})
    };
    let deals = [
        deal("d1", "s1", 1000),
        deal("d2", "s1", 2500),
        deal("d3", "s2", 7000),
        json!({"objectId": "h1", "name": "Deal h1", "accountId": "a1", "stage": "s1",
               "closeDate": "2024-06-01"}),
        json!({"objectId": "h2", "name": "Deal h2", "accountId": "a1", "ownerId": "u1",
               "closeDate": "2024-06-01", "stage": "nope"}),
    ];
    server
        .put_objects(integration, "DEAL", "deals", T0, &deals)
        .await;
    // d3 moves on: a second version.
    let moved = [
        json!({"objectId": "d3", "name": "Deal d3", "accountId": "a2", "ownerId": "u1",
                        "amount": 9000, "closeDate": "2024-07-01", "stage": "s3"}),
    ];
    server
        .put_objects(
            integration,
            "DEAL",
            "deals-later",
            "2024-02-01T00:00:00Z",
            &moved,
        )
        .await;
    // 150 contacts, 130 of them without modifiedDate.
    let lines: String = (0..150)
        .map(|i| {
            if i < 130 {
                format!("{{\"objectId\":\"bad{i:03}\"}}\n")
            } else {
                format!("{{\"objectId\":\"ok{i}\",\"modifiedDate\":\"{T0}\"}}\n")
            }
        })
        .collect();
    let reply = server
        .upload(integration, "CONTACT", "many-errors", lines)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let done = server.wait_done(integration, "many-errors").await;
    assert_eq!(done.body["totalErrorCount"], 130, "{}", done.text);
    integration
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let site = Site::new(Backend::Sqlite).await.unwrap();
    // Small transactions: the running upload below runs long enough to be cancelled.
    let server = site.start(&["--batch-lines", "20"]);
    let integration = seed(&server).await;
    let origin = server.url.trim_end_matches('/').to_owned();
    let client = browser(&driver).await;
    // The browser is closed whatever the walk finds.
    let outcome = std::panic::AssertUnwindSafe(walk(&client, &server, integration, &origin))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Waits (up to 10 s) until `condition` (a JavaScript expression) holds in the page, after
/// a click that loads a page at the same path.
async fn wait_for(client: &Client, condition: &str) {
    for _ in 0..100 {
        let holds = client
            .execute(&format!("return Boolean({condition});"), vec![])
            .await
            .ok();
        if holds == Some(json!(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never true in the page: {condition}");
}

/// Waits (up to 10 s) until the browser is on `expected`, after a click that navigates.
async fn wait_for_path(client: &Client, expected: &str) {
    let mut at = String::new();
    for _ in 0..100 {
        at = client.current_url().await.unwrap().path().to_owned();
        if at == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser is on {at}, not {expected}");
}

async fn sign_in_with(client: &Client, key: &str, secret: &str) {
    client
        .find(Locator::Id("accessKey"))
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
    client
        .find(Locator::Id("accessKeySecret"))
        .await
        .unwrap()
        .send_keys(secret)
        .await
        .unwrap();
    click(client, Locator::Css("form.sign-in button")).await;
}

async fn walk(client: &Client, server: &Server, integration: i64, origin: &str) {
    // Without a session: the sign-in form; a wrong secret is refused.
    client.goto(&server.url("/ui/uploads")).await.unwrap();
    wait_for_path(client, "/ui/sign-in").await;
    screenshot(client, "sign-in").await;
    sign_in_with(client, &server.key, "not-the-secret").await;
    wait_for(client, "document.querySelector('p.problem')").await;
    assert!(text_of(client, "p.problem")
        .await
        .contains("Wrong access key or secret"));

    // Signed in: the uploads, newest first.
    client.goto(&server.url("/ui/sign-in")).await.unwrap();
    sign_in_with(client, &server.key, &server.secret).await;
    wait_for_path(client, "/ui/uploads").await;
    assert_eq!(
        texts_of(client, "header nav a").await,
        ["Uploads", "Records", "Deal board", "Associations"]
    );
    assert_eq!(text_of(client, "header nav button").await, "Sign out");
    let crids = texts_of(client, "#live-uploads tbody tr td:first-child").await;
    assert_eq!(crids.first().map(String::as_str), Some("many-errors"));
    assert!(crids.contains(&"deals".to_owned()));
    assert_same_origin(client, origin).await;
    screenshot(client, "uploads").await;
    // From the top of the page the keyboard reaches the skip link, then the navigation.
    let mut focused = Vec::new();
    for _ in 0..3 {
        client
            .active_element()
            .await
            .unwrap()
            .send_keys(fantoccini::key::Key::Tab.to_string().as_str())
            .await
            .unwrap();
        let text = client
            .execute("return document.activeElement.textContent;", vec![])
            .await
            .unwrap();
        focused.push(text.as_str().unwrap_or("").trim().to_owned());
    }
    assert_eq!(focused, ["Skip to content", "Uploads", "Records"]);
    // A filter.
    client
        .execute(
            "document.getElementById('status').value = 'FAILED';",
            vec![],
        )
        .await
        .unwrap();
    click(client, Locator::Css("form.filters button")).await;
    wait_for(client, "location.search.includes('status=FAILED')").await;
    assert_eq!(
        texts_of(client, "#live-uploads tbody tr td:first-child").await,
        ["many-errors"]
    );
    client.goto(&server.url("/ui/uploads")).await.unwrap();

    // One upload: its errors, their paging, the failed lines.
    click(client, Locator::LinkText("many-errors")).await;
    wait_for_path(client, "/ui/uploads/many-errors").await;
    let facts = text_of(client, "dl.facts").await;
    assert!(facts.contains("130"), "{facts}");
    // Every error, 100 a page, with its line, objectId and field.
    let lines = texts_of(client, "table.errors tbody tr td:first-child").await;
    let expected: Vec<String> = (1..=100).map(|n| n.to_string()).collect();
    assert_eq!(lines, expected);
    let rows = texts_of(client, "table.errors tbody tr").await;
    assert!(
        rows[0].contains("bad000") && rows[0].contains("modifiedDate"),
        "{rows:?}"
    );
    assert_same_origin(client, origin).await;
    screenshot(client, "upload").await;
    let download = client
        .find(Locator::LinkText("Download failed lines"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("an href");
    assert_eq!(download, "/ui/uploads/many-errors/failed-lines");
    // The download, as the browser gets it with its session.
    let failed = client
        .execute_async(
            "const [href, done] = arguments;
             fetch(href).then(r => r.text().then(t => done([r.status, r.headers.get('content-type'), t])));",
            vec![json!(download)],
        )
        .await
        .unwrap();
    assert_eq!(failed[0], 200);
    assert_eq!(failed[1], "application/x-ndjson");
    let expected: String = (0..130)
        .map(|i| format!("{{\"objectId\":\"bad{i:03}\"}}\n"))
        .collect();
    assert_eq!(failed[2].as_str().unwrap(), expected);
    // The next page: the 30 others, and no further page.
    click(client, Locator::LinkText("Next")).await;
    wait_for(client, "location.search.includes('cursor=')").await;
    let lines = texts_of(client, "table.errors tbody tr td:first-child").await;
    let expected: Vec<String> = (101..=130).map(|n| n.to_string()).collect();
    assert_eq!(lines, expected);
    assert!(client.find(Locator::LinkText("Next")).await.is_err());

    // A record's history.
    client
        .goto(&server.url("/ui/records?objectType=DEAL"))
        .await
        .unwrap();
    let ids = texts_of(client, "tbody tr td:first-child").await;
    assert_eq!(ids, ["d1", "d2", "d3", "h1", "h2"]);
    screenshot(client, "records").await;
    let link = client
        .find(Locator::LinkText("d3"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(link.as_deref(), Some("/ui/records/DEAL/d3"));
    // The search by objectId goes to the record.
    client
        .find(Locator::Id("objectId"))
        .await
        .unwrap()
        .send_keys("d3")
        .await
        .unwrap();
    click(client, Locator::Css("form.filters button")).await;
    wait_for_path(client, "/ui/records/DEAL/d3").await;
    let versions = texts_of(client, "ol.timeline > li").await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(
        versions[0].contains("From upload deals,"),
        "{}",
        versions[0]
    );
    assert!(
        versions[1].contains("From upload deals-later,"),
        "{}",
        versions[1]
    );
    assert!(versions[1].contains("current"));
    let changed = texts_of(client, "ol.timeline > li:nth-child(2) tr.changed").await;
    assert!(
        changed
            .iter()
            .any(|row| row.starts_with("amount") && row.contains("7000") && row.contains("9000")),
        "{changed:?}"
    );
    assert!(changed.iter().any(|row| row.starts_with("stage")));
    assert_same_origin(client, origin).await;
    screenshot(client, "record").await;

    // The deal board: columns, totals, the hidden deals and why.
    client.goto(&server.url("/ui/deal-board")).await.unwrap();
    assert_eq!(
        texts_of(client, ".board .column h2").await,
        ["Discovery", "Proposal", "Negotiation"]
    );
    let totals = texts_of(client, ".board .column .totals").await;
    assert_eq!(totals[0], "2 deals · total 3500");
    assert_eq!(totals[1], "0 deals · total 0");
    let hidden = texts_of(client, "table.hidden tbody tr").await;
    assert_eq!(hidden.len(), 2, "{hidden:?}");
    assert!(
        hidden[0].starts_with("h1") && hidden[0].contains("missing ownerId"),
        "{hidden:?}"
    );
    assert!(hidden[1].contains("unknown stage [nope]"), "{hidden:?}");
    assert_same_origin(client, origin).await;
    screenshot(client, "deal-board").await;
    // As it stood before d3 moved on.
    client
        .goto(&server.url("/ui/deal-board?asOf=2024-01-15T00%3A00"))
        .await
        .unwrap();
    let totals = texts_of(client, ".board .column .totals").await;
    assert_eq!(totals[1], "1 deal · total 7000", "{totals:?}");
    // At phone width no page scrolls sideways (wide tables scroll in their own box).
    client.set_window_size(390, 844).await.unwrap();
    for path in [
        "/ui/uploads",
        "/ui/uploads/many-errors",
        "/ui/records?objectType=DEAL",
        "/ui/records/DEAL/d3",
        "/ui/associations",
        "/ui/deal-board",
    ] {
        client.goto(&server.url(path)).await.unwrap();
        let overflow = client
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(overflow.as_i64().unwrap() <= 0, "{path}: {overflow}");
    }
    screenshot(client, "deal-board-phone").await;
    client.set_window_size(1280, 800).await.unwrap();

    // An association.
    client.goto(&server.url("/ui/associations")).await.unwrap();
    client
        .find(Locator::Id("emails"))
        .await
        .unwrap()
        .send_keys("ann@acme.com\nowner@ourco.com")
        .await
        .unwrap();
    client
        .execute(
            "document.getElementById('startTime').value = '2024-05-01T10:00:00';",
            vec![],
        )
        .await
        .unwrap();
    click(client, Locator::Css("form.association button")).await;
    wait_for(client, "document.querySelector('article.party')").await;
    let parties = texts_of(client, "article.party").await;
    assert_eq!(parties.len(), 2, "{parties:?}");
    assert!(parties[0].contains("ann@acme.com") && parties[0].contains("External"));
    assert!(parties[0].contains("c1") && parties[0].contains("emailAddress"));
    assert!(parties[1].contains("Internal") && parties[1].contains("u1"));
    let activity = text_of(client, "section.result > table.matches").await;
    assert!(
        activity.contains("a1") && activity.contains("contact:c1"),
        "{activity}"
    );
    assert!(activity.contains("d1") && activity.contains("account:a1"));
    assert_same_origin(client, origin).await;
    client
        .execute(
            "document.getElementById('result').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    screenshot(client, "associations").await;

    // A running upload: its progress moves on the page by itself (the live script), and
    // Cancel stops it.
    let big: String = (0..200_000)
        .map(|i| format!("{{\"objectId\":\"big{i}\",\"modifiedDate\":\"{T0}\"}}\n"))
        .collect();
    let reply = server.upload(integration, "CONTACT", "big", big).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    client.goto(&server.url("/ui/uploads/big")).await.unwrap();
    let facts = || async {
        client
            .execute(
                "return document.querySelector('#live-request dl.facts').textContent;",
                vec![],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = facts().await;
    assert!(
        first.contains("PENDING") || first.contains("IN_PROGRESS"),
        "{first}"
    );
    let mut moved = None;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = facts().await;
        if now != first {
            moved = Some(now);
            break;
        }
    }
    let moved = moved.unwrap_or_else(|| panic!("the progress did not move by itself: {first}"));
    assert!(moved.contains("IN_PROGRESS"), "{moved}");
    screenshot(client, "upload-running").await;
    // The region may be replaced between finding the button and clicking it: try again.
    let mut clicked = false;
    for _ in 0..5 {
        if let Ok(button) = client.find(Locator::Css("form.cancel button")).await {
            if button.click().await.is_ok() {
                clicked = true;
                break;
            }
        }
    }
    assert!(clicked, "no Cancel button to click");
    wait_for(
        client,
        "document.querySelector('dl.facts')?.textContent.includes('CANCELLED')",
    )
    .await;
    wait_for_path(client, "/ui/uploads/big").await;
    assert!(text_of(client, "dl.facts").await.contains("CANCELLED"));
    assert!(client.find(Locator::Css("form.cancel")).await.is_err());

    // Sign out: back to the form, and the pages want a session again.
    click(client, Locator::Css("header nav button")).await;
    wait_for_path(client, "/ui/sign-in").await;
    client.goto(&server.url("/ui/deal-board")).await.unwrap();
    wait_for_path(client, "/ui/sign-in").await;
}
