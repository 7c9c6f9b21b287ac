//! Intake's storage. The rest of the system talks to [`Store`]; each backend (SQLite, the
//! embedded default, and PostgreSQL, for several instances on one database) implements it
//! with its own migrations. SQL lives only in this crate.
//!
//! Layout shared by both backends: every applied line is a row of `record_versions`, keyed by
//! (integration, object type, object id, modifiedDate, request sequence). The current state of
//! a record is its greatest version in that key order, so applying a batch is one insert per
//! line and applying the same line twice is harmless. (Each backend keeps the newest keys or
//! rows in a small recent tier merged into the main table in the background: SQLite's
//! `sqlite/tiers.rs`, PostgreSQL's `postgres/tiers.rs`.)

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use intake_model::{FieldDef, LineError, ObjectType, SchemaPlan, ValidRecord};

pub mod auth;
mod board;
mod delegate;
pub mod lookups;
pub mod ops;
pub mod postgres;
mod requests;
mod rows;
mod same_sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use lookups::{DomainSettings, LookupHit, ReadSnapshot};
pub use ops::NotReady;
pub use requests::CANCELLED_TEXT;
mod text;
mod webhooks;

pub use board::{BoardRecord, BoardRecords};

pub type CompanyId = i64;
pub type IntegrationId = i64;
/// Sequence number of a request: its arrival order, also the tie-breaker between versions
/// with the same modifiedDate (the later upload wins).
pub type RequestSeq = i64;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The company already used this `clientRequestId` (for an upload or a delete).
    #[error("client request id already used")]
    ClientRequestIdUsed,
    /// The company already has an active integration.
    #[error("the company already has an active integration")]
    IntegrationActive,
    /// No active integration of the company has this id.
    #[error("unknown integration {0}")]
    UnknownIntegration(IntegrationId),
    #[error("company {0} already exists")]
    CompanyExists(String),
    /// A stored row this version cannot read: never reported as "not found".
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
    /// A text to be stored (the field named) contains NUL, which PostgreSQL cannot store;
    /// both backends refuse it alike (see the `text` module).
    #[error("{0} must not contain a NUL character")]
    InvalidText(&'static str),
    /// PostgreSQL could not be reached when the store was opened: where, and why
    /// (connection refused, authentication failed, no such database, no answer in time).
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Unreachable { target: String, cause: String },
    #[error("invalid database URL: {0}")]
    Url(String),
}

/// A value read from the database that this version cannot decode is a corrupt row, never
/// a database failure to retry nor a "not found".
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        match err {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(err.to_string())
            }
            err => StoreError::Database(err),
        }
    }
}

impl StoreError {
    /// The database could not take the work now (pool exhausted); a retry may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut))
    }

    /// The database has no room left (SQLite `SQLITE_FULL`, PostgreSQL `disk_full`); the
    /// same work may succeed once space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("13") | Some("53100"))
                    || db.message().contains("database or disk is full")
            }
            _ => false,
        }
    }
}

/// The outcome of a statement that changes a request only while `worker` holds its lease:
/// it changed the one row, or the lease is lost.
pub(crate) fn lease_kept(rows_affected: u64) -> Result<(), LeaseLost> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(LeaseLost)
    }
}

/// A unique-constraint violation is the caller's conflict (a taken name or id); anything
/// else stays a database error.
pub(crate) fn conflict_on_unique(err: sqlx::Error, conflict: StoreError) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => conflict,
        _ => StoreError::from(err),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyInfo {
    pub access_key: String,
    pub company: String,
    pub created_at: i64,
    pub revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub token_id: String,
    pub company: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub revoked: bool,
}

/// A session of the web console, as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UiSession {
    /// SHA-256 of the session id the cookie holds.
    pub id_hash: Vec<u8>,
    /// The access key the session signed in with.
    pub access_key: String,
    pub company_id: CompanyId,
    /// The token every POST form of the session carries.
    pub csrf_token: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

