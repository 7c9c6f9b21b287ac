//! Every error of a request and its failed lines, kept in two append-only files beside the
//! spool: `NAME.errors` (one error a line, LDJSON: `{"line", "objectId"?, "field"?,
//! "description"}`) and `NAME.failed` (each failed line as sent, then `\n`), with `NAME` =
//! `SPOOLFILE.GENERATION`. They outlive the spool file and go with the integration's purge.
//!
//! The worker's validation thread appends to them and, before each batch is handed over,
//! makes them durable and marks how far they go; the batch commits that mark with its
//! checkpoint. Bytes past the committed mark belong to a batch that never committed, so a
//! reader reads only up to it. A worker that resumes a request (after a crash, a restart or
//! a lease takeover) never writes into the files it finds: it copies their committed part
//! into a new generation and goes on there, so a former holder still writing its next batch
//! can spoil nothing; the old generation is removed once the new one is committed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use intake_model::LineError;
use intake_store::SidecarMark;
use rand::Rng;

pub fn errors_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.errors"))
}

pub fn failed_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.failed"))
}

/// Removes both files of a sidecar (those missing count as removed).
pub fn remove(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(errors_path(dir, name));
    let _ = std::fs::remove_file(failed_path(dir, name));
}

/// A new generation's name for the sidecar of `spool_file`.
pub fn new_name(spool_file: &str) -> String {
    format!("{spool_file}.{:08x}", rand::thread_rng().gen::<u32>())
}

/// The appending side, owned by the validation thread. Opened at the first error.
pub struct SidecarWriter {
    name: String,
    errors: BufWriter<File>,
    failed: BufWriter<File>,
    errors_bytes: u64,
    failed_bytes: u64,
    scratch: Vec<u8>,
}

impl SidecarWriter {
    /// A new generation for `spool_file`, holding the committed part of `from` (a resumed
    /// request's files) when given.
    pub fn create(dir: &Path, spool_file: &str, from: Option<&SidecarMark>) -> io::Result<Self> {
        let name = new_name(spool_file);
        let open = |path: PathBuf| {
            OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(path)
                .map(|f| BufWriter::with_capacity(1 << 18, f))
        };
        let mut writer = SidecarWriter {
            errors: open(errors_path(dir, &name))?,
            failed: open(failed_path(dir, &name))?,
            name,
            errors_bytes: 0,
            failed_bytes: 0,
            scratch: Vec::with_capacity(256),
        };
        if let Some(from) = from {
            writer.errors_bytes = copy_prefix(
                &errors_path(dir, &from.name),
                from.errors_bytes,
                &mut writer.errors,
            )?;
            writer.failed_bytes = copy_prefix(
                &failed_path(dir, &from.name),
                from.failed_bytes,
                &mut writer.failed,
            )?;
        }
        Ok(writer)
    }

    /// Appends one error and, unless `line` is empty (a line too long to be held), its line.
    pub fn push(&mut self, error: &LineError, line: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, error).map_err(io::Error::other)?;
        self.scratch.push(b'\n');
        self.errors.write_all(&self.scratch)?;
        self.errors_bytes += self.scratch.len() as u64;
        if !line.is_empty() {
            self.failed.write_all(line)?;
            self.failed.write_all(b"\n")?;
            self.failed_bytes += line.len() as u64 + 1;
        }
        Ok(())
    }

    /// Makes everything appended durable and says how far the files go.
    pub fn sync(&mut self) -> io::Result<SidecarMark> {
        for file in [&mut self.errors, &mut self.failed] {
            file.flush()?;
            file.get_ref().sync_data()?;
        }
        Ok(SidecarMark {
            name: self.name.clone(),
            errors_bytes: self.errors_bytes,
            failed_bytes: self.failed_bytes,
        })
    }
}

