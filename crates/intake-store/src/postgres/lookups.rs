//! The look-up keys and domain settings of the associations, one snapshot's reads, and the
//! erasure of people (see `crate::lookups`).

use intake_model::associate::LookupKind;
use intake_model::ObjectType;
use sqlx::{PgConnection, PgPool, Postgres};

use super::PgStore;
use crate::lookups::{
    AskedKeys, DomainSettings, KeyRun, LookupHit, ReadSnapshot, ERASED_DESCRIPTION,
};
use crate::{IntegrationId, RecordState, RequestSeq, Result, StoreError};

/// Writes rows of `lookup_keys` into `table` (the main one or a recent tier), skipping
/// those stored: one insert of arrays.
async fn insert_rows(tx: &mut PgConnection, table: &str, run: &KeyRun) -> Result<()> {
    if run.len() == 0 {
        return Ok(());
    }
    let rows = run.rows();
    let integrations: Vec<IntegrationId> = rows.iter().map(|r| r.0).collect();
    let kinds: Vec<i16> = rows.iter().map(|r| r.1).collect();
    let keys: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let types: Vec<i16> = rows.iter().map(|r| r.3).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.4).collect();
    sqlx::query(&format!(
        "INSERT INTO {table} (integration_id, kind, key_hash, object_type, object_id) \
         SELECT * FROM UNNEST($1::bigint[], $2::smallint[], $3::bigint[], $4::smallint[], \
             $5::text[]) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(integrations)
    .bind(kinds)
    .bind(keys)
    .bind(types)
    .bind(ids)
    .execute(tx)
    .await?;
    Ok(())
}

/// Writes one sorted run into `table` (a recent tier) with COPY, the fast path; a key
/// stored already (the record uploaded before with the same value, a replay) makes it
/// fail, and the run is written again skipping those.
async fn write_run(tx: &mut PgConnection, table: &str, run: &KeyRun) -> Result<()> {
    sqlx::query("SAVEPOINT copy_keys").execute(&mut *tx).await?;
    match super::copy::copy_lookup_keys(tx, table, run).await {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            sqlx::query("ROLLBACK TO SAVEPOINT copy_keys")
                .execute(&mut *tx)
                .await?;
            insert_rows(tx, table, run).await
        }
        Err(err) => Err(err.into()),
    }
}

/// Keys per sorted run the keyer writes (larger runs write each index page fewer times;
/// see the SQLite keyer).
const RUN_KEYS: usize = 100_000;

/// Writes the look-up keys of every upload's lines stored and not keyed yet (of one
/// integration, or of all), an upload a transaction (see `crate::lookups`); returns how
/// many lines were passed.
pub(super) async fn key_uploads(pool: &PgPool, integration: Option<IntegrationId>) -> Result<u64> {
    let pending: Vec<RequestSeq> = sqlx::query_scalar(
        "SELECT seq FROM requests WHERE kind = 'UPLOAD' AND keyed_line < checkpoint_line \
         AND ($1::bigint IS NULL OR integration_id = $1) ORDER BY seq",
    )
    .bind(integration)
    .fetch_all(pool)
    .await?;
    let mut passed = 0;
    for seq in pending {
        passed += key_upload(pool, seq).await?;
    }
    Ok(passed)
}

