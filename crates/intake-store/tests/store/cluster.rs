//! Several instances on one PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use intake_model::ObjectType;
use intake_store::postgres::PgStore;
use intake_store::testing::with_database;
use intake_store::{Batch, RateDecision, RateLimits, RequestStatus, Store};

use crate::common::{record, upload};

#[tokio::test]
async fn instances_start_together_and_share_work() {
    with_database(|url| async move {
        // Four instances migrate one empty database at once.
        let opened = futures_util::future::join_all((0..4).map(|_| PgStore::open(&url))).await;
        let stores: Vec<Arc<PgStore>> = opened.into_iter().map(|s| Arc::new(s.unwrap())).collect();
        let company = stores[0].create_company("c").await.unwrap();
        let integration = stores[1]
            .register_integration(company.id, "n", "a@b.c")
            .await
            .unwrap();

        // A waiting instance wakes when another one takes an upload.
        let waiter = stores[2].clone();
        assert!(waiter
            .claim_work("w-wait", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none());
        let started = std::time::Instant::now();
        let waiting = tokio::spawn(async move {
            waiter.wait_for_work(Duration::from_secs(20)).await;
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        stores[3]
            .insert_upload(&upload(company.id, integration.id, "first"))
            .await
            .unwrap();
        waiting.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the notification"
        );

        // Forty uploads, eight workers on four instances: each claimed exactly once.
        for i in 0..39 {
            stores[i % 4]
                .insert_upload(&upload(company.id, integration.id, &format!("r{i}")))
                .await
                .unwrap();
        }
        let workers = (0..8).map(|w| {
            let store = stores[w % 4].clone();
            tokio::spawn(async move {
                let mut claimed = vec![];
                let id = format!("w{w}");
                while let Some(work) = store
                    .claim_work(&id, Duration::from_secs(30))
                    .await
                    .unwrap()
                {
                    claimed.push(work.seq);
                    let batch = Batch {
                        records: vec![(1, record("x", Some(work.seq), false, "{}"))],
                        checkpoint_line: 1,
                        success_count: 1,
                        ..Batch::default()
                    };
                    store
                        .apply_batch(&work, &id, &batch)
                        .await
                        .unwrap()
                        .unwrap();
                    store
                        .finish_work(work.seq, &id, RequestStatus::Done, None)
                        .await
                        .unwrap()
                        .unwrap();
                }
                claimed
            })
        });
        let mut all: Vec<i64> = futures_util::future::join_all(workers)
            .await
            .into_iter()
            .flat_map(|r| r.unwrap())
            .collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!((before, all.len()), (40, 40));
        let versions = stores[0]
            .versions(integration.id, ObjectType::Contact, "x")
            .await
            .unwrap();
        assert_eq!(versions.len(), 40);

        // The rate limit counts calls on every instance.
        let limits = RateLimits {
            per_second: 3,
            per_day: 0,
        };
        let now = 1_700_000_000_000;
        let mut decisions = vec![];
        for store in &stores {
            decisions.push(store.hit_rate_limit(company.id, limits, now).await.unwrap());
        }
        assert_eq!(decisions[..3], [RateDecision::Allowed; 3]);
        assert_eq!(
            decisions[3],
            RateDecision::Limited {
                retry_after_secs: 1
            }
        );
        // A lagging clock counts in the current window rather than resetting it.
        assert_eq!(
            stores[0]
                .hit_rate_limit(company.id, limits, now - 1000)
                .await
                .unwrap(),
            RateDecision::Limited {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            stores[0]
                .hit_rate_limit(company.id, limits, now + 1000)
                .await
                .unwrap(),
            RateDecision::Allowed
        );
    })
    .await;
}

/// The shared test-database helper keeps the base URL's query: a database made from
/// `...?sslmode=disable` is reached through a URL that still says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_keeps_the_query_of_its_base_url() {
    use sqlx::Connection;
    let base = intake_store::testing::base_url();
    let with_query = if base.contains('?') {
        format!("{base}&sslmode=disable")
    } else {
        format!("{base}?sslmode=disable")
    };
    let Some(db) = intake_store::testing::TestDatabase::create_on(&with_query).await else {
        return;
    };
    assert!(db.url.ends_with("sslmode=disable"), "{}", db.url);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        db.url.contains(&format!("/{name}?")),
        "{name} in {}",
        db.url
    );
    let store = intake_store::open(&db.url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
}

/// An unreachable PostgreSQL fails the open at once, saying where and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_an_unreachable_postgres_fails_fast_and_says_why() {
    let started = std::time::Instant::now();
    let err = match intake_store::open("postgres://postgres@127.0.0.1:1/x").await {
        Err(err) => err.to_string(),
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");

    // A server that answers, without the database.
    let Some(db) = intake_store::testing::TestDatabase::create().await else {
        return;
    };
    let missing = intake_store::testing::database_url(&db.url, "intake_no_such_database");
    let err = match intake_store::open(&missing).await {
        Err(err) => err.to_string(),
        Ok(_) => panic!("no such database"),
    };
    assert!(err.contains("intake_no_such_database"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
