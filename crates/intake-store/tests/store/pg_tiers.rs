//! PostgreSQL only: the recent tiers of versions and look-up keys (migration 0012), merged
//! into the main tables by swapping and truncating whole tables.

use std::time::Duration;

use intake_model::associate::LookupKind;
use intake_model::{ObjectType, SchemaPlan};
use intake_store::postgres::{Merged, PgStore};
use intake_store::testing::TestDatabase;
use intake_store::{Batch, ClaimedWork, CompanyId, IntegrationId, Store};

use crate::common::{acme, apply_and_finish, record, upload};

const IDS: usize = 50;

async fn claim_new_upload(
    store: &PgStore,
    company: CompanyId,
    iid: IntegrationId,
    crid: &str,
) -> ClaimedWork {
    store
        .insert_upload(&upload(company, iid, crid))
        .await
        .unwrap();
    store
        .claim_work("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap()
}

/// One upload of 40 CONTACT records over `IDS` ids (as the SQLite tiers test): older
/// versions, ties on modifiedDate, deletions; each with an email, so look-up keys too.
async fn store_upload(store: &PgStore, company: CompanyId, iid: IntegrationId, round: i64) {
    let work = claim_new_upload(store, company, iid, &format!("r{round}")).await;
    let records = (0..40i64)
        .map(|i| {
            let id = format!("c{:02}", (i * 7 + round * 3) % IDS as i64);
            let modified = 1000 - round * (i % 2);
            let deleted = round == 1 && i % 11 == 0;
            let body = format!(
                r#"{{"objectId":"{id}","emailAddress":"{id}.r{round}@acme.com","round":{round},"f":{i}}}"#
            );
            (i as u64 + 1, record(&id, Some(modified), deleted, &body))
        })
        .collect();
    let batch = Batch {
        records,
        checkpoint_line: 40,
        success_count: 40,
        ..Batch::default()
    };
    apply_and_finish(store, &work, &batch).await;
}

/// Every answer the reads give: current states, histories, the listing and the stream of
/// records current at a few times, and what the look-up keys lead to.
async fn answers(store: &PgStore, iid: IntegrationId) -> Vec<String> {
    let ids: Vec<String> = (0..IDS).map(|i| format!("c{i:02}")).collect();
    let current = store
        .current_objects(iid, ObjectType::Contact, &ids)
        .await
        .unwrap();
    let mut out = Vec::new();
    for id in &ids {
        let history = store.versions(iid, ObjectType::Contact, id).await.unwrap();
        out.push(format!("{id} {:?} {history:?}", current[id]));
    }
    for as_of in [998, 999, 1000, i64::MAX] {
        let mut each = Vec::new();
        store
            .for_each_current(iid, ObjectType::Contact, as_of, &mut |id, body| {
                each.push(format!("{id} {body}"));
            })
            .await
            .unwrap();
        each.sort();
        let listed: Vec<String> = store
            .records_after(iid, ObjectType::Contact, "", 1000, as_of)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|(id, state)| {
                state
                    .filter(|s| !s.deleted)
                    .map(|s| format!("{id} {}", s.body))
            })
            .collect();
        assert_eq!(each, listed, "as of {as_of}");
        out.push(format!("current as of {as_of}: {each:?}"));
    }
    let emails: Vec<String> = (0..IDS)
        .flat_map(|i| (0..6).map(move |r| format!("c{i:02}.r{r}@acme.com")))
        .collect();
    let mut snapshot = store.read_snapshot(iid).await.unwrap();
    let mut hits: Vec<String> = snapshot
        .lookup(LookupKind::Email, &emails)
        .await
        .unwrap()
        .into_iter()
        .map(|h| format!("{} {}", h.key, h.object_id))
        .collect();
    hits.sort();
    out.push(format!("hits {hits:?}"));
    let wanted: Vec<(String, i64)> = ids.iter().map(|id| (id.clone(), 999)).collect();
    let states = snapshot.states(ObjectType::Contact, &wanted).await.unwrap();
    out.push(format!("states at 999 {states:?}"));
    out
}

