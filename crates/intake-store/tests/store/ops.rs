//! What an operator asks of the store: whether it is ready (the database answers, the
//! migrations applied are this version's), how many requests are in each status, and which
//! claims take a lease over from a worker that stopped answering.

use std::time::Duration;

use intake_store::{NotReady, RequestStatus, Store};

use crate::common::{acme, upload, Site};

crate::contract_tests!(
    readiness_names_the_migrations_that_are_not_this_versions,
    requests_are_counted_by_status,
    only_a_claim_of_an_expired_lease_is_a_takeover,
);

/// Runs one statement on the site's database, beside the store.
async fn execute(site: &Site, sql: &str) {
    if site.is_sqlite() {
        let pool = sqlx::SqlitePool::connect(&site.url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&site.url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn readiness_names_the_migrations_that_are_not_this_versions(site: Site) {
    let store = site.open().await;
    assert_eq!(store.readiness().await, Vec::<NotReady>::new());

    execute(&site, "DELETE FROM _sqlx_migrations WHERE version = 5").await;
    let problems = store.readiness().await;
    assert_eq!(
        problems,
        vec![NotReady::Migrations("not applied: 0005".into())]
    );
    assert_eq!(problems[0].to_string(), "migrations: not applied: 0005");

    execute(
        &site,
        "INSERT INTO _sqlx_migrations \
         (version, description, installed_on, success, checksum, execution_time) \
         SELECT 9999, description, installed_on, success, checksum, execution_time \
         FROM _sqlx_migrations WHERE version = 1",
    )
    .await;
    execute(
        &site,
        "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 1",
    )
    .await;
    let problems: Vec<String> = store
        .readiness()
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        vec![
            "migrations: not applied: 0001, 0005; failed halfway: 0001; \
             applied by a newer version of Intake: 9999"
                .to_string()
        ]
    );
}

async fn requests_are_counted_by_status(site: Site) {
    let store = site.open().await;
    let counts = |pending, in_progress, done, failed| {
        vec![
            (RequestStatus::Pending, pending),
            (RequestStatus::InProgress, in_progress),
            (RequestStatus::Done, done),
            (RequestStatus::Failed, failed),
            (RequestStatus::Cancelled, 0),
        ]
    };
    assert_eq!(store.request_counts().await.unwrap(), counts(0, 0, 0, 0));
    let (company, iid) = acme(store.as_ref()).await;
    for crid in ["u1", "u2", "u3", "u4"] {
        store
            .insert_upload(&upload(company, iid, crid))
            .await
            .unwrap();
    }
    let lease = Duration::from_secs(60);
    for status in [RequestStatus::Done, RequestStatus::Failed] {
        let work = store.claim_work("w", lease).await.unwrap().unwrap();
        store
            .finish_work(work.seq, "w", status, None)
            .await
            .unwrap()
            .unwrap();
    }
    store.claim_work("w", lease).await.unwrap().unwrap();
    assert_eq!(store.request_counts().await.unwrap(), counts(1, 1, 1, 1));
}

async fn only_a_claim_of_an_expired_lease_is_a_takeover(site: Site) {
    let store = site.open().await;
    let (company, iid) = acme(store.as_ref()).await;
    store
        .insert_upload(&upload(company, iid, "u1"))
        .await
        .unwrap();
    let first = claim(store.as_ref(), "w1", Duration::from_millis(1)).await;
    assert!(!first.taken_over, "a pending request is nobody's");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = claim(store.as_ref(), "w2", Duration::from_secs(60)).await;
    assert_eq!(second.seq, first.seq);
    assert!(second.taken_over, "w1's lease expired while it held it");
    store.release_leases("w2").await.unwrap();
    let third = claim(store.as_ref(), "w3", Duration::from_secs(60)).await;
    assert_eq!(third.seq, first.seq);
    assert!(!third.taken_over, "w2 handed it back");
}

async fn claim(store: &dyn Store, worker: &str, lease: Duration) -> intake_store::ClaimedWork {
    store
        .claim_work(worker, lease)
        .await
        .unwrap()
        .expect("work to claim")
}
