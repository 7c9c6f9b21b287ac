//! The look-up keys and domain settings of the associations, one snapshot's reads, and the
//! erasure of people (see `crate::lookups`).

use intake_model::associate::LookupKind;
use intake_model::ObjectType;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::tiers::{self, MAIN, RECENT};
use super::SqliteStore;
use crate::lookups::{
    keyed_type_codes, AskedKeys, DomainSettings, KeyRun, LookupHit, ReadSnapshot,
    ERASED_DESCRIPTION,
};
use crate::{IntegrationId, RecordState, Result, StoreError};

/// Rows per multi-row insert (5 binds each, well under SQLite's 32,766).
const ROWS_PER_INSERT: usize = 1000;

/// Writes rows of `lookup_keys` (in key order, so each insert walks the index forward),
/// skipping those stored.
async fn insert(tx: &mut SqliteConnection, run: &KeyRun) -> Result<()> {
    for chunk in run.entries().chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO lookup_keys \
             (integration_id, kind, key_hash, object_type, object_id) ",
        );
        insert.push_values(chunk, |mut row, entry| {
            let (integration, kind, key, code, object_id) = run.row(entry);
            row.push_bind(integration)
                .push_bind(kind)
                .push_bind(key)
                .push_bind(code)
                .push_bind(object_id);
        });
        insert.build().persistent(true).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Versions keyed per transaction of the keyer: one sorted run of their keys. A run writes
/// each index page it touches once, and a run of a few thousand keys touches most pages
/// of a large index, so larger runs cost less per key (BENCHMARKS.md).
const KEY_VERSIONS: i64 = 50_000;

/// Versions read per statement of the keyer (their bodies packed into one text).
const READ_WINDOW: i64 = 5_000;

/// Whether every stored version is keyed (a read on a reading connection: no write lock
/// is taken when there is nothing to key).
async fn all_keyed(store: &SqliteStore) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT keyed_through >= (SELECT coalesce(max(id), 0) FROM record_versions) \
         FROM lookup_progress WHERE id = 1",
    )
    .fetch_one(&store.pool)
    .await?)
}

/// Writes the look-up keys of every version stored and not keyed yet, [`KEY_VERSIONS`] a
/// transaction (see `crate::lookups`); returns how many versions were passed. Versions
/// take their ids in the order of their commits (one writer; above the greatest id stored
/// and the greatest keyed, so no id is taken twice after an erasure or a purge removed the
/// greatest ones), so `keyed_through` is exact: every version at or below it is keyed.
pub(super) async fn key_versions(store: &SqliteStore) -> Result<u64> {
    if all_keyed(store).await? {
        return Ok(0);
    }
    let mut passed = 0;
    loop {
        let step = key_step(store).await?;
        if step == 0 {
            return Ok(passed);
        }
        passed += step;
    }
}

