//! Rate limits counted in the database, so that they hold for the company across every
//! instance.

use sqlx::Row;

use super::PgStore;
use crate::{decide, CompanyId, RateDecision, RateLimits, Result};

pub(super) async fn hit_rate_limit(
    store: &PgStore,
    company: CompanyId,
    limits: RateLimits,
    now_ms: i64,
) -> Result<RateDecision> {
    if limits.per_second == 0 && limits.per_day == 0 {
        return Ok(RateDecision::Allowed);
    }
    // Both windows counted in one statement. A window only moves forward, so an
    // instance whose clock lags counts its call in the newer window instead of
    // resetting it.
    let rows = sqlx::query(
        "INSERT INTO rate_windows AS w (company_id, kind, window_start, count) \
         VALUES ($1, 0, $2, 1), ($1, 1, $3, 1) \
         ON CONFLICT (company_id, kind) DO UPDATE SET \
             count = CASE WHEN excluded.window_start > w.window_start THEN 1 \
                          ELSE w.count + 1 END, \
             window_start = GREATEST(w.window_start, excluded.window_start) \
         RETURNING kind, count",
    )
    .bind(company)
    .bind(now_ms.div_euclid(1000))
    .bind(now_ms.div_euclid(86_400_000))
    .fetch_all(&store.pool)
    .await?;
    let (mut second_count, mut day_count) = (0u64, 0u64);
    for row in &rows {
        let count = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
        match row.try_get::<i16, _>(0)? {
            0 => second_count = count,
            _ => day_count = count,
        }
    }
    Ok(decide(limits, second_count, day_count, now_ms))
}
