//! A property test of the associations: random worlds of users, accounts, contacts, leads
//! and deals (several versions each, some deleted, addresses and numbers shared), asked
//! random activities (Now and TimeOfCall), give the same answers on SQLite uploaded in one
//! file per type, on SQLite uploaded as the versions shuffled and split over several
//! files, and on PostgreSQL shuffled and split another way; and the batch endpoint gives
//! the single call's answers.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::harness::{Backend, Server, Site};

/// The date of day `n` of 2024 (1 is January 1st), as `YYYY-MM-DD`.
fn day(n: u16) -> String {
    intake_model::format_timestamp(1_704_067_200 + (i64::from(n) - 1) * 86_400)[..10].to_owned()
}

const TYPES: [&str; 5] = ["BUSINESS_USER", "ACCOUNT", "CONTACT", "LEAD", "DEAL"];

/// Every version of every record of a random world, by type.
fn world(rng: &mut StdRng) -> Vec<(&'static str, Vec<Value>)> {
    let pick =
        |rng: &mut StdRng, options: &[&str]| options[rng.gen_range(0..options.len())].to_owned();
    let emails = [
        "ann@acme.com",
        "bob@acme.com",
        "cy@eu.acme.com",
        "dee@beta.io",
        "eve@gmail.com",
        "fay@ourco.com",
        "gus@beta.io",
    ];
    let phones = [
        "+1 912 507 4395",
        "912-507-4395",
        "+44 20 7946 0958",
        "555 0101",
        "123",
    ];
    let domains = [
        "acme.com",
        "www.acme.com",
        "beta.io",
        "gmail.com",
        "eu.acme.com",
        "ourco.com",
    ];
    let id = |prefix: &str, n: usize| format!("{prefix}{n}");
    let mut out = Vec::new();
    // Versions of one record: distinct modifiedDates, the last maybe a deletion.
    let versions =
        |rng: &mut StdRng, make: &mut dyn FnMut(&mut StdRng) -> Value, object_id: String| {
            let count = rng.gen_range(1..=3);
            let mut days: Vec<u32> = (0..count).map(|_| rng.gen_range(1..=150)).collect();
            days.sort();
            days.dedup();
            let mut list = Vec::new();
            for (i, when) in days.iter().enumerate() {
                let mut body = if i + 1 == days.len() && rng.gen_bool(0.1) {
                    json!({"isDeleted": true})
                } else {
                    make(rng)
                };
                body["objectId"] = json!(object_id);
                body["modifiedDate"] = json!(format!("{}T12:00:00Z", day(*when as u16)));
                list.push(body);
            }
            list
        };
    let mut users = Vec::new();
    for n in 0..4 {
        users.extend(versions(
            rng,
            &mut |rng| json!({"emailAddress": pick(rng, &emails)}),
            id("u", n),
        ));
    }
    out.push(("BUSINESS_USER", users));
    let mut accounts = Vec::new();
    for n in 0..6 {
        accounts.extend(versions(
            rng,
            &mut |rng| {
                let count = rng.gen_range(0..=2);
                let list: Vec<String> = (0..count).map(|_| pick(rng, &domains)).collect();
                json!({"name": format!("Account {n}"), "domains": list})
            },
            id("a", n),
        ));
    }
    out.push(("ACCOUNT", accounts));
    let mut contacts = Vec::new();
    for n in 0..14 {
        contacts.extend(versions(
            rng,
            &mut |rng| {
                let mut c = json!({"accountId": id("a", rng.gen_range(0..8))});
                if rng.gen_bool(0.8) {
                    c["emailAddress"] = json!(pick(rng, &emails).to_uppercase());
                }
                if rng.gen_bool(0.5) {
                    c["phoneNumber"] = json!(pick(rng, &phones));
                }
                c
            },
            id("c", n),
        ));
    }
    out.push(("CONTACT", contacts));
    let mut leads = Vec::new();
    for n in 0..6 {
        leads.extend(versions(
            rng,
            &mut |rng| {
                let mut l =
                    json!({"emailAddress": pick(rng, &emails), "phoneNumber": pick(rng, &phones)});
                if rng.gen_bool(0.6) {
                    l["convertedToContactId"] = json!(id("c", rng.gen_range(0..16)));
                    l["convertedToAccountId"] = json!(id("a", rng.gen_range(0..8)));
                    l["convertedToDealId"] = json!(id("d", rng.gen_range(0..18)));
                }
                l
            },
            id("l", n),
        ));
    }
    out.push(("LEAD", leads));
    let mut deals = Vec::new();
    for n in 0..16 {
        deals.extend(versions(
            rng,
            &mut |rng| {
                let mut d = json!({"accountId": id("a", rng.gen_range(0..7)),
                    "ownerId": id("u", rng.gen_range(0..5)),
                    "status": pick(rng, &["OPEN", "OPEN", "WON", "LOST"])});
                if rng.gen_bool(0.8) {
                    let when = rng.gen_range(60..=200u16);
                    d["closeDate"] = json!(day(when));
                }
                if rng.gen_bool(0.3) {
                    let when = rng.gen_range(1..=200u16);
                    d["createdDate"] = json!(format!("{}T08:00:00Z", day(when)));
                }
                d
            },
            id("d", n),
        ));
    }
    out.push(("DEAL", deals));
    out
}

