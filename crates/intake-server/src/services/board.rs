//! The deal board (`GET /intake/v1/deal-board`): the stages as columns with the deals shown
//! in each, and every deal of the status asked that is not shown, with why. The rules are
//! docs/API.md's deal board section.
//!
//! The deals, accounts and users are read from the store's board projection
//! ([`intake_store::Store::board_records`]: a few raw JSON values per record, not its
//! body), the three at once; the stages, a handful, from their bodies. The board is built
//! as indexes into what was read, and written as it is sent ([`BoardBody`]): the answer
//! for half a million deals is tens of megabytes, never held whole. Every check that can
//! fail is made before the first byte, so an error still answers with the envelope.
//!
//! Decisions where the contract is silent:
//! - `asOf` is echoed as the time it was read as, ISO-8601 UTC with milliseconds
//!   (`asOf=2024-05-01T12:00:00+02:00` answers `"asOf": "2024-05-01T10:00:00.000Z"`);
//!   fractions of a second are dropped, as for every `asOf`.
//! - `totalAmount` is the f64 sum of the amounts; a whole number below 2^53 is written
//!   without a fraction (`7000`, not `7000.0`), any other finite one as the shortest text
//!   that reads back as the same f64; a sum that overflows f64 is written `null`.
//! - The status filter compares the deal's stored `status` (the model defaults it to
//!   `OPEN`); `ALL` takes every deal.
//! - Strings are compared byte by byte (objectId and closeDate orders, as the store's
//!   objectId order).
//!
//! The bytes are those serde_json writes for [`intake_model::wire::intake::DealBoard`]
//! (the tests below check it): field order of the wire types, no spaces, strings escaped
//! as serde_json escapes them, `amount` as the body holds it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use intake_model::{fact_text, format_timestamp, BoardFact, ObjectType};
use intake_store::{BoardRecords, CompanyId, IntegrationId};
use serde::Deserialize;

use crate::extract::QueryParams;
use crate::services::records;
use crate::{ApiError, AppState};

/// The `status` values the board takes; `OPEN` when absent.
const STATUSES: [&str; 4] = ["OPEN", "WON", "LOST", "ALL"];

fn status(params: &QueryParams) -> Result<&'static str, ApiError> {
    match params.optional("status") {
        None => Ok("OPEN"),
        Some(raw) if STATUSES.contains(&raw) => {
            Ok(STATUSES.into_iter().find(|s| *s == raw).unwrap_or("OPEN"))
        }
        Some(raw) => Err(ApiError::InvalidParameter {
            name: "status",
            expected: "one of OPEN, WON, LOST, ALL",
            got: raw.to_owned(),
        }),
    }
}

#[derive(Deserialize)]
struct StageBody<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "isActive", default)]
    is_active: Option<bool>,
    #[serde(rename = "sortOrder", default)]
    sort_order: Option<i64>,
}

#[derive(Clone, PartialEq, Eq)]
struct Stage {
    object_id: String,
    name: Option<String>,
    is_active: bool,
    sort_order: i64,
}

/// No row (an unknown or deleted account or user).
const NO_ROW: u32 = u32::MAX;

/// A shown deal: rows of what was read, and its closeDate as a number when the column
/// sorts by one (see [`date_key`]).
#[derive(Clone, Copy)]
struct Shown {
    date: u32,
    deal: u32,
    account: u32,
    owner: u32,
}

/// A hidden deal: the missing fields (bits in the order of [`MISSING`]) and the unknown
/// stage, if so.
struct Hidden {
    deal: u32,
    missing: u8,
    unknown_stage: Option<String>,
}

const MISSING: [&str; 4] = [
    "missing accountId",
    "missing ownerId",
    "missing closeDate",
    "missing stage",
];

struct Column {
    stage: Stage,
    total: f64,
    deals: Vec<Shown>,
}

/// The board, ready to be written.
pub struct Board {
    as_of: Option<String>,
    built: Arc<Built>,
}

/// The board's columns and hidden deals, built from what was read (which it keeps: the
/// deals are written from there).
struct Built {
    /// The time it is as of (`i64::MAX`: as it stands).
    at: i64,
    columns: Vec<Column>,
    hidden: Vec<Hidden>,
    deals: BoardRecords,
    accounts: BoardRecords,
    users: BoardRecords,
    /// The stages it was built from, as read.
    stages: Vec<Stage>,
}

