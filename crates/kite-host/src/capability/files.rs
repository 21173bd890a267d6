//! Files: only the granted directories, at their guest paths, read-only unless marked
//! writable, and copied files under a read-only `/`. Each directory is opened once at load;
//! instances share those handles, never the paths.

use kite_app::{ComponentSpec, CopiedFile};
use std::path::Path;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// The component's preopened directories. Opened when the app loads, so nothing a guest
/// later does to the paths (replacing a directory with a symlink, say) changes what any
/// instance sees; within a directory, WASI's capability-based resolution keeps `..` and
/// symlinks inside it.
pub struct FilesGrant {
    preopens: WasiFilesystemCtx,
    /// Where copied files were put; removed with the grant.
    _copies: Option<tempfile::TempDir>,
}

impl FilesGrant {
    pub fn validate(spec: &ComponentSpec) -> anyhow::Result<Self> {
        let mut builder = WasiCtxBuilder::new();
        for mount in &spec.files {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&mount.source, &mount.destination, perms)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "component `{}`: opening granted directory {}: {e:#}",
                        spec.id,
                        mount.source.display()
                    )
                })?;
        }
        let copies = if spec.copied_files.is_empty() {
            None
        } else {
            let copies = copy_files(&spec.copied_files).map_err(|e| {
                anyhow::anyhow!("component `{}`: copying its files: {e:#}", spec.id)
            })?;
            builder
                .preopened_dir(copies.path(), "/", FsPerms::ReadOnly)
                .map_err(|e| {
                    anyhow::anyhow!("component `{}`: opening its files: {e:#}", spec.id)
                })?;
            Some(copies)
        };
        Ok(FilesGrant {
            preopens: builder.build().filesystem().clone(),
            _copies: copies,
        })
    }

    /// Gives the instance's context the directories opened at load (shared handles; no
    /// file is opened here).
    pub fn prepare(&self, wasi: &mut WasiCtx) {
        *wasi.filesystem() = self.preopens.clone();
    }
}

/// The most bytes of single files (Spin's `files` patterns) copied for one component.
const MAX_COPIED_BYTES: u64 = 256 << 20;

/// Copies `files` into a fresh private directory, at their guest paths: what the guest sees
/// is a snapshot taken at load, which nothing it does can change (the directory is
/// preopened read-only) and which no later edit to the app's files leaks into.
fn copy_files(files: &[CopiedFile]) -> anyhow::Result<tempfile::TempDir> {
    // A manifest may map one large file to many paths: the copies are bounded, not the
    // manifest's length.
    let mut total = 0u64;
    for file in files {
        total += std::fs::metadata(&file.source)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.source.display()))?
            .len();
        if total > MAX_COPIED_BYTES {
            anyhow::bail!(
                "the files granted one by one come to more than {} MiB; grant their directory instead",
                MAX_COPIED_BYTES >> 20
            );
        }
    }
    let root = tempfile::Builder::new().prefix("kite-files-").tempdir()?;
    for file in files {
        let target = root.path().join(file.guest_path.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        copy_file(&file.source, &target)?;
    }
    Ok(root)
}

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{} to {}: {e}", from.display(), to.display()))
}
