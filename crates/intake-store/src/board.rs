//! The board projection as both backends read it back: rows of `board_facts` (one per
//! stored version of a DEAL, ACCOUNT or BUSINESS_USER, see [`intake_model::BoardFact`])
//! collected into one text, and reduced to each record's latest version.
//!
//! The board as it stands now (no `asOf`) is read from [`BoardCache`]: each record's latest
//! facts per integration and type, kept in memory and brought up to date at each call from
//! the rows committed since, so that a call reads only what changed (see
//! [`BoardCache::current`] for why that is exact). The board as of an earlier time starts
//! from the same cache, which also holds the facts of earlier versions up to a budget
//! ([`BoardCache::as_of`]). The server drops the cache of a board nobody asks for
//! ([`crate::Store::forget_board`]).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use intake_model::{BoardFact, BoardFacts, ObjectType};

use crate::{IntegrationId, RequestSeq};

/// A piece of [`BoardRecords::text`]; `len == u32::MAX` for none.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

const NONE: Span = Span {
    start: 0,
    len: u32::MAX,
};

#[derive(Clone, Copy, Debug)]
struct Row {
    object_id: Span,
    facts: [Span; 7],
    /// Whether the spans are in [`BoardRecords::extra`] (else in `text`).
    extra: bool,
}

/// One record as the board reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardRecord<'a> {
    pub object_id: &'a str,
    pub facts: BoardFacts<'a>,
}

/// The records of one type that exist and are not deleted at some time, each with the
/// facts of its latest version by then, in no particular order. Their texts live in one
/// buffer (two for a board as of an earlier time: the cache's, and the versions read to
/// correct it): reading half a million of them makes no allocation per record. A clone
/// shares the buffers (the cache hands out the same records to every call).
#[derive(Clone, Debug, Default)]
pub struct BoardRecords {
    text: Arc<String>,
    extra: Arc<String>,
    rows: Arc<Vec<Row>>,
}

impl BoardRecords {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether both are the very same records (not equal ones: the same buffers, as the
    /// store's cache hands out while nothing changed).
    pub fn same(&self, other: &BoardRecords) -> bool {
        Arc::ptr_eq(&self.rows, &other.rows)
            && Arc::ptr_eq(&self.text, &other.text)
            && Arc::ptr_eq(&self.extra, &other.extra)
    }

    /// The `i`th record (`i < len()`).
    pub fn get(&self, i: usize) -> BoardRecord<'_> {
        let row = &self.rows[i];
        BoardRecord {
            object_id: self.span(row, row.object_id).unwrap_or_default(),
            facts: row.facts.map(|f| self.span(row, f)),
        }
    }

    /// The objectId of the `i`th record.
    pub fn object_id(&self, i: usize) -> &str {
        let row = &self.rows[i];
        self.span(row, row.object_id).unwrap_or_default()
    }

    /// One fact of the `i`th record.
    pub fn fact(&self, i: usize, fact: BoardFact) -> Option<&str> {
        let row = &self.rows[i];
        self.span(row, row.facts[fact as usize])
    }

    pub fn iter(&self) -> impl Iterator<Item = BoardRecord<'_>> + '_ {
        (0..self.rows.len()).map(|i| self.get(i))
    }

    fn span(&self, row: &Row, span: Span) -> Option<&str> {
        if span.len == u32::MAX {
            return None;
        }
        let text = if row.extra { &self.extra } else { &self.text };
        let start = span.start as usize;
        Some(&text[start..start + span.len as usize])
    }
}

/// Records given as they are (the later of two with the same objectId wins), as a store
/// would hand them back: for tests of what reads them.
impl<'a> FromIterator<BoardRecord<'a>> for BoardRecords {
    fn from_iter<I: IntoIterator<Item = BoardRecord<'a>>>(records: I) -> BoardRecords {
        let mut collector = Collector::default();
        for (seq, record) in records.into_iter().enumerate() {
            collector
                .push(record.object_id, 0, seq as i64, 0, false, record.facts)
                .expect("test records fit in 4 GiB");
        }
        collector.finish()
    }
}

/// A row as read, before the latest version of each record is chosen.
struct Pending {
    row: Row,
    modified: i64,
    seq: i64,
    line: i64,
    deleted: bool,
}

/// Collects the rows of `board_facts` a backend reads, in any order, and keeps each
/// record's latest version (greatest modifiedDate, then request sequence) unless it is a
/// delete.
#[derive(Default)]
pub(crate) struct Collector {
    text: String,
    rows: Vec<Pending>,
}

/// Appends `value` to `text`, and says where it went.
fn put(text: &mut String, value: Option<&str>) -> crate::Result<Span> {
    let Some(value) = value else {
        return Ok(NONE);
    };
    let corrupt = || crate::StoreError::Corrupt("the board projection passes 4 GiB".into());
    let start = u32::try_from(text.len()).map_err(|_| corrupt())?;
    let len = u32::try_from(value.len())
        .ok()
        .filter(|len| *len < u32::MAX && start.checked_add(*len).is_some())
        .ok_or_else(corrupt)?;
    text.push_str(value);
    Ok(Span { start, len })
}

fn span_text(text: &str, span: Span) -> &str {
    &text[span.start as usize..(span.start + span.len) as usize]
}