/// Keys the lines of one upload stored and not keyed yet, in one transaction: one pass
/// over its versions in the recent tiers (found by request: a pass per step of lines read
/// the whole request's versions each time, a third of the keyer's time), their keys
/// written in sorted runs of [`RUN_KEYS`] as they fill. Returns the lines passed.
///
/// Exactness: the upload's row is locked (`FOR UPDATE`), so two keyers of one upload (two
/// instances, the worker and a reader) take turns, and each reads `keyed_line` afresh.
/// The active tier is read `FOR SHARE` first, as a batch does (the same order of locks:
/// no deadlock with a batch or a swap), and the keys go into it. The versions are found in
/// the recent tiers: a merge keys every upload before it moves a tier (`tiers::merge`).
/// The integration's row is read `FOR SHARE`: a deleted integration's lines are passed
/// without keys, and one being deleted waits for this transaction, so no key is written
/// after its purge.
async fn key_upload(pool: &PgPool, seq: RequestSeq) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let tier: i16 = sqlx::query_scalar("SELECT active FROM version_tiers WHERE id = 1 FOR SHARE")
        .fetch_one(&mut *tx)
        .await?;
    let upload: Option<(IntegrationId, i64, i64, Option<i16>, bool)> = sqlx::query_as(
        "SELECT r.integration_id, r.keyed_line, r.checkpoint_line, r.object_type, i.deleted \
         FROM requests r JOIN integrations i ON i.id = r.integration_id \
         WHERE r.seq = $1 FOR UPDATE OF r FOR SHARE OF i",
    )
    .bind(seq)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((integration, keyed, checkpoint, code, deleted)) = upload else {
        return Ok(0);
    };
    if keyed >= checkpoint {
        return Ok(0);
    }
    let keyed_type = code
        .and_then(ObjectType::from_code)
        .is_some_and(intake_model::associate::has_lookup_keys);
    let started = std::time::Instant::now();
    let mut keys = 0;
    if !deleted && keyed_type {
        let code = code.unwrap_or_default();
        let table = super::tiers::recent_lookup_keys(tier);
        // A cursor: the runs are written on the same connection between its fetches.
        // (The bounds are integers, written into the statement: DECLARE takes no
        // parameters.)
        sqlx::query(&format!(
            "DECLARE unkeyed NO SCROLL CURSOR FOR \
             SELECT object_id, body FROM recent_versions_0 \
                 WHERE seq = {seq} AND line > {keyed} AND line <= {checkpoint} \
             UNION ALL \
             SELECT object_id, body FROM recent_versions_1 \
                 WHERE seq = {seq} AND line > {keyed} AND line <= {checkpoint}"
        ))
        .execute(&mut *tx)
        .await?;
        let mut run = KeyRun::default();
        loop {
            let versions: Vec<(String, String)> = sqlx::query_as("FETCH 5000 FROM unkeyed")
                .fetch_all(&mut *tx)
                .await?;
            let done = versions.is_empty();
            for (object_id, body) in &versions {
                run.push_version(integration, code, object_id, body);
            }
            if run.len() >= RUN_KEYS || (done && run.len() > 0) {
                run.sort();
                write_run(&mut tx, table, &run).await?;
                keys += run.len();
                run = KeyRun::default();
            }
            if done {
                break;
            }
        }
        sqlx::query("CLOSE unkeyed").execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE requests SET keyed_line = $2 WHERE seq = $1")
        .bind(seq)
        .bind(checkpoint)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::debug!(seq, through = checkpoint, keys, took = ?started.elapsed(), "look-up keys written");
    Ok((checkpoint - keyed) as u64)
}

