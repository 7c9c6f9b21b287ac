//! The contract both backends keep, case by case.

use std::path::PathBuf;

use crate::common::{field, record, upload, Site};
use crate::contract_tests;
use crate::scenario::scenario;
use intake_model::{LineError, ObjectType, SchemaPlan};
use intake_store::{Batch, RequestStatus, Store, StoreError};

contract_tests!(
    scenario_gives_the_recorded_transcript,
    text_with_nul_is_refused_or_escaped,
);

fn transcript_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/store/scenario.transcript")
}

/// The scenario's transcript is the one recorded in `scenario.transcript` (rewrite it with
/// `INTAKE_BLESS=1` after a change meant to change what clients see).
async fn scenario_gives_the_recorded_transcript(site: Site) {
    let store = site.open().await;
    let actual = scenario(&*store).await;
    if std::env::var("INTAKE_BLESS").as_deref() == Ok("1") && site.is_sqlite() {
        std::fs::write(transcript_file(), actual.join("\n") + "\n").unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(transcript_file()).expect("scenario.transcript");
    let expected: Vec<&str> = recorded.lines().collect();
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(
            a,
            e,
            "{}: transcript line {} differs",
            store.backend(),
            i + 1
        );
    }
    assert_eq!(actual.len(), expected.len(), "{}", store.backend());
}

/// The differential check: SQLite and PostgreSQL give the same transcript, line by line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_give_the_same_transcript() {
    let Some(pg) = Site::postgres().await else {
        return;
    };
    let sqlite = Site::sqlite();
    let expected = scenario(&*sqlite.open().await).await;
    let store = pg.open().await;
    assert_eq!(store.backend(), "postgres");
    let actual = scenario(&*store).await;
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "transcript line {} differs", i + 1);
    }
    assert_eq!(actual.len(), expected.len());
}

/// Records per second through `apply_batch` on both backends (worker-sized batches of
/// CONTACT-like bodies). Run with `cargo test -p intake-store --release --test store --
/// --ignored --nocapture apply_batch_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn apply_batch_throughput() {
    async fn measure(store: &dyn Store) -> f64 {
        let company = store.create_company("bench").await.unwrap();
        let integration = store
            .register_integration(company.id, "n", "a@b.c")
            .await
            .unwrap();
        store
            .insert_upload(&upload(company.id, integration.id, "bench"))
            .await
            .unwrap();
        let work = store
            .claim_work("bench", std::time::Duration::from_secs(300))
            .await
            .unwrap()
            .unwrap();
        let (total, per_batch) = (200_000u64, 5_000u64);
        let started = std::time::Instant::now();
        for first in (0..total).step_by(per_batch as usize) {
            let records = (first..first + per_batch)
                .map(|i| {
                    let body = format!(
                        r#"{{"objectId":"contact-{i:08}","modifiedDate":"2024-01-03T23:45:57Z","accountId":"acct-{a}","emailAddress":"person.{i}@example.com","firstName":"First{i}","lastName":"Last{i}","title":"Engineer","phoneNumber":"+1 555 {i:07}","isDeleted":false}}"#,
                        a = i % 1000
                    );
                    let id = format!("contact-{i:08}");
                    (i + 1, record(&id, Some(1_704_325_557), false, &body))
                })
                .collect();
            let batch = Batch {
                records,
                checkpoint_line: first + per_batch,
                success_count: first + per_batch,
                ..Batch::default()
            };
            store
                .apply_batch(&work, "bench", &batch)
                .await
                .unwrap()
                .unwrap();
        }
        total as f64 / started.elapsed().as_secs_f64()
    }
    let sqlite = Site::sqlite();
    let sqlite_rate = measure(&*sqlite.open().await).await;
    let Some(pg) = Site::postgres().await else {
        eprintln!("apply_batch: sqlite {sqlite_rate:.0} records/s");
        return;
    };
    let pg_rate = measure(&*pg.open().await).await;
    eprintln!("apply_batch: sqlite {sqlite_rate:.0} records/s, postgres {pg_rate:.0} records/s");
}