/// A stored credential: an access key (all scopes) or a bearer token (its scopes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredential {
    pub company_id: CompanyId,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// `None` for an access key: it may use every operation.
    pub scopes: Option<Vec<String>>,
    pub revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Integration {
    pub id: IntegrationId,
    pub company_id: CompanyId,
    pub name: String,
    pub owner_email: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// 0 switches the limit off.
    pub per_second: u32,
    pub per_day: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after_secs: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    Pending,
    InProgress,
    Done,
    Failed,
    /// Stopped by `POST /intake/v1/requests/{id}/cancel` (Gong's request-status shows it
    /// FAILED, with the error `Request cancelled` on line 0).
    Cancelled,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 5] = [
        RequestStatus::Pending,
        RequestStatus::InProgress,
        RequestStatus::Done,
        RequestStatus::Failed,
        RequestStatus::Cancelled,
    ];

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestStatus::Done | RequestStatus::Failed | RequestStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "PENDING",
            RequestStatus::InProgress => "IN_PROGRESS",
            RequestStatus::Done => "DONE",
            RequestStatus::Failed => "FAILED",
            RequestStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        Some(match s {
            "PENDING" => RequestStatus::Pending,
            "IN_PROGRESS" => RequestStatus::InProgress,
            "DONE" => RequestStatus::Done,
            "FAILED" => RequestStatus::Failed,
            "CANCELLED" => RequestStatus::Cancelled,
            _ => return None,
        })
    }
}

/// What the client sees of a request through `/v2/crm/request-status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestReport {
    pub integration_id: IntegrationId,
    pub status: RequestStatus,
    /// At most [`intake_model::Report::LISTED_ERRORS`], in line order.
    pub errors: Vec<LineError>,
    pub error_count: u64,
    pub success_count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUpload {
    pub company_id: CompanyId,
    pub integration_id: IntegrationId,
    pub client_request_id: String,
    pub object_type: ObjectType,
    /// File name inside the spool directory.
    pub spool_file: String,
    /// The spooled file's size.
    pub file_bytes: u64,
}

/// A request as the requests list shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestInfo {
    pub seq: RequestSeq,
    pub client_request_id: String,
    pub integration_id: IntegrationId,
    /// `UPLOAD` or `DELETE_INTEGRATION`.
    pub kind: String,
    /// `None` for an integration delete.
    pub object_type: Option<i16>,
    pub status: String,
    pub success_count: i64,
    pub error_count: i64,
    pub file_bytes: Option<i64>,
    /// Unix seconds.
    pub accepted_at: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// Which requests a list shows (`since` inclusive, `until` exclusive; unix seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub object_type: Option<ObjectType>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// What a cancel found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was PENDING or IN_PROGRESS and is CANCELLED now.
    Cancelled(RequestInfo),
    /// It had finished already (or it is an integration delete, which cannot be stopped
    /// halfway); unchanged.
    NotCancellable(RequestInfo),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkKind {
    Upload {
        object_type: ObjectType,
        spool_file: String,
    },
    DeleteIntegration,
}

/// A request a worker holds the lease of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedWork {
    pub seq: RequestSeq,
    pub company_id: CompanyId,
    pub integration_id: IntegrationId,
    /// The request's name, as its client gave it.
    pub client_request_id: String,
    pub kind: WorkKind,
    /// Unix seconds of the upload's acceptance (STAGE lines without modifiedDate take it).
    pub accepted_at: i64,
    /// Every physical line up to this one has been applied and counted.
    pub checkpoint_line: u64,
    pub success_count: u64,
    pub error_count: u64,
    /// How many errors are already listed (at most 20 are kept).
    pub listed_errors: u64,
    /// The request was claimed from another worker whose lease had expired (not handed
    /// back): a lease takeover.
    pub taken_over: bool,
    /// The files of its every error and failed line, as far as its checkpoint covers them
    /// (`None` until a batch with an error is stored).
    pub sidecar: Option<SidecarMark>,
}

/// A request's sidecar files (`NAME.errors` and `NAME.failed` in the spool directory) and
/// how many bytes of each are committed: bytes past these are from a batch never stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidecarMark {
    pub name: String,
    pub errors_bytes: u64,
    pub failed_bytes: u64,
}

/// What a request's errors are read from: its sidecar files when it has some, and the
/// errors stored in the database (the first 20 and any on line 0), in line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSource {
    pub seq: RequestSeq,
    pub status: RequestStatus,
    pub sidecar: Option<SidecarMark>,
    pub stored: Vec<LineError>,
}