async fn key_step(store: &SqliteStore) -> Result<u64> {
    let mut tx = store.begin_write().await?;
    let (through, last): (i64, i64) = sqlx::query_as(
        "SELECT keyed_through, (SELECT coalesce(max(id), 0) FROM record_versions) \
         FROM lookup_progress WHERE id = 1",
    )
    .fetch_one(&mut *tx)
    .await?;
    if through >= last {
        tx.rollback().await?;
        return Ok(0);
    }
    let upto = last.min(through + KEY_VERSIONS);
    let started = std::time::Instant::now();
    // Read in windows of ids, each packed into one text (see `Packed`).
    let sql = format!(
        "SELECT group_concat(integration_id || ',' || object_type || ',' \
             || octet_length(object_id) || ':' || object_id \
             || octet_length(body) || ':' || body, '') \
         FROM record_versions WHERE id > ? AND id <= ? AND object_type IN ({}) \
         AND integration_id NOT IN (SELECT id FROM integrations WHERE deleted)",
        keyed_type_codes()
    );
    let mut keys = KeyRun::default();
    let mut from = through;
    while from < upto {
        let to = upto.min(from + READ_WINDOW);
        let packed: Option<String> = sqlx::query_scalar(&sql)
            .bind(from)
            .bind(to)
            .fetch_one(&mut *tx)
            .await?;
        let mut packed = Packed(packed.as_deref().unwrap_or(""));
        while !packed.0.is_empty() {
            let (integration, code) = (packed.int()?, packed.int()?);
            let code = i16::try_from(code).map_err(|_| Packed::corrupt())?;
            let (object_id, body) = (packed.text()?, packed.text()?);
            keys.push_version(integration, code, object_id, body);
        }
        from = to;
    }
    let read = started.elapsed();
    keys.sort();
    insert(&mut tx, &keys).await?;
    let inserted = started.elapsed();
    sqlx::query("UPDATE lookup_progress SET keyed_through = ? WHERE id = 1")
        .bind(upto)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::debug!(
        through = upto,
        keys = keys.len(),
        ?read,
        ?inserted,
        took = ?started.elapsed(),
        "look-up keys written"
    );
    Ok((upto - through) as u64)
}

/// Removes an integration's keys and settings, a step at a time (returns the rows removed).
pub(super) async fn purge_step(store: &SqliteStore, integration: IntegrationId) -> Result<u64> {
    let mut tx = store.begin_write().await?;
    let removed = sqlx::query(
        "DELETE FROM lookup_keys WHERE (integration_id, kind, key_hash, object_type, object_id) IN \
         (SELECT integration_id, kind, key_hash, object_type, object_id FROM lookup_keys \
          WHERE integration_id = ? LIMIT 20000)",
    )
    .bind(integration)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM integration_settings WHERE integration_id = ?")
        .bind(integration)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(removed)
}

pub(super) async fn settings(
    store: &SqliteStore,
    integration: IntegrationId,
) -> Result<DomainSettings> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT settings FROM integration_settings WHERE integration_id = ?")
            .bind(integration)
            .fetch_optional(&store.pool)
            .await?;
    text.map_or(Ok(DomainSettings::default()), |t| {
        DomainSettings::decode(&t)
    })
}

pub(super) async fn put_settings(
    store: &SqliteStore,
    integration: IntegrationId,
    settings: &DomainSettings,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO integration_settings (integration_id, settings) VALUES (?, ?) \
         ON CONFLICT (integration_id) DO UPDATE SET settings = excluded.settings",
    )
    .bind(integration)
    .bind(settings.encode())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Ids per statement of `states`: the JSON text of their (id, time) pairs stays small.
const STATES_PER_QUERY: usize = 5000;

/// The latest version at most `at` of each `[id, at]` in the JSON array `?3`, with the
/// element's index: the newer of the two tiers' candidates.
///
/// The rows come back as one text (see [`Packed`]): sqlx hands each row from SQLite's
/// thread to the caller's on its own, and for thousands of small rows that hand-over cost
/// more than the query.
const STATES_SQL: &str = "SELECT group_concat(w.key || ',' || v.modified || ',' || v.deleted \
     || ',' || octet_length(v.body) || ':' || v.body, '') FROM json_each(?3) w \
     JOIN record_versions v ON v.id = ( \
         SELECT version_id FROM ( \
             SELECT * FROM (SELECT modified, seq, version_id FROM version_keys \
                 WHERE integration_id = ?1 AND object_type = ?2 AND object_id = w.value ->> 0 \
                 AND modified <= w.value ->> 1 ORDER BY modified DESC, seq DESC LIMIT 1) \
             UNION ALL \
             SELECT * FROM (SELECT modified, seq, version_id FROM recent_version_keys \
                 WHERE integration_id = ?1 AND object_type = ?2 AND object_id = w.value ->> 0 \
                 AND modified <= w.value ->> 1 ORDER BY modified DESC, seq DESC LIMIT 1) \
         ) ORDER BY modified DESC, seq DESC LIMIT 1)";

