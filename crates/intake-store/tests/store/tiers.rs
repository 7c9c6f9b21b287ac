//! SQLite only: the version keys' two tiers, and the migration of a store made before them.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use intake_model::{ObjectType, SchemaPlan};
use intake_store::sqlite::SqliteStore;
use intake_store::{Batch, ClaimedWork, CompanyId, IntegrationId, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::common::{acme, apply_and_finish, record, upload};

struct TempDb(tempfile::TempDir);

impl TempDb {
    fn new() -> TempDb {
        TempDb(tempfile::tempdir().expect("temp dir"))
    }
    fn url(&self) -> String {
        format!("sqlite://{}/intake.db", self.0.path().display())
    }
    fn dir(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
    /// A connection of its own to the file, to look at it.
    async fn pool(&self) -> SqlitePool {
        SqlitePool::connect(&self.url()).await.unwrap()
    }
}

async fn open(db: &TempDb) -> SqliteStore {
    SqliteStore::open(&db.url()).await.unwrap()
}

const IDS: usize = 50;

/// Registers an upload and claims it as worker "w".
async fn claim_new_upload(
    store: &SqliteStore,
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

/// Stores one upload of 40 CONTACT records: ids spread over `IDS`, some versions older
/// than what is stored, some tied on modifiedDate (the later request wins), some
/// deletions.
async fn store_upload(store: &SqliteStore, company: CompanyId, iid: IntegrationId, round: i64) {
    let work = claim_new_upload(store, company, iid, &format!("r{round}")).await;
    let records = (0..40i64)
        .map(|i| {
            let id = format!("c{:02}", (i * 7 + round * 3) % IDS as i64);
            let modified = 1000 - round * (i % 2);
            let deleted = round == 1 && i % 11 == 0;
            let body = format!(r#"{{"objectId":"{id}","round":{round},"f":{i}}}"#);
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

/// Every answer the reads give: the current state of each id, and its history.
async fn answers(store: &SqliteStore, iid: IntegrationId) -> Vec<String> {
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
    // Every record current at a time, in one streaming query: the same as the listing's
    // records that are not deleted then.
    for as_of in [998, 999, 1000, i64::MAX] {
        // In chunks of any size (chunks that end inside a record's versions included).
        let mut by_chunk = Vec::new();
        for chunk in [1, 2, 7, 500] {
            store.set_current_chunk(chunk);
            let mut each = Vec::new();
            store
                .for_each_current(iid, ObjectType::Contact, as_of, &mut |id, body| {
                    each.push(format!("{id} {body}"));
                })
                .await
                .unwrap();
            each.sort();
            by_chunk.push(each);
        }
        let each = by_chunk.pop().unwrap();
        for other in by_chunk {
            assert_eq!(other, each, "as of {as_of}");
        }
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
    out
}

#[tokio::test]
async fn merging_the_key_tiers_changes_no_answer() {
    let db = TempDb::new();
    let store = open(&db).await;
    let (company, iid) = acme(&store).await;
    for round in 0..3 {
        store_upload(&store, company, iid, round).await;
    }
    let expected = answers(&store, iid).await;
    assert_eq!(store.key_tiers(), (0, 120));
    assert!(
        expected.iter().any(|a| a.contains(" None ")),
        "some records are deleted"
    );

    // Below the forced threshold, nothing is merged while work waits; the look-up keys
    // of the uploads are written first (they cannot wait), and change no key tier.
    store.set_merge_tuning(7, 1000);
    assert!(store.maintain(false).await.unwrap());
    assert_eq!(store.key_tiers(), (0, 120));
    assert!(!store.maintain(false).await.unwrap());
    assert_eq!(store.key_tiers(), (0, 120));

    // Idle steps move 7 keys each, in key order; every answer stays the same.
    let mut steps = 0;
    while store.maintain(true).await.unwrap() {
        steps += 1;
        let (main, recent) = store.key_tiers();
        assert_eq!((main, main + recent), ((steps * 7).min(120), 120));
        assert_eq!(answers(&store, iid).await, expected, "after step {steps}");
    }
    assert_eq!(steps, 18);
    assert_eq!(store.key_tiers(), (120, 0));

    // The counts are stored: a reopened store knows them.
    drop(store);
    let store = open(&db).await;
    assert_eq!(store.key_tiers(), (120, 0));
    assert_eq!(answers(&store, iid).await, expected);

    // Over the forced threshold, a merge runs to the end while work waits.
    store.set_merge_tuning(15, 30);
    store_upload(&store, company, iid, 3).await;
    assert_eq!(store.key_tiers(), (120, 40));
    // The first step writes the upload's look-up keys.
    let mut forced_steps = 0;
    while store.maintain(false).await.unwrap() {
        forced_steps += 1;
    }
    assert_eq!((forced_steps, store.key_tiers()), (1 + 3, (160, 0)));
    // Fewer recent keys than the threshold (here 41): no forced merge; at 10, one is.
    store_upload(&store, company, iid, 4).await;
    store.set_merge_tuning(15, 41);
    assert!(
        store.maintain(false).await.unwrap(),
        "the upload's look-up keys"
    );
    assert!(!store.maintain(false).await.unwrap());
    assert_eq!(store.key_tiers(), (160, 40));
    store.set_merge_tuning(15, 10);
    assert!(store.maintain(false).await.unwrap());

    // Dropping a field's values reaches the versions of both tiers.
    assert_eq!(store.key_tiers(), (175, 25));
    let plan = SchemaPlan {
        keep: vec![],
        drop_values_of: vec!["f".to_string()],
    };
    store
        .replace_schema(iid, ObjectType::Contact, &plan)
        .await
        .unwrap();
    let after = answers(&store, iid).await;
    assert!(after.iter().all(|a| !a.contains("\\\"f\\\"")), "{after:?}");
    assert!(after.iter().any(|a| a.contains("\\\"round\\\":4")));

    // A replayed batch adds no version.
    let before_replay = store.key_tiers();
    let work = claim_new_upload(&store, company, iid, "replay").await;
    let batch = Batch {
        records: vec![(1, record("c01", Some(5000), false, r#"{"objectId":"c01"}"#))],
        checkpoint_line: 1,
        success_count: 1,
        ..Batch::default()
    };
    for _ in 0..2 {
        store
            .apply_batch(&work, "w", &batch)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(store.key_tiers(), (before_replay.0, before_replay.1 + 1));

    // Deleting the integration empties both tiers of its keys, in steps of 15, and
    // leaves another integration alone.
    let other_company = store.create_company("other").await.unwrap();
    let other = store
        .register_integration(other_company.id, "crm", "a@b.c")
        .await
        .unwrap()
        .id;
    store_upload(&store, other_company.id, other, 0).await;
    let other_answers = answers(&store, other).await;
    store.purge_integration(iid).await.unwrap();
    assert_eq!(store.key_tiers(), (0, 40));
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM record_versions")
        .fetch_one(&db.pool().await)
        .await
        .unwrap();
    assert_eq!(versions, 40);
    assert_eq!(answers(&store, other).await, other_answers);
    let purged = answers(&store, iid).await;
    let (current, per_id): (Vec<_>, Vec<_>) =
        purged.iter().partition(|a| a.starts_with("current as of "));
    assert!(per_id.iter().all(|a| a.ends_with(" None []")), "{per_id:?}");
    assert!(current.iter().all(|a| a.ends_with(": []")), "{current:?}");
}

/// A store written before the key tiers existed opens with its versions intact.
#[tokio::test]
async fn versions_of_the_first_layout_survive_the_migration() {
    let db = TempDb::new();
    let first = db.dir().join("first-migration");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/sqlite/0001_init.sql"
        ),
        first.join("0001_init.sql"),
    )
    .unwrap();
    let options = SqliteConnectOptions::from_str(&db.url())
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(first.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for (id, modified, seq, body) in [
        ("a", 10, 1, r#"{"objectId":"a","v":1}"#),
        ("a", 20, 2, r#"{"objectId":"a","v":2}"#),
        ("b", 10, 1, r#"{"objectId":"b","v":1}"#),
    ] {
        sqlx::query(
            "INSERT INTO record_versions (integration_id, object_type, object_id, modified, \
             seq, line, deleted, body) VALUES (7, ?, ?, ?, ?, 1, 0, ?)",
        )
        .bind(ObjectType::Contact.code())
        .bind(id)
        .bind(modified)
        .bind(seq)
        .bind(body)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = open(&db).await;
    assert_eq!(store.key_tiers(), (3, 0));
    let ids = ["a".to_string(), "b".to_string()];
    let current = store
        .current_objects(7, ObjectType::Contact, &ids)
        .await
        .unwrap();
    assert_eq!(current["a"].as_deref(), Some(r#"{"objectId":"a","v":2}"#));
    assert_eq!(current["b"].as_deref(), Some(r#"{"objectId":"b","v":1}"#));
    let history = store.versions(7, ObjectType::Contact, "a").await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.modified).collect::<Vec<_>>(),
        vec![10, 20]
    );
}
