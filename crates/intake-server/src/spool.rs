//! The spool: uploaded files wait here, durably, until the worker has processed them.
//! A file is written as `NAME.part`, fsynced, renamed to `NAME` and the directory fsynced;
//! only then is the request registered. Leftover `.part` files are from uploads that never
//! got their 201 and are swept at start.

use std::path::{Path, PathBuf};

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
    pub async fn open(dir: impl Into<PathBuf>) -> std::io::Result<Spool> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await?;
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.path().extension().is_some_and(|e| e == "part") {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(Spool { dir })
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub async fn create(&self) -> std::io::Result<SpoolWriter> {
        let name = format!("{:032x}.ldjson", rand::thread_rng().gen::<u128>());
        let part_path = self.dir.join(format!("{name}.part"));
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

    pub async fn remove(&self, name: &str) {
        let _ = tokio::fs::remove_file(self.path_of(name)).await;
    }
}

impl SpoolWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk).await
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

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}
