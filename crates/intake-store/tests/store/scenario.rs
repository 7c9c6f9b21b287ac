//! The scenario: about a hundred steps through every method of the store, written down as
//! a transcript of what a client or an operator would see.

use std::time::Duration;

use intake_model::{LineError, ObjectType, SchemaPlan};
use intake_store::{now_unix_ms, Batch, RateLimits, RequestSeq, RequestStatus, Store, Version};

use crate::common::{field, record, upload};

/// Everything a client or an operator can see of one scenario, with the values that
/// are meant to differ between runs (random ids, request sequence numbers, clocks)
/// replaced by stable names.
pub async fn scenario(store: &dyn Store) -> Vec<String> {
    let mut t: Vec<String> = Vec::new();
    let mut seqs: Vec<RequestSeq> = Vec::new();
    let label = |seqs: &Vec<RequestSeq>, seq: RequestSeq| {
        seqs.iter()
            .position(|s| *s == seq)
            .map_or("?".to_string(), |i| format!("u{i}"))
    };
    let versions_of = |v: Vec<Version>, seqs: &Vec<RequestSeq>| -> Vec<String> {
        v.into_iter()
            .map(|v| {
                format!(
                    "{} {} {} {} {}",
                    v.modified,
                    label(seqs, v.seq),
                    v.line,
                    v.deleted,
                    v.body
                )
            })
            .collect()
    };

    // Administration.
    let acme = store.create_company("acme").await.unwrap();
    t.push(format!(
        "{:?}",
        store.create_company("acme").await.map(|c| c.name)
    ));
    let beta = store.create_company("Beta").await.unwrap();
    let zed = store.create_company("_zed").await.unwrap();
    t.push(format!("{:?}", (acme.id, beta.id, zed.id)));
    let companies = store.list_companies().await.unwrap();
    t.push(format!(
        "{:?}",
        companies
            .iter()
            .map(|c| (c.id, &c.name))
            .collect::<Vec<_>>()
    ));
    t.push(format!(
        "{:?}",
        store.company_by_name("Beta").await.unwrap().map(|c| c.id)
    ));
    t.push(format!(
        "{:?}",
        store.company_by_name("beta").await.unwrap()
    ));
    store
        .insert_access_key(acme.id, "IKA", b"hash-a")
        .await
        .unwrap();
    store
        .insert_access_key(beta.id, "IKB", b"hash-b")
        .await
        .unwrap();
    store
        .insert_access_key(zed.id, "IKZ", b"hash-z")
        .await
        .unwrap();
    t.push(format!("{:?}", store.revoke_access_key("IKB").await));
    t.push(format!("{:?}", store.revoke_access_key("nope").await));
    let keys = store.list_access_keys().await.unwrap();
    t.push(format!(
        "{:?}",
        keys.iter()
            .map(|k| (&k.access_key, &k.company, k.revoked))
            .collect::<Vec<_>>()
    ));
    t.push(format!("{:?}", store.find_access_key("IKA").await));
    t.push(format!("{:?}", store.find_access_key("IKB").await));
    t.push(format!("{:?}", store.find_access_key("nope").await));
    let scopes = vec!["api:crm:upload".to_string(), "api:crm:schema".to_string()];
    store
        .insert_token(acme.id, "itk_a", b"th", &scopes)
        .await
        .unwrap();
    store
        .insert_token(beta.id, "itk_b", b"th2", &[])
        .await
        .unwrap();
    t.push(format!("{:?}", store.revoke_token("itk_b").await));
    let tokens = store.list_tokens().await.unwrap();
    t.push(format!(
        "{:?}",
        tokens
            .iter()
            .map(|k| (&k.token_id, &k.company, &k.scopes, k.revoked))
            .collect::<Vec<_>>()
    ));
    t.push(format!("{:?}", store.find_token("itk_a").await));
    t.push(format!("{:?}", store.find_token("itk_b").await));

    // Rate limits: 3 a second, 5 a day, from a fixed clock.
    let limits = RateLimits {
        per_second: 3,
        per_day: 5,
    };
    let t0 = 1_700_000_000_500;
    for (company, now) in [
        (acme.id, t0),
        (acme.id, t0 + 100),
        (acme.id, t0 + 200),
        (acme.id, t0 + 300),
        (beta.id, t0 + 300),
        (acme.id, t0 + 1000),
        (acme.id, t0 + 1001),
        (acme.id, t0 + 1002),
        (acme.id, t0 + 86_400_000),
    ] {
        t.push(format!(
            "{:?}",
            store.hit_rate_limit(company, limits, now).await
        ));
    }
    let only_second = RateLimits {
        per_second: 1,
        per_day: 0,
    };
    t.push(format!(
        "{:?}",
        store.hit_rate_limit(zed.id, only_second, t0).await
    ));
    t.push(format!(
        "{:?}",
        store.hit_rate_limit(zed.id, only_second, t0).await
    ));

    // Integrations.
    let integration = store
        .register_integration(acme.id, "CRM", "o@acme.com")
        .await
        .unwrap();
    let iid = integration.id;
    t.push(format!(
        "{:?}",
        (iid > 1 << 53, &integration.name, &integration.owner_email)
    ));
    t.push(format!(
        "{:?}",
        store
            .register_integration(acme.id, "CRM2", "o@acme.com")
            .await
            .map(|i| i.name)
    ));
    let listed = store.list_integrations(acme.id).await.unwrap();
    t.push(format!("{:?}", listed == vec![integration.clone()]));
    t.push(format!(
        "{:?}",
        store.find_integration(acme.id, iid).await.unwrap() == Some(integration.clone())
    ));
    t.push(format!("{:?}", store.find_integration(beta.id, iid).await));
    t.push(format!("{:?}", store.list_integrations(beta.id).await));

    // Schema.
    t.push(format!("{:?}", store.get_schema(iid, None).await));
    let plan = SchemaPlan {
        keep: vec![
            field("zeta", "STRING"),
            field("f1", "NUMBER"),
            field("Alpha", "BOOLEAN"),
        ],
        drop_values_of: vec![],
    };
    store
        .replace_schema(iid, ObjectType::Contact, &plan)
        .await
        .unwrap();
    let plan = SchemaPlan {
        keep: vec![field("acct", "STRING")],
        drop_values_of: vec![],
    };
    store
        .replace_schema(iid, ObjectType::Account, &plan)
        .await
        .unwrap();
    t.push(format!("{:?}", store.get_schema(iid, None).await));
    t.push(format!(
        "{:?}",
        store.get_schema(iid, Some(ObjectType::Contact)).await
    ));
    t.push(format!(
        "{:?}",
        store.get_schema(iid, Some(ObjectType::Deal)).await
    ));

    // An upload, processed by w1 while w2 tries to interfere.
    seqs.push(
        store
            .insert_upload(&upload(acme.id, iid, "u1"))
            .await
            .unwrap(),
    );
    t.push(format!(
        "{:?}",
        store.insert_upload(&upload(acme.id, iid, "u1")).await
    ));
    t.push(format!(
        "{:?}",
        store
            .insert_upload(&upload(beta.id, iid, "u1"))
            .await
            .is_ok()
    ));
    seqs.push(0); // beta's u1: never claimed below, finished at the end
    t.push(format!(
        "{:?}",
        store.client_request_id_used(acme.id, "u1").await
    ));
    t.push(format!(
        "{:?}",
        store.client_request_id_used(zed.id, "u1").await
    ));
    t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
    t.push(format!("{:?}", store.request_report(acme.id, "nope").await));
    let lease = Duration::from_secs(30);
    let work = store.claim_work("w1", lease).await.unwrap().unwrap();
    let beta_work = store.claim_work("w1", lease).await.unwrap().unwrap();
    seqs[1] = beta_work.seq;
    let accepted_ok = (work.accepted_at - now_unix_ms() / 1000).abs() <= 5;
    t.push(format!(
        "{} {:?} {} {:?} {} {} {} {}",
        label(&seqs, work.seq),
        work.kind,
        work.integration_id == iid,
        accepted_ok,
        work.checkpoint_line,
        work.success_count,
        work.error_count,
        work.listed_errors
    ));
    t.push(format!("{:?}", store.claim_work("w2", lease).await));
    t.push(format!(
        "{:?}",
        store.heartbeat(work.seq, "w1", lease).await
    ));
    t.push(format!(
        "{:?}",
        store.heartbeat(work.seq, "w2", lease).await
    ));
    t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
    let batch = Batch {
        records: vec![
            (
                1,
                record(
                    "c1",
                    Some(100),
                    false,
                    r#"{"objectId":"c1","zeta":"z","f1":1,"isDeleted":false}"#,
                ),
            ),
            (
                3,
                record(
                    "c2",
                    Some(100),
                    true,
                    r#"{"objectId":"c2","isDeleted":true}"#,
                ),
            ),
            (
                4,
                record(
                    "c3",
                    Some(100),
                    false,
                    r#"{"objectId":"c3","f1":1.5e300,"nested":{"a":[1,{"f1":2}]},"n":"é\u0000\"x","isDeleted":false}"#,
                ),
            ),
            (
                6,
                record(
                    "c5",
                    None,
                    false,
                    r#"{"objectId":"c5","note":"f1","isDeleted":false}"#,
                ),
            ),
        ],
        errors: vec![
            LineError {
                line: 2,
                description: "Line is not a JSON object".into(),
                ..Default::default()
            },
            LineError {
                line: 5,
                description: "Mandatory field [objectId] is missing or empty".into(),
                ..Default::default()
            },
        ],
        checkpoint_line: 6,
        success_count: 4,
        error_count: 2,
        sidecar: None,
    };
    t.push(format!(
        "{:?}",
        store.apply_batch(&work, "w2", &batch).await
    ));
    t.push(format!(
        "{:?}",
        store.apply_batch(&work, "w1", &batch).await
    ));
    // A replay of the same batch (a worker taking over from a checkpoint) changes nothing.
    t.push(format!(
        "{:?}",
        store.apply_batch(&work, "w1", &batch).await
    ));
    t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
    let more = Batch {
        records: vec![(7, record("c6", Some(100), false, r#"{"objectId":"c6","isDeleted":false}"#))],
        errors: vec![LineError { line: 8, description: "Duplicate objectId [c1] in file: send multiple updates of a record in separate files".into(), ..Default::default() }],
        checkpoint_line: 8,
        success_count: 5,
        error_count: 3,
        sidecar: None,
    };
    t.push(format!("{:?}", store.apply_batch(&work, "w1", &more).await));
    t.push(format!(
        "{:?}",
        store
            .finish_work(work.seq, "w2", RequestStatus::Failed, None)
            .await
    ));
    t.push(format!(
        "{:?}",
        store
            .finish_work(work.seq, "w1", RequestStatus::Failed, None)
            .await
    ));
    t.push(format!(
        "{:?}",
        store
            .finish_work(work.seq, "w1", RequestStatus::Done, None)
            .await
    ));
    t.push(format!("{:?}", store.request_report(acme.id, "u1").await));
    // On SQLite, the first upload's keys move to the main tier; the second's stay in
    // the recent one, so the reads below consult both.
    store.maintain(true).await.unwrap();

    // A second upload: an older version (history), a newer one, an undelete.
    seqs.push(
        store
            .insert_upload(&upload(acme.id, iid, "u2"))
            .await
            .unwrap(),
    );
    let work = store.claim_work("w1", lease).await.unwrap().unwrap();
    t.push(label(&seqs, work.seq));
    let batch = Batch {
        records: vec![
            (
                1,
                record(
                    "c1",
                    Some(50),
                    false,
                    r#"{"objectId":"c1","old":true,"isDeleted":false}"#,
                ),
            ),
            (
                2,
                record(
                    "c3",
                    Some(200),
                    false,
                    r#"{"objectId":"c3","f1":7,"isDeleted":false}"#,
                ),
            ),
            (
                3,
                record(
                    "c2",
                    Some(100),
                    false,
                    r#"{"objectId":"c2","back":1,"isDeleted":false}"#,
                ),
            ),
        ],
        errors: vec![],
        checkpoint_line: 3,
        success_count: 3,
        error_count: 0,
        sidecar: None,
    };
    t.push(format!(
        "{:?}",
        store.apply_batch(&work, "w1", &batch).await
    ));
    t.push(format!(
        "{:?}",
        store
            .finish_work(work.seq, "w1", RequestStatus::Done, None)
            .await
    ));

    let ids: Vec<String> = ["c1", "c2", "c3", "c4", "c5", "c6", "c1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut current: Vec<_> = store
        .current_objects(iid, ObjectType::Contact, &ids)
        .await
        .unwrap()
        .into_iter()
        .collect();
    current.sort();
    t.push(format!("{current:?}"));
    t.push(format!(
        "{:?}",
        store
            .current_objects(iid, ObjectType::Account, &ids[..1])
            .await
    ));
    t.push(format!(
        "{:?}",
        store.current_objects(iid, ObjectType::Contact, &[]).await
    ));
    for id in ["c1", "c2", "c3", "c5", "zz"] {
        let v = store.versions(iid, ObjectType::Contact, id).await.unwrap();
        let v: Vec<String> = versions_of(v, &seqs)
            .into_iter()
            .map(|s| {
                if id == "c5" {
                    s.split_once(' ').unwrap().1.to_string()
                } else {
                    s
                }
            })
            .collect();
        t.push(format!("{id}: {v:?}"));
    }

    // Dropping a field's values rewrites only the versions holding that key.
    let plan = SchemaPlan {
        keep: vec![field("zeta", "STRING"), field("Alpha", "BOOLEAN")],
        drop_values_of: vec!["f1".to_string(), "never".to_string()],
    };
    store
        .replace_schema(iid, ObjectType::Contact, &plan)
        .await
        .unwrap();
    t.push(format!("{:?}", store.get_schema(iid, None).await));
    for id in ["c1", "c3", "c5"] {
        let v = store.versions(iid, ObjectType::Contact, id).await.unwrap();
        let v: Vec<String> = versions_of(v, &seqs)
            .into_iter()
            .map(|s| {
                if id == "c5" {
                    s.split_once(' ').unwrap().1.to_string()
                } else {
                    s
                }
            })
            .collect();
        t.push(format!("{id}: {v:?}"));
    }

    // A fatal error, and a lease that expires.
    seqs.push(
        store
            .insert_upload(&upload(acme.id, iid, "u3"))
            .await
            .unwrap(),
    );
    let work = store
        .claim_work("w1", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stolen = store.claim_work("w2", lease).await.unwrap().unwrap();
    t.push(format!(
        "{} {}",
        label(&seqs, work.seq),
        label(&seqs, stolen.seq)
    ));
    let half = Batch {
        records: vec![(
            1,
            record(
                "c7",
                Some(1),
                false,
                r#"{"objectId":"c7","isDeleted":false}"#,
            ),
        )],
        errors: vec![],
        checkpoint_line: 1,
        success_count: 1,
        error_count: 0,
        sidecar: None,
    };
    t.push(format!("{:?}", store.apply_batch(&work, "w1", &half).await));
    t.push(format!(
        "{:?}",
        store.heartbeat(work.seq, "w1", lease).await
    ));
    t.push(format!(
        "{:?}",
        store.apply_batch(&stolen, "w2", &half).await
    ));
    store.release_leases("w2").await.unwrap();
    t.push(format!(
        "{:?}",
        store.heartbeat(work.seq, "w2", lease).await
    ));
    let resumed = store.claim_work("w3", lease).await.unwrap().unwrap();
    t.push(format!(
        "{} {} {} {}",
        label(&seqs, resumed.seq),
        resumed.checkpoint_line,
        resumed.success_count,
        resumed.error_count
    ));
    t.push(format!(
        "{:?}",
        store
            .finish_work(
                resumed.seq,
                "w3",
                RequestStatus::Failed,
                Some("Stream did not contain valid UTF-8")
            )
            .await
    ));
    t.push(format!("{:?}", store.request_report(acme.id, "u3").await));
    t.push(format!(
        "{:?}",
        store
            .finish_work(beta_work.seq, "w1", RequestStatus::Failed, Some("gone"))
            .await
    ));
    t.push(format!("{:?}", store.request_report(beta.id, "u1").await));
    t.push(format!("{:?}", store.claim_work("w1", lease).await));

    // Deleting the integration.
    t.push(format!(
        "{:?}",
        store.request_integration_delete(acme.id, 12345, "d1").await
    ));
    t.push(format!(
        "{:?}",
        store.request_integration_delete(beta.id, iid, "d1").await
    ));
    t.push(format!(
        "{:?}",
        store.request_integration_delete(acme.id, iid, "u2").await
    ));
    t.push(format!(
        "{:?}",
        store.list_integrations(acme.id).await.unwrap().len()
    ));
    t.push(format!(
        "{:?}",
        store.request_integration_delete(acme.id, iid, "d1").await
    ));
    t.push(format!("{:?}", store.list_integrations(acme.id).await));
    t.push(format!("{:?}", store.find_integration(acme.id, iid).await));
    t.push(format!(
        "{:?}",
        store.request_integration_delete(acme.id, iid, "d2").await
    ));
    t.push(format!(
        "{:?}",
        store.client_request_id_used(acme.id, "d1").await
    ));
    t.push(format!(
        "{:?}",
        store
            .request_report(acme.id, "d1")
            .await
            .unwrap()
            .unwrap()
            .status
    ));
    let again = store
        .register_integration(acme.id, "CRM", "o@acme.com")
        .await
        .unwrap();
    t.push(format!("{:?}", again.id != iid));
    let work = store.claim_work("w1", lease).await.unwrap().unwrap();
    t.push(format!("{:?} {:?}", work.kind, work.integration_id == iid));
    t.push(format!(
        "{:?}",
        store.apply_batch(&work, "w1", &Batch::default()).await
    ));
    store.purge_integration(iid).await.unwrap();
    t.push(format!(
        "{:?}",
        store
            .finish_work(work.seq, "w1", RequestStatus::Done, None)
            .await
    ));
    let report = store.request_report(acme.id, "d1").await.unwrap().unwrap();
    t.push(format!(
        "{:?}",
        (
            report.status,
            report.errors,
            report.error_count,
            report.success_count,
            report.integration_id == iid
        )
    ));
    t.push(format!("{:?}", store.get_schema(iid, None).await));
    t.push(format!(
        "{:?}",
        store.versions(iid, ObjectType::Contact, "c1").await
    ));
    t.push(format!(
        "{:?}",
        store
            .current_objects(iid, ObjectType::Contact, &ids[..2])
            .await
            .map(|m| m.len())
    ));
    t.into_iter()
        .map(|line| {
            line.replace(&iid.to_string(), "<iid>")
                .replace(&again.id.to_string(), "<iid2>")
        })
        .collect()
}
