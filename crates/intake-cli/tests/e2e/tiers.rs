//! SQLite keeps the keys of versions in two tiers (see the store): a server with nothing to
//! do merges the recent one into the main one, and no answer changes.

use std::time::Duration;

use crate::harness::{Backend, Site};

/// (main, recent) key counts, read beside the running server.
async fn key_tiers(site: &Site) -> (i64, i64) {
    let pool = sqlx::SqlitePool::connect(&format!("{}?mode=ro", site.database))
        .await
        .unwrap();
    let counts = sqlx::query_as("SELECT main_keys, recent_keys FROM version_key_tiers")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    counts
}

async fn wait_merged(site: &Site, main: i64) {
    for _ in 0..600 {
        if key_tiers(site).await == (main, 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keys not merged: {:?}", key_tiers(site).await);
}

fn account(i: usize, date: &str, name: &str) -> String {
    format!("{{\"objectId\":\"a{i:04}\",\"modifiedDate\":\"{date}\",\"name\":\"{name}\"}}\n")
}

#[tokio::test]
async fn an_idle_sqlite_server_merges_its_key_tiers() {
    let site = Site::new(Backend::Sqlite).await.unwrap();
    let server = site.start(&["--batch-lines", "700"]);
    let id = server.register().await;
    let n = 3000;
    let first: String = (0..n)
        .map(|i| account(i, "2024-01-01T00:00:00Z", &format!("v1-{i}")))
        .collect();
    server.upload(id, "ACCOUNT", "t1", first).await;
    assert_eq!(server.wait_done(id, "t1").await.body["status"], "DONE");
    wait_merged(&site, n as i64).await;

    // Every third account gets a newer version, and every fifth of the others an older
    // one, which is history only.
    let mut expected: Vec<String> = (0..n).map(|i| format!("v1-{i}")).collect();
    let mut second = String::new();
    let mut added = 0;
    for (i, name) in expected.iter_mut().enumerate() {
        if i % 3 == 0 {
            second += &account(i, "2024-02-01T00:00:00Z", &format!("v2-{i}"));
            *name = format!("v2-{i}");
            added += 1;
        } else if i % 5 == 0 {
            second += &account(i, "2023-01-01T00:00:00Z", &format!("old-{i}"));
            added += 1;
        }
    }
    server.upload(id, "ACCOUNT", "t2", second).await;
    assert_eq!(server.wait_done(id, "t2").await.body["status"], "DONE");
    wait_merged(&site, (n + added) as i64).await;

    let ids: Vec<String> = (0..n).map(|i| format!("a{i:04}")).collect();
    for chunk in ids.chunks(100) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let objects = server.objects(id, "ACCOUNT", &refs).await;
        for object_id in chunk {
            let i: usize = object_id[1..].parse().unwrap();
            assert_eq!(
                objects[object_id.as_str()]["name"],
                expected[i],
                "{object_id}"
            );
        }
    }
}
