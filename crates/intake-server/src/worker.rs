//! The background worker: takes waiting requests in order of arrival, validates the spooled
//! file with the model library on a blocking thread, and stores the results in batches while
//! the next batch is being validated. Progress (checkpoint line, counts, listed errors) is
//! written with each batch, so a worker that dies is replaced by one that resumes from the
//! last checkpoint with the same result.

use std::io::BufReader;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use intake_model::{FileValidator, LineError, ObjectType, Report, Schema};
use intake_store::{Batch, ClaimedWork, LeaseLost, RequestStatus, Store, StoreError, WorkKind};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::sidecar::{SidecarThread, SidecarWriter};
use crate::spool::Spool;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How long a claimed request stays ours without a heartbeat.
    pub lease: Duration,
    /// Lines per stored batch (one transaction each).
    pub batch_lines: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease: Duration::from_secs(30),
            batch_lines: 40_000,
        }
    }
}

pub struct Worker {
    pub store: Arc<dyn Store>,
    pub spool: Spool,
    pub config: WorkerConfig,
    pub id: String,
    /// Where lines, processing times and lease takeovers are counted.
    pub metrics: Arc<Metrics>,
    validator: Validator,
}

type ValidationJob = Box<dyn FnOnce() + Send>;

/// The worker's one validation thread. Files are validated off the async runtime, always
/// on this same thread: the records of a batch are allocated in one allocator arena, whose
/// memory is reused from request to request instead of spreading over new arenas as the
/// threads of a blocking pool come and go.
struct Validator {
    jobs: std::sync::mpsc::Sender<ValidationJob>,
}

impl Validator {
    fn start() -> Validator {
        let (jobs, incoming) = std::sync::mpsc::channel::<ValidationJob>();
        std::thread::Builder::new()
            .name("intake-validate".into())
            .spawn(move || {
                for job in incoming {
                    job();
                }
            })
            .expect("validation thread starts");
        Validator { jobs }
    }

    fn run(&self, job: impl FnOnce() + Send + 'static) {
        self.jobs
            .send(Box::new(job))
            .expect("validation thread runs while its worker does");
    }
}

enum Step {
    /// A batch, and the mark of the sidecar files it wrote once they are durable (the
    /// errors' thread makes them so while the next batch is validated).
    Batch(Batch, Option<crate::sidecar::PendingMark>),
    Unreadable(String),
    /// The whole file was read.
    End,
}

/// Why a request could not be processed now.
#[derive(Debug)]
enum Fault {
    /// The database is busy, full or out of reach: the same work is tried again, with
    /// backoff, and resumes from its checkpoint once the fault clears.
    Transient(String),
    /// Retrying cannot help (any other store error, a panic): the request ends FAILED with
    /// the cause as the error of line 0, and the queue moves on.
    Permanent(String),
}

impl From<StoreError> for Fault {
    fn from(err: StoreError) -> Fault {
        if is_transient(&err) {
            Fault::Transient(err.to_string())
        } else {
            Fault::Permanent(err.to_string())
        }
    }
}

