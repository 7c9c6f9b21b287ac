//! The board projection (`board_facts`, migration 0004): written with each batch's
//! versions, read back by the deal board, emptied with the integration, and kept in step
//! with a schema change that drops values from the bodies.
//!
//! The table is keyed by (integration, type, request sequence, line): a batch appends its
//! rows at the end of its type's range instead of scattering them over an index, and the
//! board reads one range in key order. Each record's latest version is chosen in memory
//! ([`crate::board::Collector`]).

use std::fmt::Write as _;

use intake_model::{on_board, BoardFact, ObjectType};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::board::{BoardRecords, Collector, FactRow, Projection, UploadMark, FACT_COLUMNS};
use crate::{ClaimedWork, IntegrationId, RequestSeq, Result, StoreError, WorkKind};

/// Rows one purge step deletes.
const PURGE_STEP_ROWS: i64 = 20_000;

crate::board::board_statements!(SqliteStore, read: pool, write: writer);

/// Writes the projection of the batch's new versions (ids from `first_id` on, just
/// inserted), in the batch's transaction: derived from the stored bodies in SQL, as
/// migration 0004 derives it (`body -> '$.key'` gives the value's JSON text as the body
/// holds it, the texts [`intake_model::board_facts`] gives; the store tests check that
/// the two agree). One statement per batch, SQLite's JSON parser on each body once (its
/// parse cache serves the seven look-ups): a multi-row INSERT of 14 binds a row through
/// sqlx, and a second parse of each body in Rust, cost more than the versions' insert.
/// Only the lines the batch stores come here, so a replayed batch adds nothing twice.
pub(super) async fn insert_facts(
    tx: &mut SqliteConnection,
    work: &ClaimedWork,
    first_id: i64,
) -> Result<()> {
    let WorkKind::Upload { object_type, .. } = &work.kind else {
        return Ok(());
    };
    let object_type = *object_type;
    if !on_board(object_type) {
        return Ok(());
    }
    let facts: String = BoardFact::ALL
        .iter()
        .map(|f| match f.key(object_type) {
            // Keys are plain identifiers: nothing to quote in the path.
            Some(key) => format!(", nullif(body -> '$.{key}', 'null')"),
            None => ", NULL".to_owned(),
        })
        .collect();
    // OR ROLLBACK, as the versions' insert (see queue.rs).
    sqlx::query(&format!(
        "INSERT OR ROLLBACK INTO board_facts ({FACT_COLUMNS}) \
         SELECT integration_id, object_type, seq, line, object_id, modified, deleted{facts} \
         FROM record_versions WHERE id >= ? ORDER BY id"
    ))
    .bind(first_id)
    .persistent(true)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One type's records up to `as_of`: from the cache (as they stand now, or corrected to
/// `as_of` when that reads less), else read whole.
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
    if as_of == i64::MAX {
        return store
            .board_cache
            .current(store, integration, object_type)
            .await;
    }
    if let Some(records) = store
        .board_cache
        .as_of(store, integration, object_type, as_of)
        .await?
    {
        return Ok(records);
    }
    read_rows(
        store,
        integration,
        object_type,
        as_of,
        ((i64::MIN, i64::MIN), (i64::MAX, i64::MAX)),
        &mut |row| collector.push_row(&row),
    )
    .await?;
    Ok(collector.finish())
}

impl Projection for SqliteStore {
    async fn epoch(&self, integration: IntegrationId, object_type: ObjectType) -> Result<i64> {
        let epoch: Option<i64> = sqlx::query_scalar(
            "SELECT epoch FROM board_epochs WHERE integration_id = ? AND object_type = ?",
        )
        .bind(integration)
        .bind(object_type.code())
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch.unwrap_or(0))
    }

    async fn uploads(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        from: RequestSeq,
    ) -> Result<Vec<UploadMark>> {
        board_uploads(self, integration, object_type, from).await
    }

    async fn rows(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        after: (RequestSeq, i64),
        through: (RequestSeq, i64),
        each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        read_rows(
            self,
            integration,
            object_type,
            i64::MAX,
            (after, through),
            each,
        )
        .await
    }

    async fn rows_at(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        keys: &[(RequestSeq, i64)],
        each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        read_keyed_rows(self, integration, object_type, keys, each).await
    }
}

