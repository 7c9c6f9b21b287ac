//! The board projection (`board_facts`, migration 0004): written with each batch's
//! versions, read back by the deal board, emptied with the integration, and kept in step
//! with a schema change that drops values from the bodies.
//!
//! Keyed by (integration, type, request sequence, line), so a batch's rows land at the end
//! of the index, and a replayed line is recognised by its key. Both directions use COPY,
//! PostgreSQL's fast path: the board reads half a million rows without a protocol round
//! per row, and each record's latest version is chosen in memory
//! ([`crate::board::Collector`]).

use futures_util::TryStreamExt;
use intake_model::{board_facts, on_board, BoardFact, BoardFacts, ObjectType, ValidRecord};
use sqlx::PgConnection;

use super::PgStore;
use crate::board::{BoardRecords, Collector, FactRow, Projection, UploadMark, FACT_COLUMNS};
use crate::{ClaimedWork, IntegrationId, RequestSeq, Result, StoreError, WorkKind};

crate::board::board_statements!(PgStore, read: pool, write: pool);

/// Writes the projection of the batch's versions, in the batch's transaction: COPY, or,
/// should a row of the batch be stored already (COPY then fails on the key), a multi-row
/// insert that skips the stored ones.
pub(super) async fn insert_facts(
    tx: &mut PgConnection,
    work: &ClaimedWork,
    records: &[(u64, ValidRecord)],
) -> Result<()> {
    let WorkKind::Upload { object_type, .. } = &work.kind else {
        return Ok(());
    };
    let object_type = *object_type;
    if !on_board(object_type) || records.is_empty() {
        return Ok(());
    }
    let facts = records
        .iter()
        .map(|(_, record)| {
            board_facts(object_type, &record.body)
                .map_err(|err| StoreError::Corrupt(format!("body of {}: {err}", record.object_id)))
        })
        .collect::<Result<Vec<_>>>()?;
    sqlx::query("SAVEPOINT board_facts")
        .execute(&mut *tx)
        .await?;
    match copy_facts(tx, work, object_type, records, &facts).await {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            sqlx::query("ROLLBACK TO SAVEPOINT board_facts")
                .execute(&mut *tx)
                .await?;
            insert_facts_skipping_stored(tx, work, object_type, records, &facts).await
        }
        Err(err) => Err(err.into()),
    }
}

/// Appends `value` to a COPY text-format row, escaping what that format treats specially
/// (`\N` for none).
fn push_field(row: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        row.extend_from_slice(b"\\N");
        return;
    };
    for &b in value.as_bytes() {
        match b {
            b'\\' => row.extend_from_slice(b"\\\\"),
            b'\t' => row.extend_from_slice(b"\\t"),
            b'\n' => row.extend_from_slice(b"\\n"),
            b'\r' => row.extend_from_slice(b"\\r"),
            _ => row.push(b),
        }
    }
}

