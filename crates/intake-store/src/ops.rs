//! What an operator asks of the store (`GET /ready`, `GET /metrics`): whether it can serve —
//! the database answers and every migration of this version is applied — and how many
//! requests are in each status now. Each backend runs the queries (its `ops` module); the
//! judging is here, once.

use std::future::Future;
use std::time::Duration;

use sqlx::migrate::Migrator;

use crate::{RequestStatus, Result, StoreError};

/// How long each readiness query may take before the database counts as not answering.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// One reason the store is not ready; its text starts with what failed (`database: ...`,
/// `migrations: ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The database does not answer (or answers with an error).
    Database(String),
    /// The migrations applied are not this version's.
    Migrations(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Database(why) => write!(f, "database: {why}"),
            NotReady::Migrations(why) => write!(f, "migrations: {why}"),
        }
    }
}

/// Runs one readiness query within [`READY_TIMEOUT`]; a failure or no answer is a
/// [`NotReady::Database`].
pub(crate) async fn answered<T>(
    query: impl Future<Output = std::result::Result<T, sqlx::Error>>,
) -> std::result::Result<T, NotReady> {
    match tokio::time::timeout(READY_TIMEOUT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(NotReady::Database(err.to_string())),
        Err(_) => Err(NotReady::Database(format!(
            "no answer within {} s",
            READY_TIMEOUT.as_secs()
        ))),
    }
}

/// The problems of the applied migrations (`(version, success)` rows of
/// `_sqlx_migrations`) against this version's `migrator`: one missing, one that failed
/// halfway, or one this version does not know (a newer version migrated the database).
pub(crate) fn judge_migrations(migrator: &Migrator, applied: &[(i64, bool)]) -> Option<NotReady> {
    let expected: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let list = |versions: Vec<i64>| {
        versions
            .iter()
            .map(|v| format!("{v:04}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut problems = Vec::new();
    let missing: Vec<i64> = expected
        .iter()
        .copied()
        .filter(|v| !applied.iter().any(|(a, ok)| a == v && *ok))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("not applied: {}", list(missing)));
    }
    let failed: Vec<i64> = applied
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(v, _)| *v)
        .collect();
    if !failed.is_empty() {
        problems.push(format!("failed halfway: {}", list(failed)));
    }
    let unknown: Vec<i64> = applied
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !expected.contains(v))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "applied by a newer version of Intake: {}",
            list(unknown)
        ));
    }
    (!problems.is_empty()).then(|| NotReady::Migrations(problems.join("; ")))
}

/// Every status with its count (0 for those absent from `rows`), from
/// `SELECT status, COUNT(*) FROM requests GROUP BY status`.
pub(crate) fn counts_by_status(rows: Vec<(String, i64)>) -> Result<Vec<(RequestStatus, u64)>> {
    let mut counts: Vec<(RequestStatus, u64)> = [
        RequestStatus::Pending,
        RequestStatus::InProgress,
        RequestStatus::Done,
        RequestStatus::Failed,
        RequestStatus::Cancelled,
    ]
    .into_iter()
    .map(|s| (s, 0))
    .collect();
    for (status, count) in rows {
        let status = RequestStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("request status {status:?}")))?;
        if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == status) {
            entry.1 = u64::try_from(count).unwrap_or(0);
        }
    }
    Ok(counts)
}

/// The query both backends run for [`counts_by_status`].
pub(crate) const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM requests GROUP BY status";

/// The query both backends run for [`judge_migrations`].
pub(crate) const APPLIED_MIGRATIONS: &str =
    "SELECT version, success FROM _sqlx_migrations ORDER BY version";