/// The last board built per integration, status and whether `asOf` was given (for which
/// time is in [`Built::at`]): the store hands out the very same records while nothing
/// changed ([`BoardRecords::same`]), and then, with the same stages, the board is the
/// same. Only the last one is kept per key.
type BuiltBoards = Mutex<HashMap<(IntegrationId, &'static str, bool), Arc<Built>>>;

fn built_boards() -> &'static BuiltBoards {
    static BUILT: OnceLock<BuiltBoards> = OnceLock::new();
    BUILT.get_or_init(Default::default)
}

/// A fact that must be a JSON string, unescaped; an error names the record otherwise.
fn text<'a>(raw: Option<&'a str>, what: &str, id: &str) -> Result<Option<Cow<'a, str>>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => fact_text(raw).map(Some).ok_or_else(|| {
            ApiError::internal(format!(
                "undecodable board projection: DEAL {id}: {what} {raw:.80}"
            ))
        }),
    }
}

/// A present, non-empty text (an empty string counts as missing).
fn present<'a>(value: &'a Option<Cow<'a, str>>) -> Option<&'a str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// The records' rows by objectId (foldhash: half a million look-ups a board).
fn index(records: &BoardRecords) -> hashbrown::HashMap<&str, u32> {
    (0..records.len())
        .map(|i| (records.object_id(i), i as u32))
        .collect()
}

/// The board of the company's integration (`integrationId` or its active one).
pub async fn board(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<Board, ApiError> {
    let wanted = status(params)?;
    let as_of = records::as_of(params)?;
    let integration = records::integration(state, company, params).await?;
    note_asked(state, integration);
    let built = built(state, integration, wanted, as_of).await?;
    Ok(Board {
        as_of: as_of.map(format_timestamp),
        built,
    })
}

/// The board of the integration's deals of status `wanted`, as of `as_of` or as it
/// stands: the one built before while the store hands out the very same records and the
/// stages are the same, else built now (and kept, the last one per integration, status
/// and whether `asOf` is given).
async fn built(
    state: &AppState,
    integration: IntegrationId,
    wanted: &'static str,
    as_of: Option<i64>,
) -> Result<Arc<Built>, ApiError> {
    let at = as_of.unwrap_or(i64::MAX);
    let started = Instant::now();
    // Each type on a task of its own: a whole read of the deals and one of the accounts
    // parse their rows on both cores at once.
    let read = |object_type: ObjectType| {
        let store = Arc::clone(&state.store);
        let task =
            tokio::spawn(async move { store.board_records(integration, object_type, at).await });
        async move {
            match task.await {
                Ok(records) => Ok::<_, ApiError>(records?),
                Err(err) => Err(ApiError::internal(format!(
                    "the board's read stopped: {err}"
                ))),
            }
        }
    };
    let (stages, deals, accounts, users) = tokio::try_join!(
        stages(state, integration, at),
        read(ObjectType::Deal),
        read(ObjectType::Account),
        read(ObjectType::BusinessUser),
    )?;
    let read = started.elapsed();

    let key = (integration, wanted, as_of.is_some());
    let before = built_boards()
        .lock()
        .expect("board lock")
        .get(&key)
        .cloned();
    if let Some(built) = before.filter(|b| {
        b.at == at
            && b.deals.same(&deals)
            && b.accounts.same(&accounts)
            && b.users.same(&users)
            && b.stages == stages
    }) {
        tracing::debug!(?read, deals = deals.len(), "deal board, as built before");
        return Ok(built);
    }
    let built = Arc::new(build(wanted, at, stages, deals, accounts, users)?);
    built_boards()
        .lock()
        .expect("board lock")
        .insert(key, Arc::clone(&built));
    tracing::debug!(?read, built = ?started.elapsed(), "deal board");
    Ok(built)
}

/// How often [`keep_warm`] looks for boards to bring up to date.
const WARM_EVERY: Duration = Duration::from_secs(2);

/// How long after a client last asked for an integration's board (on any instance) it is
/// kept in memory and warm; after that its records are dropped, and read again whole at
/// the next call.
const WARM_FOR: Duration = Duration::from_secs(60 * 60);

/// How often a client's call of a board is written down (`Store::board_asked`), at most.
const NOTE_ASKED_EVERY: Duration = Duration::from_secs(5 * 60);

/// When this instance last wrote down that each integration's board was asked for.
fn asked() -> &'static Mutex<HashMap<IntegrationId, Instant>> {
    static ASKED: OnceLock<Mutex<HashMap<IntegrationId, Instant>>> = OnceLock::new();
    ASKED.get_or_init(Default::default)
}

