//! Rate limits, counted in memory: one process owns the SQLite file.

use std::collections::HashMap;
use std::sync::Mutex;

use super::SqliteStore;
use crate::{decide, CompanyId, RateDecision, RateLimits, Result};

/// Each company's calls in its current second and current UTC day.
#[derive(Default)]
pub(super) struct RateWindows {
    by_company: Mutex<HashMap<CompanyId, Windows>>,
}

#[derive(Default)]
struct Windows {
    second: i64,
    second_count: u64,
    day: i64,
    day_count: u64,
}

pub(super) async fn hit_rate_limit(
    store: &SqliteStore,
    company: CompanyId,
    limits: RateLimits,
    now_ms: i64,
) -> Result<RateDecision> {
    let mut windows = store
        .rates
        .by_company
        .lock()
        .expect("rate limiter poisoned");
    let w = windows.entry(company).or_default();
    let (second, day) = (now_ms.div_euclid(1000), now_ms.div_euclid(86_400_000));
    if w.second != second {
        w.second = second;
        w.second_count = 0;
    }
    if w.day != day {
        w.day = day;
        w.day_count = 0;
    }
    w.second_count = w.second_count.saturating_add(1);
    w.day_count = w.day_count.saturating_add(1);
    Ok(decide(limits, w.second_count, w.day_count, now_ms))
}