fn activities(rng: &mut StdRng) -> Vec<Value> {
    let emails = [
        "ann@acme.com",
        "BOB@acme.com",
        "cy@eu.acme.com",
        "dee@beta.io",
        "eve@gmail.com",
        "fay@ourco.com",
        "zed@sub.beta.io",
        "nobody@nowhere.org",
    ];
    let phones = [
        "+1 (912) 507-4395",
        "44 20 7946 0958",
        "5550101",
        "9999999999",
    ];
    (0..24)
        .map(|_| {
            let parties: Vec<Value> = (0..rng.gen_range(1..=4))
                .map(|_| match rng.gen_range(0..3) {
                    0 => json!({"emailAddress": emails[rng.gen_range(0..emails.len())]}),
                    1 => json!({"phoneNumber": phones[rng.gen_range(0..phones.len())]}),
                    _ => json!({"emailAddress": emails[rng.gen_range(0..emails.len())],
                                "phoneNumber": phones[rng.gen_range(0..phones.len())]}),
                })
                .collect();
            let when = rng.gen_range(30..=180u16);
            json!({
                "startTime": format!("{}T09:30:00Z", day(when)),
                "timing": if rng.gen_bool(0.5) { "Now" } else { "TimeOfCall" },
                "parties": parties,
            })
        })
        .collect()
}

/// Uploads the world. Plainly: each record's versions oldest first, the k-th versions of
/// every record in the k-th file. With `rng`: the versions shuffled and spread over files
/// at random, none holding a record twice (a file may not).
async fn upload(
    server: &Server,
    integration: i64,
    world: &[(&str, Vec<Value>)],
    mut rng: Option<&mut StdRng>,
) {
    let mut n = 0;
    for (object_type, versions) in world {
        let mut versions = versions.clone();
        let spread = match rng.as_deref_mut() {
            Some(rng) => {
                versions.shuffle(rng);
                rng.gen_range(0..3)
            }
            None => 0,
        };
        let mut files: Vec<(std::collections::HashSet<String>, Vec<Value>)> = Vec::new();
        for version in versions {
            let id = version["objectId"].as_str().unwrap().to_owned();
            let start = match rng.as_deref_mut() {
                Some(rng) => rng.gen_range(0..files.len() + spread + 1),
                None => 0,
            };
            let free = (0..files.len())
                .map(|k| (start + k) % files.len().max(1))
                .find(|&k| !files[k].0.contains(&id));
            let k = match free {
                Some(k) if start < files.len() || spread == 0 => k,
                _ => {
                    files.push(Default::default());
                    files.len() - 1
                }
            };
            files[k].0.insert(id);
            files[k].1.push(version);
        }
        for (_, chunk) in files {
            n += 1;
            server
                .put_objects(
                    integration,
                    object_type,
                    &format!("w{n}"),
                    "2024-01-01T00:00:00Z",
                    &chunk,
                )
                .await;
        }
    }
    assert!(TYPES.iter().all(|t| world.iter().any(|(w, _)| w == t)));
}

async fn answers(server: &Server, activities: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for activity in activities {
        let reply = server.post_json("/intake/v1/associations", activity).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let mut body = reply.body.clone();
        body.as_object_mut().unwrap().remove("requestId");
        out.push(body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn associations_agree_across_backends_and_upload_orders() {
    for seed in [7u64, 8, 9] {
        let mut rng = StdRng::seed_from_u64(seed);
        let world = world(&mut rng);
        let asked = activities(&mut rng);

        let plain = Site::new(Backend::Sqlite).await.unwrap();
        let server = plain.start(&[]);
        let integration = server.register().await;
        server
            .send(
                server
                    .req(reqwest::Method::PUT, "/intake/v1/settings")
                    .json(
                        &json!({"internalDomains": ["ourco.com"], "excludedDomains": ["beta.io"]}),
                    ),
            )
            .await;
        upload(&server, integration, &world, None).await;
        let expected = answers(&server, &asked).await;
        // Something matched, or the property says little.
        let matched = expected
            .iter()
            .filter(|a| a["context"] != json!([]))
            .count();
        assert!(
            matched > 0,
            "seed {seed}: no activity matched an account or deal"
        );

        // The batch endpoint: the same answers, line by line.
        let body: String = asked.iter().map(|a| format!("{a}\n")).collect();
        let response = server
            .req(reqwest::Method::POST, "/intake/v1/associations/batch")
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        for (i, line) in text.lines().enumerate() {
            let mut answer: Value = serde_json::from_str(line).unwrap();
            assert_eq!(answer["line"], i + 1);
            answer.as_object_mut().unwrap().remove("line");
            assert_eq!(answer, expected[i], "seed {seed}, batch line {}", i + 1);
        }

        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(site) = Site::new(backend).await else {
                continue;
            };
            let other = site.start(&[]);
            let integration = other.register().await;
            other
                .send(other.req(reqwest::Method::PUT, "/intake/v1/settings").json(
                    &json!({"internalDomains": ["ourco.com"], "excludedDomains": ["beta.io"]}),
                ))
                .await;
            upload(&other, integration, &world, Some(&mut rng)).await;
            let got = answers(&other, &asked).await;
            for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(
                    got, want,
                    "seed {seed}, {backend:?}, activity {i}: {}",
                    asked[i]
                );
            }
        }
    }
}
