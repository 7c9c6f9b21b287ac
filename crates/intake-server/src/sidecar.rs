//! Every error of a request and its failed lines, kept in files beside the spool, named
//! after a generation `NAME` = `SPOOLFILE.GENERATION`:
//!
//! - `NAME.errors`: one error a line, LDJSON (`{"line", "objectId"?, "field"?,
//!   "description"}`).
//! - `NAME.index`: where each failed line is, 12 bytes a line in file order (its offset,
//!   u64 little-endian, and its length, u32, without its line end) in the lines' source.
//! - The source of the lines: the request's spool file itself (the worker writes only the
//!   index, so a file whose every line fails costs 12 bytes a line, not a copy of it), or
//!   `NAME.failed` when that exists (the failed lines copied out, each followed by `\n`:
//!   when a finished request's failed lines are a small part of its file, so that the spool
//!   file can go, and after an erasure). Generations written before the index have a
//!   `NAME.failed` and no `NAME.index`: there `NAME.failed` is read as it stands.
//!
//! A spool file that is a generation's source is kept as long as its request (see
//! [`settle`]); the other files outlive the spool file and go with the integration's purge.
//!
//! The worker's validation thread appends to them and, before each batch is handed over,
//! makes them durable and marks how far they go; the batch commits that mark with its
//! checkpoint. Bytes past the committed mark belong to a batch that never committed, so a
//! reader reads only up to it. A worker that resumes a request (after a crash, a restart or
//! a lease takeover) never writes into the files it finds: it copies their committed part
//! into a new generation and goes on there, so a former holder still writing its next batch
//! can spoil nothing; the old generation is removed once the new one is committed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use intake_model::LineError;
use intake_store::SidecarMark;
use rand::Rng;

/// Bytes of one entry of `NAME.index`.
const ENTRY: u64 = 12;

pub fn errors_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.errors"))
}

fn index_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.index"))
}

fn failed_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.failed"))
}

