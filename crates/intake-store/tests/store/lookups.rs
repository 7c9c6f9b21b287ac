//! The look-up keys of the associations, on both backends: derived after the batches (by
//! the worker's upkeep, a reader's snapshot, a PostgreSQL merge), a replayed batch
//! harmless, every record a key leads to readable in one snapshot, keys gone with a purged
//! integration, and filled for a store from before them.

use std::time::Duration;

use intake_model::associate::LookupKind;
use intake_model::ObjectType;
use intake_store::{Batch, LookupHit, Store};

use crate::common::{acme, apply_and_finish, record, upload, Site};
use crate::contract_tests;

contract_tests!(
    lookup_keys_follow_batches_replays_and_purge,
    lookup_keys_are_filled_for_a_store_from_before_them,
    a_record_uploaded_again_keeps_its_keys_and_gains_new_ones,
    keys_are_derived_after_the_batches,
);

fn hit(id: &str) -> LookupHit {
    LookupHit {
        key: "ann@acme.com".into(),
        object_type: ObjectType::Contact,
        object_id: id.into(),
    }
}

async fn store_contacts(store: &dyn Store, crid: &str) -> i64 {
    let (company, integration) = match store.company_by_name("acme").await.unwrap() {
        Some(company) => (
            company.id,
            store.list_integrations(company.id).await.unwrap()[0].id,
        ),
        None => acme(store).await,
    };
    store
        .insert_upload(&upload(company, integration, crid))
        .await
        .unwrap();
    let work = store
        .claim_work("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let batch = Batch {
        records: vec![
            (
                1,
                record(
                    "c1",
                    Some(10),
                    false,
                    r#"{"objectId":"c1","emailAddress":"Ann@Acme.com","phoneNumber":"+1 912 507 4395"}"#,
                ),
            ),
            (
                2,
                record(
                    "c2",
                    Some(10),
                    false,
                    r#"{"objectId":"c2","emailAddress":"bob@acme.com"}"#,
                ),
            ),
            // A later version without the address: the old key stays, readers check.
            (
                3,
                record(
                    "c2",
                    Some(20),
                    false,
                    r#"{"objectId":"c2","emailAddress":"ann@acme.com"}"#,
                ),
            ),
        ],
        checkpoint_line: 3,
        success_count: 3,
        ..Batch::default()
    };
    // The same batch twice: what a worker resuming after a crash may send.
    store
        .apply_batch(&work, "w", &batch)
        .await
        .unwrap()
        .unwrap();
    apply_and_finish(store, &work, &batch).await;
    integration
}