/// A company's webhook (its secret only for signing).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    pub webhook_id: i64,
    pub company_id: CompanyId,
    pub url: String,
    pub secret: String,
    pub created_at_ms: i64,
}

/// One delivery of an event to a webhook, as its log shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Delivery {
    pub delivery_id: i64,
    pub webhook_id: i64,
    pub seq: RequestSeq,
    pub event: String,
    pub client_request_id: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// A delivery a sender holds the lease of, with what it needs to send it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    pub delivery_id: i64,
    pub seq: RequestSeq,
    pub event: String,
    pub attempts: i64,
    pub company_id: CompanyId,
    pub url: String,
    pub secret: String,
}

/// How one attempt of a delivery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Another answer (`status`) or none; tried again at `retry_at_ms`, or, when `None`,
    /// given up (`FAILED`).
    Failed {
        status: Option<u16>,
        retry_at_ms: Option<i64>,
    },
    /// Not sent at all (a refused target): `FAILED` with its attempts unchanged.
    Skipped,
}

/// One transaction's worth of processing: records to store, errors to list, and the
/// request's progress after it.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// (physical line, record) with `record.modified` already resolved.
    pub records: Vec<(u64, ValidRecord)>,
    /// Errors to list (the worker sends only those that fit in the first 20).
    pub errors: Vec<LineError>,
    /// The sidecar files as far as this batch wrote them (durably), when it has any.
    pub sidecar: Option<SidecarMark>,
    pub checkpoint_line: u64,
    pub success_count: u64,
    pub error_count: u64,
}

/// One stored version of a record, for history and tests.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Version {
    pub modified: i64,
    pub seq: RequestSeq,
    #[sqlx(try_from = "i64")]
    pub line: u64,
    pub deleted: bool,
    pub body: String,
}

/// A record as one of its versions left it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordState {
    pub modified: i64,
    pub deleted: bool,
    pub body: String,
}

/// The request a version came from.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestOrigin {
    pub seq: RequestSeq,
    pub client_request_id: String,
    /// Unix seconds.
    pub accepted_at: i64,
}

/// What [`Store::for_each_current`] hands each record to: (objectId, body).
pub type EachRecord<'a> = dyn FnMut(&str, &str) + Send + 'a;