/// Copies the first `bytes` of `path` into `out`; a missing file (its request's
/// integration purged meanwhile) counts as empty. Returns the bytes copied.
fn copy_prefix(path: &Path, bytes: u64, out: &mut impl Write) -> io::Result<u64> {
    match File::open(path) {
        Ok(file) => io::copy(&mut file.take(bytes), out),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err),
    }
}

/// Scrubs the sidecar files of the integration's finished requests of every text in
/// `quoted` (compared without regard to ASCII case, as the stored errors are): a failed
/// line that holds one is left out, and an error that holds one keeps its line but has its
/// text replaced and its objectId left out. Each sidecar is rewritten as a new generation
/// and the request pointed at it, then the old one removed. A request still being processed
/// is left as it is (its worker is appending to its files).
pub async fn erase(
    state: &crate::AppState,
    integration: intake_store::IntegrationId,
    quoted: &[String],
) -> Result<(), crate::ApiError> {
    let quoted: Vec<Vec<u8>> = quoted
        .iter()
        .filter(|q| !q.is_empty())
        .map(|q| q.to_ascii_lowercase().into_bytes())
        .collect();
    if quoted.is_empty() {
        return Ok(());
    }
    for (seq, mark) in state.store.integration_sidecars(integration).await? {
        let dir = state.spool.dir().to_owned();
        let quoted = quoted.clone();
        let old = mark.clone();
        let rewritten = tokio::task::spawn_blocking(move || rewrite(&dir, &old, &quoted))
            .await
            .map_err(|e| crate::ApiError::internal(e.to_string()))?
            .map_err(|e| crate::ApiError::internal(format!("rewriting errors files: {e}")))?;
        let Some(new) = rewritten else {
            continue;
        };
        if state.store.replace_sidecar(seq, &mark.name, &new).await? {
            remove(state.spool.dir(), &mark.name);
        } else {
            remove(state.spool.dir(), &new.name);
        }
    }
    Ok(())
}

fn holds(text: &[u8], quoted: &[Vec<u8>]) -> bool {
    let lower = text.to_ascii_lowercase();
    quoted
        .iter()
        .any(|q| lower.windows(q.len()).any(|w| w == q.as_slice()))
}

/// The sidecar without what quotes `quoted`, as a new generation; `None` when nothing in it
/// does (or its files are gone).
fn rewrite(dir: &Path, mark: &SidecarMark, quoted: &[Vec<u8>]) -> io::Result<Option<SidecarMark>> {
    use std::io::BufRead;
    let read = |path: PathBuf, len: u64| -> io::Result<Option<Vec<Vec<u8>>>> {
        match File::open(path) {
            Ok(file) => io::BufReader::new(file.take(len))
                .split(b'\n')
                .collect::<io::Result<Vec<_>>>()
                .map(Some),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    };
    let (Some(errors), Some(failed)) = (
        read(errors_path(dir, &mark.name), mark.errors_bytes)?,
        read(failed_path(dir, &mark.name), mark.failed_bytes)?,
    ) else {
        return Ok(None);
    };
    if !errors.iter().chain(&failed).any(|l| holds(l, quoted)) {
        return Ok(None);
    }
    let spool_file = mark
        .name
        .rsplit_once('.')
        .map_or(mark.name.as_str(), |(s, _)| s);
    let mut writer = SidecarWriter::create(dir, spool_file, None)?;
    for line in &errors {
        if holds(line, quoted) {
            let mut error: LineError = serde_json::from_slice(line).map_err(io::Error::other)?;
            error.description = intake_store::lookups::ERASED_DESCRIPTION.to_owned();
            error.object_id = None;
            writer.push(&error, &[])?;
        } else {
            writer.errors.write_all(line)?;
            writer.errors.write_all(b"\n")?;
            writer.errors_bytes += line.len() as u64 + 1;
        }
    }
    for line in failed.iter().filter(|l| !holds(l, quoted)) {
        writer.failed.write_all(line)?;
        writer.failed.write_all(b"\n")?;
        writer.failed_bytes += line.len() as u64 + 1;
    }
    writer.sync().map(Some)
}
