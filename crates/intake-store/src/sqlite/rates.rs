//! Rate limits, counted in memory: one process owns the SQLite file. The per-second
//! window lives only there; the day's count is also written to `rate_days` so that it
//! survives a restart — by a task at most once a second (only companies whose count
//! changed, in one statement) and once more when the store is dropped. A call itself never
//! waits for a write: the request-status hot path stays a lock and two additions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::SqliteStore;
use crate::{decide, CompanyId, RateDecision, RateLimits, Result};

/// How often changed day counts are written back.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Each company's calls in its current second and current UTC day.
pub(super) struct RateWindows {
    by_company: Arc<Mutex<HashMap<CompanyId, Windows>>>,
    flusher: tokio::task::JoinHandle<()>,
    /// To write the last counts when the store is dropped, on a connection of its own.
    options: SqliteConnectOptions,
}

#[derive(Default, Clone)]
struct Windows {
    second: i64,
    second_count: u64,
    day: i64,
    day_count: u64,
    /// The day count changed since it was last written.
    dirty: bool,
}

type DayCount = (CompanyId, i64, i64);

impl RateWindows {
    /// The stored day counts, and the task that writes them back from now on.
    pub(super) async fn load(
        writer: &SqlitePool,
        options: SqliteConnectOptions,
    ) -> Result<RateWindows> {
        let stored: Vec<DayCount> = sqlx::query_as("SELECT company_id, day, count FROM rate_days")
            .fetch_all(writer)
            .await?;
        let by_company: HashMap<_, _> = stored
            .into_iter()
            .map(|(company, day, count)| {
                let windows = Windows {
                    day,
                    day_count: u64::try_from(count).unwrap_or(0),
                    ..Windows::default()
                };
                (company, windows)
            })
            .collect();
        let by_company = Arc::new(Mutex::new(by_company));
        let flusher = tokio::spawn(flush_every_second(by_company.clone(), writer.clone()));
        Ok(RateWindows {
            by_company,
            flusher,
            options,
        })
    }
}

impl Drop for RateWindows {
    fn drop(&mut self) {
        self.flusher.abort();
        let changed = take_changed(&self.by_company);
        if changed.is_empty() {
            return;
        }
        let options = self.options.clone();
        // On a thread of its own: a drop may run inside a runtime, which cannot block on
        // another.
        let written = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = SqliteConnection::connect_with(&options).await?;
                write_day_counts(&mut conn, &changed).await?;
                conn.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("the day's rate-limit counts were not saved: {err}"),
            Err(_) => tracing::warn!("the day's rate-limit counts were not saved"),
        }
    }
}

/// The day counts that changed since they were last taken, marked as written.
fn take_changed(by_company: &Mutex<HashMap<CompanyId, Windows>>) -> Vec<DayCount> {
    let mut windows = by_company.lock().expect("rate limiter poisoned");
    windows
        .iter_mut()
        .filter(|(_, w)| w.dirty)
        .map(|(company, w)| {
            w.dirty = false;
            (*company, w.day, w.day_count as i64)
        })
        .collect()
}

async fn write_day_counts(conn: &mut SqliteConnection, counts: &[DayCount]) -> sqlx::Result<()> {
    // 3 parameters a row, well under SQLite's limit.
    for chunk in counts.chunks(1000) {
        let mut upsert =
            QueryBuilder::<Sqlite>::new("INSERT INTO rate_days (company_id, day, count) ");
        upsert.push_values(chunk, |mut row, (company, day, count)| {
            row.push_bind(company).push_bind(day).push_bind(count);
        });
        upsert.push(
            " ON CONFLICT (company_id) DO UPDATE SET day = excluded.day, count = excluded.count",
        );
        upsert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn flush_every_second(
    by_company: Arc<Mutex<HashMap<CompanyId, Windows>>>,
    writer: SqlitePool,
) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let changed = take_changed(&by_company);
        if changed.is_empty() {
            continue;
        }
        let written = match writer.acquire().await {
            Ok(mut conn) => write_day_counts(&mut conn, &changed).await,
            Err(err) => Err(err),
        };
        if let Err(err) = written {
            tracing::warn!("saving the day's rate-limit counts failed, retrying: {err}");
            // Written next time, unless a newer count is already waiting.
            let mut windows = by_company.lock().expect("rate limiter poisoned");
            for (company, day, _) in changed {
                if let Some(w) = windows.get_mut(&company).filter(|w| w.day == day) {
                    w.dirty = true;
                }
            }
        }
    }
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
    w.dirty = true;
    Ok(decide(limits, w.second_count, w.day_count, now_ms))
}