/// Busy, out of space, or the connection lost: a retry may succeed.
fn is_transient(err: &StoreError) -> bool {
    if err.is_busy() || err.is_disk_full() {
        return true;
    }
    match err {
        StoreError::Database(
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
        ) => true,
        StoreError::Database(sqlx::Error::Database(db)) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite: BUSY and LOCKED, and their extended codes.
                matches!(code.parse::<i32>(), Ok(c) if c & 0xff == 5 || c & 0xff == 6)
            } else {
                // PostgreSQL: connection exceptions (08...), shutdown, too many
                // connections, serialization failures and deadlocks.
                code.starts_with("08")
                    || matches!(
                        code.as_ref(),
                        "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                    )
            }
        }
        _ => false,
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Waits between tries of work that failed transiently: 1 s, doubling up to 30 s.
struct Backoff(u32);

impl Backoff {
    const MAX: Duration = Duration::from_secs(30);

    fn next(&mut self) -> Duration {
        let wait = Duration::from_secs(1u64 << self.0.min(5)).min(Backoff::MAX);
        self.0 += 1;
        wait
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

enum Outcome {
    Finished,
    Stopped,
    LeaseLost,
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, spool: Spool, config: WorkerConfig) -> Worker {
        let id = format!(
            "worker-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Worker {
            store,
            spool,
            config,
            id,
            metrics: Arc::new(Metrics::default()),
            validator: Validator::start(),
        }
    }

    /// Runs until `shutdown` turns true, then hands back what it holds.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "worker started");
        let mut backoff = Backoff(0);
        while !*shutdown.borrow() {
            match self.store.claim_work(&self.id, self.config.lease).await {
                Ok(Some(work)) => {
                    if work.taken_over {
                        tracing::warn!(
                            worker = %self.id,
                            seq = work.seq,
                            clientRequestId = %work.client_request_id,
                            "took over a request whose worker's lease expired"
                        );
                        self.metrics.lease_taken_over();
                    }
                    let fault = match AssertUnwindSafe(self.process(work.clone(), &shutdown))
                        .catch_unwind()
                        .await
                    {
                        Ok(Ok(())) => None,
                        Ok(Err(fault)) => Some(fault),
                        Err(panic) => Some(Fault::Permanent(format!(
                            "the server failed while processing it ({})",
                            panic_message(panic.as_ref())
                        ))),
                    };
                    match fault {
                        None => backoff.reset(),
                        Some(Fault::Permanent(cause)) => {
                            if self.fail(&work, &cause).await {
                                backoff.reset();
                            } else {
                                self.back_off(&mut backoff, &shutdown).await;
                            }
                        }
                        Some(Fault::Transient(cause)) => {
                            tracing::warn!(
                                worker = %self.id,
                                seq = work.seq,
                                clientRequestId = %work.client_request_id,
                                "processing interrupted, will resume: {cause}"
                            );
                            self.back_off(&mut backoff, &shutdown).await;
                        }
                    }
                    while !*shutdown.borrow() && self.maintain(false).await {}
                }
                Ok(None) => {
                    if self.maintain(true).await {
                        continue;
                    }
                    tokio::select! {
                        _ = self.store.wait_for_work(Duration::from_secs(2)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    tracing::error!(worker = %self.id, "cannot claim work: {err}");
                    self.back_off(&mut backoff, &shutdown).await;
                }
            }
        }
        if let Err(err) = self.store.release_leases(&self.id).await {
            tracing::error!(worker = %self.id, "cannot release leases: {err}");
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// Hands back what this worker holds and waits before the next try.
    async fn back_off(&self, backoff: &mut Backoff, shutdown: &watch::Receiver<bool>) {
        let _ = self.store.release_leases(&self.id).await;
        let mut shutdown = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Ends a request that cannot be processed: FAILED, with `cause` as the error of line 0
    /// (counted in its errors). False when even that could not be stored.
    async fn fail(&self, work: &ClaimedWork, cause: &str) -> bool {
        tracing::error!(
            worker = %self.id,
            seq = work.seq,
            clientRequestId = %work.client_request_id,
            "request failed: {cause}"
        );
        // The text is stored: no NUL, whatever the cause says.
        let message = format!("The request could not be processed: {cause}").replace('\0', "");
        match self
            .store
            .finish_work(work.seq, &self.id, RequestStatus::Failed, Some(&message))
            .await
        {
            Ok(Ok(())) => {
                if let WorkKind::Upload { spool_file, .. } = &work.kind {
                    crate::sidecar::settle(self.store.as_ref(), self.spool.dir(), work, spool_file)
                        .await;
                }
                true
            }
            // Another worker holds it now, and decides.
            Ok(Err(LeaseLost)) => true,
            Err(err) => {
                tracing::error!(worker = %self.id, seq = work.seq, "cannot record the failure: {err}");
                false
            }
        }
    }

    /// One step of background upkeep of the store: when idle (then work is looked for
    /// again before the next step), or between two requests when it cannot wait. Says
    /// whether something was done.
    async fn maintain(&self, idle: bool) -> bool {
        match self.store.maintain(idle).await {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(worker = %self.id, "store upkeep failed: {err}");
                false
            }
        }
    }

    async fn process(
        &self,
        work: ClaimedWork,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), Fault> {
        let started = Instant::now();
        // Stopped however processing ends (an error, a panic).
        let heartbeat = AbortOnDrop(self.spawn_heartbeat(work.seq));
        let mut progress = Progress::of(&work);
        let result = match &work.kind {
            WorkKind::Upload {
                object_type,
                spool_file,
            } => {
                self.process_upload(&work, *object_type, spool_file, shutdown, &mut progress)
                    .await
            }
            WorkKind::DeleteIntegration => {
                let sidecars = self.store.integration_sidecars(work.integration_id).await?;
                self.store.purge_integration(work.integration_id).await?;
                for (_, mark) in sidecars {
                    crate::sidecar::remove_with_source(self.spool.dir(), &mark.name);
                }
                self.finish(&work, RequestStatus::Done, None).await
            }
        };
        drop(heartbeat);
        self.metrics.request_processed(started.elapsed());
        let outcome = result?;
        match outcome {
            Outcome::Finished => progress.log_finished(&self.id, &work, started.elapsed()),
            Outcome::Stopped | Outcome::LeaseLost => tracing::info!(
                worker = %self.id,
                seq = work.seq,
                clientRequestId = %work.client_request_id,
                outcome = match outcome {
                    Outcome::Stopped => "handed back",
                    _ => "lease lost",
                },
                "request processed"
            ),
        }
        if let (Outcome::Finished, WorkKind::Upload { spool_file, .. }) = (&outcome, &work.kind) {
            crate::sidecar::settle(self.store.as_ref(), self.spool.dir(), &work, spool_file).await;
        }
        Ok(())
    }

    fn spawn_heartbeat(&self, seq: i64) -> tokio::task::JoinHandle<()> {
        let (store, id, lease) = (self.store.clone(), self.id.clone(), self.config.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match store.heartbeat(seq, &id, lease).await {
                    Ok(Ok(())) => {}
                    Ok(Err(LeaseLost)) => return,
                    Err(err) => tracing::warn!(worker = %id, "heartbeat failed: {err}"),
                }
            }
        })
    }

    async fn finish(
        &self,
        work: &ClaimedWork,
        status: RequestStatus,
        fatal: Option<&str>,
    ) -> Result<Outcome, Fault> {
        Ok(
            match self
                .store
                .finish_work(work.seq, &self.id, status, fatal)
                .await?
            {
                Ok(()) => Outcome::Finished,
                Err(LeaseLost) => Outcome::LeaseLost,
            },
        )
    }

    async fn process_upload(
        &self,
        work: &ClaimedWork,
        object_type: ObjectType,
        spool_file: &str,
        shutdown: &watch::Receiver<bool>,
        progress: &mut Progress,
    ) -> Result<Outcome, Fault> {
        let schema = Schema::new(
            self.store
                .get_schema(work.integration_id, Some(object_type))
                .await?
                .into_iter()
                .map(|(_, field)| field),
        );
        let file = match std::fs::File::open(self.spool.path_of(spool_file)) {
            Ok(file) => file,
            Err(err) => {
                let message = format!("The uploaded file could not be read: {err}");
                return self
                    .finish(work, RequestStatus::Failed, Some(&message))
                    .await;
            }
        };
        let (sender, mut steps) = mpsc::channel(1);
        let (written, batches_written) = std::sync::mpsc::channel();
        {
            let work = work.clone();
            let batch_lines = self.config.batch_lines;
            let sidecar = SidecarPlace {
                dir: self.spool.dir().to_owned(),
                spool_file: spool_file.to_owned(),
            };
            self.validator.run(move || {
                let mut out = BatchSender {
                    steps: sender,
                    written: batches_written,
                    sent: 0,
                };
                let validated = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    validate_into_batches(
                        file,
                        object_type,
                        schema,
                        &work,
                        batch_lines,
                        &sidecar,
                        &mut out,
                    )
                }));
                let last = match validated {
                    Ok(()) => Step::End,
                    Err(panic) => Step::Unreadable(format!(
                        "The uploaded file could not be validated ({})",
                        panic_message(panic.as_ref())
                    )),
                };
                let _ = out.steps.blocking_send(last);
            });
        }
        let mut error_count = work.error_count;
        let mut ended = false;
        let mut replaced_old_sidecar = false;
        while let Some(step) = steps.recv().await {
            if *shutdown.borrow() {
                return Ok(Outcome::Stopped);
            }
            match step {
                Step::Batch(mut batch, pending) => {
                    if let Some(pending) = pending {
                        match pending.await {
                            Ok(Ok(mark)) => batch.sidecar = Some(mark),
                            failed => {
                                let cause = match failed {
                                    Ok(Err(err)) => err.to_string(),
                                    _ => "the errors writer stopped".to_owned(),
                                };
                                let message =
                                    format!("The errors of the request could not be kept: {cause}");
                                return self
                                    .finish(work, RequestStatus::Failed, Some(&message))
                                    .await;
                            }
                        }
                    }
                    error_count = batch.error_count;
                    if let Err(LeaseLost) = self.store.apply_batch(work, &self.id, &batch).await? {
                        return Ok(Outcome::LeaseLost);
                    }
                    // The generation this one was copied from is no longer pointed at.
                    if let (Some(old), Some(new)) = (&work.sidecar, &batch.sidecar) {
                        if old.name != new.name && !replaced_old_sidecar {
                            replaced_old_sidecar = true;
                            crate::sidecar::remove(self.spool.dir(), &old.name);
                        }
                    }
                    let (successes, errors) = progress.advance(&batch);
                    self.metrics.lines_processed(object_type, successes, errors);
                    drop(batch);
                    let _ = written.send(());
                }
                Step::Unreadable(message) => {
                    return self
                        .finish(work, RequestStatus::Failed, Some(&message))
                        .await;
                }
                Step::End => {
                    ended = true;
                    break;
                }
            }
        }
        if !ended {
            return Err(Fault::Permanent(
                "its validation stopped unexpectedly".into(),
            ));
        }
        let status = if error_count == 0 {
            RequestStatus::Done
        } else {
            RequestStatus::Failed
        };
        self.finish(work, status, None).await
    }
}