impl Collector {
    pub(crate) fn push(
        &mut self,
        object_id: &str,
        modified: i64,
        seq: i64,
        line: i64,
        deleted: bool,
        facts: BoardFacts<'_>,
    ) -> crate::Result<()> {
        let object_id = put(&mut self.text, Some(object_id))?;
        let mut spans = [NONE; 7];
        for (span, fact) in spans.iter_mut().zip(facts) {
            *span = put(&mut self.text, fact)?;
        }
        self.rows.push(Pending {
            row: Row {
                object_id,
                facts: spans,
                extra: false,
            },
            modified,
            seq,
            line,
            deleted,
        });
        Ok(())
    }

    /// A row as a backend reads it.
    pub(crate) fn push_row(&mut self, row: &FactRow<'_>) -> crate::Result<()> {
        self.push(
            row.object_id,
            row.modified,
            row.seq,
            row.line,
            row.deleted,
            row.facts,
        )
    }

    pub(crate) fn finish(self) -> BoardRecords {
        let Collector { text, rows } = self;
        let mut latest: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        for (i, pending) in rows.iter().enumerate() {
            let span = pending.row.object_id;
            let id = &text[span.start as usize..(span.start + span.len) as usize];
            match latest.entry(id) {
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                Entry::Occupied(mut slot) => {
                    let kept = &rows[*slot.get()];
                    if (pending.modified, pending.seq) > (kept.modified, kept.seq) {
                        slot.insert(i);
                    }
                }
            }
        }
        let kept: Vec<Row> = if latest.len() == rows.len() {
            drop(latest);
            rows.into_iter()
                .filter(|p| !p.deleted)
                .map(|p| p.row)
                .collect()
        } else {
            let mut winner = vec![false; rows.len()];
            for i in latest.into_values() {
                winner[i] = true;
            }
            rows.into_iter()
                .zip(winner)
                .filter(|(p, won)| *won && !p.deleted)
                .map(|(p, _)| p.row)
                .collect()
        };
        BoardRecords {
            text: Arc::new(text),
            extra: Arc::default(),
            rows: Arc::new(kept),
        }
    }
}

/// One row of `board_facts` as a backend reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FactRow<'a> {
    pub object_id: &'a str,
    pub modified: i64,
    pub seq: RequestSeq,
    pub line: i64,
    pub deleted: bool,
    pub facts: BoardFacts<'a>,
}

/// An upload of one type to an integration, as [`BoardCache`] follows it: the lines
/// stored through (`checkpoint_line`, committed with those lines' rows), and whether it
/// is settled (a final status reached a while ago: it stores nothing more).
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub(crate) struct UploadMark {
    pub seq: RequestSeq,
    pub checkpoint: i64,
    pub settled: bool,
}

/// How long after its final status an upload is followed still (see
/// [`BoardCache::current`]).
pub(crate) const SETTLED_AFTER_MS: i64 = 60_000;

/// The columns of `board_facts`, in the order both backends write them.
pub(crate) const FACT_COLUMNS: &str = "integration_id, object_type, seq, line, object_id, \
     modified, deleted, label, status, stage, account_id, owner_id, close_date, amount";

/// [`Projection::uploads`], whose SQL is the same in both dialects (see `same_sql`):
/// expands to `board_uploads(store, integration, object_type, from)` reading `$read`.
macro_rules! board_statements {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        /// [`Store::board_asked`](crate::Store::board_asked).
        pub(super) async fn board_asked(
            store: &$store,
            integration: $crate::IntegrationId,
            at_ms: i64,
        ) -> $crate::Result<()> {
            sqlx::query(
                "UPDATE integrations SET board_asked_ms = $1 WHERE id = $2 \
                 AND coalesce(board_asked_ms, 0) < $1",
            )
            .bind(at_ms)
            .bind(integration)
            .execute(&store.$write)
            .await?;
            Ok(())
        }

        pub(super) async fn board_uploads(
            store: &$store,
            integration: $crate::IntegrationId,
            object_type: intake_model::ObjectType,
            from: $crate::RequestSeq,
        ) -> $crate::Result<Vec<$crate::board::UploadMark>> {
            let sql = "SELECT seq, checkpoint_line AS checkpoint, \
                 status IN ('DONE', 'FAILED', 'CANCELLED') AND coalesce(finished_at_ms, 0) < $1 \
                 AS settled \
                 FROM requests WHERE seq >= $2 AND integration_id = $3 AND kind = 'UPLOAD' \
                 AND object_type = $4 ORDER BY seq";
            Ok(sqlx::query_as(sql)
                .bind($crate::now_unix_ms() - $crate::board::SETTLED_AFTER_MS)
                .bind(from)
                .bind(integration)
                .bind(object_type.code())
                .fetch_all(&store.$read)
                .await?)
        }

        /// [`Store::board_integrations`](crate::Store::board_integrations).
        pub(super) async fn board_integrations(
            store: &$store,
            asked_since_ms: i64,
        ) -> $crate::Result<Vec<($crate::IntegrationId, bool)>> {
            use intake_model::ObjectType::{Account, BusinessUser, Deal};
            let sql = "SELECT i.id, EXISTS (SELECT 1 FROM requests r \
                     WHERE r.status IN ('PENDING', 'IN_PROGRESS') AND r.integration_id = i.id \
                     AND r.kind = 'UPLOAD' AND r.object_type IN ($1, $2, $3)) \
                 FROM integrations i WHERE NOT i.deleted AND i.board_asked_ms >= $4 \
                 AND EXISTS (SELECT 1 FROM board_facts b \
                     WHERE b.integration_id = i.id AND b.object_type = $2) \
                 ORDER BY i.id";
            Ok(sqlx::query_as(sql)
                .bind(Account.code())
                .bind(Deal.code())
                .bind(BusinessUser.code())
                .bind(asked_since_ms)
                .fetch_all(&store.$read)
                .await?)
        }
    };
}
pub(crate) use board_statements;

