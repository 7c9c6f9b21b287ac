//! Readiness and request counts (see `crate::ops`).

use super::{PgStore, MIGRATOR};
use crate::ops::{self, answered, NotReady};
use crate::{RequestStatus, Result};

pub(super) async fn readiness(store: &PgStore) -> Vec<NotReady> {
    if let Err(err) = answered(sqlx::query("SELECT 1").execute(&store.pool)).await {
        return vec![err];
    }
    match answered(sqlx::query_as(ops::APPLIED_MIGRATIONS).fetch_all(&store.pool)).await {
        Ok(applied) => ops::judge_migrations(&MIGRATOR, &applied)
            .into_iter()
            .collect(),
        Err(err) => vec![err],
    }
}

pub(super) async fn request_counts(store: &PgStore) -> Result<Vec<(RequestStatus, u64)>> {
    let rows = sqlx::query_as(ops::COUNT_BY_STATUS)
        .fetch_all(&store.pool)
        .await?;
    ops::counts_by_status(rows)
}