async fn copy_facts(
    tx: &mut PgConnection,
    work: &ClaimedWork,
    object_type: ObjectType,
    records: &[(u64, ValidRecord)],
    facts: &[BoardFacts<'_>],
) -> std::result::Result<(), sqlx::Error> {
    use std::io::Write;
    let mut copy = tx
        .copy_in_raw(&format!("COPY board_facts ({FACT_COLUMNS}) FROM STDIN"))
        .await?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for ((line, record), facts) in records.iter().zip(facts) {
        write!(
            chunk,
            "{}\t{}\t{}\t{line}\t",
            work.integration_id,
            object_type.code(),
            work.seq
        )
        .expect("writes to a Vec");
        push_field(&mut chunk, Some(&record.object_id));
        write!(
            chunk,
            "\t{}\t{}",
            record.modified.unwrap_or(work.accepted_at),
            if record.deleted { 't' } else { 'f' }
        )
        .expect("writes to a Vec");
        for fact in facts {
            chunk.push(b'\t');
            push_field(&mut chunk, *fact);
        }
        chunk.push(b'\n');
        if chunk.len() >= 1 << 20 {
            if let Err(err) = copy.send(std::mem::take(&mut chunk)).await {
                let _ = copy.abort("send failed").await;
                return Err(err);
            }
            chunk.reserve(1 << 20);
        }
    }
    if !chunk.is_empty() {
        if let Err(err) = copy.send(chunk).await {
            let _ = copy.abort("send failed").await;
            return Err(err);
        }
    }
    copy.finish().await.map(|_| ())
}

async fn insert_facts_skipping_stored(
    tx: &mut PgConnection,
    work: &ClaimedWork,
    object_type: ObjectType,
    records: &[(u64, ValidRecord)],
    facts: &[BoardFacts<'_>],
) -> Result<()> {
    let lines: Vec<i64> = records.iter().map(|(l, _)| *l as i64).collect();
    let ids: Vec<&str> = records.iter().map(|(_, r)| r.object_id.as_str()).collect();
    let modified: Vec<i64> = records
        .iter()
        .map(|(_, r)| r.modified.unwrap_or(work.accepted_at))
        .collect();
    let deleted: Vec<bool> = records.iter().map(|(_, r)| r.deleted).collect();
    let column = |i: usize| facts.iter().map(|f| f[i]).collect::<Vec<Option<&str>>>();
    sqlx::query(&format!(
        "INSERT INTO board_facts ({FACT_COLUMNS}) \
         SELECT $1, $2, $3, v.* FROM UNNEST($4::bigint[], $5::text[], $6::bigint[], \
             $7::boolean[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
             $13::text[], $14::text[]) AS v \
         ON CONFLICT DO NOTHING"
    ))
    .bind(work.integration_id)
    .bind(object_type.code())
    .bind(work.seq)
    .bind(lines)
    .bind(ids)
    .bind(modified)
    .bind(deleted)
    .bind(column(0))
    .bind(column(1))
    .bind(column(2))
    .bind(column(3))
    .bind(column(4))
    .bind(column(5))
    .bind(column(6))
    .execute(tx)
    .await?;
    Ok(())
}

/// One type's records up to `as_of`: from the cache (as they stand now, or corrected to
/// `as_of` when that reads less), else read whole.
pub(super) async fn board_records(
    store: &PgStore,
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
    let from = format!(
        "{} AND f.modified <= {as_of}",
        of_type(integration, object_type)
    );
    read_rows(store, &from, &mut |row| collector.push_row(&row)).await?;
    Ok(collector.finish())
}

impl Projection for PgStore {
    async fn epoch(&self, integration: IntegrationId, object_type: ObjectType) -> Result<i64> {
        let epoch: Option<i64> = sqlx::query_scalar(
            "SELECT epoch FROM board_epochs WHERE integration_id = $1 AND object_type = $2",
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
        let ((s0, l0), (s1, l1)) = (after, through);
        let from = format!(
            "{} AND (f.seq, f.line) > ({s0}, {l0}) AND (f.seq, f.line) <= ({s1}, {l1})",
            of_type(integration, object_type)
        );
        read_rows(self, &from, each).await
    }

    async fn rows_at(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        keys: &[(RequestSeq, i64)],
        each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // Each key looked up in the primary key: the LATERAL subquery with its LIMIT is not
        // flattened into a join, so the plan is one index probe per key whatever the
        // statistics say. Written as `(seq, line) IN (unnest ...)`, a projection not yet
        // analyzed (right after a load) was estimated at 10 rows and hashed whole, once
        // per 10,000 keys: 0.75-1 s each, 10 s for the 100,000 earlier versions of the
        // bench's asOf board, against 45 ms per 10,000 this way (BENCHMARKS.md).
        let list = |pick: fn(&(RequestSeq, i64)) -> i64| {
            keys.iter()
                .map(|k| pick(k).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let source = format!(
            "unnest('{{{}}}'::bigint[], '{{{}}}'::bigint[]) AS k(seq, line) \
             CROSS JOIN LATERAL (SELECT * FROM board_facts \
                 WHERE integration_id = {integration} AND object_type = {} \
                 AND seq = k.seq AND line = k.line LIMIT 1) AS f",
            list(|k| k.0),
            list(|k| k.1),
            object_type.code()
        );
        read_rows(self, &source, each).await
    }
}

/// The rows of one type of the projection, as the `FROM` of [`read_rows`] (more
/// conditions may follow, each after an AND).
fn of_type(integration: IntegrationId, object_type: ObjectType) -> String {
    format!(
        "board_facts AS f WHERE f.integration_id = {integration} AND f.object_type = {}",
        object_type.code()
    )
}

/// Reads the projection's rows `FROM` `from` (rows of `board_facts` as `f`) with `COPY ...
/// TO STDOUT`. COPY takes no parameters: the values in `from` are integers, written as
/// such.
async fn read_rows(
    store: &PgStore,
    from: &str,
    each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
) -> Result<()> {
    let facts: String = BoardFact::ALL
        .iter()
        .map(|f| format!(", f.{}", f.column()))
        .collect();
    let sql = format!(
        "COPY (SELECT f.object_id, f.modified, f.seq, f.line, f.deleted{facts} FROM {from}) \
         TO STDOUT"
    );
    let mut conn = store.pool.acquire().await?;
    let mut stream = conn.copy_out_raw(&sql).await?;
    // A row may in principle span two messages: the part after the last newline waits.
    let mut partial: Vec<u8> = Vec::new();
    let mut scratch = String::new();
    while let Some(bytes) = stream.try_next().await? {
        let data: &[u8] = if partial.is_empty() {
            &bytes
        } else {
            partial.extend_from_slice(&bytes);
            &partial
        };
        let complete = match data.iter().rposition(|&b| b == b'\n') {
            Some(end) => end + 1,
            None => 0,
        };
        for line in data[..complete].split(|&b| b == b'\n') {
            if !line.is_empty() {
                copy_row(each, line, &mut scratch)?;
            }
        }
        let rest = data[complete..].to_vec();
        partial = rest;
    }
    if !partial.is_empty() {
        return Err(StoreError::Corrupt("a COPY row without its newline".into()));
    }
    Ok(())
}

/// One COPY text-format row of the query above, handed to `each`.
fn copy_row(
    each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> Result<()> + Send),
    line: &[u8],
    scratch: &mut String,
) -> Result<()> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "board_facts row: {:.80}",
            String::from_utf8_lossy(line)
        ))
    };
    let line = std::str::from_utf8(line).map_err(|_| corrupt())?;
    let mut fields = line.split('\t');
    let mut raws = [""; 12];
    for raw in &mut raws {
        *raw = fields.next().ok_or_else(corrupt)?;
    }
    if fields.next().is_some() {
        return Err(corrupt());
    }
    let [object_id, modified, seq, row_line, deleted, facts @ ..] = raws;
    let number = |s: &str| s.parse::<i64>().map_err(|_| corrupt());
    let deleted = match deleted {
        "t" => true,
        "f" => false,
        _ => return Err(corrupt()),
    };
    // Fields with a backslash are unescaped into `scratch`, one after the other, and
    // borrowed from there: rare (a JSON escape in a value).
    let raws: [&str; 8] = [
        object_id, facts[0], facts[1], facts[2], facts[3], facts[4], facts[5], facts[6],
    ];
    scratch.clear();
    let mut ends = [0usize; 8];
    for (end, raw) in ends.iter_mut().zip(raws) {
        if raw != "\\N" && raw.contains('\\') {
            unescape(raw, scratch).ok_or_else(corrupt)?;
        }
        *end = scratch.len();
    }
    let mut values: [Option<&str>; 8] = [None; 8];
    let mut start = 0;
    for ((value, raw), end) in values.iter_mut().zip(raws).zip(ends) {
        *value = if raw == "\\N" {
            None
        } else if raw.contains('\\') {
            Some(&scratch[start..end])
        } else {
            Some(raw)
        };
        start = end;
    }
    let object_id = values[0].ok_or_else(corrupt)?;
    let mut row_facts: BoardFacts<'_> = [None; 7];
    row_facts.copy_from_slice(&values[1..]);
    each(FactRow {
        object_id,
        modified: number(modified)?,
        seq: number(seq)?,
        line: number(row_line)?,
        deleted,
        facts: row_facts,
    })
}

