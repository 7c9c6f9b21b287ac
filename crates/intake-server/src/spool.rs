//! The spool: uploaded files wait here, durably, until the worker has processed them.
//! A file is written as `NAME.part`, fsynced, renamed to `NAME` and the directory fsynced;
//! only then is the request registered. Leftover `.part` files are from uploads that never
//! got their 201.
//!
//! Several instances may share one spool, so an instance removes at start only the files
//! that are provably abandoned: `.part` files of a process that is gone or too old (see
//! [`Spool::open`]), and complete files whose request was never registered, or is finished
//! (see [`Spool::remove_orphans`]). A spool file is named `RANDOM.COMPANY.CLIENTREQUESTID.ldjson`
//! after its request, and written as `NAME.HOST-PID.part` after the instance that writes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use intake_store::{CompanyId, Store};
use rand::Rng;
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

/// A file being received. Dropping it without `commit` removes it.
pub struct SpoolWriter {
    file: BufWriter<File>,
    part_path: PathBuf,
    final_path: PathBuf,
    name: String,
    pub bytes: u64,
    committed: bool,
}

impl Spool {
    /// Opens (creates) the spool and removes the `.part` files that no upload can still be
    /// writing: those of a process of this host that is gone, and any older than
    /// [`ABANDONED_AFTER`] (another host's, or one without an owner in its name).
    pub async fn open(dir: impl Into<PathBuf>) -> std::io::Result<Spool> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await?;
        let host = host_name();
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".part") else {
                continue;
            };
            let owner_gone = part_owner(stem)
                .is_some_and(|(owner_host, pid)| owner_host == host && !process_alive(pid));
            let old = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
            if owner_gone || old {
                tracing::info!(file = %name, "removing an abandoned partial upload");
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(Spool { dir })
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new file for the upload `client_request_id` (letters, digits, `-`, `_`) of
    /// `company`.
    pub async fn create(
        &self,
        company: CompanyId,
        client_request_id: &str,
    ) -> std::io::Result<SpoolWriter> {
        let name = format!(
            "{:032x}.{company}.{client_request_id}.ldjson",
            rand::thread_rng().gen::<u128>()
        );
        let part_path = self.dir.join(format!(
            "{name}.{}-{}.part",
            host_name(),
            std::process::id()
        ));
        let file = File::create(&part_path).await?;
        Ok(SpoolWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            final_path: self.dir.join(&name),
            part_path,
            name,
            bytes: 0,
            committed: false,
        })
    }

    /// Removes the complete files older than [`ORPHANED_AFTER`] whose request does not
    /// exist (a crash between the file's rename and the request's insert) or is finished
    /// (a crash between its end and the file's removal, or a cancel) and does not read its
    /// failed lines from it (see [`crate::sidecar`]); and the files, as old, of an errors
    /// generation that its request does not point at (a worker that died before its first
    /// batch committed them; a request resumed later copied the committed part into a
    /// generation of its own). Files named without their request (by an earlier version)
    /// are left alone. Returns how many were removed.
    pub async fn remove_orphans(&self, store: &dyn Store) -> std::io::Result<usize> {
        let mut removed = 0;
        // Whether each errors generation looked up is abandoned: its two or three files
        // need one look-up, not one each.
        let mut abandoned = std::collections::HashMap::<String, bool>::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let generation = crate::sidecar::generation_of(&name);
            let owner = match generation {
                Some(generation) => spool_owner(crate::sidecar::spool_file_of(generation)),
                None => spool_owner(&name),
            };
            let Some((company, client_request_id)) = owner else {
                continue;
            };
            let old = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .is_some_and(|age| age > ORPHANED_AFTER);
            if !old {
                continue;
            }
            if let Some(&known) = generation.and_then(|g| abandoned.get(g)) {
                if known && tokio::fs::remove_file(entry.path()).await.is_ok() {
                    removed += 1;
                }
                continue;
            }
            let source = store.error_source(company, client_request_id).await;
            let orphan = match (generation, source) {
                // The files of an errors generation its request does not point at: left by
                // a worker that stopped before its first batch committed them.
                (Some(generation), Ok(source)) => {
                    source.is_none_or(|s| s.sidecar.is_none_or(|m| m.name != generation))
                }
                (_, Ok(None)) => true,
                // A finished request keeps its file while its failed lines are read from it.
                (None, Ok(Some(source))) => {
                    source.status.is_final()
                        && !source.sidecar.is_some_and(|mark| {
                            mark.name.starts_with(&format!("{name}."))
                                && crate::sidecar::holds_spool_file(&self.dir, &mark.name)
                        })
                }
                (_, Err(err)) => {
                    tracing::warn!(file = %name, "cannot look up the request of a spool file: {err}");
                    false
                }
            };
            if let Some(generation) = generation {
                abandoned.insert(generation.to_owned(), orphan);
            }
            if orphan {
                tracing::info!(file = %name, "removing a spool file no request waits for");
                if tokio::fs::remove_file(entry.path()).await.is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Whether a file can be written to the spool now (for `GET /ready`): writes and
    /// removes a small probe file, named so that no clean-up ever takes it for an upload.
    pub async fn check_writable(&self) -> std::io::Result<()> {
        let probe = self.dir.join(format!(
            ".ready-{:016x}.probe",
            rand::thread_rng().gen::<u64>()
        ));
        tokio::fs::write(&probe, b"ready").await?;
        tokio::fs::remove_file(&probe).await
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub async fn remove(&self, name: &str) {
        let _ = tokio::fs::remove_file(self.path_of(name)).await;
    }
}

impl SpoolWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// The file as written so far, opened for reading (for a body that is read back and
    /// never committed: it is removed when this writer is dropped).
    pub async fn read_back(&mut self) -> std::io::Result<File> {
        self.file.flush().await?;
        File::open(&self.part_path).await
    }

    /// Makes the file durable under its final name and returns that name.
    pub async fn commit(mut self) -> std::io::Result<String> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        tokio::fs::rename(&self.part_path, &self.final_path).await?;
        sync_dir(self.final_path.parent().unwrap_or(Path::new("."))).await?;
        self.committed = true;
        Ok(std::mem::take(&mut self.name))
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.part_path);
        }
    }
}