/// Writes down that the integration's board was asked for, unless this instance did so in
/// the last [`NOTE_ASKED_EVERY`]; on a task of its own (the call does not wait for the
/// writer).
fn note_asked(state: &AppState, integration: IntegrationId) {
    let now = Instant::now();
    {
        let mut asked = asked().lock().expect("board lock");
        if asked
            .get(&integration)
            .is_some_and(|at| now.saturating_duration_since(*at) < NOTE_ASKED_EVERY)
        {
            return;
        }
        asked.insert(integration, now);
    }
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        if let Err(err) = store
            .board_asked(integration, intake_store::now_unix_ms())
            .await
        {
            tracing::warn!(
                integration,
                "cannot note that the deal board was asked for: {err}"
            );
            asked().lock().expect("board lock").remove(&integration);
        }
    });
}

/// Keeps the boards that clients ask for read and built, so that a client's next call
/// after an upload, a restart or a change of rows in place (a schema change, see
/// `board_epochs`) finds it ready instead of reading half a million rows: every
/// [`WARM_EVERY`], each integration whose board was asked for in the last [`WARM_FOR`]
/// (on any instance: the time is in the store) is brought up to date (the store's cache
/// reads what was committed since; the board is built again only when that changed
/// something). The others hold no memory: a board never asked for is read whole at its
/// first call, and one no longer asked for is dropped. An integration with an upload of a
/// board type pending or in progress is left alone until it ends, so that warming does not
/// take the CPU from the upload batch by batch. Runs until `stopped`.
pub async fn keep_warm(state: AppState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    // The integrations whose board this instance may hold.
    let mut held: std::collections::HashSet<IntegrationId> = Default::default();
    loop {
        let since = intake_store::now_unix_ms() - WARM_FOR.as_millis() as i64;
        match state.store.board_integrations(since).await {
            Ok(integrations) => {
                // Those asked for here lately count too (their time may not be written yet).
                let mut wanted: std::collections::HashSet<IntegrationId> =
                    integrations.iter().map(|(i, _)| *i).collect();
                let now = Instant::now();
                for (integration, at) in asked().lock().expect("board lock").iter() {
                    held.insert(*integration);
                    if now.saturating_duration_since(*at) < WARM_FOR {
                        wanted.insert(*integration);
                    }
                }
                for integration in held.difference(&wanted) {
                    forget(&state, *integration).await;
                }
                held = wanted;
                for (integration, busy) in integrations {
                    if *stopped.borrow() {
                        return;
                    }
                    if busy {
                        continue;
                    }
                    let started = Instant::now();
                    match built(&state, integration, "OPEN", None).await {
                        Ok(_) => {
                            tracing::debug!(integration, took = ?started.elapsed(), "deal board warm")
                        }
                        Err(err) => {
                            tracing::warn!(integration, "cannot warm the deal board: {err:?}")
                        }
                    }
                }
            }
            Err(err) => tracing::warn!("cannot list the deal boards to warm: {err}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(WARM_EVERY) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Drops what this instance holds of the integration's board.
async fn forget(state: &AppState, integration: IntegrationId) {
    built_boards()
        .lock()
        .expect("board lock")
        .retain(|key, _| key.0 != integration);
    asked().lock().expect("board lock").remove(&integration);
    state.store.forget_board(integration).await;
    tracing::debug!(integration, "deal board dropped: not asked for");
}

/// The board's columns and hidden deals of the status `wanted`.
fn build(
    wanted: &str,
    at: i64,
    stages: Vec<Stage>,
    deals: BoardRecords,
    accounts: BoardRecords,
    users: BoardRecords,
) -> Result<Built, ApiError> {
    let stage_of: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.object_id.as_str(), i))
        .collect();
    let (account_of, owner_of) = (index(&accounts), index(&users));
    let mut shown: Vec<Vec<Shown>> = stages.iter().map(|_| Vec::new()).collect();
    let mut totals = vec![0.0f64; stages.len()];
    let mut hidden: Vec<Hidden> = Vec::new();
    for i in 0..deals.len() {
        let id = deals.object_id(i);
        let fact = |f: BoardFact, what: &str| text(deals.fact(i, f), what, id);
        let status = fact(BoardFact::Status, "status")?;
        if wanted != "ALL" && status.as_deref().unwrap_or("OPEN") != wanted {
            continue;
        }
        // Names must be texts even where they are not shown here.
        text(deals.fact(i, BoardFact::Label), "name", id)?;
        let account = fact(BoardFact::AccountId, "accountId")?;
        let owner = fact(BoardFact::OwnerId, "ownerId")?;
        let close = fact(BoardFact::CloseDate, "closeDate")?;
        let stage = fact(BoardFact::Stage, "stage")?;
        let (account, owner, close, stage) = (
            present(&account),
            present(&owner),
            present(&close),
            present(&stage),
        );
        let missing = [account, owner, close, stage]
            .iter()
            .enumerate()
            .fold(0u8, |bits, (k, v)| bits | (u8::from(v.is_none()) << k));
        let column = stage.and_then(|s| stage_of.get(s).copied());
        match (account, owner, column) {
            (Some(account), Some(owner), Some(column)) if missing == 0 => {
                let amount = deals.fact(i, BoardFact::Amount).unwrap_or("0");
                totals[column] += amount.parse::<f64>().unwrap_or(0.0);
                shown[column].push(Shown {
                    date: 0,
                    deal: i as u32,
                    account: account_of.get(account).copied().unwrap_or(NO_ROW),
                    owner: owner_of.get(owner).copied().unwrap_or(NO_ROW),
                });
            }
            _ => hidden.push(Hidden {
                deal: i as u32,
                missing,
                unknown_stage: match (stage, column) {
                    (Some(stage), None) => Some(stage.to_owned()),
                    _ => None,
                },
            }),
        }
    }
    drop((stage_of, account_of, owner_of));

    let stages_read = stages.clone();
    let mut columns: Vec<Column> = stages
        .into_iter()
        .zip(shown)
        .zip(totals)
        .filter(|((stage, deals), _)| stage.is_active || !deals.is_empty())
        .map(|((stage, deals), total)| Column {
            stage,
            total,
            deals,
        })
        .collect();
    columns.sort_by(|a, b| {
        (a.stage.sort_order, &a.stage.object_id).cmp(&(b.stage.sort_order, &b.stage.object_id))
    });
    for column in &mut columns {
        sort_column(&deals, &mut column.deals);
    }
    hidden.sort_unstable_by(|a, b| {
        deals
            .object_id(a.deal as usize)
            .cmp(deals.object_id(b.deal as usize))
    });
    Ok(Built {
        at,
        columns,
        hidden,
        deals,
        accounts,
        users,
        stages: stages_read,
    })
}

/// A closeDate's raw JSON text `"YYYY-MM-DD"` as the number YYYYMMDD, which orders as the
/// text does; `None` for any other text.
fn date_key(raw: &str) -> Option<u32> {
    let b = raw.as_bytes();
    if b.len() != 12 || b[0] != b'"' || b[11] != b'"' || b[5] != b'-' || b[8] != b'-' {
        return None;
    }
    let mut key = 0u32;
    for &d in b[1..5].iter().chain(&b[6..8]).chain(&b[9..11]) {
        if !d.is_ascii_digit() {
            return None;
        }
        key = key * 10 + u32::from(d - b'0');
    }
    Some(key)
}

/// Orders a column's deals by closeDate, then objectId: by number when every closeDate
/// has the model's form, else by text.
fn sort_column(records: &BoardRecords, deals: &mut [Shown]) {
    let close = |d: &Shown| records.fact(d.deal as usize, BoardFact::CloseDate);
    let id = |d: &Shown| records.object_id(d.deal as usize);
    let mut by_number = true;
    for deal in deals.iter_mut() {
        match close(deal).and_then(date_key) {
            Some(key) => deal.date = key,
            None => by_number = false,
        }
    }
    if by_number {
        // With the objectId's first eight bytes beside the date, most comparisons read
        // neither text (a tie of dates is common: reading both objectIds from the records'
        // text for each was most of the sort).
        let mut keyed: Vec<(u32, u64, Shown)> = deals
            .iter()
            .map(|d| (d.date, id_prefix(id(d)), *d))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| id(&a.2).cmp(id(&b.2)))
        });
        for (deal, (_, _, sorted)) in deals.iter_mut().zip(keyed) {
            *deal = sorted;
        }
    } else {
        let text = |d: &Shown| close(d).and_then(fact_text);
        deals.sort_by(|a, b| (text(a), id(a)).cmp(&(text(b), id(b))));
    }
}