/// COPY text format's escapes undone, appended to `out`; `None` for one it never writes.
fn unescape(field: &str, out: &mut String) -> Option<()> {
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            _ => return None,
        });
    }
    Some(())
}

/// Removes the integration's projection, in the purge's transaction.
pub(super) async fn purge(tx: &mut PgConnection, integration: IntegrationId) -> Result<()> {
    sqlx::query("DELETE FROM board_facts WHERE integration_id = $1")
        .bind(integration)
        .execute(&mut *tx)
        .await?;
    for object_type in ObjectType::ALL.into_iter().filter(|t| on_board(*t)) {
        raise_epoch(tx, integration, object_type).await?;
    }
    Ok(())
}

/// After the values of `dropped` keys were removed from every stored body of the type (a
/// schema replacement), the facts read from those keys go too, in the same transaction.
pub(super) async fn drop_facts(
    tx: &mut PgConnection,
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
            "UPDATE board_facts SET {} = NULL WHERE integration_id = $1 AND object_type = $2",
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

/// Marks the rows of the type as changed in place, for [`crate::board::BoardCache`].
async fn raise_epoch(
    tx: &mut PgConnection,
    integration: IntegrationId,
    object_type: ObjectType,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO board_epochs (integration_id, object_type, epoch) VALUES ($1, $2, 1) \
         ON CONFLICT (integration_id, object_type) \
         DO UPDATE SET epoch = board_epochs.epoch + 1",
    )
    .bind(integration)
    .bind(object_type.code())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