/// Lost the lease: another worker has taken the request over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLost;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name of the backend, for logs.
    fn backend(&self) -> &'static str;

    // --- administration -------------------------------------------------------------
    async fn create_company(&self, name: &str) -> Result<Company>;
    async fn list_companies(&self) -> Result<Vec<Company>>;
    async fn company_by_name(&self, name: &str) -> Result<Option<Company>>;
    async fn insert_access_key(
        &self,
        company: CompanyId,
        key: &str,
        secret_hash: &[u8],
    ) -> Result<()>;
    async fn list_access_keys(&self) -> Result<Vec<AccessKeyInfo>>;
    /// Returns false when there is no such key.
    async fn revoke_access_key(&self, key: &str) -> Result<bool>;
    async fn insert_token(
        &self,
        company: CompanyId,
        token_id: &str,
        secret_hash: &[u8],
        scopes: &[String],
    ) -> Result<()>;
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    async fn revoke_token(&self, token_id: &str) -> Result<bool>;

    // --- authentication and limits --------------------------------------------------
    async fn find_access_key(&self, key: &str) -> Result<Option<StoredCredential>>;
    async fn find_token(&self, token_id: &str) -> Result<Option<StoredCredential>>;
    /// Stores a new console session, and drops the sessions idle since before
    /// `expired_before_ms`.
    async fn insert_ui_session(&self, session: &UiSession, expired_before_ms: i64) -> Result<()>;
    /// The session `id_hash` when it was last seen at or after `expired_before_ms` and its
    /// access key is not revoked, marked as seen at `now_ms`; else `None`.
    async fn touch_ui_session(
        &self,
        id_hash: &[u8],
        now_ms: i64,
        expired_before_ms: i64,
    ) -> Result<Option<UiSession>>;
    /// Ends a console session (signing out).
    async fn delete_ui_session(&self, id_hash: &[u8]) -> Result<()>;
    /// Counts one call of the company and says whether it is within the limits. The count
    /// must hold for the company across every instance sharing the database.
    async fn hit_rate_limit(
        &self,
        company: CompanyId,
        limits: RateLimits,
        now_unix_ms: i64,
    ) -> Result<RateDecision>;

    // --- integrations ---------------------------------------------------------------
    /// `Err(IntegrationActive)` when the company already has an active integration.
    async fn register_integration(
        &self,
        company: CompanyId,
        name: &str,
        owner_email: &str,
    ) -> Result<Integration>;
    async fn list_integrations(&self, company: CompanyId) -> Result<Vec<Integration>>;
    async fn find_integration(
        &self,
        company: CompanyId,
        id: IntegrationId,
    ) -> Result<Option<Integration>>;
    /// Marks the integration deleted (at once: it no longer takes requests) and queues the
    /// removal of its data as a request named `client_request_id`.
    /// `Err(UnknownIntegration)` for an unknown integration, `Err(ClientRequestIdUsed)` for a
    /// used request id.
    async fn request_integration_delete(
        &self,
        company: CompanyId,
        id: IntegrationId,
        client_request_id: &str,
    ) -> Result<()>;

    // --- custom-field schema ------------------------------------------------------
    async fn get_schema(
        &self,
        integration: IntegrationId,
        object_type: Option<ObjectType>,
    ) -> Result<Vec<(ObjectType, FieldDef)>>;
    /// Replaces the schema of one type and removes the values of `plan.drop_values_of`
    /// from every stored version of that type, in one transaction.
    async fn replace_schema(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        plan: &SchemaPlan,
    ) -> Result<()>;

    // --- requests -------------------------------------------------------------------
    async fn client_request_id_used(
        &self,
        company: CompanyId,
        client_request_id: &str,
    ) -> Result<bool>;
    /// Registers a durably spooled upload as PENDING. `Err(ClientRequestIdUsed)` if the id is
    /// taken (the caller then removes its spool file).
    async fn insert_upload(&self, upload: &NewUpload) -> Result<RequestSeq>;
    async fn request_report(
        &self,
        company: CompanyId,
        client_request_id: &str,
    ) -> Result<Option<RequestReport>>;

    // --- worker ---------------------------------------------------------------------
    /// Takes the oldest request that is pending or whose lease has expired.
    async fn claim_work(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedWork>>;
    /// Extends the lease; `Err(LeaseLost)` inside `Ok` when another worker has it.
    async fn heartbeat(
        &self,
        seq: RequestSeq,
        worker: &str,
        lease: Duration,
    ) -> Result<Result<(), LeaseLost>>;
    /// Stores one batch and the request's progress in one transaction, if the lease is
    /// still ours.
    async fn apply_batch(
        &self,
        work: &ClaimedWork,
        worker: &str,
        batch: &Batch,
    ) -> Result<Result<(), LeaseLost>>;
    /// Final status; `fatal_error` (line 0) when the file could not be read at all.
    async fn finish_work(
        &self,
        seq: RequestSeq,
        worker: &str,
        status: RequestStatus,
        fatal_error: Option<&str>,
    ) -> Result<Result<(), LeaseLost>>;
    /// Removes every object, version and schema field of the integration.
    async fn purge_integration(&self, integration: IntegrationId) -> Result<()>;
    /// Gives up the leases this worker holds (on shutdown), so another worker or a restart
    /// resumes them from their checkpoint at once.
    async fn release_leases(&self, worker: &str) -> Result<()>;
    /// Waits until new work may be there (a new upload here or on another instance), or
    /// `max` has passed.
    async fn wait_for_work(&self, max: Duration);
    /// Does one step of background upkeep of the stored versions, if some is due. `idle`
    /// says that no work is waiting, so any upkeep may be done; otherwise only upkeep that
    /// cannot wait any longer is. Returns whether a step was done (call again for the next).
    async fn maintain(&self, idle: bool) -> Result<bool> {
        let _ = idle;
        Ok(false)
    }

    // --- objects --------------------------------------------------------------------
    /// Current state of each id: `None` for unknown or deleted records.
    async fn current_objects(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>>;
    /// Every stored version of one record, oldest first.
    async fn versions(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        object_id: &str,
    ) -> Result<Vec<Version>>;

    // --- history --------------------------------------------------------------------
    /// The first `count` records of one type whose objectId sorts after `after`, in objectId
    /// order (byte order), each with its latest version whose modifiedDate is at most
    /// `as_of` (unix seconds), or `None` when it has no such version (it did not exist then).
    async fn records_after(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        after: &str,
        count: usize,
        as_of: i64,
    ) -> Result<Vec<(String, Option<RecordState>)>>;
    /// Every record of one type that exists and is not deleted at `as_of` (unix seconds):
    /// each one's latest version whose modifiedDate is at most `as_of`, handed to `each` as
    /// (objectId, body), in no particular order. One streaming query per backend; nothing
    /// is collected, so a type of any size costs only what `each` keeps.
    async fn for_each_current(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        as_of: i64,
        each: &mut EachRecord<'_>,
    ) -> Result<()>;
    /// The deal board's projection of one type (DEAL, ACCOUNT or BUSINESS_USER; none for
    /// another, see [`intake_model::on_board`]): every record that exists and is not
    /// deleted at `as_of` (unix seconds), with the facts of its latest version whose
    /// modifiedDate is at most `as_of` ([`intake_model::board_facts`] of its body).
    async fn board_records(
        &self,
        integration: IntegrationId,
        object_type: ObjectType,
        as_of: i64,
    ) -> Result<BoardRecords>;
    /// Every integration not deleted whose deal board has deals and was asked for at or
    /// after `asked_since_ms` ([`Store::board_asked`]), with whether an upload of a type on
    /// the board (DEAL, ACCOUNT, BUSINESS_USER) is pending or in progress in it: what the
    /// servers keep warm ([`Store::board_records`] as they stand), between uploads.
    async fn board_integrations(&self, asked_since_ms: i64) -> Result<Vec<(IntegrationId, bool)>>;
    /// Notes that a client asked for the integration's deal board at `at_ms` (unix ms).
    async fn board_asked(&self, integration: IntegrationId, at_ms: i64) -> Result<()>;
    /// Drops what this instance holds in memory of the integration's board projection
    /// (read again whole at the next [`Store::board_records`]): for a board nobody asks
    /// for any more.
    async fn forget_board(&self, integration: IntegrationId);
    /// The `clientRequestId` and acceptance time of each of these requests that exists.
    async fn request_origins(
        &self,
        seqs: &[RequestSeq],
    ) -> Result<HashMap<RequestSeq, RequestOrigin>>;

    // --- the requests list ----------------------------------------------------------
    /// The company's requests of one integration, newest first, that pass `filter` and
    /// come before `before` (a seq) when given; at most `limit`.
    async fn list_requests(
        &self,
        company: CompanyId,
        integration: IntegrationId,
        filter: &RequestFilter,
        before: Option<RequestSeq>,
        limit: usize,
    ) -> Result<Vec<RequestInfo>>;
    /// One request of the company by its clientRequestId.
    async fn request_info(&self, company: CompanyId, crid: &str) -> Result<Option<RequestInfo>>;
    /// Cancels a PENDING or IN_PROGRESS upload: CANCELLED at once, with the error `Request
    /// cancelled` on line 0; the worker holding it loses its lease and stops at its next
    /// batch, keeping what it applied. `None` when there is no such request.
    async fn cancel_request(&self, company: CompanyId, crid: &str)
        -> Result<Option<CancelOutcome>>;

    // --- associations ---------------------------------------------------------------
    /// A read-only snapshot of one integration's records and look-up keys.
    async fn read_snapshot(&self, integration: IntegrationId) -> Result<Box<dyn ReadSnapshot>>;
    /// The integration's `internalDomains` and `excludedDomains` (empty when never set).
    async fn domain_settings(&self, integration: IntegrationId) -> Result<DomainSettings>;
    /// Replaces them.
    async fn put_domain_settings(
        &self,
        integration: IntegrationId,
        settings: &DomainSettings,
    ) -> Result<()>;
    /// Erases these records completely, as a data-privacy request asks: every version,
    /// every look-up key, and, in the stored errors of the integration's requests, every
    /// description that quotes `asked` or an email or phone number of the erased versions
    /// (the description is replaced). Done when it returns. Returns the versions erased.
    async fn erase_records(
        &self,
        integration: IntegrationId,
        records: &[(ObjectType, String)],
        asked: &str,
    ) -> Result<u64>;

    // --- operators ------------------------------------------------------------------
    /// Whether the store can serve: the database answers (`SELECT 1`, within
    /// [`ops::READY_TIMEOUT`]) and the migrations applied are exactly this version's.
    /// Empty when ready; else each problem, its text naming `database` or `migrations`.
    async fn readiness(&self) -> Vec<NotReady>;
    /// How many requests are in each status now (every status, 0 included), counted in the
    /// database: the same on every instance sharing it.
    async fn request_counts(&self) -> Result<Vec<(RequestStatus, u64)>>;

    // --- every error, and webhooks --------------------------------------------------
    /// Where the errors of one request of the company are read from; `None` when there is
    /// no such request.
    async fn error_source(&self, company: CompanyId, crid: &str) -> Result<Option<ErrorSource>>;
    /// The sidecar files of the integration's requests, with their seq.
    async fn integration_sidecars(
        &self,
        integration: IntegrationId,
    ) -> Result<Vec<(RequestSeq, SidecarMark)>>;
    /// Points a finished request at rewritten sidecar files, if it still points at `old`
    /// (its name). False when it does not (then nothing changed).
    async fn replace_sidecar(&self, seq: RequestSeq, old: &str, new: &SidecarMark) -> Result<bool>;
    async fn create_webhook(&self, company: CompanyId, url: &str, secret: &str) -> Result<i64>;
    /// The company's webhooks, oldest first.
    async fn list_webhooks(&self, company: CompanyId) -> Result<Vec<Webhook>>;
    /// Removes it and its pending deliveries (the delivered and failed stay in no list:
    /// they go too). False when the company has no such webhook.
    async fn delete_webhook(&self, company: CompanyId, webhook: i64) -> Result<bool>;
    /// The latest `limit` deliveries of a webhook of the company, newest first; `None` when
    /// the company has no such webhook.
    async fn list_deliveries(
        &self,
        company: CompanyId,
        webhook: i64,
        limit: usize,
    ) -> Result<Option<Vec<Delivery>>>;
    /// Takes up to `limit` PENDING deliveries that are due and whose lease is free or
    /// expired, under a lease of `lease` for `sender`.
    async fn claim_deliveries(
        &self,
        sender: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<DueDelivery>>;
    /// Records one attempt of a delivery this sender holds (nothing if it does not).
    async fn record_attempt(
        &self,
        delivery: i64,
        sender: &str,
        outcome: AttemptOutcome,
    ) -> Result<()>;
    /// One request by its seq (for a delivery's body).
    async fn request_by_seq(&self, seq: RequestSeq) -> Result<Option<RequestInfo>>;
}

/// Opens the store a database URL names: `sqlite://PATH` (created if missing) or
/// `postgres://...`. Runs the migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Url(format!(
            "{url}: expected sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random integration id: positive and above 2^53, like Gong's.
pub fn random_integration_id() -> IntegrationId {
    use rand::Rng;
    rand::thread_rng().gen_range((1i64 << 53) + 1..i64::MAX)
}

/// Whether a call is within the limits, given how many calls (this one included) the
/// company made in the current second and the current UTC day. The daily limit is judged
/// first: its `Retry-After` is the longer one. Both backends count their windows their own
/// way and decide here.
pub fn decide(limits: RateLimits, second_count: u64, day_count: u64, now_ms: i64) -> RateDecision {
    if limits.per_day > 0 && day_count > u64::from(limits.per_day) {
        RateDecision::Limited {
            retry_after_secs: secs_to_next_utc_day(now_ms),
        }
    } else if limits.per_second > 0 && second_count > u64::from(limits.per_second) {
        RateDecision::Limited {
            retry_after_secs: 1,
        }
    } else {
        RateDecision::Allowed
    }
}

/// Seconds until the next UTC midnight, for the daily limit's `Retry-After`.
pub fn secs_to_next_utc_day(now_unix_ms: i64) -> u64 {
    let day_ms = 86_400_000;
    let next = (now_unix_ms.div_euclid(day_ms) + 1) * day_ms;
    ((next - now_unix_ms) as u64).div_ceil(1000).max(1)
}
