//! Unpacks an uploaded bundle into a version directory, refusing anything that could reach
//! outside it (absolute or `..` paths, links, devices) or make the host hold too much.

use super::INDEX_PATH;
use super::{component_path, BlobStore, BundleIndex, APP_DIR, BUNDLE_FORMAT, COMPONENTS_DIR};
use std::io::Read;
use std::path::{Component, Path};

/// What one bundle may hold.
#[derive(Debug, Clone, Copy)]
pub struct BundleLimits {
    /// Bytes of file content, after decompression.
    pub max_unpacked: u64,
    pub max_files: usize,
}

/// The largest index accepted.
const MAX_INDEX_BYTES: u64 = 1 << 20;
const MAX_PATH_BYTES: usize = 1024;

/// What a bundle unpacked to.
#[derive(Debug)]
pub struct Unpacked {
    pub index: BundleIndex,
    /// Every blob the version links, without repeats.
    pub blobs: Vec<String>,
    /// Bytes of file content.
    pub size: u64,
}

/// Unpacks `gzip_tar` into `dest` (an empty directory), and writes the index beside the
/// files. Component Wasm goes into `blobs` (shared, never seen by guests) and is linked at
/// its path; the app's own files are written into `dest`, read-only, so that nothing a
/// guest may stat is shared with another app. Returns what was unpacked, checked against
/// the index.
/// Every blob written is pushed to `pinned`, for the caller to unpin when the deploy is
/// recorded or given up, whether or not unpacking succeeds.
pub fn unpack(
    gzip_tar: impl Read,
    limits: BundleLimits,
    blobs: &BlobStore,
    dest: &Path,
    pinned: &mut Vec<String>,
) -> anyhow::Result<Unpacked> {
    let mut linked = std::collections::BTreeSet::new();
    // Everything the archive decompresses to is bounded, headers and extension records
    // (long names, PAX) included: the tar reader buffers those whole.
    let decompressed = (limits.max_unpacked)
        .saturating_add(limits.max_files as u64 * 2048)
        .saturating_add(1 << 20);
    let reader = BoundedReader {
        inner: flate2::read::GzDecoder::new(gzip_tar),
        left: decompressed,
    };
    let mut archive = tar::Archive::new(reader);
    let mut index = None;
    let mut total = 0u64;
    let mut files = 0usize;
    for entry in archive
        .entries()
        .map_err(|e| anyhow::anyhow!("not a gzip'd tar: {e}"))?
    {
        let mut entry = entry
            .map_err(|e| anyhow::anyhow!("the bundle is not a gzip'd tar, or is damaged: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| anyhow::anyhow!("a bundle entry has an unreadable path: {e}"))?
            .into_owned();
        let shown = path.display().to_string();
        check_path(&path).map_err(|why| anyhow::anyhow!("bundle entry {shown:?}: {why}"))?;
        let top = path.components().next();
        let below_app = matches!(top, Some(Component::Normal(name)) if name == APP_DIR);
        files += 1;
        if files > limits.max_files {
            anyhow::bail!("the bundle holds more than {} entries", limits.max_files);
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory if below_app => {
                std::fs::create_dir_all(dest.join(&path))?;
                continue;
            }
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => anyhow::bail!(
                "bundle entry {shown:?}: only files and directories are allowed, not {other:?}"
            ),
        }
        let size = entry.header().size()?;
        total = total.saturating_add(size);
        if total > limits.max_unpacked {
            anyhow::bail!(
                "the bundle's files come to more than {} bytes, this app's bundle quota",
                limits.max_unpacked
            );
        }
        if shown == INDEX_PATH {
            if size > MAX_INDEX_BYTES {
                anyhow::bail!("{INDEX_PATH} is larger than {MAX_INDEX_BYTES} bytes");
            }
            let mut text = Vec::new();
            entry.read_to_end(&mut text)?;
            let parsed: BundleIndex =
                serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{INDEX_PATH}: {e}"))?;
            index = Some(parsed);
            continue;
        }
        let allowed = matches!(top, Some(Component::Normal(name)) if name == APP_DIR || name == COMPONENTS_DIR);
        if !allowed || path.components().count() < 2 {
            anyhow::bail!(
                "bundle entry {shown:?}: files belong below {APP_DIR}/ or {COMPONENTS_DIR}/"
            );
        }
        let target = dest.join(&path);
        if target.exists() {
            anyhow::bail!("bundle entry {shown:?} appears twice");
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if below_app {
            let written = write_read_only(&mut (&mut entry).take(size), &target)?;
            if written != size {
                anyhow::bail!("bundle entry {shown:?} is cut short");
            }
            continue;
        }
        let (digest, written) = blobs.put(&mut (&mut entry).take(size))?;
        pinned.push(digest.clone());
        if written != size {
            anyhow::bail!("bundle entry {shown:?} is cut short");
        }
        // A component's file is named by its digest, and must have it.
        if path.file_name() != Some(std::ffi::OsStr::new(&format!("{digest}.wasm"))) {
            anyhow::bail!(
                "bundle entry {shown:?}: a component's Wasm is named by its SHA-256 ({digest}.wasm)"
            );
        }
        blobs.link(&digest, &target)?;
        linked.insert(digest);
    }
    let index = index.ok_or_else(|| anyhow::anyhow!("the bundle has no {INDEX_PATH}"))?;
    check_index(&index, dest)?;
    std::fs::write(dest.join(INDEX_PATH), serde_json::to_vec_pretty(&index)?)?;
    Ok(Unpacked {
        index,
        blobs: linked.into_iter().collect(),
        size: total,
    })
}

/// A reader that fails once it has given `left` bytes.
struct BoundedReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(
                "the bundle decompresses to more than its quota allows",
            ));
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes `reader` to the new file `target`, then makes it read-only; returns the bytes
/// written.
fn write_read_only(reader: &mut impl Read, target: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)?;
    let written = std::io::copy(reader, &mut file)?;
    let mut permissions = file.metadata()?.permissions();
    permissions.set_readonly(true);
    file.set_permissions(permissions)?;
    Ok(written)
}

/// The index of a version unpacked earlier.
pub fn read_index(dest: &Path) -> anyhow::Result<BundleIndex> {
    let file = dest.join(INDEX_PATH);
    let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// A relative path of plain names, of sensible length.
fn check_path(path: &Path) -> Result<(), &'static str> {
    if path.as_os_str().len() > MAX_PATH_BYTES {
        return Err("the path is too long");
    }
    if path.as_os_str().is_empty() {
        return Err("the path is empty");
    }
    if path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(())
    } else {
        Err("paths must be relative and may not contain `..`")
    }
}

fn check_index(index: &BundleIndex, dest: &Path) -> anyhow::Result<()> {
    if index.bundle_format != BUNDLE_FORMAT {
        anyhow::bail!(
            "{INDEX_PATH}: bundle format {} is not one this server reads ({BUNDLE_FORMAT}); upgrade the server or the client",
            index.bundle_format
        );
    }
    let manifest = Path::new(&index.manifest);
    check_path(manifest).map_err(|why| anyhow::anyhow!("{INDEX_PATH}: manifest: {why}"))?;
    if !dest.join(APP_DIR).join(manifest).is_file() {
        anyhow::bail!(
            "{INDEX_PATH}: the manifest {:?} is not in the bundle",
            index.manifest
        );
    }
    for (id, digest) in &index.components {
        let valid = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid || !dest.join(component_path(digest)).is_file() {
            anyhow::bail!("{INDEX_PATH}: component `{id}`'s Wasm ({digest}) is not in the bundle");
        }
    }
    Ok(())
}
