//! Several instances on one PostgreSQL database, and clean shutdown.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Backend, Server, Site};

const FILES: usize = 60;
const RECORDS: usize = 3_000;

/// File `k`: every record once, modified at second `k`, and every 100th line broken.
fn cluster_file(k: usize) -> String {
    let mut file = String::new();
    for j in 0..RECORDS {
        if j % 100 == 7 {
            file.push_str(&format!(
                "{{\"objectId\":\"c{j}\",\"modifiedDate\":\"not a date\"}}\n"
            ));
        } else {
            file.push_str(&format!(
                "{{\"objectId\":\"c{j}\",\"modifiedDate\":\"2024-01-01T00:{:02}:{:02}Z\",\"title\":\"v{k}\"}}\n",
                k / 60,
                k % 60
            ));
        }
    }
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed() {
    let Some(site) = Site::new(Backend::Postgres).await else {
        return;
    };
    let first = site.start(&[]);
    let mut servers = [first, site.start(&[]), site.start(&[])];
    let id = servers[0].register().await;

    let uploads = (0..FILES).map(|k| {
        let server = &servers[k % 3];
        async move {
            let reply = server
                .upload(id, "CONTACT", &format!("f{k}"), cluster_file(k))
                .await;
            assert_eq!(reply.status, 201, "{:?}", reply.body);
        }
    });
    futures_util::future::join_all(uploads).await;

    // Kill one instance while the work is under way.
    loop {
        let last = servers[0].status(id, &format!("f{}", FILES - 1)).await;
        assert_ne!(last.body["status"], "DONE", "all finished before the kill");
        let first = servers[0].status(id, "f0").await;
        if first.body["totalSuccessCount"].as_u64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait until the victim holds a request, then kill it.
    let pool = sqlx::PgPool::connect(&site.database).await.unwrap();
    let victim = format!("worker-{}-%", servers[1].pid());
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM requests WHERE status = 'IN_PROGRESS' AND lease_owner LIKE $1",
        )
        .bind(&victim)
        .fetch_one(&pool)
        .await
        .unwrap();
        if held > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    servers[1].kill();

    let broken = RECORDS / 100;
    for k in 0..FILES {
        let done = servers[k % 2 * 2].wait_done(id, &format!("f{k}")).await;
        assert_eq!(done.body["status"], "FAILED", "f{k}");
        assert_eq!(
            done.body["totalSuccessCount"],
            (RECORDS - broken) as u64,
            "f{k}: {:?}",
            done.body
        );
        assert_eq!(done.body["totalErrorCount"], broken as u64, "f{k}");
        let lines: Vec<u64> = done.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (0..broken.min(20)).map(|i| (i * 100 + 8) as u64).collect();
        assert_eq!(lines, expected, "f{k}");
    }

    // Every record stored once per file, and the newest file is the current state. A
    // version is counted once where it is in two tiers at once (the same row: copied by a
    // merge and not yet truncated from its recent tier, which every read allows for).
    const STORED: &str = "(SELECT DISTINCT object_id, modified, seq FROM all_versions) AS v";
    let (versions, distinct): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT (object_id, modified)) FROM {STORED}"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(versions, (FILES * (RECORDS - broken)) as i64);
    assert_eq!(distinct, versions);
    let uneven: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT object_id, count(*) FROM {STORED} GROUP BY object_id HAVING count(*) <> $1"
    ))
    .bind(FILES as i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(uneven.is_empty(), "{uneven:?}");
    pool.close().await;
    let current = servers[2].objects(id, "CONTACT", &["c0", "c2999"]).await;
    assert_eq!(current["c0"]["title"], format!("v{}", FILES - 1));
    assert_eq!(current["c2999"]["title"], format!("v{}", FILES - 1));
}

/// SIGTERM in the middle of a request: the server exits cleanly, hands the request back,
/// and the next start finishes it with the counts of an uninterrupted run.
async fn sigterm_hands_work_back(site: Site) {
    let mut server = site.start(&["--lease-seconds", "600"]);
    let id = server.register().await;
    let mut file = Vec::new();
    intake_model::gen::write_lines(&mut file, intake_model::ObjectType::Deal, 150_000, 3, 0.0)
        .unwrap();
    assert_eq!(server.upload(id, "DEAL", "deals", file).await.status, 201);
    loop {
        let status = server.status(id, "deals").await;
        assert_ne!(status.body["status"], "DONE", "finished before SIGTERM");
        if status.body["totalSuccessCount"].as_u64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = server.terminate();
    assert!(exit.success(), "{exit:?}");
    // The lease is long: only a clean hand-back lets the next start resume at once.
    let server: Server = site.start(&["--lease-seconds", "600"]);
    let done = server.wait_done(id, "deals").await;
    assert_eq!(done.body["status"], "DONE", "{:?}", done.body);
    assert_eq!(done.body["totalSuccessCount"], 150_000);
    let _: Value = server.objects(id, "DEAL", &["x"]).await;
}

crate::backend_tests!(sigterm_hands_work_back);
