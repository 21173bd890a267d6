//! The content-addressed file store behind every deployed version: each distinct file is
//! kept once, read-only, named by its SHA-256, and linked into the versions that hold it.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct BlobStore {
    dir: PathBuf,
    /// Blobs a deploy still in progress has written and not yet recorded, with how many
    /// such deploys hold each: cleaning leaves them alone.
    pinned: Mutex<HashMap<String, usize>>,
}

impl BlobStore {
    /// The store in `dir` (created if missing).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(BlobStore {
            dir: dir.to_path_buf(),
            pinned: Mutex::default(),
        })
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    fn pinned(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.pinned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unpins blobs [`Self::put`] pinned, once their deploy is recorded or given up.
    pub fn unpin(&self, digests: &[String]) {
        let mut pinned = self.pinned();
        for digest in digests {
            if let Some(count) = pinned.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    pinned.remove(digest);
                }
            }
        }
    }

    /// Copies `reader` into the store and pins it (see [`Self::unpin`]); returns its
    /// SHA-256 and size. A blob already there is kept (same digest, same bytes).
    pub fn put(&self, reader: &mut impl Read) -> std::io::Result<(String, u64)> {
        let mut temp = tempfile::NamedTempFile::new_in(self.dir.join("tmp"))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            temp.write_all(&buffer[..n])?;
            size += n as u64;
        }
        let digest = hex(&hasher.finalize());
        *self.pinned().entry(digest.clone()).or_default() += 1;
        let target = self.path(&digest);
        if !target.exists() {
            let file = temp.as_file();
            file.sync_all()?;
            let mut permissions = file.metadata()?.permissions();
            permissions.set_readonly(true);
            file.set_permissions(permissions)?;
            temp.persist(&target).map_err(|e| e.error)?;
        }
        Ok((digest, size))
    }

    /// Makes `target` (a new path) show blob `sha256`: a hard link, or a copy where the
    /// file system cannot link.
    pub fn link(&self, sha256: &str, target: &Path) -> std::io::Result<()> {
        let blob = self.path(sha256);
        if std::fs::hard_link(&blob, target).is_err() {
            std::fs::copy(&blob, target)?;
        }
        Ok(())
    }

    /// Deletes every blob not in `keep` and not pinned; returns how many went.
    pub fn retain(&self, keep: &HashSet<String>) -> std::io::Result<usize> {
        let mut removed = 0;
        let pinned = self.pinned();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == 64 && !keep.contains(name) && !pinned.contains_key(name) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