/// The generation a sidecar file is of, from its name (`NAME.errors`, `NAME.index` or
/// `NAME.failed`, where `NAME` ends in a generation's 8 hex digits).
pub fn generation_of(file: &str) -> Option<&str> {
    let name = [".errors", ".index", ".failed"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    let (_, generation) = name.rsplit_once('.')?;
    (generation.len() == 8 && generation.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// The spool file a generation belongs to.
pub fn spool_file_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// Where a generation's failed lines are read from.
enum Lines {
    /// Through the index, from the spool file or from `NAME.failed`.
    Indexed { index: PathBuf, source: PathBuf },
    /// `NAME.failed` as it stands (written before the index).
    Copied(PathBuf),
}

fn lines_of(dir: &Path, name: &str) -> Lines {
    let (index, failed) = (index_path(dir, name), failed_path(dir, name));
    match (index.exists(), failed.exists()) {
        (true, true) => Lines::Indexed {
            index,
            source: failed,
        },
        (true, false) => Lines::Indexed {
            index,
            source: dir.join(spool_file_of(name)),
        },
        (false, _) => Lines::Copied(failed),
    }
}

/// Whether the generation's failed lines are read from its request's spool file, which
/// then must stay.
pub fn holds_spool_file(dir: &Path, name: &str) -> bool {
    index_path(dir, name).exists() && !failed_path(dir, name).exists()
}

/// Removes the files of a generation (those missing count as removed), not the spool file.
pub fn remove(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(errors_path(dir, name));
    let _ = std::fs::remove_file(index_path(dir, name));
    let _ = std::fs::remove_file(failed_path(dir, name));
}

/// Removes a generation's files and the spool file when it is their source (for a
/// request that goes: its integration's purge).
pub fn remove_with_source(dir: &Path, name: &str) {
    if holds_spool_file(dir, name) {
        let _ = std::fs::remove_file(dir.join(spool_file_of(name)));
    }
    remove(dir, name);
}

/// A new generation's name for the sidecar of `spool_file`.
pub fn new_name(spool_file: &str) -> String {
    format!("{spool_file}.{:08x}", rand::thread_rng().gen::<u32>())
}

/// The appending side, owned by the validation thread. Opened at the first error.
pub struct SidecarWriter {
    name: String,
    errors: BufWriter<File>,
    index: BufWriter<File>,
    /// `NAME.failed` when the lines are copied (a generation whose source is not the spool
    /// file); `None` when the index points into the spool file.
    copied: Option<BufWriter<File>>,
    errors_bytes: u64,
    index_bytes: u64,
    copied_bytes: u64,
    scratch: Vec<u8>,
}

fn create_new(path: PathBuf) -> io::Result<BufWriter<File>> {
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map(|f| BufWriter::with_capacity(1 << 18, f))
}

impl SidecarWriter {
    /// A new generation for `spool_file`, holding the committed part of `from` (a resumed
    /// request's files) when given. Its index points into the spool file, unless `from`
    /// had its lines copied (then they are copied here too).
    pub fn create(dir: &Path, spool_file: &str, from: Option<&SidecarMark>) -> io::Result<Self> {
        let copy = from.is_some_and(|from| !holds_spool_file(dir, &from.name));
        let mut writer = Self::open(dir, spool_file, copy)?;
        if let Some(from) = from {
            writer.errors_bytes = copy_prefix(
                &errors_path(dir, &from.name),
                from.errors_bytes,
                &mut writer.errors,
            )?;
            match lines_of(dir, &from.name) {
                Lines::Indexed { index, source } => {
                    writer.index_bytes = copy_prefix(&index, from.failed_bytes, &mut writer.index)?;
                    if let Some(copied) = &mut writer.copied {
                        // Up to the end of the last line the copied index points at.
                        let end = last_entry_end(writer.index_bytes, &index)?;
                        writer.copied_bytes = copy_prefix(&source, end, copied)?;
                    }
                }
                Lines::Copied(_) => each_failed_line(dir, from, |line| writer.push_line(line, 0))?,
            }
        }
        Ok(writer)
    }

    fn open(dir: &Path, spool_file: &str, copy: bool) -> io::Result<Self> {
        let name = new_name(spool_file);
        Ok(SidecarWriter {
            errors: create_new(errors_path(dir, &name))?,
            index: create_new(index_path(dir, &name))?,
            copied: if copy {
                Some(create_new(failed_path(dir, &name))?)
            } else {
                None
            },
            name,
            errors_bytes: 0,
            index_bytes: 0,
            copied_bytes: 0,
            scratch: Vec::with_capacity(256),
        })
    }

    fn push_error(&mut self, error: &LineError) -> io::Result<()> {
        self.push_error_text(&ErrorText {
            line: error.line,
            object_id: error.object_id.as_deref(),
            field: error.field.as_deref(),
            description: &error.description,
        })
    }

    fn push_error_text(&mut self, error: &ErrorText<'_>) -> io::Result<()> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, error).map_err(io::Error::other)?;
        self.scratch.push(b'\n');
        self.errors.write_all(&self.scratch)?;
        self.errors_bytes += self.scratch.len() as u64;
        Ok(())
    }

    fn push_error_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.errors.write_all(line)?;
        self.errors.write_all(b"\n")?;
        self.errors_bytes += line.len() as u64 + 1;
        Ok(())
    }

    /// One failed line: its place in the spool file, or copied when this generation copies.
    fn push_line(&mut self, line: &[u8], spool_offset: u64) -> io::Result<()> {
        let len = u32::try_from(line.len()).map_err(io::Error::other)?;
        let offset = match &mut self.copied {
            Some(copied) => {
                copied.write_all(line)?;
                copied.write_all(b"\n")?;
                let at = self.copied_bytes;
                self.copied_bytes += u64::from(len) + 1;
                at
            }
            None => spool_offset,
        };
        self.push_entry(offset, len)
    }

    /// One entry of the index.
    fn push_entry(&mut self, offset: u64, len: u32) -> io::Result<()> {
        let mut entry = [0u8; ENTRY as usize];
        entry[..8].copy_from_slice(&offset.to_le_bytes());
        entry[8..].copy_from_slice(&len.to_le_bytes());
        self.index.write_all(&entry)?;
        self.index_bytes += ENTRY;
        Ok(())
    }

    /// Makes everything appended durable and says how far the files go.
    pub fn sync(&mut self) -> io::Result<SidecarMark> {
        for file in [&mut self.errors, &mut self.index]
            .into_iter()
            .chain(self.copied.as_mut())
        {
            file.flush()?;
            file.get_ref().sync_data()?;
        }
        Ok(SidecarMark {
            name: self.name.clone(),
            errors_bytes: self.errors_bytes,
            failed_bytes: self.index_bytes,
        })
    }
}

/// A [`SidecarWriter`] on a thread of its own, so that encoding and writing the errors
/// runs beside the validation instead of after each line (on two cores, a file whose every
/// line fails then costs about what validating it costs). The channel is bounded: memory
/// stays flat.
pub struct SidecarThread {
    sender: Option<std::sync::mpsc::SyncSender<Message>>,
    thread: Option<std::thread::JoinHandle<()>>,
    copies: bool,
    /// The errors not handed over yet, packed (see [`Packed`]), [`PUSHED_AT_ONCE`] at a
    /// time: one wake-up of the thread per error would cost more than writing it.
    pending: Packed,
    /// Buffers the thread is done with, handed back to be filled again.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

const PUSHED_AT_ONCE: usize = 1024;

/// Errors packed into one buffer, each as its line number and the place of its line in the
/// spool file (u64, u64, u32 little-endian; a length of 0 for a line not held), its
/// objectId (u32 length, `u32::MAX` for none, then the bytes), its description (u32
/// length, bytes) and, when the generation copies its lines, the line's bytes. The
/// validation thread allocates nothing per error for the hand-over, and the errors'
/// thread frees nothing the validation thread allocated: with the system allocator, a
/// stream of small blocks freed on another thread than the one that made them costs more
/// than the copy.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
    count: usize,
}

impl Packed {
    fn push(
        &mut self,
        line_number: u64,
        object_id: Option<&str>,
        description: &str,
        (offset, len): (u64, u32),
        copied: Option<&[u8]>,
    ) {
        let b = &mut self.bytes;
        b.extend_from_slice(&line_number.to_le_bytes());
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        match object_id {
            Some(id) => {
                b.extend_from_slice(&(id.len() as u32).to_le_bytes());
                b.extend_from_slice(id.as_bytes());
            }
            None => b.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        b.extend_from_slice(&(description.len() as u32).to_le_bytes());
        b.extend_from_slice(description.as_bytes());
        if let Some(line) = copied {
            b.extend_from_slice(line);
        }
        self.count += 1;
    }

    /// Calls `each` with every error packed in `bytes` (see [`Packed`]).
    fn each(
        bytes: &[u8],
        copies: bool,
        mut each: impl FnMut(Unpacked<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
            let (piece, after) = rest.split_at(n);
            *rest = after;
            piece
        }
        fn u32_of(rest: &mut &[u8]) -> u32 {
            u32::from_le_bytes(take(rest, 4).try_into().expect("4 bytes"))
        }
        fn u64_of(rest: &mut &[u8]) -> u64 {
            u64::from_le_bytes(take(rest, 8).try_into().expect("8 bytes"))
        }
        fn text<'a>(rest: &mut &'a [u8], n: u32) -> io::Result<&'a str> {
            std::str::from_utf8(take(rest, n as usize)).map_err(io::Error::other)
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let line = u64_of(&mut rest);
            let offset = u64_of(&mut rest);
            let len = u32_of(&mut rest);
            let object_id = match u32_of(&mut rest) {
                u32::MAX => None,
                n => Some(text(&mut rest, n)?),
            };
            let n = u32_of(&mut rest);
            let description = text(&mut rest, n)?;
            let copied = (copies && len > 0).then(|| take(&mut rest, len as usize));
            each(Unpacked {
                line,
                object_id,
                description,
                offset,
                len,
                copied,
            })?;
        }
        Ok(())
    }
}

/// One error of a [`Packed`] buffer.
struct Unpacked<'a> {
    line: u64,
    object_id: Option<&'a str>,
    description: &'a str,
    offset: u64,
    len: u32,
    copied: Option<&'a [u8]>,
}