/// What [`BoardCache`] reads of a backend.
pub(crate) trait Projection: Sync {
    /// The integration's projection epoch of the type (0 when never set): raised by every
    /// change of rows already written (a schema change that drops facts, a purge).
    fn epoch(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
    ) -> impl Future<Output = crate::Result<i64>> + Send;
    /// The integration's uploads of the type from request `from` on, by seq.
    fn uploads(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        from: RequestSeq,
    ) -> impl Future<Output = crate::Result<Vec<UploadMark>>> + Send;
    /// The rows of the type with (seq, line) in `(after, through]`, in key order, each
    /// handed to `each`.
    fn rows(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        after: (RequestSeq, i64),
        through: (RequestSeq, i64),
        each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> crate::Result<()> + Send),
    ) -> impl Future<Output = crate::Result<()>> + Send;
    /// The rows of the type with these keys (seq, line), in any order, each handed to
    /// `each`; a key without a row is skipped.
    fn rows_at(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        keys: &[(RequestSeq, i64)],
        each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> crate::Result<()> + Send),
    ) -> impl Future<Output = crate::Result<()>> + Send;
}

/// Where one earlier version of a record is, when it was modified, and, while the
/// cache's budget for them lasts, its facts (else a board as of an earlier time reads the
/// version back by key).
#[derive(Clone, Copy, Debug)]
struct VersionKey {
    modified: i64,
    seq: RequestSeq,
    line: i64,
    /// The version's facts in [`Latest::text`] ([`NONE`] each for a delete).
    held: Option<[Span; 7]>,
    deleted: bool,
}

/// The bytes of earlier versions' facts one integration's type holds in memory: beyond
/// them, earlier versions are kept by key only. 100,000 earlier versions of the bench's
/// deals take about 10 MB of text.
const HELD_OLDER_BYTES: usize = 48 << 20;

/// The bytes of text `facts` take.
fn facts_len(facts: &[Span; 7]) -> usize {
    facts
        .iter()
        .filter(|f| f.len != u32::MAX)
        .map(|f| f.len as usize)
        .sum()
}

/// The latest version of each record of one type (deleted ones too, to compare a later
/// row with), kept up to date row by row, and each earlier version: its key, and its
/// facts while [`HELD_OLDER_BYTES`] lasts (a board as of an earlier time reads the others
/// back). Texts are appended to one buffer; what a newer version replaces and is not held
/// is garbage until [`Latest::compact`].
#[derive(Default)]
struct Latest {
    text: Arc<String>,
    rows: Vec<Pending>,
    /// The rows by objectId: each row's number and its objectId's hash (kept, so that
    /// growing the table reads no text).
    index: hashbrown::HashTable<(u32, u64)>,
    hasher: hashbrown::DefaultHashBuilder,
    /// The earlier versions of the records (by row) that have any.
    older: hashbrown::HashMap<u32, Vec<VersionKey>>,
    /// Every version read (the rows of a whole read).
    versions: usize,
    garbage: usize,
    /// The bytes of text of the earlier versions held, and at most how many.
    held: usize,
    budget: usize,
}

impl Latest {
    fn push(&mut self, row: &FactRow<'_>) -> crate::Result<()> {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one(row.object_id);
        let found = self
            .index
            .find(hash, |&(i, h)| {
                h == hash
                    && span_text(&self.text, self.rows[i as usize].row.object_id) == row.object_id
            })
            .map(|&(i, _)| i);
        let text = Arc::make_mut(&mut self.text);
        let put_facts = |text: &mut String, deleted: bool| -> crate::Result<[Span; 7]> {
            let mut spans = [NONE; 7];
            if !deleted {
                for (span, fact) in spans.iter_mut().zip(row.facts) {
                    *span = put(text, fact)?;
                }
            }
            Ok(spans)
        };
        self.versions += 1;
        match found {
            Some(i) => {
                let kept = &mut self.rows[i as usize];
                let room = self.held < self.budget;
                // As the Collector: the greatest (modifiedDate, request), the first read
                // of equals.
                let older = if (row.modified, row.seq) > (kept.modified, kept.seq) {
                    let replaced_len = facts_len(&kept.row.facts);
                    let held = if room {
                        self.held += replaced_len;
                        Some(kept.row.facts)
                    } else {
                        self.garbage += replaced_len;
                        None
                    };
                    let replaced = VersionKey {
                        modified: kept.modified,
                        seq: kept.seq,
                        line: kept.line,
                        held,
                        deleted: kept.deleted,
                    };
                    kept.row.facts = put_facts(text, row.deleted)?;
                    kept.modified = row.modified;
                    kept.seq = row.seq;
                    kept.line = row.line;
                    kept.deleted = row.deleted;
                    replaced
                } else {
                    let held = if room {
                        let facts = put_facts(text, row.deleted)?;
                        self.held += facts_len(&facts);
                        Some(facts)
                    } else {
                        None
                    };
                    VersionKey {
                        modified: row.modified,
                        seq: row.seq,
                        line: row.line,
                        held,
                        deleted: row.deleted,
                    }
                };
                self.older.entry(i).or_default().push(older);
            }
            None => {
                let object_id = put(text, Some(row.object_id))?;
                let facts = put_facts(text, row.deleted)?;
                let i = u32::try_from(self.rows.len()).map_err(|_| {
                    crate::StoreError::Corrupt("the board projection passes 4 G rows".into())
                })?;
                self.rows.push(Pending {
                    row: Row {
                        object_id,
                        facts,
                        extra: false,
                    },
                    modified: row.modified,
                    seq: row.seq,
                    line: row.line,
                    deleted: row.deleted,
                });
                self.index.insert_unique(hash, (i, hash), |&(_, h)| h);
            }
        }
        Ok(())
    }