/// Fills the keys of versions stored before the look-ups existed, once, when the store
/// opens. Several instances opening at once may both do it; the keys absorb that.
pub(super) async fn backfill(store: &PgStore) -> Result<()> {
    let done: Option<bool> =
        sqlx::query_scalar("SELECT done FROM store_upkeep WHERE name = 'lookup_keys'")
            .fetch_optional(&store.pool)
            .await?;
    if done != Some(false) {
        return Ok(());
    }
    tracing::info!("filling the association look-up keys of the stored versions");
    let mut after: (i64, i16, String, i64, i64) = (i64::MIN, i16::MIN, String::new(), 0, 0);
    loop {
        type Row = (i64, i16, String, i64, i64, bool, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT integration_id, object_type, object_id, modified, seq, deleted, body \
             FROM all_versions \
             WHERE (integration_id, object_type, object_id, modified, seq) > ($1, $2, $3, $4, $5) \
             ORDER BY integration_id, object_type, object_id, modified, seq LIMIT 5000",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(&after.2)
        .bind(after.3)
        .bind(after.4)
        .fetch_all(&store.pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (last.0, last.1, last.2.clone(), last.3, last.4);
        let mut keys = KeyRun::default();
        for (integration, code, object_id, _, _, _, body) in &rows {
            keys.push_version(*integration, *code, object_id, body);
        }
        keys.sort();
        let mut tx = store.pool.begin().await?;
        insert_rows(&mut tx, "lookup_keys", &keys).await?;
        tx.commit().await?;
    }
    sqlx::query("UPDATE store_upkeep SET done = true WHERE name = 'lookup_keys'")
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Removes an integration's keys (every tier) and settings inside the purge's transaction.
pub(super) async fn purge(tx: &mut PgConnection, integration: IntegrationId) -> Result<()> {
    let tables = super::tiers::LOOKUP_TABLES;
    for table in tables.iter().chain(&["integration_settings"]) {
        sqlx::query(&format!("DELETE FROM {table} WHERE integration_id = $1"))
            .bind(integration)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn settings(
    store: &PgStore,
    integration: IntegrationId,
) -> Result<DomainSettings> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT settings FROM integration_settings WHERE integration_id = $1")
            .bind(integration)
            .fetch_optional(&store.pool)
            .await?;
    text.map_or(Ok(DomainSettings::default()), |t| {
        DomainSettings::decode(&t)
    })
}

pub(super) async fn put_settings(
    store: &PgStore,
    integration: IntegrationId,
    settings: &DomainSettings,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO integration_settings (integration_id, settings) VALUES ($1, $2) \
         ON CONFLICT (integration_id) DO UPDATE SET settings = excluded.settings",
    )
    .bind(integration)
    .bind(settings.encode())
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// A `REPEATABLE READ` read-only transaction: one snapshot for every statement in it.
struct Snapshot {
    tx: sqlx::Transaction<'static, Postgres>,
    integration: IntegrationId,
}

pub(super) async fn read_snapshot(
    store: &PgStore,
    integration: IntegrationId,
) -> Result<Box<dyn ReadSnapshot>> {
    // Every line stored so far is keyed before the snapshot starts.
    key_uploads(&store.pool, Some(integration)).await?;
    // One round trip: the isolation level is given with the BEGIN, and the recent tiers are
    // locked before the snapshot is taken (a merge's TRUNCATE is not MVCC-safe).
    let tx = store
        .pool
        .begin_with(format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {}",
            super::tiers::LOCK_RECENT
        ))
        .await?;
    Ok(Box::new(Snapshot { tx, integration }))
}

#[async_trait::async_trait]
impl ReadSnapshot for Snapshot {
    async fn lookup(&mut self, kind: LookupKind, keys: &[String]) -> Result<Vec<LookupHit>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Each key probed by equality in every tier. With `key = ANY($3)` the planner may
        // keep the array as a filter over every key of the kind when its statistics say the
        // kind is rare (they lag a merge of the recent tiers, or autovacuum is off): 83 ms
        // against 0.2 ms on the bench's store. `OFFSET 0` keeps the LATERAL from being
        // flattened into a hash join over the same keys.
        let asked = AskedKeys::new(keys);
        let rows: Vec<(i64, i16, String)> = sqlx::query_as(
            "SELECT DISTINCT l.key_hash, l.object_type, l.object_id \
             FROM unnest($3::bigint[]) AS k(key_hash) \
             CROSS JOIN LATERAL (SELECT key_hash, object_type, object_id FROM all_lookup_keys \
                 WHERE integration_id = $1 AND kind = $2 AND key_hash = k.key_hash OFFSET 0) AS l",
        )
        .bind(self.integration)
        .bind(kind.code())
        .bind(asked.hashes())
        .fetch_all(&mut *self.tx)
        .await?;
        let mut hits = Vec::with_capacity(rows.len());
        for (hash, code, object_id) in rows {
            let object_type = ObjectType::from_code(code)
                .ok_or_else(|| StoreError::Corrupt(format!("object type {code}")))?;
            asked.push_hits(hash, object_type, object_id, &mut hits)?;
        }
        Ok(hits)
    }

    async fn states(
        &mut self,
        object_type: ObjectType,
        wanted: &[(String, i64)],
    ) -> Result<Vec<Option<RecordState>>> {
        let mut found = vec![None; wanted.len()];
        if wanted.is_empty() {
            return Ok(found);
        }
        let ids: Vec<&str> = wanted.iter().map(|w| w.0.as_str()).collect();
        let at: Vec<i64> = wanted.iter().map(|w| w.1).collect();
        let rows: Vec<(i64, i64, bool, String)> = sqlx::query_as(
            "SELECT w.n, v.modified, v.deleted, v.body \
             FROM UNNEST($3::text[], $4::bigint[]) WITH ORDINALITY AS w(id, at, n) \
             CROSS JOIN LATERAL ( \
                 SELECT modified, deleted, body FROM all_versions \
                 WHERE integration_id = $1 AND object_type = $2 AND object_id = w.id \
                 AND modified <= w.at ORDER BY modified DESC, seq DESC LIMIT 1 \
             ) v",
        )
        .bind(self.integration)
        .bind(object_type.code())
        .bind(ids)
        .bind(at)
        .fetch_all(&mut *self.tx)
        .await?;
        for (n, modified, deleted, body) in rows {
            if let Some(slot) = found.get_mut(n as usize - 1) {
                *slot = Some(RecordState {
                    modified,
                    deleted,
                    body,
                });
            }
        }
        Ok(found)
    }
}

/// Erases these records completely in one transaction (see `Store::erase_records`). The
/// deleted rows are unreadable at once; their space is reclaimed by (auto)vacuum.
pub(super) async fn erase_records(
    store: &PgStore,
    integration: IntegrationId,
    records: &[(ObjectType, String)],
    asked: &str,
) -> Result<u64> {
    let mut tx = store.pool.begin().await?;
    super::tiers::exclude_merge(&mut tx).await?;
    let mut bodies = Vec::new();
    let mut versions = 0u64;
    for (object_type, object_id) in records {
        // Every tier; a version replayed across a swap is in two and counts once.
        let mut rows: Vec<(i64, i64, String)> = Vec::new();
        for table in super::tiers::VERSION_TABLES {
            rows.extend(
                sqlx::query_as::<_, (i64, i64, String)>(&format!(
                    "DELETE FROM {table} \
                     WHERE integration_id = $1 AND object_type = $2 AND object_id = $3 \
                     RETURNING modified, seq, body"
                ))
                .bind(integration)
                .bind(object_type.code())
                .bind(object_id)
                .fetch_all(&mut *tx)
                .await?,
            );
        }
        rows.sort_unstable();
        rows.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
        versions += rows.len() as u64;
        for (_, _, body) in rows {
            for (kind, key) in intake_model::associate::lookup_keys(*object_type, &body) {
                for table in super::tiers::LOOKUP_TABLES {
                    sqlx::query(&format!(
                        "DELETE FROM {table} WHERE integration_id = $1 AND kind = $2 \
                         AND key_hash = $3 AND object_type = $4 AND object_id = $5"
                    ))
                    .bind(integration)
                    .bind(kind.code())
                    .bind(crate::lookups::key_hash(&key))
                    .bind(object_type.code())
                    .bind(object_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            bodies.push((*object_type, body));
        }
    }
    for quoted in crate::lookups::quoted_values(asked, &bodies) {
        sqlx::query(
            "UPDATE request_errors SET description = $1 \
             WHERE strpos(lower(description), lower($2)) > 0 \
             AND seq IN (SELECT seq FROM requests WHERE integration_id = $3)",
        )
        .bind(ERASED_DESCRIPTION)
        .bind(quoted)
        .bind(integration)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(versions)
}
