//! The deal board's projection (`Store::board_records`) against what the stored bodies
//! say, on both backends: after versions that arrive out of order, a delete and a
//! re-create, a replayed batch, a schema change that drops values, a store migrated from
//! before the projection (the backfill), and an integration's purge.

use std::sync::Arc;
use std::time::Duration;

use intake_model::{board_facts, validate_record, ObjectType, Schema, SchemaPlan, ValidRecord};
use intake_store::{Batch, ClaimedWork, CompanyId, IntegrationId, NewUpload, Store};

use crate::common::{acme, apply_and_finish, record, upload, Site};
use crate::contract_tests;

contract_tests!(
    board_projection_is_what_the_bodies_say,
    a_board_as_of_a_time_is_what_the_bodies_said_then,
    boards_asked_for_are_the_ones_kept_warm
);

/// A record as the board reads it, owned: (objectId, facts).
type Facts = (String, Vec<Option<String>>);

const TIMES: [i64; 12] = [i64::MAX, 49, 50, 99, 100, 149, 150, 199, 200, 299, 300, 301];

const DEALS: [&str; 9] = ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"];
const ACCOUNTS: [&str; 3] = ["a1", "a2", "a3"];
const USERS: [&str; 2] = ["u1", "u2"];

/// The store, with the SQLite one reading its projection a few rows per query.
async fn open(site: &Site) -> Arc<dyn Store> {
    if site.is_sqlite() {
        let store = intake_store::sqlite::SqliteStore::open(&site.url)
            .await
            .unwrap();
        store.set_current_chunk(1);
        Arc::new(store)
    } else {
        site.open().await
    }
}

/// A line validated as the worker validates it, at `modified` unix seconds (the line's
/// text is kept as written: numbers and escapes as sent).
fn line(ty: ObjectType, modified: i64, json: &str) -> ValidRecord {
    let at = intake_model::format_timestamp(modified).replace(".000Z", "Z");
    let text = format!("{{\"modifiedDate\":\"{at}\",{}", &json[1..]);
    validate_record(ty, &Schema::empty(), text.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

async fn claim(
    store: &dyn Store,
    company: CompanyId,
    integration: IntegrationId,
    crid: &str,
    object_type: ObjectType,
) -> ClaimedWork {
    store
        .insert_upload(&NewUpload {
            object_type,
            ..upload(company, integration, crid)
        })
        .await
        .unwrap();
    let work = store
        .claim_work("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        work.kind,
        intake_store::WorkKind::Upload {
            object_type,
            spool_file: format!("{crid}.ldjson"),
        }
    );
    work
}

fn batch(records: Vec<ValidRecord>) -> Batch {
    let n = records.len() as u64;
    Batch {
        records: (1..).zip(records).collect(),
        checkpoint_line: n,
        success_count: n,
        ..Batch::default()
    }
}

/// What the bodies say: each record's latest version up to `as_of`, unless a delete, with
/// the facts of its body.
async fn from_bodies(
    store: &dyn Store,
    integration: IntegrationId,
    ty: ObjectType,
    ids: &[&str],
    as_of: i64,
) -> Vec<Facts> {
    let mut expected = Vec::new();
    for id in ids {
        let versions = store.versions(integration, ty, id).await.unwrap();
        let Some(latest) = versions.iter().rfind(|v| v.modified <= as_of) else {
            continue;
        };
        if !latest.deleted {
            let facts = board_facts(ty, &latest.body).unwrap();
            expected.push((
                id.to_string(),
                facts.iter().map(|f| f.map(str::to_owned)).collect(),
            ));
        }
    }
    expected
}

async fn from_projection(
    store: &dyn Store,
    integration: IntegrationId,
    ty: ObjectType,
    as_of: i64,
) -> Vec<Facts> {
    let records = store.board_records(integration, ty, as_of).await.unwrap();
    let mut got: Vec<Facts> = records
        .iter()
        .map(|r| {
            (
                r.object_id.to_owned(),
                r.facts.iter().map(|f| f.map(str::to_owned)).collect(),
            )
        })
        .collect();
    got.sort();
    got
}

/// The projection equals what the bodies say, for every type and time; returns the DEALs
/// now, for the caller's own checks.
async fn check(store: &dyn Store, integration: IntegrationId, when: &str) -> Vec<Facts> {
    for (ty, ids) in [
        (ObjectType::Deal, &DEALS[..]),
        (ObjectType::Account, &ACCOUNTS[..]),
        (ObjectType::BusinessUser, &USERS[..]),
    ] {
        for as_of in TIMES {
            assert_eq!(
                from_projection(store, integration, ty, as_of).await,
                from_bodies(store, integration, ty, ids, as_of).await,
                "{}: {when}: {ty:?} as of {as_of}",
                store.backend()
            );
        }
    }
    assert!(store
        .board_records(integration, ObjectType::Contact, i64::MAX)
        .await
        .unwrap()
        .is_empty());
    from_projection(store, integration, ObjectType::Deal, i64::MAX).await
}

fn deal<'a>(deals: &'a [Facts], id: &str) -> Option<&'a Vec<Option<String>>> {
    deals.iter().find(|(d, _)| d == id).map(|(_, f)| f)
}

