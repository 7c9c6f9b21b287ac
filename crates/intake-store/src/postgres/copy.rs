//! Versions and look-up keys into the active recent tier (`recent_versions_N`,
//! `recent_lookup_keys_N`, see `tiers.rs`): COPY in text format, PostgreSQL's fast path,
//! and the multi-row insert that skips stored versions when COPY meets one.

use crate::ClaimedWork;

/// Appends `value` to a COPY text-format row, escaping what that format treats specially.
fn push_copy_text(row: &mut Vec<u8>, value: &str) {
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

/// Streams rows into a table with `statement` (a `COPY ... FROM STDIN`), each row written
/// by `write_row` in COPY's text format, in chunks of about 1 MiB.
async fn copy_in<T>(
    tx: &mut sqlx::PgConnection,
    statement: &str,
    rows: impl IntoIterator<Item = T>,
    mut write_row: impl FnMut(&mut Vec<u8>, T),
) -> std::result::Result<(), sqlx::Error> {
    let mut copy = tx.copy_in_raw(statement).await?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for row in rows {
        write_row(&mut chunk, row);
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

/// Streams the batch's versions into `table` (a recent tier) with COPY.
pub(super) async fn copy_versions(
    tx: &mut sqlx::PgConnection,
    table: &str,
    work: &ClaimedWork,
    object_type: i16,
    records: &[(u64, intake_model::ValidRecord)],
) -> std::result::Result<(), sqlx::Error> {
    use std::io::Write;
    copy_in(
        tx,
        &format!(
            "COPY {table} (integration_id, object_type, object_id, modified, seq, \
             line, deleted, body) FROM STDIN"
        ),
        records,
        |chunk, (line, record)| {
            let modified = record.modified.unwrap_or(work.accepted_at);
            write!(chunk, "{}\t{}\t", work.integration_id, object_type).expect("writes to a Vec");
            push_copy_text(chunk, &record.object_id);
            write!(
                chunk,
                "\t{modified}\t{}\t{line}\t{}\t",
                work.seq,
                if record.deleted { 't' } else { 'f' }
            )
            .expect("writes to a Vec");
            push_copy_text(chunk, &record.body);
            chunk.push(b'\n');
        },
    )
    .await
}

/// Streams rows of `lookup_keys` into `table` (a recent tier) with COPY; fails with a
/// unique violation when one is stored there already.
pub(super) async fn copy_lookup_keys(
    tx: &mut sqlx::PgConnection,
    table: &str,
    run: &crate::lookups::KeyRun,
) -> std::result::Result<(), sqlx::Error> {
    use std::io::Write;
    let rows = run.rows();
    copy_in(
        tx,
        &format!(
            "COPY {table} (integration_id, kind, key_hash, object_type, object_id) FROM STDIN"
        ),
        &rows,
        |chunk, (integration, kind, key, object_type, object_id)| {
            write!(chunk, "{integration}\t{kind}\t{key}\t{object_type}\t")
                .expect("writes to a Vec");
            push_copy_text(chunk, object_id);
            chunk.push(b'\n');
        },
    )
    .await
}

/// The slow path of [`copy_versions`]: one multi-row insert that skips the versions stored
/// in `table`. (One stored in another tier is the same row: a replay across a swap.)
pub(super) async fn insert_versions_skipping_conflicts(
    tx: &mut sqlx::PgConnection,
    table: &str,
    work: &ClaimedWork,
    object_type: i16,
    records: &[(u64, intake_model::ValidRecord)],
) -> std::result::Result<(), sqlx::Error> {
    let ids: Vec<&str> = records.iter().map(|(_, r)| r.object_id.as_str()).collect();
    let modified: Vec<i64> = records
        .iter()
        .map(|(_, r)| r.modified.unwrap_or(work.accepted_at))
        .collect();
    let lines: Vec<i64> = records.iter().map(|(l, _)| *l as i64).collect();
    let deleted: Vec<bool> = records.iter().map(|(_, r)| r.deleted).collect();
    let bodies: Vec<&str> = records.iter().map(|(_, r)| r.body.as_str()).collect();
    sqlx::query(&format!(
        "INSERT INTO {table} (integration_id, object_type, object_id, modified, seq, \
             line, deleted, body) \
         SELECT $1, $2, v.object_id, v.modified, $3, v.line, v.deleted, v.body \
         FROM UNNEST($4::text[], $5::bigint[], $6::bigint[], $7::boolean[], $8::text[]) \
             AS v(object_id, modified, line, deleted, body) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(work.integration_id)
    .bind(object_type)
    .bind(work.seq)
    .bind(ids)
    .bind(modified)
    .bind(lines)
    .bind(deleted)
    .bind(bodies)
    .execute(tx)
    .await?;
    Ok(())
}