/// Rows of a table, by a connection of its own.
async fn count(db: &TestDatabase, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let n = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_the_recent_tiers_changes_no_answer() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = PgStore::open(&db.url).await.unwrap();
    // Each merge in several committed batches, the last one short.
    PgStore::set_merge_batch_rows(7);
    let (company, iid) = acme(&store).await;
    for round in 0..2 {
        store_upload(&store, company, iid, round).await;
    }
    let expected = answers(&store, iid).await;
    assert!(expected.iter().any(|a| a.contains(" None ")), "deletions");
    let (versions, keys, active) = store.recent_tiers().await.unwrap();
    assert_eq!((versions, active), (80, 0));
    assert!(keys > 0);

    // A merge swaps the tiers and moves the recent versions and keys into the main tables.
    let merged = store.merge_recent_tier().await.unwrap();
    assert_eq!(
        merged,
        Some(Merged {
            versions: 80,
            keys: keys as u64
        })
    );
    assert_eq!(store.recent_tiers().await.unwrap(), (0, 0, 1));
    assert_eq!(count(&db, "record_versions").await, 80);
    assert_eq!(answers(&store, iid).await, expected);
    assert_eq!(
        store.merge_recent_tier().await.unwrap(),
        None,
        "nothing left"
    );

    // Versions in the main table and in the active tier at once.
    store_upload(&store, company, iid, 2).await;
    let expected = answers(&store, iid).await;
    assert_eq!(store.recent_tiers().await.unwrap().0, 40);

    // Dropping a field's values reaches every tier.
    let plan = SchemaPlan {
        keep: vec![],
        drop_values_of: vec!["f".to_string()],
    };
    store
        .replace_schema(iid, ObjectType::Contact, &plan)
        .await
        .unwrap();
    let dropped = answers(&store, iid).await;
    assert!(
        dropped.iter().all(|a| !a.contains("\\\"f\\\"")),
        "{dropped:?}"
    );
    assert!(dropped.iter().any(|a| a.contains("\\\"round\\\":2")));
    assert_ne!(dropped, expected);
    store.merge_recent_tier().await.unwrap().unwrap();
    assert_eq!(answers(&store, iid).await, dropped);
    let expected = dropped;

    // A batch replayed after a swap: its copy in each tier is one version, and the merge
    // keeps one.
    let work = claim_new_upload(&store, company, iid, "replay").await;
    let batch = Batch {
        records: vec![(
            1,
            record(
                "c01",
                Some(5000),
                false,
                r#"{"objectId":"c01","emailAddress":"c01.r5@acme.com"}"#,
            ),
        )],
        checkpoint_line: 1,
        success_count: 1,
        ..Batch::default()
    };
    store
        .apply_batch(&work, "w", &batch)
        .await
        .unwrap()
        .unwrap();
    store.merge_recent_tier().await.unwrap().unwrap();
    store
        .apply_batch(&work, "w", &batch)
        .await
        .unwrap()
        .unwrap();
    let replayed = answers(&store, iid).await;
    assert_eq!(
        store
            .versions(iid, ObjectType::Contact, "c01")
            .await
            .unwrap()
            .iter()
            .filter(|v| v.modified == 5000)
            .count(),
        1
    );
    // The first merge keyed line 1 (into the tier it made active) before it moved the
    // version: this one moves that key, and no version.
    let mains = count(&db, "record_versions").await;
    assert_eq!(
        store.merge_recent_tier().await.unwrap(),
        Some(Merged {
            versions: 0,
            keys: 1
        })
    );
    assert_eq!(count(&db, "record_versions").await, mains);
    assert_eq!(answers(&store, iid).await, replayed);
    assert_ne!(replayed, expected);

    // A snapshot taken before a merge reads what it read until it ends: the merge waits
    // to truncate the tier until then, without stopping other reads.
    let other = store_more(&store, company, iid).await;
    let mut snapshot = store.read_snapshot(iid).await.unwrap();
    let before = snapshot
        .states(ObjectType::Contact, &[(other.clone(), i64::MAX)])
        .await
        .unwrap();
    assert!(before[0].is_some());
    let merging = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let store = PgStore::open(&url).await.unwrap();
            store.merge_recent_tier().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!merging.is_finished(), "the merge waits for the snapshot");
    let current = store
        .current_objects(iid, ObjectType::Contact, std::slice::from_ref(&other))
        .await
        .unwrap();
    assert!(current[&other].is_some(), "reads go on meanwhile");
    let still = snapshot
        .states(ObjectType::Contact, &[(other.clone(), i64::MAX)])
        .await
        .unwrap();
    assert_eq!(still, before);
    drop(snapshot);
    let merged = tokio::time::timeout(Duration::from_secs(10), merging)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged.map(|m| m.versions), Some(1));
    assert!(store
        .current_objects(iid, ObjectType::Contact, std::slice::from_ref(&other))
        .await
        .unwrap()[&other]
        .is_some());

    // Purging the integration empties every tier, and leaves another integration alone.
    store_upload(&store, company, iid, 3).await;
    let other_company = store.create_company("other").await.unwrap();
    let other_iid = store
        .register_integration(other_company.id, "crm", "a@b.c")
        .await
        .unwrap()
        .id;
    store_upload(&store, other_company.id, other_iid, 0).await;
    let other_answers = answers(&store, other_iid).await;
    store.purge_integration(iid).await.unwrap();
    assert_eq!(store.recent_tiers().await.unwrap().0, 40);
    assert_eq!(answers(&store, other_iid).await, other_answers);
    let purged = answers(&store, iid).await;
    assert!(
        purged[..IDS].iter().all(|a| a.ends_with(" None []")),
        "{purged:?}"
    );
    store.merge_recent_tier().await.unwrap().unwrap();
    assert_eq!(count(&db, "record_versions").await, 40);
    assert_eq!(answers(&store, other_iid).await, other_answers);
}

/// One more record, in the active tier: its id.
async fn store_more(store: &PgStore, company: CompanyId, iid: IntegrationId) -> String {
    let work = claim_new_upload(store, company, iid, "more").await;
    let batch = Batch {
        records: vec![(1, record("z9", Some(10), false, r#"{"objectId":"z9"}"#))],
        checkpoint_line: 1,
        success_count: 1,
        ..Batch::default()
    };
    apply_and_finish(store, &work, &batch).await;
    "z9".to_string()
}
