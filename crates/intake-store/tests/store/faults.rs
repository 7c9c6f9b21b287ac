//! SQLite only, faults of the database file: a full disk fails the work it stops, and only
//! that (once there is room again, the same store claims, applies and finishes without
//! being reopened); a row this version cannot read is corrupt, not missing.

use std::time::Duration;

use intake_store::sqlite::SqliteStore;
use intake_store::{Batch, ClaimedWork, RequestStatus, Store};

use crate::common::{acme, apply_and_finish, record, upload, Site};

/// `n` CONTACT records of about 1 KiB each, from line `first`.
fn big_batch(first: u64, n: u64) -> Batch {
    let records = (first..first + n)
        .map(|line| {
            let id = format!("c{line:06}");
            let body = format!(r#"{{"objectId":"{id}","note":"{}"}}"#, "x".repeat(1000));
            (line, record(&id, Some(1000), false, &body))
        })
        .collect();
    Batch {
        records,
        checkpoint_line: first + n - 1,
        success_count: first + n - 1,
        ..Batch::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_work_until_there_is_room_again() {
    let site = Site::sqlite();
    let store = SqliteStore::open(&site.url).await.unwrap();
    let (company, iid) = acme(&store).await;
    let lease = Duration::from_secs(60);
    store
        .insert_upload(&upload(company, iid, "u1"))
        .await
        .unwrap();
    let work: ClaimedWork = store.claim_work("w", lease).await.unwrap().unwrap();

    // Room for 5 more pages: a batch of ~500 KiB does not fit, twice.
    store.limit_growth_for_tests(Some(5)).await.unwrap();
    for attempt in 1..=2 {
        let err = store
            .apply_batch(&work, "w", &big_batch(1, 500))
            .await
            .expect_err("no room for the batch");
        assert!(err.is_disk_full(), "attempt {attempt}: {err}");
    }
    // Nothing of the failed batches stayed.
    assert_eq!(
        store
            .request_report(company, "u1")
            .await
            .unwrap()
            .unwrap()
            .success_count,
        0
    );
    // Other writes that do not grow the file still work meanwhile.
    store
        .heartbeat(work.seq, "w", lease)
        .await
        .unwrap()
        .unwrap();

    // Room again: the same store goes on, with no restart.
    store.limit_growth_for_tests(None).await.unwrap();
    apply_and_finish(&store, &work, &big_batch(1, 500)).await;
    store
        .insert_upload(&upload(company, iid, "u2"))
        .await
        .unwrap();
    let next = store.claim_work("w", lease).await.unwrap().unwrap();
    apply_and_finish(&store, &next, &big_batch(501, 10)).await;
    let report = store.request_report(company, "u1").await.unwrap().unwrap();
    assert_eq!(
        (report.status, report.success_count),
        (RequestStatus::Done, 500)
    );
    let report = store.request_report(company, "u2").await.unwrap().unwrap();
    assert_eq!(
        (report.status, report.success_count),
        (RequestStatus::Done, 510)
    );
    let ids = ["c000001".to_string(), "c000510".to_string()];
    let current = store
        .current_objects(iid, intake_model::ObjectType::Contact, &ids)
        .await
        .unwrap();
    assert!(current.values().all(Option::is_some), "{current:?}");
}

/// A stored row this version cannot read is reported as corrupt, never as missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_is_corrupt_not_missing() {
    let site = Site::sqlite();
    let store = SqliteStore::open(&site.url).await.unwrap();
    let (company, iid) = acme(&store).await;
    store
        .insert_upload(&upload(company, iid, "u1"))
        .await
        .unwrap();
    let look = sqlx::SqlitePool::connect(&site.url).await.unwrap();
    sqlx::query("UPDATE requests SET object_type = 99")
        .execute(&look)
        .await
        .unwrap();
    let claimed = store.claim_work("w", Duration::from_secs(60)).await;
    assert!(
        matches!(claimed, Err(intake_store::StoreError::Corrupt(_))),
        "{claimed:?}"
    );
    sqlx::query("UPDATE requests SET status = 'LOST'")
        .execute(&look)
        .await
        .unwrap();
    let report = store.request_report(company, "u1").await;
    assert!(
        matches!(report, Err(intake_store::StoreError::Corrupt(_))),
        "{report:?}"
    );
    sqlx::query("UPDATE integrations SET name = x'ff'")
        .execute(&look)
        .await
        .unwrap();
    let found = store.find_integration(company, iid).await;
    assert!(
        matches!(found, Err(intake_store::StoreError::Corrupt(_))),
        "{found:?}"
    );
}