/// One row of the projection as [`row_text`] writes it (fields separated by U+001F, rows
/// by U+001E; no objectId holds them, and the facts are JSON texts, where control
/// characters are always escaped): sqlx's cost per row is several times SQLite's own for
/// rows this narrow. An absent fact is an empty field (no JSON text is empty).
fn row_text() -> String {
    let facts = BoardFact::ALL
        .iter()
        .map(|f| format!(" || char(31) || ifnull({}, '')", f.column()))
        .collect::<String>();
    format!(
        "object_id || char(31) || modified || char(31) || seq || char(31) || line \
         || char(31) || deleted{facts}"
    )
}

/// The fields of one row of [`row_text`]: objectId, modifiedDate, seq, line, deleted and
/// the facts.
fn parse_row(row: &str) -> Result<FactRow<'_>> {
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
    Ok(FactRow {
        object_id,
        modified,
        seq,
        line,
        deleted: deleted != 0,
        facts,
    })
}

/// The greatest (seq, line) of the rows of `text` (rows of [`row_text`] joined by U+001E),
/// where the next chunk of a read in key order starts.
fn last_key(text: &str) -> Result<(RequestSeq, i64)> {
    let mut last = (RequestSeq::MIN, i64::MIN);
    for row in text.split('\u{1e}') {
        let mut fields = row.splitn(5, '\u{1f}').skip(2);
        let mut number = || fields.next().and_then(|f| f.parse::<i64>().ok());
        match (number(), number()) {
            (Some(seq), Some(line)) => last = last.max((seq, line)),
            _ => return Err(StoreError::Corrupt(format!("board_facts row: {row:.80}"))),
        }
    }
    Ok(last)
}

/// Texts of rows made by a task of its own, one query ahead of their reader: SQLite
/// writes the next chunk on its thread while this one is parsed on a runtime thread (the
/// two cores both at work; the whole read of a type was their sum).
type Texts = tokio::sync::mpsc::Receiver<Result<String>>;

/// Hands each row of every text to `each`, in the order they come.
async fn each_text(
    mut texts: Texts,
    each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
) -> Result<()> {
    // Dropping `texts` on an error stops the task that makes them.
    while let Some(text) = texts.recv().await {
        for row in text?.split('\u{1e}') {
            each(parse_row(row)?)?;
        }
    }
    Ok(())
}

/// Starts `make` on a task of its own, giving it where to send its texts.
fn texts<F>(make: impl FnOnce(tokio::sync::mpsc::Sender<Result<String>>) -> F) -> Texts
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (sender, texts) = tokio::sync::mpsc::channel(1);
    let made = make(sender.clone());
    tokio::spawn(async move {
        if let Err(err) = made.await {
            let _ = sender.send(Err(err)).await;
        }
    });
    texts
}

/// Reads one type's projection up to `as_of`, of the rows with (seq, line) in `(after,
/// through]`, in key order, [`chunk_rows`] rows per query as one text ([`row_text`]).
async fn read_rows(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    as_of: i64,
    (after, through): ((RequestSeq, i64), (RequestSeq, i64)),
    each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
) -> Result<()> {
    let sql = format!(
        "SELECT count(*), group_concat({}, char(30)) FROM ( \
             SELECT * FROM board_facts \
             WHERE integration_id = ?1 AND object_type = ?2 \
             AND (seq, line) > (?3, ?4) AND (seq, line) <= (?7, ?8) AND modified <= ?5 \
             ORDER BY seq, line LIMIT ?6)",
        row_text()
    );
    let chunk = chunk_rows(store);
    let pool = store.pool.clone();
    let texts = texts(|sender| async move {
        let mut conn = pool.acquire().await?;
        let mut after = after;
        loop {
            let (count, text): (i64, Option<String>) = sqlx::query_as(&sql)
                .bind(integration)
                .bind(object_type.code())
                .bind(after.0)
                .bind(after.1)
                .bind(as_of)
                .bind(chunk)
                .bind(through.0)
                .bind(through.1)
                .fetch_one(&mut *conn)
                .await?;
            let Some(text) = text else { break };
            after = after.max(last_key(&text)?);
            if sender.send(Ok(text)).await.is_err() || count < chunk {
                break;
            }
        }
        Ok(())
    });
    each_text(texts, each).await
}