/// An error as it is written to `NAME.errors`: [`LineError`]'s serialized shape, borrowed.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorText<'a> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    description: &'a str,
}

enum Message {
    Push(Vec<u8>),
    Sync(tokio::sync::oneshot::Sender<io::Result<SidecarMark>>),
}

/// The mark of what was handed over before [`SidecarThread::sync_later`], once durable.
pub type PendingMark = tokio::sync::oneshot::Receiver<io::Result<SidecarMark>>;

impl SidecarThread {
    pub fn spawn(mut writer: SidecarWriter) -> io::Result<SidecarThread> {
        let copies = writer.copied.is_some();
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Message>(32);
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("intake-sidecar".into())
            .spawn(move || {
                // The first failure is kept and answered to the next sync.
                let mut failure: Option<io::Error> = None;
                for message in receiver {
                    match message {
                        Message::Push(mut bytes) => {
                            if failure.is_none() {
                                failure = Packed::each(&bytes, copies, |e| {
                                    writer.push_error_text(&ErrorText {
                                        line: e.line,
                                        object_id: e.object_id,
                                        field: intake_model::field_of(e.description),
                                        description: e.description,
                                    })?;
                                    match (e.copied, e.len) {
                                        (_, 0) => Ok(()),
                                        (Some(line), _) => writer.push_line(line, e.offset),
                                        (None, len) => writer.push_entry(e.offset, len),
                                    }
                                })
                                .err();
                            }
                            bytes.clear();
                            let _ = give_back.send(bytes);
                        }
                        Message::Sync(answer) => {
                            let _ = answer.send(match failure.take() {
                                Some(err) => Err(err),
                                None => writer.sync(),
                            });
                        }
                    }
                }
            })?;
        Ok(SidecarThread {
            sender: Some(sender),
            thread: Some(thread),
            copies,
            pending: Packed::default(),
            spare,
        })
    }