/// The first eight bytes of `id` as a big-endian number, zero-padded: ordered as the
/// texts are wherever two differ (equal numbers say nothing).
fn id_prefix(id: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = id.len().min(8);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// Every stage that exists at `at` (a deleted STAGE is stored as inactive, not deleted).
async fn stages(
    state: &AppState,
    integration: IntegrationId,
    at: i64,
) -> Result<Vec<Stage>, ApiError> {
    let mut stages = Vec::new();
    let mut corrupt = None;
    state
        .store
        .for_each_current(integration, ObjectType::Stage, at, &mut |id, body| {
            match serde_json::from_str::<StageBody>(body) {
                Ok(stage) => stages.push(Stage {
                    object_id: id.to_owned(),
                    name: stage.name.map(Cow::into_owned),
                    is_active: stage.is_active.unwrap_or(true),
                    sort_order: stage.sort_order.unwrap_or(1),
                }),
                Err(err) => {
                    corrupt.get_or_insert_with(|| format!("STAGE {id}: {err}"));
                }
            }
        })
        .await?;
    match corrupt {
        Some(corrupt) => Err(ApiError::internal(format!("undecodable body: {corrupt}"))),
        None => Ok(stages),
    }
}

/// An f64 as a JSON number: whole numbers below 2^53 without a fraction, others as the
/// shortest text that reads back the same; `null` when not finite.
fn json_number(x: f64) -> String {
    if !x.is_finite() {
        "null".to_owned()
    } else if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Bytes per piece of the streamed answer, about.
const PIECE: usize = 128 * 1024;

/// Where the writing of a board stands.
#[derive(Clone, Copy)]
enum At {
    Start,
    /// Column `c`, its deal `d` next (`None`: its head).
    Column(usize, Option<usize>),
    Hidden(usize),
    End,
    Done,
}

/// The answer of the deal board, written piece by piece as it is sent.
pub struct BoardBody {
    board: Board,
    request_id: String,
    at: At,
}

impl Board {
    pub fn into_body(self, request_id: String) -> BoardBody {
        BoardBody {
            board: self,
            request_id,
            at: At::Start,
        }
    }
}

impl Iterator for BoardBody {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut out = Vec::with_capacity(PIECE + 4096);
        while out.len() < PIECE {
            if !self.write_next(&mut out) {
                break;
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

impl BoardBody {
    /// Writes the next part of the answer; false when there is none.
    fn write_next(&mut self, out: &mut Vec<u8>) -> bool {
        let as_of = &self.board.as_of;
        let board = &*self.board.built;
        self.at = match self.at {
            At::Start => {
                out.extend_from_slice(b"{\"requestId\":");
                json_string(out, &self.request_id);
                out.extend_from_slice(b",\"asOf\":");
                match as_of {
                    Some(as_of) => json_string(out, as_of),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\"stages\":[");
                if board.columns.is_empty() {
                    out.extend_from_slice(b"],\"hidden\":[");
                    At::Hidden(0)
                } else {
                    At::Column(0, None)
                }
            }
            At::Column(c, None) => {
                let column = &board.columns[c];
                let stage = &column.stage;
                if c > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"objectId\":");
                json_string(out, &stage.object_id);
                out.extend_from_slice(b",\"name\":");
                match &stage.name {
                    Some(name) => json_string(out, name),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(
                    format!(
                        ",\"sortOrder\":{},\"isActive\":{},\"dealCount\":{},\"totalAmount\":{},\"deals\":[",
                        stage.sort_order,
                        stage.is_active,
                        column.deals.len(),
                        json_number(column.total)
                    )
                    .as_bytes(),
                );
                At::Column(c, Some(0))
            }
            At::Column(c, Some(d)) => {
                let column = &board.columns[c];
                // A run of deals at a time.
                let end = column.deals.len().min(d + 256);
                self.touch(&column.deals[d..end]);
                for (k, deal) in column.deals[d..end].iter().enumerate() {
                    if d + k > 0 {
                        out.push(b',');
                    }
                    self.write_deal(out, deal);
                }
                if end < column.deals.len() {
                    At::Column(c, Some(end))
                } else {
                    out.extend_from_slice(b"]}");
                    if c + 1 < board.columns.len() {
                        At::Column(c + 1, None)
                    } else {
                        out.extend_from_slice(b"],\"hidden\":[");
                        At::Hidden(0)
                    }
                }
            }
            At::Hidden(h) => {
                let end = board.hidden.len().min(h + 256);
                for (k, hidden) in board.hidden[h..end].iter().enumerate() {
                    if h + k > 0 {
                        out.push(b',');
                    }
                    self.write_hidden(out, hidden);
                }
                if end < board.hidden.len() {
                    At::Hidden(end)
                } else {
                    At::End
                }
            }
            At::End => {
                out.extend_from_slice(b"]}");
                At::Done
            }
            At::Done => return false,
        };
        true
    }

    /// Reads a byte of each text the deals' answers will copy. The deals come in
    /// closeDate order, scattered over the records' texts, and writing each waited on its
    /// cache misses one after another (most of the writing's time); these loads do not
    /// depend on each other, so the processor overlaps their misses, and the writing then
    /// finds the run in cache.
    fn touch(&self, run: &[Shown]) {
        let Built {
            deals,
            accounts,
            users,
            ..
        } = &*self.board.built;
        let first = |text: Option<&str>| text.and_then(|t| t.as_bytes().first().copied());
        let mut seen = 0u8;
        for deal in run {
            let i = deal.deal as usize;
            for text in [
                Some(deals.object_id(i)),
                deals.fact(i, BoardFact::Label),
                deals.fact(i, BoardFact::Amount),
                label(accounts, deal.account),
                label(users, deal.owner),
            ] {
                seen ^= first(text).unwrap_or(0);
            }
        }
        std::hint::black_box(seen);
    }

    fn write_deal(&self, out: &mut Vec<u8>, deal: &Shown) {
        let Built {
            deals,
            accounts,
            users,
            ..
        } = &*self.board.built;
        let i = deal.deal as usize;
        let fact = |f| deals.fact(i, f);
        out.extend_from_slice(b"{\"objectId\":");
        json_string(out, deals.object_id(i));
        out.extend_from_slice(b",\"name\":");
        string_fact(out, fact(BoardFact::Label));
        out.extend_from_slice(b",\"accountId\":");
        string_fact(out, fact(BoardFact::AccountId));
        out.extend_from_slice(b",\"accountName\":");
        string_fact(out, label(accounts, deal.account));
        out.extend_from_slice(b",\"ownerId\":");
        string_fact(out, fact(BoardFact::OwnerId));
        out.extend_from_slice(b",\"ownerEmail\":");
        string_fact(out, label(users, deal.owner));
        out.extend_from_slice(b",\"amount\":");
        out.extend_from_slice(fact(BoardFact::Amount).unwrap_or("0").as_bytes());
        out.extend_from_slice(b",\"closeDate\":");
        string_fact(out, fact(BoardFact::CloseDate));
        out.extend_from_slice(b",\"status\":");
        string_fact(out, Some(fact(BoardFact::Status).unwrap_or("\"OPEN\"")));
        out.push(b'}');
    }

    fn write_hidden(&self, out: &mut Vec<u8>, hidden: &Hidden) {
        let deals = &self.board.built.deals;
        let i = hidden.deal as usize;
        out.extend_from_slice(b"{\"objectId\":");
        json_string(out, deals.object_id(i));
        out.extend_from_slice(b",\"name\":");
        string_fact(out, deals.fact(i, BoardFact::Label));
        out.extend_from_slice(b",\"reasons\":[");
        let mut first = true;
        for (k, reason) in MISSING.iter().enumerate() {
            if hidden.missing & (1 << k) != 0 {
                if !first {
                    out.push(b',');
                }
                first = false;
                json_string(out, reason);
            }
        }
        if let Some(stage) = &hidden.unknown_stage {
            if !first {
                out.push(b',');
            }
            json_string(out, &format!("unknown stage [{stage}]"));
        }
        out.extend_from_slice(b"]}");
    }
}

/// The label of row `row` of `records` (`None` for [`NO_ROW`]).
fn label(records: &BoardRecords, row: u32) -> Option<&str> {
    if row == NO_ROW {
        None
    } else {
        records.fact(row as usize, BoardFact::Label)
    }
}

/// A JSON string as serde_json writes it.
fn json_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    }
}

/// A fact holding a JSON string, as serde_json writes that string (`null` for none). The
/// model stores strings as serde_json writes them, so a text without escapes is copied as
/// it is; one with escapes is read and written again, in case an older body escapes
/// differently. (Facts were checked to be strings when the board was built.)
fn string_fact(out: &mut Vec<u8>, raw: Option<&str>) {
    match raw {
        None => out.extend_from_slice(b"null"),
        Some(raw) if !raw.contains('\\') => out.extend_from_slice(raw.as_bytes()),
        Some(raw) => match fact_text(raw) {
            Some(text) => serde_json::to_writer(&mut *out, &*text).expect("strings serialize"),
            None => out.extend_from_slice(b"null"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intake_model::wire::intake::{BoardColumn, BoardDeal, DealBoard, HiddenDeal};
    use intake_store::BoardRecord;
    use serde_json::value::RawValue;

    #[test]
    fn id_prefixes_order_as_the_ids() {
        let ids = [
            "",
            "a",
            "a\0",
            "ab",
            "abcdefgh",
            "abcdefgh0",
            "abcdefgi",
            "abcdefg",
            "b",
            "é",
            "zzzzzzzzzz",
            "00601x0sk7mop2gr",
            "00601x0sk7mop2gs",
            "0060d3lauheuo4sp",
        ];
        for a in ids {
            for b in ids {
                match id_prefix(a).cmp(&id_prefix(b)) {
                    std::cmp::Ordering::Equal => {}
                    order => assert_eq!(order, a.cmp(b), "{a:?} {b:?}"),
                }
            }
        }
    }

    #[test]
    fn totals_are_json_numbers() {
        assert_eq!(json_number(7000.0), "7000");
        assert_eq!(json_number(-0.0), "0");
        assert_eq!(json_number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(json_number(1.5), "1.5");
        assert_eq!(json_number(f64::INFINITY), "null");
        let big = json_number(1e300);
        assert_eq!(big.parse::<f64>().unwrap(), 1e300);
        assert!(serde_json::from_str::<serde_json::Value>(&big)
            .unwrap()
            .is_number());
    }

    #[test]
    fn close_dates_order_as_numbers_as_they_do_as_texts() {
        assert_eq!(date_key("\"2024-03-01\""), Some(20240301));
        assert_eq!(date_key("\"2024-3-01\""), None);
        assert_eq!(date_key("\"2024-03-0x\""), None);
        assert_eq!(date_key("2024-03-01"), None);
    }

    fn record<'a>(id: &'a str, facts: [Option<&'a str>; 7]) -> BoardRecord<'a> {
        BoardRecord {
            object_id: id,
            facts,
        }
    }

    /// The streamed writer gives, piece by piece, the bytes serde_json writes for the
    /// wire types, including strings that need escaping and facts an older body escaped
    /// otherwise.
    #[test]
    fn the_written_board_is_what_serde_json_writes() {
        let deals: BoardRecords = [
            record(
                "d1",
                [
                    Some(r#""A \"q\" \u0000 \u00e9 é""#),
                    None,
                    Some(r#""s1""#),
                    Some(r#""a\/1""#),
                    Some(r#""u1""#),
                    Some(r#""2024-01-02""#),
                    Some("1.50"),
                ],
            ),
            record(
                "d2",
                [
                    None,
                    Some(r#""OPEN""#),
                    Some(r#""s1""#),
                    Some(r#""a2""#),
                    Some(r#""u2""#),
                    Some(r#""2024-01-01""#),
                    None,
                ],
            ),
        ]
        .into_iter()
        .collect();
        let accounts: BoardRecords = [record(
            "a2",
            [Some(r#""Tab\there""#), None, None, None, None, None, None],
        )]
        .into_iter()
        .collect();
        let users: BoardRecords = [record("u1", [None; 7])].into_iter().collect();
        let stage = |id: &str, name: Option<&str>| Stage {
            object_id: id.into(),
            name: name.map(Into::into),
            is_active: true,
            sort_order: 1,
        };
        let board = Board {
            as_of: Some("2024-01-01T00:00:00.000Z".into()),
            built: Arc::new(Built {
                at: i64::MAX,
                stages: vec![],
                columns: vec![
                    Column {
                        stage: stage("s1", Some("Stage \"1\"")),
                        total: 1.5,
                        deals: vec![
                            Shown {
                                date: 0,
                                deal: 1,
                                account: 0,
                                owner: NO_ROW,
                            },
                            Shown {
                                date: 0,
                                deal: 0,
                                account: NO_ROW,
                                owner: 0,
                            },
                        ],
                    },
                    Column {
                        stage: stage("s2", None),
                        total: 0.0,
                        deals: vec![],
                    },
                ],
                hidden: vec![
                    Hidden {
                        deal: 0,
                        missing: 0b1010,
                        unknown_stage: Some("x\"y".into()),
                    },
                    Hidden {
                        deal: 1,
                        missing: 0,
                        unknown_stage: Some("z".into()),
                    },
                ],
                deals,
                accounts,
                users,
            }),
        };
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let expected = DealBoard {
            request_id: "r\"1".into(),
            as_of: Some("2024-01-01T00:00:00.000Z".into()),
            stages: vec![
                BoardColumn {
                    object_id: "s1".into(),
                    name: Some("Stage \"1\"".into()),
                    sort_order: 1,
                    is_active: true,
                    deal_count: 2,
                    total_amount: raw("1.5"),
                    deals: vec![
                        BoardDeal {
                            object_id: "d2".into(),
                            name: None,
                            account_id: "a2".into(),
                            account_name: Some("Tab\there".into()),
                            owner_id: "u2".into(),
                            owner_email: None,
                            amount: raw("0"),
                            close_date: "2024-01-01".into(),
                            status: "OPEN".into(),
                        },
                        BoardDeal {
                            object_id: "d1".into(),
                            name: Some("A \"q\" \0 é é".into()),
                            account_id: "a/1".into(),
                            account_name: None,
                            owner_id: "u1".into(),
                            owner_email: None,
                            amount: raw("1.50"),
                            close_date: "2024-01-02".into(),
                            status: "OPEN".into(),
                        },
                    ],
                },
                BoardColumn {
                    object_id: "s2".into(),
                    name: None,
                    sort_order: 1,
                    is_active: true,
                    deal_count: 0,
                    total_amount: raw("0"),
                    deals: vec![],
                },
            ],
            hidden: vec![
                HiddenDeal {
                    object_id: "d1".into(),
                    name: Some("A \"q\" \0 é é".into()),
                    reasons: vec![
                        "missing ownerId".into(),
                        "missing stage".into(),
                        "unknown stage [x\"y]".into(),
                    ],
                },
                HiddenDeal {
                    object_id: "d2".into(),
                    name: None,
                    reasons: vec!["unknown stage [z]".into()],
                },
            ],
        };
        let written: Vec<u8> = board.into_body("r\"1".into()).flatten().collect();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );

        let empty = Board {
            as_of: None,
            built: Arc::new(Built {
                at: i64::MAX,
                stages: vec![],
                columns: vec![],
                hidden: vec![],
                deals: BoardRecords::default(),
                accounts: BoardRecords::default(),
                users: BoardRecords::default(),
            }),
        };
        let written: Vec<u8> = empty.into_body("r".into()).flatten().collect();
        assert_eq!(
            written,
            br#"{"requestId":"r","asOf":null,"stages":[],"hidden":[]}"#
        );
    }

    /// Pieces end anywhere among many deals, and every piece but the last is full.
    #[test]
    fn a_large_board_is_written_in_pieces() {
        let ids: Vec<String> = (0..5000).map(|i| format!("deal-{i:05}")).collect();
        let facts = [
            Some(r#""A deal with a name long enough""#),
            Some(r#""OPEN""#),
            Some(r#""s""#),
            Some(r#""a""#),
            Some(r#""u""#),
            Some(r#""2024-01-01""#),
            Some("12.5"),
        ];
        let deals: BoardRecords = ids.iter().map(|id| record(id, facts)).collect();
        let shown: Vec<Shown> = (0..ids.len() as u32)
            .map(|deal| Shown {
                date: 0,
                deal,
                account: NO_ROW,
                owner: NO_ROW,
            })
            .collect();
        let board = Board {
            as_of: None,
            built: Arc::new(Built {
                at: i64::MAX,
                stages: vec![],
                columns: vec![Column {
                    stage: Stage {
                        object_id: "s".into(),
                        name: None,
                        is_active: true,
                        sort_order: 1,
                    },
                    total: 0.0,
                    deals: shown,
                }],
                hidden: vec![],
                deals,
                accounts: BoardRecords::default(),
                users: BoardRecords::default(),
            }),
        };
        let pieces: Vec<Bytes> = board.into_body("r".into()).collect();
        assert!(pieces.len() > 3, "{}", pieces.len());
        assert!(pieces[..pieces.len() - 1].iter().all(|p| p.len() >= PIECE));
        let whole: Vec<u8> = pieces.concat();
        let parsed: DealBoard = serde_json::from_slice(&whole).unwrap();
        assert_eq!(parsed.stages[0].deals.len(), 5000);
        assert_eq!(parsed.stages[0].deals[4999].object_id, "deal-04999");
    }
}
