//! Rate limits: the daily count survives a restart.

use std::time::Duration;

use intake_store::{RateDecision, RateLimits};

use crate::common::Site;
use crate::contract_tests;

contract_tests!(the_daily_count_survives_a_restart);

const T0: i64 = 1_700_000_000_500;

/// Counts 3 calls of a 5-a-day limit, reopens the store, and finds 2 left.
async fn the_daily_count_survives_a_restart(site: Site) {
    let limits = RateLimits {
        per_second: 0,
        per_day: 5,
    };
    let store = site.open().await;
    let acme = store.create_company("acme").await.unwrap();
    for i in 0..3 {
        let decision = store.hit_rate_limit(acme.id, limits, T0 + i).await.unwrap();
        assert_eq!(decision, RateDecision::Allowed);
    }
    drop(store);
    let store = site.open().await;
    let mut decisions = vec![];
    for i in 3..6 {
        decisions.push(store.hit_rate_limit(acme.id, limits, T0 + i).await.unwrap());
    }
    assert_eq!(decisions[..2], [RateDecision::Allowed; 2]);
    assert!(
        matches!(decisions[2], RateDecision::Limited { .. }),
        "{decisions:?}"
    );
    // The next day starts again.
    let tomorrow = T0 + 86_400_000;
    assert_eq!(
        store
            .hit_rate_limit(acme.id, limits, tomorrow)
            .await
            .unwrap(),
        RateDecision::Allowed
    );
}

/// SQLite writes the day's count back within about a second, without a restart (what a
/// crash would lose is at most that second), and only once it changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_the_day_count_back_every_second() {
    let site = Site::sqlite();
    let store = site.open().await;
    let acme = store.create_company("acme").await.unwrap();
    let limits = RateLimits {
        per_second: 0,
        per_day: 100,
    };
    for i in 0..7 {
        store.hit_rate_limit(acme.id, limits, T0 + i).await.unwrap();
    }
    let look = sqlx::SqlitePool::connect(&site.url).await.unwrap();
    let stored = || async {
        sqlx::query_as::<_, (i64, i64)>("SELECT day, count FROM rate_days WHERE company_id = $1")
            .bind(acme.id)
            .fetch_optional(&look)
            .await
            .unwrap()
    };
    let mut waited = Duration::ZERO;
    while stored().await != Some((T0 / 86_400_000, 7)) {
        assert!(
            waited < Duration::from_secs(5),
            "not written back: {:?}",
            stored().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert!(waited <= Duration::from_millis(2500), "{waited:?}");
}

/// Calls per second through `hit_rate_limit` on SQLite, the request-status hot path's
/// share of the store. Run with `cargo test -p intake-store --release --test store --
/// --ignored --nocapture hit_rate_limit_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn hit_rate_limit_throughput() {
    let site = Site::sqlite();
    let store = site.open().await;
    let acme = store.create_company("acme").await.unwrap();
    let limits = RateLimits {
        per_second: 0,
        per_day: u32::MAX,
    };
    let calls = 1_000_000;
    let started = std::time::Instant::now();
    for i in 0..calls {
        store.hit_rate_limit(acme.id, limits, T0 + i).await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "hit_rate_limit: {:.0} calls/s",
        calls as f64 / elapsed.as_secs_f64()
    );
}