async fn lookup_keys_follow_batches_replays_and_purge(site: Site) {
    let store = site.open().await;
    let integration = store_contacts(&*store, "r1").await;
    let mut snapshot = store.read_snapshot(integration).await.unwrap();
    let mut hits = snapshot
        .lookup(
            LookupKind::Email,
            &["ann@acme.com".into(), "nobody@x.io".into()],
        )
        .await
        .unwrap();
    hits.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    assert_eq!(hits, [hit("c1"), hit("c2")]);
    let phone = snapshot
        .lookup(LookupKind::Phone, &["9125074395".into()])
        .await
        .unwrap();
    assert_eq!(phone.len(), 1);
    // States as asked: each id's latest version at the time given, in the order asked.
    let states = snapshot
        .states(
            ObjectType::Contact,
            &[
                ("c2".into(), 15),
                ("c2".into(), i64::MAX),
                ("c9".into(), i64::MAX),
                ("c1".into(), 5),
            ],
        )
        .await
        .unwrap();
    assert!(states[0].as_ref().unwrap().body.contains("bob@acme.com"));
    assert!(states[1].as_ref().unwrap().body.contains("ann@acme.com"));
    assert!(states[2].is_none());
    assert!(states[3].is_none());
    drop(snapshot);

    store.purge_integration(integration).await.unwrap();
    let mut snapshot = store.read_snapshot(integration).await.unwrap();
    let left = snapshot
        .lookup(
            LookupKind::Email,
            &["ann@acme.com".into(), "bob@acme.com".into()],
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

async fn lookup_keys_are_filled_for_a_store_from_before_them(site: Site) {
    let store = site.open().await;
    let integration = store_contacts(&*store, "r1").await;
    drop(store);
    // As a store from before the look-ups: no keys, and the upkeep not done.
    let statements = [
        "DELETE FROM lookup_keys",
        if site.is_sqlite() {
            // What migration 0014 leaves of such a store: no version keyed.
            "UPDATE lookup_progress SET keyed_through = 0"
        } else {
            "UPDATE store_upkeep SET done = false"
        },
    ];
    if site.is_sqlite() {
        let pool = sqlx::SqlitePool::connect(&site.url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&site.url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let store = site.open().await;
    let mut snapshot = store.read_snapshot(integration).await.unwrap();
    let mut hits = snapshot
        .lookup(LookupKind::Email, &["ann@acme.com".into()])
        .await
        .unwrap();
    hits.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    assert_eq!(hits, [hit("c1"), hit("c2")]);
}

/// New versions whose keys are partly stored already (PostgreSQL's COPY of the keys meets
/// them and falls back to skipping them) and partly new: every key is found once.
async fn a_record_uploaded_again_keeps_its_keys_and_gains_new_ones(site: Site) {
    let store = site.open().await;
    let integration = store_contacts(&*store, "r1").await;
    let company = store.company_by_name("acme").await.unwrap().unwrap().id;
    store
        .insert_upload(&upload(company, integration, "r2"))
        .await
        .unwrap();
    let work = store
        .claim_work("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let batch = Batch {
        records: vec![
            (
                1,
                record(
                    "c1",
                    Some(30),
                    false,
                    r#"{"objectId":"c1","emailAddress":"ann@acme.com","phoneNumber":"+1 212 555 0100"}"#,
                ),
            ),
            (
                2,
                record(
                    "c3",
                    Some(30),
                    false,
                    r#"{"objectId":"c3","emailAddress":"Ann@acme.com"}"#,
                ),
            ),
        ],
        checkpoint_line: 2,
        success_count: 2,
        ..Batch::default()
    };
    apply_and_finish(&*store, &work, &batch).await;
    let mut snapshot = store.read_snapshot(integration).await.unwrap();
    let mut hits = snapshot
        .lookup(LookupKind::Email, &["ann@acme.com".into()])
        .await
        .unwrap();
    hits.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    assert_eq!(hits, [hit("c1"), hit("c2"), hit("c3")]);
    let mut phones: Vec<String> = snapshot
        .lookup(
            LookupKind::Phone,
            &["9125074395".into(), "2125550100".into()],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|h| format!("{}:{}", h.key, h.object_id))
        .collect();
    phones.sort();
    assert_eq!(phones, ["2125550100:c1", "9125074395:c1"]);
}

/// The keys the store holds (every tier).
async fn stored_keys(site: &Site) -> i64 {
    if site.is_sqlite() {
        let pool = sqlx::SqlitePool::connect(&site.url).await.unwrap();
        let n = sqlx::query_scalar("SELECT count(*) FROM lookup_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&site.url).await.unwrap();
        let n = sqlx::query_scalar("SELECT count(*) FROM all_lookup_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

/// A batch writes versions only; the keys come after: from a reader's snapshot (the lines
/// of a request in progress too), from the worker's upkeep between two requests, and on
/// PostgreSQL from a merge, which keys every upload before it moves a recent tier into
/// the main table (where the keyer would not find the versions any more).
async fn keys_are_derived_after_the_batches(site: Site) {
    let store = site.open().await;
    let (company, integration) = acme(&*store).await;
    store
        .insert_upload(&upload(company, integration, "r1"))
        .await
        .unwrap();
    let work = store
        .claim_work("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let contact = |line: u64, id: &str, email: &str| {
        let body = format!(r#"{{"objectId":"{id}","emailAddress":"{email}"}}"#);
        (line, record(id, Some(10), false, &body))
    };
    let first = Batch {
        records: vec![contact(1, "c1", "ann@acme.com")],
        checkpoint_line: 1,
        success_count: 1,
        ..Batch::default()
    };
    store
        .apply_batch(&work, "w", &first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_keys(&site).await, 0, "a batch writes no key");
    let mut snapshot = store.read_snapshot(integration).await.unwrap();
    let hits = snapshot
        .lookup(LookupKind::Email, &["ann@acme.com".into()])
        .await
        .unwrap();
    assert_eq!(hits, [hit("c1")], "a reader keys the lines stored so far");
    drop(snapshot);
    assert_eq!(stored_keys(&site).await, 1);

    let second = Batch {
        records: vec![contact(2, "c2", "bob@acme.com")],
        checkpoint_line: 2,
        success_count: 2,
        ..Batch::default()
    };
    apply_and_finish(&*store, &work, &second).await;
    assert_eq!(stored_keys(&site).await, 1);
    if site.is_sqlite() {
        assert!(
            store.maintain(false).await.unwrap(),
            "the upkeep keys first"
        );
    } else {
        let pg = intake_store::postgres::PgStore::open(&site.url)
            .await
            .unwrap();
        let merged = pg.merge_recent_tier().await.unwrap().unwrap();
        // The merge keyed line 2 (into the tier it made active) before it moved both
        // versions out of the recent tier.
        assert_eq!(merged.versions, 2);
    }
    assert_eq!(stored_keys(&site).await, 2);
    let mut snapshot = store.read_snapshot(integration).await.unwrap();
    let hits = snapshot
        .lookup(LookupKind::Email, &["bob@acme.com".into()])
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].object_id, "c2");
}