/// How far a request has come: its counts as stored (with the batches this worker wrote).
struct Progress {
    lines: u64,
    successes: u64,
    errors: u64,
}

impl Progress {
    fn of(work: &ClaimedWork) -> Progress {
        Progress {
            lines: work.checkpoint_line,
            successes: work.success_count,
            errors: work.error_count,
        }
    }

    /// Takes in a stored batch; returns the successes and errors it added.
    fn advance(&mut self, batch: &Batch) -> (u64, u64) {
        let added = (
            batch.success_count.saturating_sub(self.successes),
            batch.error_count.saturating_sub(self.errors),
        );
        self.lines = batch.checkpoint_line;
        self.successes = batch.success_count;
        self.errors = batch.error_count;
        added
    }

    /// The line of a finished request: its totals, and the seconds this worker spent on it.
    fn log_finished(&self, worker: &str, work: &ClaimedWork, elapsed: Duration) {
        let object_type = match &work.kind {
            WorkKind::Upload { object_type, .. } => object_type.as_str(),
            WorkKind::DeleteIntegration => "INTEGRATION_DELETE",
        };
        tracing::info!(
            worker,
            seq = work.seq,
            clientRequestId = %work.client_request_id,
            objectType = object_type,
            lines = self.lines,
            successes = self.successes,
            errors = self.errors,
            seconds = elapsed.as_secs_f64(),
            "request finished"
        );
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands batches from the validation thread to the worker, never more than two at a time:
/// the one being written and the next, ready or being built. Validation is several times
/// faster than writing, so waiting costs nothing and memory stays at two batches.
struct BatchSender {
    steps: mpsc::Sender<Step>,
    /// One message each time the worker has written a batch and let it go.
    written: std::sync::mpsc::Receiver<()>,
    sent: u64,
}

impl BatchSender {
    /// Sends `step`; false when the worker has stopped listening.
    fn send(&mut self, step: Step) -> bool {
        if self.steps.blocking_send(step).is_err() {
            return false;
        }
        self.sent += 1;
        // Before a third batch is started, the first must be written.
        self.sent < 2 || self.written.recv().is_ok()
    }
}

/// Where the validation thread keeps a request's every error and failed line.
struct SidecarPlace {
    dir: std::path::PathBuf,
    spool_file: String,
}

/// Runs on a blocking thread: reads and validates the file, skipping lines up to the
/// checkpoint (they are still read, so duplicates are still recognised), and sends batches.
/// Every error goes to the sidecar files (opened at the first one), made durable before the
/// batch that counts it is sent.
fn validate_into_batches(
    file: std::fs::File,
    object_type: ObjectType,
    schema: Schema,
    work: &ClaimedWork,
    batch_lines: usize,
    place: &SidecarPlace,
    steps: &mut BatchSender,
) {
    let mut success_count = work.success_count;
    let mut error_count = work.error_count;
    let mut listed = work.listed_errors as usize;
    let mut batch = Batch::default();
    let mut batch_errors = 0usize;
    let mut sidecar: Option<SidecarThread> = None;
    let send = |steps: &mut BatchSender,
                batch: &mut Batch,
                sidecar: &mut Option<SidecarThread>,
                success_count,
                error_count| {
        let mut full = std::mem::take(batch);
        let mut pending = None;
        if let Some(writer) = sidecar {
            match writer.sync_later() {
                Ok(mark) => pending = Some(mark),
                Err(err) => {
                    steps.send(Step::Unreadable(format!(
                        "The errors of the request could not be kept: {err}"
                    )));
                    return false;
                }
            }
        }
        // In key order, consecutive inserts land on neighbouring index pages.
        full.records
            .sort_unstable_by(|a, b| a.1.object_id.cmp(&b.1.object_id));
        full.success_count = success_count;
        full.error_count = error_count;
        steps.send(Step::Batch(full, pending))
    };
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut validator = FileValidator::new(reader, object_type, schema);
    while let Some(item) = validator.next() {
        let outcome = match item {
            Ok(outcome) => outcome,
            Err(err) => {
                let message = format!("The uploaded file could not be read: {err}");
                steps.send(Step::Unreadable(message));
                return;
            }
        };
        if outcome.line <= work.checkpoint_line {
            continue;
        }
        match outcome.result {
            Ok(record) => {
                success_count += 1;
                batch.records.push((outcome.line, record));
            }
            Err(description) => {
                error_count += 1;
                batch_errors += 1;
                if sidecar.is_none() {
                    match SidecarWriter::create(
                        &place.dir,
                        &place.spool_file,
                        work.sidecar.as_ref(),
                    )
                    .and_then(SidecarThread::spawn)
                    {
                        Ok(writer) => sidecar = Some(writer),
                        Err(err) => {
                            steps.send(Step::Unreadable(format!(
                                "The errors of the request could not be kept: {err}"
                            )));
                            return;
                        }
                    }
                }
                if let Some(writer) = &mut sidecar {
                    if let Err(err) = writer.push(
                        outcome.line,
                        outcome.object_id.as_deref(),
                        &description,
                        validator.last_line(),
                        validator.last_line_offset(),
                    ) {
                        steps.send(Step::Unreadable(format!(
                            "The errors of the request could not be kept: {err}"
                        )));
                        return;
                    }
                }
                // The field at fault is found by the errors' thread (see SidecarThread),
                // here only for the errors the database lists.
                if listed < Report::LISTED_ERRORS {
                    listed += 1;
                    batch.errors.push(
                        LineError::new(outcome.line, description).with_object_id(outcome.object_id),
                    );
                }
            }
        }
        batch.checkpoint_line = outcome.line;
        if batch.records.len() + batch_errors >= batch_lines {
            batch_errors = 0;
            if !send(steps, &mut batch, &mut sidecar, success_count, error_count) {
                return;
            }
        }
    }
    if batch.checkpoint_line > 0 {
        send(steps, &mut batch, &mut sidecar, success_count, error_count);
    }
}
