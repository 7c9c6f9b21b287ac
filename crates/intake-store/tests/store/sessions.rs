//! The web console's sessions on both backends: one is live while used within the idle
//! time and while its access key is not revoked; signing out ends it; a new sign-in drops
//! the sessions idle past the limit.

use intake_store::UiSession;

use crate::common::Site;
use crate::contract_tests;

contract_tests!(sessions_end_when_idle_revoked_or_signed_out);

fn session(id: &[u8], key: &str, company: i64, at: i64) -> UiSession {
    UiSession {
        id_hash: id.to_vec(),
        access_key: key.to_owned(),
        company_id: company,
        csrf_token: format!("csrf-{}", id[0]),
        created_ms: at,
        last_seen_ms: at,
    }
}

async fn sessions_end_when_idle_revoked_or_signed_out(site: Site) {
    let store = site.open().await;
    let acme = store.create_company("acme").await.unwrap();
    let beta = store.create_company("beta").await.unwrap();
    store
        .insert_access_key(acme.id, "IKA", b"hash-a")
        .await
        .unwrap();
    store
        .insert_access_key(beta.id, "IKB", b"hash-b")
        .await
        .unwrap();
    let idle = 60_000;
    let t0 = 1_000_000;
    store
        .insert_ui_session(&session(&[1; 32], "IKA", acme.id, t0), t0 - idle)
        .await
        .unwrap();
    store
        .insert_ui_session(&session(&[2; 32], "IKB", beta.id, t0), t0 - idle)
        .await
        .unwrap();

    // Used within the idle time: live, and marked used.
    let now = t0 + idle - 1;
    let found = store
        .touch_ui_session(&[1; 32], now, now - idle)
        .await
        .unwrap()
        .expect("a live session");
    assert_eq!(found.company_id, acme.id);
    assert_eq!(found.access_key, "IKA");
    assert_eq!(found.csrf_token, "csrf-1");
    assert_eq!(found.last_seen_ms, now);
    assert_eq!(found.created_ms, t0);
    // Its idle time starts again from that use.
    let later = now + idle - 1;
    assert!(store
        .touch_ui_session(&[1; 32], later, later - idle)
        .await
        .unwrap()
        .is_some());
    // An unknown id is no session.
    assert!(store
        .touch_ui_session(&[9; 32], later, later - idle)
        .await
        .unwrap()
        .is_none());
    // Unused past the idle time: ended (session 2 was last used at t0).
    assert!(store
        .touch_ui_session(&[2; 32], later, later - idle)
        .await
        .unwrap()
        .is_none());

    // A revoked key ends its sessions.
    assert!(store.revoke_access_key("IKA").await.unwrap());
    assert!(store
        .touch_ui_session(&[1; 32], later, later - idle)
        .await
        .unwrap()
        .is_none());

    // Signing out ends one session; a sign-in drops the idle ones.
    store
        .insert_ui_session(&session(&[3; 32], "IKB", beta.id, later), later - idle)
        .await
        .unwrap();
    // Session 2, idle since t0, was dropped by that sign-in: even a lenient look finds
    // nothing.
    assert!(store
        .touch_ui_session(&[2; 32], later, 0)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch_ui_session(&[3; 32], later, later - idle)
        .await
        .unwrap()
        .is_some());
    store.delete_ui_session(&[3; 32]).await.unwrap();
    assert!(store
        .touch_ui_session(&[3; 32], later, 0)
        .await
        .unwrap()
        .is_none());
}