fn invalid_text<T: std::fmt::Debug>(result: intake_store::Result<T>) -> &'static str {
    match result {
        Err(StoreError::InvalidText(field)) => field,
        other => panic!("expected InvalidText, got {other:?}"),
    }
}

/// PostgreSQL's text cannot hold NUL: a value to store with one is refused, naming its
/// field; a look-up by one finds nothing; an error description keeps it as `\u0000`. Both
/// backends answer alike.
async fn text_with_nul_is_refused_or_escaped(site: Site) {
    let store = site.open().await;
    assert_eq!(
        invalid_text(store.create_company("a\0").await),
        "company name"
    );
    let acme = store.create_company("acme").await.unwrap();
    assert_eq!(store.company_by_name("a\0").await.unwrap(), None);
    assert_eq!(
        invalid_text(
            store
                .register_integration(acme.id, "CRM\0", "o@acme.com")
                .await
        ),
        "name"
    );
    assert_eq!(
        invalid_text(
            store
                .register_integration(acme.id, "CRM", "o\0@acme.com")
                .await
        ),
        "ownerEmail"
    );
    let iid = store
        .register_integration(acme.id, "CRM", "o@acme.com")
        .await
        .unwrap()
        .id;
    let plan = SchemaPlan {
        keep: vec![field("tier\0", "STRING")],
        drop_values_of: vec![],
    };
    assert_eq!(
        invalid_text(store.replace_schema(iid, ObjectType::Contact, &plan).await),
        "uniqueName"
    );
    assert_eq!(store.get_schema(iid, None).await.unwrap(), vec![]);
    assert_eq!(
        invalid_text(store.insert_upload(&upload(acme.id, iid, "u\0")).await),
        "clientRequestId"
    );
    assert!(!store.client_request_id_used(acme.id, "u\0").await.unwrap());
    assert_eq!(store.request_report(acme.id, "u\0").await.unwrap(), None);
    assert_eq!(
        invalid_text(store.request_integration_delete(acme.id, iid, "d\0").await),
        "clientRequestId"
    );
    assert!(store
        .find_integration(acme.id, iid)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.find_access_key("IK\0").await.unwrap(), None);
    assert_eq!(store.find_token("itk_\0").await.unwrap(), None);
    assert!(!store.revoke_token("itk_\0").await.unwrap());
    let ids = vec!["c1".to_string(), "c\0".to_string()];
    assert_eq!(
        invalid_text(store.current_objects(iid, ObjectType::Contact, &ids).await),
        "objectId"
    );
    assert_eq!(
        invalid_text(store.versions(iid, ObjectType::Contact, "c\0").await),
        "objectId"
    );

    // Error descriptions are stored with the NUL escaped.
    store
        .insert_upload(&upload(acme.id, iid, "u1"))
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    let work = store.claim_work("w", lease).await.unwrap().unwrap();
    let batch = Batch {
        records: vec![(1, record("c1", Some(1), false, r#"{"objectId":"c1"}"#))],
        errors: vec![LineError {
            line: 2,
            description: "Field [name] has \0 in it".into(),
            ..Default::default()
        }],
        checkpoint_line: 2,
        success_count: 1,
        error_count: 1,
        sidecar: None,
    };
    store
        .apply_batch(&work, "w", &batch)
        .await
        .unwrap()
        .unwrap();
    store
        .finish_work(work.seq, "w", RequestStatus::Failed, Some("fatal \0 byte"))
        .await
        .unwrap()
        .unwrap();
    let report = store.request_report(acme.id, "u1").await.unwrap().unwrap();
    let descriptions: Vec<&str> = report
        .errors
        .iter()
        .map(|e| e.description.as_str())
        .collect();
    assert_eq!(
        descriptions,
        ["fatal \\u0000 byte", "Field [name] has \\u0000 in it"]
    );
    assert_eq!((report.error_count, report.success_count), (2, 1));
}