    fn gone() -> io::Error {
        io::Error::other("the errors writer stopped")
    }

    /// Hands over the error of line `line_number` and, unless `line` is empty (a line too
    /// long to be held), where its line is: `offset` in the spool file. The field at fault
    /// is found on the errors' thread.
    pub fn push(
        &mut self,
        line_number: u64,
        object_id: Option<&str>,
        description: &str,
        line: &[u8],
        offset: u64,
    ) -> io::Result<()> {
        let len = u32::try_from(line.len()).map_err(io::Error::other)?;
        let copied = (self.copies && len > 0).then_some(line);
        self.pending
            .push(line_number, object_id, description, (offset, len), copied);
        if self.pending.count >= PUSHED_AT_ONCE {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.pending.count == 0 {
            return Ok(());
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let bytes = std::mem::replace(&mut self.pending.bytes, next);
        self.pending.count = 0;
        self.sender
            .as_ref()
            .ok_or_else(Self::gone)?
            .send(Message::Push(bytes))
            .map_err(|_| Self::gone())
    }

    /// Asks for everything handed over so far to be made durable; the answer says how far
    /// the files then go. Pushes after this call are not in it.
    pub fn sync_later(&mut self) -> io::Result<PendingMark> {
        self.hand_over()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.sender
            .as_ref()
            .ok_or_else(Self::gone)?
            .send(Message::Sync(answer))
            .map_err(|_| Self::gone())?;
        Ok(answered)
    }
}

impl Drop for SidecarThread {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the last of the first `index_bytes` bytes of entries of `index` ends (its line
/// and the `\n` after it).
fn last_entry_end(index_bytes: u64, index: &Path) -> io::Result<u64> {
    if index_bytes < ENTRY {
        return Ok(0);
    }
    let mut file = File::open(index)?;
    file.seek(SeekFrom::Start(index_bytes - ENTRY))?;
    let (offset, len) = read_entry(&mut file)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    Ok(offset + u64::from(len) + 1)
}

fn read_entry(reader: &mut impl Read) -> io::Result<Option<(u64, u32)>> {
    let mut entry = [0u8; ENTRY as usize];
    match reader.read_exact(&mut entry) {
        Ok(()) => Ok(Some((
            u64::from_le_bytes(entry[..8].try_into().expect("8 bytes")),
            u32::from_le_bytes(entry[8..].try_into().expect("4 bytes")),
        ))),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(err) => Err(err),
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

/// A generation's failed lines, read in order, each followed by `\n`.
pub struct FailedLines {
    inner: FailedInner,
}

enum FailedInner {
    Indexed {
        index: BufReader<io::Take<File>>,
        source: BufReader<File>,
        /// Where `source` is read next.
        at: u64,
        line: Vec<u8>,
    },
    Copied(io::Take<File>),
    Empty,
}

impl FailedLines {
    /// The committed failed lines of `mark`; none when its files are gone (purged). An error
    /// of kind `NotFound` means the generation went while it was opened (replaced by a new
    /// one): ask for the request's mark again.
    pub fn open(dir: &Path, mark: &SidecarMark) -> io::Result<FailedLines> {
        let inner = match lines_of(dir, &mark.name) {
            Lines::Indexed { index, source } => {
                let index = File::open(index)?;
                FailedInner::Indexed {
                    index: BufReader::with_capacity(1 << 16, index.take(mark.failed_bytes)),
                    source: BufReader::with_capacity(1 << 18, File::open(source)?),
                    at: 0,
                    line: Vec::new(),
                }
            }
            Lines::Copied(failed) => match File::open(failed) {
                Ok(file) => FailedInner::Copied(file.take(mark.failed_bytes)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => FailedInner::Empty,
                Err(err) => return Err(err),
            },
        };
        Ok(FailedLines { inner })
    }

    /// The next lines, about `want` bytes of them (more when one line is longer); empty
    /// at the end.
    pub fn next_chunk(&mut self, want: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(want + 1024);
        match &mut self.inner {
            FailedInner::Indexed {
                index,
                source,
                at,
                line,
            } => {
                while out.len() < want {
                    let Some((offset, len)) = read_entry(index)? else {
                        break;
                    };
                    if offset >= *at {
                        source.seek_relative((offset - *at) as i64)?;
                    } else {
                        source.seek(SeekFrom::Start(offset))?;
                    }
                    line.resize(len as usize, 0);
                    source.read_exact(line)?;
                    *at = offset + u64::from(len);
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
            }
            FailedInner::Copied(file) => {
                out.resize(want, 0);
                let n = file.read(&mut out)?;
                out.truncate(n);
            }
            FailedInner::Empty => {}
        }
        Ok(out)
    }
}

/// Failed lines of more bytes than this, and at least half of their file, are not copied
/// out when their request ends: the spool file stays as their source.
const KEEP_SPOOL_FILE_OVER: u64 = 8 << 20;

/// What a finished request does with its spool file: removed, unless a sidecar generation
/// reads its failed lines from it. Then, when those lines are under half of the file, or
/// under [`KEEP_SPOOL_FILE_OVER`], they are copied out into a new generation (which the
/// request is pointed at) so that the file can go; otherwise the file stays as the lines'
/// source, as long as the request.
pub async fn settle(
    state_store: &dyn intake_store::Store,
    dir: &Path,
    work: &intake_store::ClaimedWork,
    spool_file: &str,
) {
    let source = match state_store
        .error_source(work.company_id, &work.client_request_id)
        .await
    {
        Ok(source) => source,
        Err(err) => {
            tracing::warn!(seq = work.seq, "cannot settle the spool file: {err}");
            return;
        }
    };
    let mark = source.and_then(|s| s.sidecar);
    let Some(mark) = mark.filter(|m| holds_spool_file(dir, &m.name)) else {
        let _ = tokio::fs::remove_file(dir.join(spool_file)).await;
        return;
    };
    let (dir_owned, old) = (dir.to_owned(), mark.clone());
    let copied = tokio::task::spawn_blocking(move || -> io::Result<Option<SidecarMark>> {
        let spool_bytes = std::fs::metadata(dir_owned.join(spool_file_of(&old.name)))?.len();
        let mut lines_bytes = 0u64;
        let mut index =
            BufReader::new(File::open(index_path(&dir_owned, &old.name))?.take(old.failed_bytes));
        while let Some((_, len)) = read_entry(&mut index)? {
            lines_bytes += u64::from(len) + 1;
        }
        if lines_bytes * 2 >= spool_bytes && lines_bytes > KEEP_SPOOL_FILE_OVER {
            return Ok(None);
        }
        rewrite(&dir_owned, &old, &[], true)
    })
    .await;
    match copied {
        Ok(Ok(Some(new))) => match state_store
            .replace_sidecar(work.seq, &mark.name, &new)
            .await
        {
            Ok(true) => remove_with_source(dir, &mark.name),
            Ok(false) => remove(dir, &new.name),
            Err(err) => {
                tracing::warn!(seq = work.seq, "cannot settle the spool file: {err}");
                remove(dir, &new.name);
            }
        },
        Ok(Ok(None)) => {}
        Ok(Err(err)) => tracing::warn!(seq = work.seq, "cannot copy the failed lines: {err}"),
        Err(err) => tracing::warn!(seq = work.seq, "cannot copy the failed lines: {err}"),
    }
}

/// Scrubs the sidecar files of the integration's finished requests of every text in
/// `quoted` (compared without regard to ASCII case, as the stored errors are): a failed
/// line that holds one is left out, and an error that holds one keeps its line but has its
/// text replaced and its objectId left out. Each sidecar is rewritten as a new generation
/// (its lines copied out, so a spool file kept as their source goes too: it holds every
/// line of the upload) and the request pointed at it, then the old one removed. A request
/// still being processed is left as it is (its worker is appending to its files).
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
        let rewritten = tokio::task::spawn_blocking(move || rewrite(&dir, &old, &quoted, false))
            .await
            .map_err(|e| crate::ApiError::internal(e.to_string()))?
            .map_err(|e| crate::ApiError::internal(format!("rewriting errors files: {e}")))?;
        let Some(new) = rewritten else {
            continue;
        };
        if state.store.replace_sidecar(seq, &mark.name, &new).await? {
            remove_with_source(state.spool.dir(), &mark.name);
        } else {
            remove(state.spool.dir(), &new.name);
        }
    }
    Ok(())
}

fn holds(text: &[u8], quoted: &[Vec<u8>]) -> bool {
    if quoted.is_empty() {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    quoted
        .iter()
        .any(|q| lower.windows(q.len()).any(|w| w == q.as_slice()))
}

/// Whether any line of the file at `path` holds one of `quoted`.
fn file_holds(path: &Path, quoted: &[Vec<u8>]) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    for line in BufReader::with_capacity(1 << 18, file).split(b'\n') {
        if holds(&line?, quoted) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Calls `each` with every failed line of `mark`, in order, without its `\n`.
fn each_failed_line(
    dir: &Path,
    mark: &SidecarMark,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut failed = FailedLines::open(dir, mark)?;
    loop {
        let chunk = failed.next_chunk(1 << 18)?;
        if chunk.is_empty() {
            return Ok(());
        }
        for line in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            each(line)?;
        }
    }
}

/// Calls `each` with every committed error line of `mark` (LDJSON, without its `\n`);
/// false when the errors file is gone.
fn each_error_line(
    dir: &Path,
    mark: &SidecarMark,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    let file = match File::open(errors_path(dir, &mark.name)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    for line in BufReader::with_capacity(1 << 18, file.take(mark.errors_bytes)).split(b'\n') {
        each(&line?)?;
    }
    Ok(true)
}

/// The sidecar without what quotes `quoted`, as a new generation whose lines are copied;
/// `None` when nothing in it (nor in the spool file it reads its lines from) does, unless
/// `always`, or when its files are gone. Streams: memory stays flat in the lines.
fn rewrite(
    dir: &Path,
    mark: &SidecarMark,
    quoted: &[Vec<u8>],
    always: bool,
) -> io::Result<Option<SidecarMark>> {
    if !always {
        let mut found = false;
        let mut look = |line: &[u8]| {
            found = found || holds(line, quoted);
            Ok(())
        };
        if !each_error_line(dir, mark, &mut look)? {
            return Ok(None);
        }
        each_failed_line(dir, mark, &mut look)?;
        let spool_holds = !found
            && holds_spool_file(dir, &mark.name)
            && file_holds(&dir.join(spool_file_of(&mark.name)), quoted)?;
        if !found && !spool_holds {
            return Ok(None);
        }
    }
    let mut writer = SidecarWriter::open(dir, spool_file_of(&mark.name), true)?;
    let kept = each_error_line(dir, mark, |line| {
        if holds(line, quoted) {
            let mut error: LineError = serde_json::from_slice(line).map_err(io::Error::other)?;
            error.description = intake_store::lookups::ERASED_DESCRIPTION.to_owned();
            error.object_id = None;
            writer.push_error(&error)
        } else {
            writer.push_error_line(line)
        }
    })?;
    if !kept {
        remove(dir, &writer.name);
        return Ok(None);
    }
    each_failed_line(dir, mark, |line| {
        if holds(line, quoted) {
            Ok(())
        } else {
            writer.push_line(line, 0)
        }
    })?;
    writer.sync().map(Some)
}
