//! The board projection (`board_facts`, migration 0004): written with each batch's
//! versions, read back by the deal board, emptied with the integration, and kept in step
//! with a schema change that drops values from the bodies.
//!
//! The table is keyed by (integration, type, request sequence, line): a batch appends its
//! rows at the end of its type's range instead of scattering them over an index, and the
//! board reads one range in key order. Each record's latest version is chosen in memory
//! ([`crate::board::Collector`]).

use intake_model::{board_facts, on_board, BoardFact, ObjectType, ValidRecord};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::board::{BoardRecords, Collector};
use crate::{ClaimedWork, IntegrationId, Result, StoreError, WorkKind};

/// Rows per multi-row INSERT: 14 parameters each, under SQLite's 32,766.
const ROWS_PER_INSERT: usize = 2_000;

/// Rows one purge step deletes.
const PURGE_STEP_ROWS: i64 = 20_000;

const COLUMNS: &str = "integration_id, object_type, seq, line, object_id, modified, deleted, \
     label, status, stage, account_id, owner_id, close_date, amount";

/// Writes the projection of the batch's new versions, in the batch's transaction. Only the
/// lines the batch stores come here, so a replayed batch adds nothing twice.
pub(super) async fn insert_facts(
    tx: &mut SqliteConnection,
    work: &ClaimedWork,
    records: &[&(u64, ValidRecord)],
) -> Result<()> {
    let WorkKind::Upload { object_type, .. } = &work.kind else {
        return Ok(());
    };
    let object_type = *object_type;
    if !on_board(object_type) {
        return Ok(());
    }
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let facts = chunk
            .iter()
            .map(|(_, record)| {
                board_facts(object_type, &record.body).map_err(|err| {
                    StoreError::Corrupt(format!("body of {}: {err}", record.object_id))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // OR ROLLBACK, as the versions' insert (see queue.rs).
        let mut insert = QueryBuilder::<Sqlite>::new(format!(
            "INSERT OR ROLLBACK INTO board_facts ({COLUMNS}) "
        ));
        insert.push_values(
            chunk.iter().zip(&facts),
            |mut row, ((line, record), facts)| {
                row.push_bind(work.integration_id)
                    .push_bind(object_type.code())
                    .push_bind(work.seq)
                    .push_bind(*line as i64)
                    .push_bind(&record.object_id)
                    .push_bind(record.modified.unwrap_or(work.accepted_at))
                    .push_bind(record.deleted);
                for fact in facts {
                    row.push_bind(*fact);
                }
            },
        );
        insert.build().persistent(true).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Reads one type's projection up to `as_of`, [`chunk_rows`] rows per query as one text
/// (fields separated by U+001F, rows by U+001E; no objectId holds them, and the facts are
/// JSON texts, where control characters are always escaped): sqlx's cost per row is
/// several times SQLite's own for rows this narrow. An absent fact is an empty field (no
/// JSON text is empty).
pub(super) async fn board_records(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    as_of: i64,
) -> Result<BoardRecords> {
    let mut collector = Collector::default();
    if !on_board(object_type) {
        return Ok(collector.finish());
    }
    let facts = BoardFact::ALL
        .iter()
        .map(|f| format!(" || char(31) || ifnull({}, '')", f.column()))
        .collect::<String>();
    let sql = format!(
        "SELECT count(*), group_concat(object_id || char(31) || modified || char(31) || seq \
         || char(31) || line || char(31) || deleted{facts}, char(30)) FROM ( \
             SELECT * FROM board_facts \
             WHERE integration_id = ?1 AND object_type = ?2 AND (seq, line) > (?3, ?4) \
             AND modified <= ?5 ORDER BY seq, line LIMIT ?6)"
    );
    let chunk = chunk_rows(store);
    let mut conn = store.pool.acquire().await?;
    let (mut after_seq, mut after_line) = (i64::MIN, i64::MIN);
    loop {
        let (count, text): (i64, Option<String>) = sqlx::query_as(&sql)
            .bind(integration)
            .bind(object_type.code())
            .bind(after_seq)
            .bind(after_line)
            .bind(as_of)
            .bind(chunk)
            .fetch_one(&mut *conn)
            .await?;
        let Some(text) = text else { break };
        for row in text.split('\u{1e}') {
            let corrupt = || StoreError::Corrupt(format!("board_facts row: {row:.80}"));
            let mut fields = row.split('\u{1f}');
            let mut next = || fields.next().ok_or_else(corrupt);
            let object_id = next()?;
            let mut number = || next()?.parse::<i64>().map_err(|_| corrupt());
            let (modified, seq, line, deleted) = (number()?, number()?, number()?, number()?);
            let mut facts = [None; 7];
            for fact in &mut facts {
                *fact = Some(next()?).filter(|f| !f.is_empty());
            }
            if fields.next().is_some() {
                return Err(corrupt());
            }
            (after_seq, after_line) = (after_seq, after_line).max((seq, line));
            collector.push(object_id, modified, seq, deleted != 0, facts)?;
        }
        if count < chunk {
            break;
        }
    }
    Ok(collector.finish())
}

/// Rows per query of [`board_records`]: ten times `for_each_current`'s (whose rows carry
/// whole bodies), so that a test that makes those chunks small splits these too.
fn chunk_rows(store: &SqliteStore) -> i64 {
    store
        .current_chunk
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_mul(10)
}

/// Deletes up to one step of the integration's projection, in its own transaction;
/// returns how many rows went.
pub(super) async fn purge_step(store: &SqliteStore, integration: IntegrationId) -> Result<i64> {
    let mut tx = store.begin_write().await?;
    let removed = sqlx::query(
        "DELETE FROM board_facts WHERE (integration_id, object_type, seq, line) IN ( \
             SELECT integration_id, object_type, seq, line FROM board_facts \
             WHERE integration_id = ? ORDER BY object_type, seq, line LIMIT ?)",
    )
    .bind(integration)
    .bind(PURGE_STEP_ROWS)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(removed as i64)
}

/// After the values of `dropped` keys were removed from every stored body of the type (a
/// schema replacement), the facts read from those keys go too, in the same transaction.
pub(super) async fn drop_facts(
    tx: &mut SqliteConnection,
    integration: IntegrationId,
    object_type: ObjectType,
    dropped: &[String],
) -> Result<()> {
    for fact in dropped
        .iter()
        .filter_map(|key| BoardFact::of_key(object_type, key))
    {
        sqlx::query(&format!(
            "UPDATE board_facts SET {} = NULL WHERE integration_id = ? AND object_type = ?",
            fact.column()
        ))
        .bind(integration)
        .bind(object_type.code())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