/// Reads the rows of `keys`, [`KEYS_PER_QUERY`] a query, each key looked up in the primary
/// key. The keys go as one JSON array of integers, `seq << 32 | line`, and `json_each`
/// drives the join (`CROSS JOIN` keeps that order): a list of `[seq, line]` pairs
/// matched with `(seq, line) IN (...)` cost SQLite two JSON extractions a key and a sort,
/// 2.6 times the time (67 against 26 ms for 10,000 keys on the bench's store,
/// BENCHMARKS.md). Keys out of that range (never made: a seq and a line each fit 32 bits
/// for 4 G uploads of 4 G lines) are read one by one.
async fn read_keyed_rows(
    store: &SqliteStore,
    integration: IntegrationId,
    object_type: ObjectType,
    keys: &[(RequestSeq, i64)],
    each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
) -> Result<()> {
    let sql = format!(
        "SELECT group_concat({}, char(30)) FROM json_each(?3) AS k \
         CROSS JOIN board_facts f ON f.integration_id = ?1 AND f.object_type = ?2 \
         AND f.seq = (k.value >> 32) AND f.line = (k.value & 4294967295)",
        row_text()
    );
    let fits = |&(seq, line): &(RequestSeq, i64)| {
        (0..=u32::MAX as i64).contains(&seq) && (0..=u32::MAX as i64).contains(&line)
    };
    let mut sorted: Vec<(RequestSeq, i64)> = keys.iter().copied().filter(fits).collect();
    sorted.sort_unstable();
    let pool = store.pool.clone();
    let texts = texts(|sender| async move {
        let mut conn = pool.acquire().await?;
        let mut json = String::new();
        for chunk in sorted.chunks(KEYS_PER_QUERY) {
            json.clear();
            json.push('[');
            for (k, (seq, line)) in chunk.iter().enumerate() {
                if k > 0 {
                    json.push(',');
                }
                let _ = write!(json, "{}", seq << 32 | line);
            }
            json.push(']');
            let text: Option<String> = sqlx::query_scalar(&sql)
                .bind(integration)
                .bind(object_type.code())
                .bind(&json)
                .fetch_one(&mut *conn)
                .await?;
            if let Some(text) = text {
                if sender.send(Ok(text)).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    });
    each_text(texts, each).await?;
    for &(seq, line) in keys.iter().filter(|k| !fits(k)) {
        read_rows(
            store,
            integration,
            object_type,
            i64::MAX,
            ((seq, line.saturating_sub(1)), (seq, line)),
            each,
        )
        .await?;
    }
    Ok(())
}

/// Keys per query of [`read_keyed_rows`].
const KEYS_PER_QUERY: usize = 10_000;

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
    if removed == 0 {
        // The last step: a cache of the integration's board reads it again.
        for object_type in ObjectType::ALL.into_iter().filter(|t| on_board(*t)) {
            raise_epoch(&mut tx, integration, object_type).await?;
        }
    }
    tx.commit().await?;
    Ok(removed as i64)
}

/// Marks the rows of the type as changed in place, for [`crate::board::BoardCache`].
async fn raise_epoch(
    tx: &mut SqliteConnection,
    integration: IntegrationId,
    object_type: ObjectType,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO board_epochs (integration_id, object_type, epoch) VALUES (?, ?, 1)          ON CONFLICT (integration_id, object_type) DO UPDATE SET epoch = epoch + 1",
    )
    .bind(integration)
    .bind(object_type.code())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// After the values of `dropped` keys were removed from every stored body of the type (a
/// schema replacement), the facts read from those keys go too, in the same transaction.
pub(super) async fn drop_facts(
    tx: &mut SqliteConnection,
    integration: IntegrationId,
    object_type: ObjectType,
    dropped: &[String],
) -> Result<()> {
    let mut changed = false;
    for fact in dropped
        .iter()
        .filter_map(|key| BoardFact::of_key(object_type, key))
    {
        changed = true;
        sqlx::query(&format!(
            "UPDATE board_facts SET {} = NULL WHERE integration_id = ? AND object_type = ?",
            fact.column()
        ))
        .bind(integration)
        .bind(object_type.code())
        .execute(&mut *tx)
        .await?;
    }
    if changed {
        raise_epoch(tx, integration, object_type).await?;
    }
    Ok(())
}