    /// Writes the texts again without the garbage, once it is half the buffer.
    fn compact(&mut self) -> crate::Result<()> {
        if self.garbage < 1 << 20 || self.garbage * 2 < self.text.len() {
            return Ok(());
        }
        let mut text = String::with_capacity(self.text.len() - self.garbage);
        let old = &self.text;
        let copy = |text: &mut String, facts: &mut [Span; 7]| -> crate::Result<()> {
            for fact in facts {
                if fact.len != u32::MAX {
                    *fact = put(text, Some(span_text(old, *fact)))?;
                }
            }
            Ok(())
        };
        for pending in &mut self.rows {
            let row = &mut pending.row;
            row.object_id = put(&mut text, Some(span_text(old, row.object_id)))?;
            copy(&mut text, &mut row.facts)?;
        }
        for older in self.older.values_mut() {
            for held in older.iter_mut().filter_map(|k| k.held.as_mut()) {
                copy(&mut text, held)?;
            }
        }
        self.text = Arc::new(text);
        self.garbage = 0;
        Ok(())
    }

    fn records(&self) -> BoardRecords {
        BoardRecords {
            text: Arc::clone(&self.text),
            extra: Arc::default(),
            rows: Arc::new(
                self.rows
                    .iter()
                    .filter(|p| !p.deleted)
                    .map(|p| p.row)
                    .collect(),
            ),
        }
    }

    /// The records as of `as_of`, as far as they are known here: those whose latest
    /// version by then is the latest one or an earlier one held, and, of each other record,
    /// the key of its latest version by then (none: it did not exist yet).
    fn as_of(&self, as_of: i64) -> (Vec<Row>, Vec<(RequestSeq, i64)>) {
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut fetch = Vec::new();
        for (i, pending) in self.rows.iter().enumerate() {
            if pending.modified <= as_of {
                if !pending.deleted {
                    rows.push(pending.row);
                }
                continue;
            }
            let Some(older) = self.older.get(&(i as u32)) else {
                continue;
            };
            // The greatest (modifiedDate, request) by then, as the Collector chooses.
            let Some(key) = older
                .iter()
                .filter(|k| k.modified <= as_of)
                .max_by_key(|k| (k.modified, k.seq))
            else {
                continue;
            };
            match key.held {
                Some(_) if key.deleted => {}
                Some(facts) => rows.push(Row {
                    object_id: pending.row.object_id,
                    facts,
                    extra: false,
                }),
                None => fetch.push((key.seq, key.line)),
            }
        }
        (rows, fetch)
    }
}

/// Whether reading `fetch` versions by key is cheaper than reading all `versions` rows of
/// the type: a read by key costs a look-up in the projection's index per row, a whole read
/// a sequential pass (and SQLite's formatting of every row) over all of them. Measured on
/// the bench's store (BENCHMARKS.md): a whole read of 500,000 rows is about 1 s of CPU, a
/// read by key of 50,000 about 0.1 s.
fn read_by_keys(fetch: usize, versions: usize) -> bool {
    fetch <= versions / 4
}

/// What the cache holds of one integration's type.
#[derive(Default)]
struct Followed {
    loaded: bool,
    epoch: i64,
    /// Every upload below this seq is settled and read whole.
    settled_below: RequestSeq,
    /// The lines read of each upload from `settled_below` on.
    read_through: HashMap<RequestSeq, i64>,
    latest: Latest,
    records: Option<BoardRecords>,
    /// The last board as of an earlier time: that time, the records it was made from,
    /// and the records then.
    as_of: Option<(i64, BoardRecords, BoardRecords)>,
}

impl Followed {
    /// The records as they stand (built once per change).
    fn records(&mut self) -> crate::Result<BoardRecords> {
        Ok(match &self.records {
            Some(records) => records.clone(),
            None => {
                self.latest.compact()?;
                let records = self.latest.records();
                self.records = Some(records.clone());
                records
            }
        })
    }
}

/// What one call of [`BoardCache::current`] did, for the log.
#[derive(Debug, Default)]
struct Refresh {
    reloaded: bool,
    uploads_read: usize,
    rows: usize,
}

/// What is followed of each integration's type (by its code), each behind its own lock.
type FollowedTypes = HashMap<(IntegrationId, i16), Arc<tokio::sync::Mutex<Followed>>>;

/// The board projection's latest facts per integration and type, in memory.
pub(crate) struct BoardCache {
    followed: std::sync::Mutex<FollowedTypes>,
    /// The bytes of earlier versions' facts each type may hold.
    held_older_bytes: usize,
}

impl Default for BoardCache {
    fn default() -> BoardCache {
        BoardCache::holding(HELD_OLDER_BYTES)
    }
}

impl BoardCache {
    /// A cache whose types hold at most `held_older_bytes` of earlier versions' facts each.
    fn holding(held_older_bytes: usize) -> BoardCache {
        BoardCache {
            followed: std::sync::Mutex::default(),
            held_older_bytes,
        }
    }

    fn entry(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
    ) -> Arc<tokio::sync::Mutex<Followed>> {
        let mut followed = self.followed.lock().expect("board cache lock");
        Arc::clone(
            followed
                .entry((integration, object_type.code()))
                .or_default(),
        )
    }