/// One read transaction on a reading connection: SQLite's WAL gives it one snapshot from
/// its first read on.
struct Snapshot {
    tx: sqlx::Transaction<'static, Sqlite>,
    integration: IntegrationId,
}

pub(super) async fn read_snapshot(
    store: &SqliteStore,
    integration: IntegrationId,
) -> Result<Box<dyn ReadSnapshot>> {
    // Every version stored so far is keyed before the snapshot starts.
    key_versions(store).await?;
    let mut tx = store.pool.begin().await?;
    // The snapshot starts here, not at the first look-up.
    sqlx::query("SELECT 1 FROM store_upkeep LIMIT 1")
        .execute(&mut *tx)
        .await?;
    Ok(Box::new(Snapshot { tx, integration }))
}

#[async_trait::async_trait]
impl ReadSnapshot for Snapshot {
    async fn lookup(&mut self, kind: LookupKind, keys: &[String]) -> Result<Vec<LookupHit>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let asked = AskedKeys::new(keys);
        // One text for every row (see `Packed`).
        let packed: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(key_hash || ',' || object_type || ',' \
             || octet_length(object_id) || ':' || object_id, '') FROM lookup_keys \
             WHERE integration_id = ? AND kind = ? \
             AND key_hash IN (SELECT value FROM json_each(?))",
        )
        .bind(self.integration)
        .bind(kind.code())
        .bind(serde_json::to_string(&asked.hashes()).expect("integers serialize"))
        .fetch_one(&mut *self.tx)
        .await?;
        let mut packed = Packed(packed.as_deref().unwrap_or(""));
        let mut hits = Vec::new();
        while !packed.0.is_empty() {
            let hash = packed.int()?;
            let code = packed.int()?;
            let object_type = i16::try_from(code)
                .ok()
                .and_then(ObjectType::from_code)
                .ok_or_else(|| StoreError::Corrupt(format!("object type {code}")))?;
            let object_id = packed.text()?.to_owned();
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
        // One statement for every id asked: json_each drives the outer loop, and each
        // tier is probed by a correlated subquery through its own primary key (joined to
        // the `all_version_keys` view instead, SQLite scanned both tiers).
        for (part, slice) in wanted.chunks(STATES_PER_QUERY).enumerate() {
            let asked: Vec<(&str, i64)> = slice.iter().map(|(id, at)| (id.as_str(), *at)).collect();
            let packed: Option<String> = sqlx::query_scalar(STATES_SQL)
                .bind(self.integration)
                .bind(object_type.code())
                .bind(serde_json::to_string(&asked).expect("strings serialize"))
                .fetch_one(&mut *self.tx)
                .await?;
            let mut packed = Packed(packed.as_deref().unwrap_or(""));
            while !packed.0.is_empty() {
                let (n, modified, deleted) = (packed.int()?, packed.int()?, packed.int()?);
                let (deleted, body) = (deleted != 0, packed.text()?.to_owned());
                let slot = usize::try_from(n)
                    .ok()
                    .map(|n| part * STATES_PER_QUERY + n)
                    .and_then(|n| found.get_mut(n))
                    .ok_or_else(|| StoreError::Corrupt(format!("state of row {n}")))?;
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

/// The rows of a query packed into one text by `group_concat`: each integer followed by
/// `,`, each text preceded by its length in bytes and `:` (so any text may follow).
struct Packed<'a>(&'a str);

impl<'a> Packed<'a> {
    fn corrupt() -> StoreError {
        StoreError::Corrupt("a packed row of the associations' reads".into())
    }

    fn number(&mut self, end: char) -> Result<i64> {
        let (digits, rest) = self.0.split_once(end).ok_or_else(Self::corrupt)?;
        self.0 = rest;
        digits.parse().map_err(|_| Self::corrupt())
    }

    fn int(&mut self) -> Result<i64> {
        self.number(',')
    }

    fn text(&mut self) -> Result<&'a str> {
        let len = usize::try_from(self.number(':')?).map_err(|_| Self::corrupt())?;
        let text = self.0.get(..len).ok_or_else(Self::corrupt)?;
        self.0 = &self.0[len..];
        Ok(text)
    }
}

/// Erases these records completely (see `Store::erase_records`). In one transaction with
/// `secure_delete` on, so the freed cells and pages are zeroed, then a truncating
/// checkpoint, so that neither the database file nor its WAL keeps the erased bytes.
pub(super) async fn erase_records(
    store: &SqliteStore,
    integration: IntegrationId,
    records: &[(ObjectType, String)],
    asked: &str,
) -> Result<u64> {
    let mut tx = store.begin_write().await?;
    sqlx::query("PRAGMA secure_delete = ON")
        .execute(&mut *tx)
        .await?;
    let mut bodies = Vec::new();
    let (mut main_removed, mut recent_removed, mut versions) = (0i64, 0i64, 0u64);
    for (object_type, object_id) in records {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT v.body FROM all_version_keys k \
             JOIN record_versions v ON v.id = k.version_id \
             WHERE k.integration_id = ? AND k.object_type = ? AND k.object_id = ?",
        )
        .bind(integration)
        .bind(object_type.code())
        .bind(object_id)
        .fetch_all(&mut *tx)
        .await?;
        for body in rows {
            for (kind, key) in intake_model::associate::lookup_keys(*object_type, &body) {
                sqlx::query(
                    "DELETE FROM lookup_keys WHERE integration_id = ? AND kind = ? \
                     AND key_hash = ? AND object_type = ? AND object_id = ?",
                )
                .bind(integration)
                .bind(kind.code())
                .bind(crate::lookups::key_hash(&key))
                .bind(object_type.code())
                .bind(object_id)
                .execute(&mut *tx)
                .await?;
            }
            bodies.push((*object_type, body));
        }
        for tier in [MAIN, RECENT] {
            versions += sqlx::query(&format!(
                "DELETE FROM record_versions WHERE id IN (SELECT version_id FROM {tier} \
                 WHERE integration_id = ? AND object_type = ? AND object_id = ?)"
            ))
            .bind(integration)
            .bind(object_type.code())
            .bind(object_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let keys = sqlx::query(&format!(
                "DELETE FROM {tier} WHERE integration_id = ? AND object_type = ? AND object_id = ?"
            ))
            .bind(integration)
            .bind(object_type.code())
            .bind(object_id)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
            if tier == MAIN {
                main_removed += keys;
            } else {
                recent_removed += keys;
            }
        }
    }
    let counts = tiers::count_keys(&mut tx, -main_removed, -recent_removed).await?;
    for quoted in crate::lookups::quoted_values(asked, &bodies) {
        sqlx::query(
            "UPDATE request_errors SET description = ? WHERE instr(lower(description), lower(?)) > 0 \
             AND seq IN (SELECT seq FROM requests WHERE integration_id = ?)",
        )
        .bind(ERASED_DESCRIPTION)
        .bind(quoted)
        .bind(integration)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("PRAGMA secure_delete = OFF")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    store.tiers.set(counts);
    store.reports.forget_all();
    checkpoint(store).await;
    Ok(versions)
}

/// Copies the WAL into the database file and empties it, retrying while readers hold
/// older snapshots; a checkpoint that cannot finish now is left to SQLite's own.
async fn checkpoint(store: &SqliteStore) {
    for _ in 0..50 {
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&store.writer)
            .await
        {
            Ok((0, _, _)) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(err) => {
                tracing::warn!("checkpoint after an erasure: {err}");
                return;
            }
        }
    }
    tracing::warn!("checkpoint after an erasure: readers kept it busy; SQLite's own will follow");
}