/// A `.part` file older than this is abandoned, whoever wrote it: far longer than any
/// upload of at most 200 MB takes.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A complete spool file older than this is looked at by [`Spool::remove_orphans`]: far
/// longer than the moment between a file's rename and its request's insert.
pub const ORPHANED_AFTER: Duration = Duration::from_secs(3600);

/// The company and clientRequestId in a complete spool file's name
/// `RANDOM.COMPANY.CLIENTREQUESTID.ldjson`.
fn spool_owner(name: &str) -> Option<(CompanyId, &str)> {
    let mut parts = name.strip_suffix(".ldjson")?.split('.');
    let (_random, company, client_request_id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || client_request_id.is_empty() {
        return None;
    }
    Some((company.parse().ok()?, client_request_id))
}

/// This host's name, as `.part` files carry it (without dots, which separate the parts of
/// the file name).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().replace(['.', '/'], "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The host and pid in a `.part` file's stem `NAME.ldjson.HOST-PID`.
fn part_owner(stem: &str) -> Option<(&str, u32)> {
    let (_, owner) = stem.rsplit_once('.')?;
    let (host, pid) = owner.rsplit_once('-')?;
    Some((host, pid.parse().ok()?))
}

/// Whether another process of this host runs with this pid, as seen at start. Our own pid
/// is this instance's previous life (in a container the pid is the same each start): we
/// have written nothing yet. A pid reused by another process counts as alive: its file then
/// waits for [`ABANDONED_AFTER`].
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    // Without /proc there is no way to tell: assume alive.
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}