    /// The type's entry, locked and brought up to date with what was committed since it
    /// last read ([`bring_up_to_date`]), and what that read; `None` when rows changed in
    /// place under every attempt.
    async fn up_to_date<P: Projection>(
        &self,
        store: &P,
        integration: IntegrationId,
        object_type: ObjectType,
    ) -> crate::Result<(Option<tokio::sync::OwnedMutexGuard<Followed>>, Refresh)> {
        let mut entry = self.entry(integration, object_type).lock_owned().await;
        let mut refresh = Refresh::default();
        let fresh = bring_up_to_date(
            store,
            &mut entry,
            (integration, object_type),
            self.held_older_bytes,
            &mut refresh,
        )
        .await?;
        Ok((fresh.then_some(entry), refresh))
    }

    /// Drops what is held of the integration (every type).
    pub(crate) fn forget(&self, integration: IntegrationId) {
        let mut followed = self.followed.lock().expect("board cache lock");
        followed.retain(|(held, _), _| *held != integration);
    }

    /// The records of the type as they stand, as `board_records` at `i64::MAX` reads
    /// them, from what the cache holds and the rows committed since it last looked.
    ///
    /// Why that is exact: a batch commits its rows with its upload's `checkpoint_line` in
    /// one transaction, and the lines of an upload are stored in order, each once. So the
    /// rows of upload `s` through its checkpoint `c` are exactly its lines `<= c`, all
    /// committed: each call lists the uploads (their checkpoints) and reads, of each, the
    /// lines between what it read before and that checkpoint. Uploads whose final status
    /// is over [`SETTLED_AFTER_MS`] old store nothing more and are no longer listed (with
    /// SQLite's one writer a lower seq cannot appear later; on PostgreSQL an upload's row
    /// is one INSERT, which would have to take that long between taking its seq and
    /// committing). Rows written before change only by a schema change that drops facts,
    /// or a purge; both raise the epoch, read before and after, and the type is then read
    /// again whole.
    pub(crate) async fn current<P: Projection>(
        &self,
        store: &P,
        integration: IntegrationId,
        object_type: ObjectType,
    ) -> crate::Result<BoardRecords> {
        let started = std::time::Instant::now();
        let (mut entry, refresh) = self.up_to_date(store, integration, object_type).await?;
        let Some(entry) = entry.as_mut() else {
            // Rows changed under every attempt: read the type whole, uncached.
            let mut latest = Latest::default();
            all_rows(store, integration, object_type, &mut |row| {
                latest.push(&row)
            })
            .await?;
            return Ok(latest.records());
        };
        let records = entry.records()?;
        tracing::debug!(
            integration,
            ?object_type,
            reloaded = refresh.reloaded,
            uploads_read = refresh.uploads_read,
            rows = refresh.rows,
            records = records.len(),
            took = ?started.elapsed(),
            "board cache"
        );
        Ok(records)
    }

    /// The records of the type as of `as_of`, as `board_records` reads them, from the
    /// cache when that is cheaper than a whole read; `None` when it is not (or when rows
    /// changed in place meanwhile): the caller reads whole.
    ///
    /// Why that is exact: the board as of T takes each record's latest version with
    /// modifiedDate <= T. A record whose latest version is at most T is that version, as
    /// the cache holds it. Of every other record the cache knows each earlier version's key
    /// (seq, line) and modifiedDate, so it knows which version is the latest by T (or that
    /// there is none: the record did not exist yet); it holds that version's facts too
    /// while its budget lasts, and reads back by key just the rows it does not. Stages are
    /// read as of T by the caller; accounts and users come here as their own types.
    pub(crate) async fn as_of<P: Projection>(
        &self,
        store: &P,
        integration: IntegrationId,
        object_type: ObjectType,
        as_of: i64,
    ) -> crate::Result<Option<BoardRecords>> {
        let started = std::time::Instant::now();
        let (mut entry, _) = self.up_to_date(store, integration, object_type).await?;
        let Some(entry) = entry.as_mut() else {
            return Ok(None);
        };
        let now = entry.records()?;
        if let Some((at, from, records)) = &entry.as_of {
            if *at == as_of && from.same(&now) {
                return Ok(Some(records.clone()));
            }
        }
        let (mut rows, mut fetch) = entry.latest.as_of(as_of);
        // In key order: the look-ups then walk the projection's primary key forward.
        fetch.sort_unstable();
        if !read_by_keys(fetch.len(), entry.latest.versions) {
            tracing::debug!(
                integration,
                ?object_type,
                fetch = fetch.len(),
                versions = entry.latest.versions,
                "board as of: a whole read"
            );
            return Ok(None);
        }
        let mut extra = String::new();
        let mut found = 0;
        for keys in fetch.chunks(KEYS_PER_READ) {
            store
                .rows_at(integration, object_type, keys, &mut |row| {
                    found += 1;
                    if row.deleted {
                        return Ok(());
                    }
                    let object_id = put(&mut extra, Some(row.object_id))?;
                    let mut facts = [NONE; 7];
                    for (span, fact) in facts.iter_mut().zip(row.facts) {
                        *span = put(&mut extra, fact)?;
                    }
                    rows.push(Row {
                        object_id,
                        facts,
                        extra: true,
                    });
                    Ok(())
                })
                .await?;
        }
        if found != fetch.len() || store.epoch(integration, object_type).await? != entry.epoch {
            // Rows went or changed under the read (a purge, a schema change): read whole.
            return Ok(None);
        }
        let records = BoardRecords {
            text: Arc::clone(&entry.latest.text),
            extra: Arc::new(extra),
            rows: Arc::new(rows),
        };
        entry.as_of = Some((as_of, now, records.clone()));
        tracing::debug!(
            integration,
            ?object_type,
            as_of,
            read = fetch.len(),
            records = records.len(),
            took = ?started.elapsed(),
            "board cache as of"
        );
        Ok(Some(records))
    }
}