async fn board_projection_is_what_the_bodies_say(site: Site) {
    use ObjectType::{Account, BusinessUser, Contact, Deal};
    let store = open(&site).await;
    let (company, iid) = acme(&*store).await;

    // The first upload of deals.
    let first = vec![
        line(
            Deal,
            100,
            r#"{"objectId":"d1","name":"One","accountId":"a1","ownerId":"u1","closeDate":"2024-01-02T10:00:00Z","stage":"s1","amount":1.50,"status":"WON"}"#,
        ),
        line(
            Deal,
            100,
            r#"{"objectId":"d2","name":"Q\"uote \\ back \u0000 nul \t tab \u00e9","accountId":"a\u0031","stage":"s1"}"#,
        ),
        line(
            Deal,
            100,
            r#"{"objectId":"d3","name":"Three","isDeleted":true}"#,
        ),
        line(
            Deal,
            300,
            r#"{"objectId":"d4","stage":"","amount":12345678901234567890123,"ownerId":"u2"}"#,
        ),
        line(Deal, 100, r#"{"objectId":"d5"}"#),
        // A literal backslash before u0000 and u0030, beside a real \u0000.
        line(
            Deal,
            100,
            r#"{"objectId":"d7","name":"lit \\u0000","stage":"x\\u0030y","accountId":"\u0000"}"#,
        ),
        line(
            Deal,
            100,
            r#"{"objectId":"d8","name":"big","amount":-0.0e+2,"closeDate":"2024-12-31"}"#,
        ),
    ];
    let work = claim(&*store, company, iid, "deals-1", Deal).await;
    let mut stored = batch(first);
    // A body escaped otherwise than the model escapes (as an older version might have).
    stored.records.push((
        8,
        record(
            "d6",
            Some(100),
            false,
            r#"{"objectId":"d6","name":"caf\u00e9","amount":2,"status":"OPEN","isDeleted":false}"#,
        ),
    ));
    stored.checkpoint_line = 8;
    stored.success_count = 8;
    apply_and_finish(&*store, &work, &stored).await;

    // The second: d1 older than what is stored, d2 newer, d3 back after its delete, d4 at
    // the same time (the later upload wins), d9 new; applied in part, then replayed whole
    // twice, as a worker taking over from the checkpoint would.
    let second = vec![
        line(
            Deal,
            50,
            r#"{"objectId":"d1","name":"One, older","stage":"s2"}"#,
        ),
        line(
            Deal,
            200,
            r#"{"objectId":"d2","name":"Two","stage":"s2","amount":7}"#,
        ),
        line(
            Deal,
            150,
            r#"{"objectId":"d3","name":"Three again","stage":"s1"}"#,
        ),
        line(Deal, 300, r#"{"objectId":"d4","name":"Four","stage":"s1"}"#),
        line(
            Deal,
            120,
            r#"{"objectId":"d9","name":"Nine","isDeleted":true}"#,
        ),
    ];
    let work = claim(&*store, company, iid, "deals-2", Deal).await;
    let mut part = batch(second[..2].to_vec());
    part.checkpoint_line = 2;
    store.apply_batch(&work, "w", &part).await.unwrap().unwrap();
    let whole = batch(second);
    store
        .apply_batch(&work, "w", &whole)
        .await
        .unwrap()
        .unwrap();
    apply_and_finish(&*store, &work, &whole).await;

    let work = claim(&*store, company, iid, "accounts", Account).await;
    let accounts = vec![
        line(Account, 100, r#"{"objectId":"a1","name":"Acme"}"#),
        line(
            Account,
            100,
            r#"{"objectId":"a2","name":"Gone","isDeleted":true}"#,
        ),
        line(Account, 100, r#"{"objectId":"a3"}"#),
    ];
    apply_and_finish(&*store, &work, &batch(accounts)).await;
    let work = claim(&*store, company, iid, "users", BusinessUser).await;
    let users = vec![
        line(
            BusinessUser,
            100,
            r#"{"objectId":"u1","emailAddress":"ann@acme.com"}"#,
        ),
        line(BusinessUser, 100, r#"{"objectId":"u2","isDeleted":true}"#),
    ];
    apply_and_finish(&*store, &work, &batch(users)).await;
    let work = claim(&*store, company, iid, "contacts", Contact).await;
    let contacts = vec![line(
        Contact,
        100,
        r#"{"objectId":"c1","emailAddress":"c@acme.com"}"#,
    )];
    apply_and_finish(&*store, &work, &batch(contacts)).await;

    let deals = check(&*store, iid, "as written").await;
    // Spot checks of what that means.
    let ids: Vec<&str> = deals.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"]);
    let s = |s: &str| Some(s.to_owned());
    assert_eq!(deal(&deals, "d1").unwrap()[0], s(r#""One""#));
    assert_eq!(deal(&deals, "d1").unwrap()[5], s(r#""2024-01-02""#));
    assert_eq!(deal(&deals, "d1").unwrap()[6], s("1.50"));
    assert_eq!(deal(&deals, "d3").unwrap()[0], s(r#""Three again""#));
    assert_eq!(deal(&deals, "d4").unwrap()[0], s(r#""Four""#));
    assert_eq!(deal(&deals, "d4").unwrap()[4], None);
    assert_eq!(deal(&deals, "d6").unwrap()[0], s(r#""caf\u00e9""#));
    assert_eq!(deal(&deals, "d8").unwrap()[6], s("-0.0e+2"));
    let earlier = from_projection(&*store, iid, Deal, 299).await;
    assert_eq!(deal(&earlier, "d4"), None);
    assert_eq!(deal(&earlier, "d2").unwrap()[0], s(r#""Two""#));
    let first_state = from_projection(&*store, iid, Deal, 149).await;
    assert_eq!(deal(&first_state, "d3"), None);
    assert_eq!(
        deal(&first_state, "d2").unwrap()[0],
        s(r#""Q\"uote \\ back \u0000 nul \t tab é""#)
    );
    assert_eq!(
        deal(&from_projection(&*store, iid, Deal, 50).await, "d1").unwrap()[0],
        s(r#""One, older""#)
    );

    // A schema change that drops values from the bodies drops the facts read from them.
    let plan = SchemaPlan {
        keep: vec![],
        drop_values_of: vec!["amount".into(), "stage".into(), "notOnTheBoard".into()],
    };
    store.replace_schema(iid, Deal, &plan).await.unwrap();
    let dropped = check(&*store, iid, "after the schema change").await;
    assert!(dropped
        .iter()
        .all(|(_, f)| f[2].is_none() && f[6].is_none()));
    assert_eq!(deal(&dropped, "d1").unwrap()[0], s(r#""One""#));

    // Another company's integration, to outlive the purge below.
    let other = store.create_company("other").await.unwrap();
    let other_iid = store
        .register_integration(other.id, "crm", "o@b.c")
        .await
        .unwrap()
        .id;
    let work = claim(&*store, other.id, other_iid, "other-deals", Deal).await;
    let theirs = vec![line(Deal, 100, r#"{"objectId":"d1","name":"Theirs"}"#)];
    apply_and_finish(&*store, &work, &batch(theirs)).await;

    // A store from before the projection: the migration derives it from the bodies.
    drop(store);
    forget_the_projection(&site).await;
    let store = open(&site).await;
    let migrated = check(&*store, iid, "after the backfill").await;
    assert_eq!(migrated, dropped);
    assert_eq!(
        from_projection(&*store, other_iid, Deal, i64::MAX).await,
        vec![("d1".to_owned(), {
            let mut f = vec![None; 7];
            f[0] = s(r#""Theirs""#);
            f[1] = s(r#""OPEN""#);
            f[6] = s("0");
            f
        })]
    );

    // The purge of the integration takes its projection with it, and only its own.
    store.purge_integration(iid).await.unwrap();
    for ty in [Deal, Account, BusinessUser] {
        assert!(store
            .board_records(iid, ty, i64::MAX)
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(
        from_projection(&*store, other_iid, Deal, i64::MAX)
            .await
            .len(),
        1
    );
}

/// Makes the site's database look as it did before migration 0004: no projection, and the
/// migration not applied.
async fn forget_the_projection(site: &Site) {
    let statements = [
        "DROP TABLE board_facts",
        "DELETE FROM _sqlx_migrations WHERE version = 4",
    ];
    if site.is_sqlite() {
        let pool = sqlx::SqlitePool::connect(&site.url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        // A PostgreSQL store from before the projection had no recent tiers (migration
        // 0012): every version in `record_versions`, where migration 0004 reads them.
        let merged = [
            "INSERT INTO record_versions SELECT * FROM recent_versions_0 ON CONFLICT DO NOTHING",
            "INSERT INTO record_versions SELECT * FROM recent_versions_1 ON CONFLICT DO NOTHING",
            "TRUNCATE recent_versions_0, recent_versions_1",
        ];
        let pool = sqlx::PgPool::connect(&site.url).await.unwrap();
        for sql in merged.iter().chain(&statements) {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// Random worlds: deals with several versions each (out of order, deletes, re-creates) over
/// several uploads, the cache reading between them; the board's records as of many times
/// (read from the cache and the versions it names, or whole) are what the bodies said then.
async fn a_board_as_of_a_time_is_what_the_bodies_said_then(site: Site) {
    let store = open(&site).await;
    let (company, iid) = acme(&*store).await;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let ids: Vec<String> = (0..40).map(|k| format!("r{k:02}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for upload in 0..5 {
        let mut lines = Vec::new();
        for id in &ids {
            if next(3) == 0 {
                continue;
            }
            let modified = 1000 + next(100) as i64;
            let json = if next(6) == 0 {
                format!(r#"{{"objectId":"{id}","isDeleted":true}}"#)
            } else {
                format!(
                    r#"{{"objectId":"{id}","name":"{id} u{upload} m{modified}","stage":"s{}"}}"#,
                    next(3)
                )
            };
            lines.push(line(ObjectType::Deal, modified, &json));
        }
        let work = claim(
            &*store,
            company,
            iid,
            &format!("u{upload}"),
            ObjectType::Deal,
        )
        .await;
        apply_and_finish(&*store, &work, &batch(lines)).await;
        match next(3) {
            0 => {
                store
                    .board_records(iid, ObjectType::Deal, i64::MAX)
                    .await
                    .unwrap();
            }
            // Dropped from memory: read again whole at the next call.
            1 => store.forget_board(iid).await,
            _ => {}
        }
        for as_of in [
            999,
            1000,
            1010,
            1050,
            1080,
            1095,
            1098,
            1099,
            1200,
            i64::MAX,
        ] {
            assert_eq!(
                from_projection(&*store, iid, ObjectType::Deal, as_of).await,
                from_bodies(&*store, iid, ObjectType::Deal, &id_refs, as_of).await,
                "{}: after upload {upload}, as of {as_of}",
                store.backend()
            );
        }
    }
    // Held while nothing changes; once forgotten, read again (new buffers, the same
    // records).
    let held = store.board_records(iid, ObjectType::Deal, i64::MAX).await;
    let held = held.unwrap();
    let again = store.board_records(iid, ObjectType::Deal, i64::MAX).await;
    assert!(again.unwrap().same(&held));
    store.forget_board(iid).await;
    let read = store.board_records(iid, ObjectType::Deal, i64::MAX).await;
    let read = read.unwrap();
    assert!(!read.same(&held));
    let sorted = |records: &intake_store::BoardRecords| {
        let mut ids: Vec<String> = records.iter().map(|r| format!("{r:?}")).collect();
        ids.sort();
        ids
    };
    assert_eq!(sorted(&read), sorted(&held));
}

/// `board_integrations` lists an integration with deals whose board was asked for since
/// the time given (the latest time noted wins), and no other.
async fn boards_asked_for_are_the_ones_kept_warm(site: Site) {
    let store = open(&site).await;
    let (company, iid) = acme(&*store).await;
    let listed = |since: i64| {
        let store = Arc::clone(&store);
        async move { store.board_integrations(since).await.unwrap() }
    };
    // Asked for, but no deals yet; then deals, never asked for.
    store.board_asked(iid, 1_000).await.unwrap();
    assert!(listed(0).await.is_empty());
    let work = claim(&*store, company, iid, "d", ObjectType::Deal).await;
    let deal = line(ObjectType::Deal, 100, r#"{"objectId":"d1","name":"One"}"#);
    apply_and_finish(&*store, &work, &batch(vec![deal])).await;
    assert_eq!(listed(0).await, [(iid, false)]);
    let other_company = store.create_company("globex").await.unwrap().id;
    let other = store.register_integration(other_company, "crm", "g@b.c");
    let other = other.await.unwrap().id;
    let work = claim(&*store, other_company, other, "d", ObjectType::Deal).await;
    let deal = line(ObjectType::Deal, 100, r#"{"objectId":"d1","name":"One"}"#);
    apply_and_finish(&*store, &work, &batch(vec![deal])).await;
    assert_eq!(listed(0).await, [(iid, false)]);
    assert_eq!(listed(1_000).await, [(iid, false)]);
    assert!(listed(1_001).await.is_empty());
    // An earlier time does not move it back; a later one moves it on.
    store.board_asked(iid, 500).await.unwrap();
    assert_eq!(listed(1_000).await, [(iid, false)]);
    store.board_asked(iid, 2_000).await.unwrap();
    assert_eq!(listed(1_500).await, [(iid, false)]);
    assert!(listed(2_001).await.is_empty());
}