/// Every row of the type's projection, in key order.
async fn all_rows<P: Projection>(
    store: &P,
    integration: IntegrationId,
    object_type: ObjectType,
    each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> crate::Result<()> + Send),
) -> crate::Result<()> {
    store
        .rows(
            integration,
            object_type,
            (RequestSeq::MIN, i64::MIN),
            (RequestSeq::MAX, i64::MAX),
            each,
        )
        .await
}

/// Keys per [`Projection::rows_at`] call.
const KEYS_PER_READ: usize = 10_000;

/// Brings `entry` up to date with what was committed since it last read (all of it when
/// not loaded or at another epoch); false when rows changed in place under every attempt.
async fn bring_up_to_date<P: Projection>(
    store: &P,
    entry: &mut Followed,
    (integration, object_type): (IntegrationId, ObjectType),
    held_older_bytes: usize,
    refresh: &mut Refresh,
) -> crate::Result<bool> {
    for _ in 0..3 {
        let epoch = store.epoch(integration, object_type).await?;
        if !entry.loaded || epoch != entry.epoch {
            *entry = Followed {
                epoch,
                latest: Latest {
                    budget: held_older_bytes,
                    ..Latest::default()
                },
                ..Followed::default()
            };
            refresh.reloaded = true;
        }
        if let Err(err) = follow(store, entry, integration, object_type, refresh).await {
            // Half read: start over at the next call.
            *entry = Followed::default();
            return Err(err);
        }
        entry.loaded = true;
        if store.epoch(integration, object_type).await? == epoch {
            return Ok(true);
        }
        entry.loaded = false;
    }
    *entry = Followed::default();
    Ok(false)
}

/// Reads into `entry` what was committed since it last read.
async fn follow<P: Projection>(
    store: &P,
    entry: &mut Followed,
    integration: IntegrationId,
    object_type: ObjectType,
    refresh: &mut Refresh,
) -> crate::Result<()> {
    let uploads = store
        .uploads(integration, object_type, entry.settled_below)
        .await?;
    let Followed {
        loaded,
        settled_below,
        read_through,
        latest,
        records,
        ..
    } = entry;
    if !*loaded {
        // All at once: every row, but of each upload only the lines through the
        // checkpoint just read (a batch committed since is read at the next call).
        let through: HashMap<RequestSeq, i64> =
            uploads.iter().map(|u| (u.seq, u.checkpoint)).collect();
        let mut rows = 0;
        all_rows(store, integration, object_type, &mut |row| {
            // A row of no listed upload cannot be (rows come from uploads); one would be
            // kept, as the uncached read keeps it.
            if through.get(&row.seq).is_none_or(|c| row.line <= *c) {
                rows += 1;
                latest.push(&row)?;
            }
            Ok(())
        })
        .await?;
        refresh.rows += rows;
        refresh.uploads_read = uploads.len();
        *read_through = through;
        *records = None;
    } else {
        for upload in &uploads {
            let read = read_through.get(&upload.seq).copied().unwrap_or(0);
            if upload.checkpoint < read {
                return Err(crate::StoreError::Corrupt(format!(
                    "request {} went back from line {read} to {}",
                    upload.seq, upload.checkpoint
                )));
            }
            if upload.checkpoint == read {
                continue;
            }
            *records = None;
            let mut rows = 0;
            store
                .rows(
                    integration,
                    object_type,
                    (upload.seq, read),
                    (upload.seq, upload.checkpoint),
                    &mut |row| {
                        rows += 1;
                        latest.push(&row)
                    },
                )
                .await?;
            refresh.rows += rows;
            refresh.uploads_read += 1;
            read_through.insert(upload.seq, upload.checkpoint);
        }
    }
    // Uploads settled from the start of the list on are followed no more.
    let mut below = *settled_below;
    for upload in &uploads {
        if !upload.settled {
            break;
        }
        below = below.max(upload.seq + 1);
    }
    *settled_below = below;
    read_through.retain(|seq, _| *seq >= below);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_version_of_each_record_is_kept_unless_deleted() {
        let mut c = Collector::default();
        let facts = |label: &'static str| -> BoardFacts<'static> {
            [Some(label), None, None, None, None, None, Some("1")]
        };
        c.push("b", 20, 1, 0, false, facts("b-new")).unwrap();
        c.push("a", 10, 1, 0, false, facts("a-old")).unwrap();
        c.push("b", 10, 5, 0, false, facts("b-old")).unwrap();
        c.push("a", 10, 2, 0, false, facts("a-new")).unwrap();
        c.push("gone", 5, 1, 0, false, facts("gone")).unwrap();
        c.push("gone", 6, 1, 0, true, [None; 7]).unwrap();
        c.push("back", 6, 1, 0, true, [None; 7]).unwrap();
        c.push("back", 7, 1, 0, false, facts("back")).unwrap();
        let records = c.finish();
        let mut got: Vec<_> = records
            .iter()
            .map(|r| (r.object_id, r.facts[0].unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, [("a", "a-new"), ("b", "b-new"), ("back", "back")]);
        assert_eq!(records.get(0).facts[1], None);
        assert_eq!(records.get(0).facts[6], Some("1"));

        let mut unique = Collector::default();
        unique.push("x", 1, 1, 0, false, facts("")).unwrap();
        unique.push("y", 1, 1, 0, true, facts("y")).unwrap();
        let records = unique.finish();
        assert_eq!(records.len(), 1);
        assert_eq!(records.get(0).facts[0], Some(""));
    }

    /// A row as (seq, line, objectId, modified, deleted, label).
    type FakeRow = (i64, i64, String, i64, bool, String);

    /// A projection in memory.
    /// A fake row as the projection gives it, its label as the first fact.
    fn fact_row((seq, line, id, modified, deleted, label): &FakeRow) -> FactRow<'_> {
        FactRow {
            object_id: id,
            modified: *modified,
            seq: *seq,
            line: *line,
            deleted: *deleted,
            facts: [Some(label.as_str()), None, None, None, None, None, None],
        }
    }

    #[derive(Default)]
    struct Fake {
        rows: std::sync::Mutex<Vec<FakeRow>>,
        uploads: std::sync::Mutex<Vec<UploadMark>>,
        epoch: std::sync::atomic::AtomicI64,
        /// Keys read by `rows_at`.
        keyed: std::sync::atomic::AtomicUsize,
    }

    impl Projection for Fake {
        async fn epoch(&self, _: IntegrationId, _: ObjectType) -> crate::Result<i64> {
            Ok(self.epoch.load(std::sync::atomic::Ordering::SeqCst))
        }
        async fn uploads(
            &self,
            _: IntegrationId,
            _: ObjectType,
            from: RequestSeq,
        ) -> crate::Result<Vec<UploadMark>> {
            let mut marks: Vec<UploadMark> = self.uploads.lock().unwrap().clone();
            marks.retain(|m| m.seq >= from);
            marks.sort_by_key(|m| m.seq);
            Ok(marks)
        }
        async fn rows(
            &self,
            _: IntegrationId,
            _: ObjectType,
            after: (RequestSeq, i64),
            through: (RequestSeq, i64),
            each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> crate::Result<()> + Send),
        ) -> crate::Result<()> {
            let mut rows = self.rows.lock().unwrap().clone();
            rows.sort_by_key(|r| (r.0, r.1));
            for row in &rows {
                if (row.0, row.1) > after && (row.0, row.1) <= through {
                    each(fact_row(row))?;
                }
            }
            Ok(())
        }
        async fn rows_at(
            &self,
            _: IntegrationId,
            _: ObjectType,
            keys: &[(RequestSeq, i64)],
            each: &mut (dyn for<'r> FnMut(FactRow<'r>) -> crate::Result<()> + Send),
        ) -> crate::Result<()> {
            self.keyed
                .fetch_add(keys.len(), std::sync::atomic::Ordering::SeqCst);
            let rows = self.rows.lock().unwrap().clone();
            for row in &rows {
                if keys.contains(&(row.0, row.1)) {
                    each(fact_row(row))?;
                }
            }
            Ok(())
        }
    }

    impl Fake {
        fn row(&self, seq: i64, line: i64, id: &str, modified: i64, deleted: bool, label: &str) {
            let row = (seq, line, id.into(), modified, deleted, label.into());
            self.rows.lock().unwrap().push(row);
        }
        fn mark(&self, seq: i64, checkpoint: i64, settled: bool) {
            let mut uploads = self.uploads.lock().unwrap();
            uploads.retain(|m| m.seq != seq);
            uploads.push(UploadMark {
                seq,
                checkpoint,
                settled,
            });
        }
        /// What an uncached read gives: every row through its upload's checkpoint.
        fn whole(&self) -> Vec<(String, String)> {
            self.whole_as_of(i64::MAX)
        }

        /// What an uncached read as of `as_of` gives.
        fn whole_as_of(&self, as_of: i64) -> Vec<(String, String)> {
            let uploads = self.uploads.lock().unwrap().clone();
            let mut rows = self.rows.lock().unwrap().clone();
            rows.sort_by_key(|r| (r.0, r.1));
            let mut c = Collector::default();
            for (seq, line, id, modified, deleted, label) in &rows {
                let through = uploads.iter().find(|m| m.seq == *seq).unwrap().checkpoint;
                if *line <= through && *modified <= as_of {
                    let facts = [Some(label.as_str()), None, None, None, None, None, None];
                    c.push(id, *modified, *seq, *line, *deleted, facts).unwrap();
                }
            }
            sorted(&c.finish())
        }
    }

    fn sorted(records: &BoardRecords) -> Vec<(String, String)> {
        let mut got: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.object_id.to_owned(), r.facts[0].unwrap().to_owned()))
            .collect();
        got.sort();
        got
    }

    #[tokio::test]
    async fn the_cache_reads_what_was_committed_since_and_agrees_with_a_whole_read() {
        let fake = Fake::default();
        // Room for 40 of the 500-byte earlier versions below.
        let cache = BoardCache::holding(20_000);
        let current = || cache.current(&fake, 1, ObjectType::Deal);
        assert!(current().await.unwrap().is_empty());

        // Upload 10: lines 1-2 committed, line 3 written but past the checkpoint read.
        fake.row(10, 1, "a", 100, false, "a1");
        fake.row(10, 2, "b", 100, false, "b1");
        fake.row(10, 3, "c", 100, false, "c1");
        fake.mark(10, 2, false);
        let first = current().await.unwrap();
        assert_eq!(sorted(&first), fake.whole());
        assert_eq!(first.len(), 2);
        // Nothing new: the very same records.
        assert!(current().await.unwrap().same(&first));

        // Its checkpoint moves; upload 11 replaces a (newer), deletes b, and brings an
        // older version of c (kept out), while upload 10 settles.
        fake.mark(10, 3, true);
        fake.row(11, 1, "a", 200, false, "a2");
        fake.row(11, 2, "b", 150, true, "");
        fake.row(11, 3, "c", 50, false, "c-old");
        fake.row(11, 4, "d", 100, false, "d1");
        fake.mark(11, 4, false);
        let second = current().await.unwrap();
        assert!(!second.same(&first));
        assert_eq!(sorted(&second), fake.whole());
        assert_eq!(
            sorted(&second),
            [("a", "a2"), ("c", "c1"), ("d", "d1")].map(|(a, b)| (a.into(), b.into()))
        );

        // b comes back; then rows change in place under a new epoch: read again whole.
        fake.row(11, 5, "b", 300, false, "b3");
        fake.mark(11, 5, true);
        assert_eq!(sorted(&current().await.unwrap()), fake.whole());
        fake.rows.lock().unwrap().retain(|r| r.2 != "a");
        fake.epoch.store(1, std::sync::atomic::Ordering::SeqCst);
        let after = current().await.unwrap();
        assert_eq!(sorted(&after), fake.whole());
        assert!(after.iter().all(|r| r.object_id != "a"));

        // Many replacements: the garbage is compacted away, the answer unchanged.
        for k in 0..5000 {
            fake.row(12, k + 1, "big", 1000 + k, false, &"x".repeat(500));
        }
        fake.mark(12, 5000, false);
        let big = current().await.unwrap();
        assert_eq!(sorted(&big), fake.whole());
        assert!(big.text.len() < 100_000, "{}", big.text.len());
        // The earlier versions held kept their texts through the compaction; the others
        // are read back by key.
        for as_of in [1010, 4000] {
            let keyed = fake.keyed.load(std::sync::atomic::Ordering::SeqCst);
            let then = cache.as_of(&fake, 1, ObjectType::Deal, as_of).await;
            assert_eq!(sorted(&then.unwrap().unwrap()), fake.whole_as_of(as_of));
            let read = fake.keyed.load(std::sync::atomic::Ordering::SeqCst) - keyed;
            assert_eq!(read, usize::from(as_of == 4000), "as of {as_of}");
        }
    }

    /// The board as of a time, from the cache, is the whole read as of that time: random
    /// worlds of records with several versions each (out of order, deletes, re-creates) over
    /// several uploads, at every time around the versions', read by key or whole.
    #[tokio::test]
    async fn a_board_as_of_a_time_from_the_cache_is_the_whole_read_then() {
        // No earlier version held, some, all.
        for budget in [0, 60, usize::MAX] {
            let (by_key, whole, held) = as_of_worlds(budget).await;
            match budget {
                0 => assert!(by_key > 20 && whole >= 3, "{by_key} by key, {whole} whole"),
                60 => assert!(by_key > 10 && held > 10, "{by_key} by key, {held} held"),
                _ => assert!(by_key == 0 && whole == 0, "{by_key} by key, {whole} whole"),
            }
        }
    }

    /// Random worlds, each asked as of every time around its versions' with a cache that
    /// holds `budget` bytes of earlier versions: how many answers read versions by key,
    /// how many were left to a whole read, and how many came from memory alone.
    async fn as_of_worlds(budget: usize) -> (usize, usize, usize) {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let (mut by_key, mut whole, mut held) = (0, 0, 0);
        for world in 0..40 {
            let fake = Fake::default();
            let cache = BoardCache::holding(budget);
            let records = 1 + next(30);
            let uploads = 1 + next(6) as i64;
            for seq in 1..=uploads {
                let mut line = 0;
                for r in 0..records {
                    // An upload names a record at most once, as a file must.
                    if next(3) == 0 {
                        continue;
                    }
                    line += 1;
                    let modified = next(100) as i64;
                    let deleted = next(5) == 0;
                    let label = format!("r{r}-s{seq}-m{modified}");
                    fake.row(seq, line, &format!("r{r}"), modified, deleted, &label);
                }
                fake.mark(seq, line, next(2) == 0);
                // Read between uploads too, so that the cache follows them row by row.
                if next(2) == 0 {
                    cache.current(&fake, 1, ObjectType::Deal).await.unwrap();
                }
            }
            for as_of in [-1, 0, 10, 50, 90, 98, 99, 100, i64::MAX - 1] {
                let before = fake.keyed.load(std::sync::atomic::Ordering::SeqCst);
                let got = cache
                    .as_of(&fake, 1, ObjectType::Deal, as_of)
                    .await
                    .unwrap();
                let Some(got) = got else {
                    whole += 1;
                    continue;
                };
                if fake.keyed.load(std::sync::atomic::Ordering::SeqCst) > before {
                    by_key += 1;
                } else {
                    held += 1;
                }
                assert_eq!(
                    sorted(&got),
                    fake.whole_as_of(as_of),
                    "world {world} as of {as_of}, {budget} bytes held"
                );
                // Asked again: the same records.
                let again = cache
                    .as_of(&fake, 1, ObjectType::Deal, as_of)
                    .await
                    .unwrap();
                assert!(again.unwrap().same(&got));
            }
            assert_eq!(
                sorted(&cache.current(&fake, 1, ObjectType::Deal).await.unwrap()),
                fake.whole()
            );
        }
        (by_key, whole, held)
    }
}
