//! Files: only the granted directories, at their guest paths, read-only unless marked
//! writable. Each is opened once at load; instances share those handles, never the paths.

use kite_app::ComponentSpec;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// The component's preopened directories. Opened when the app loads, so nothing a guest
/// later does to the paths (replacing a directory with a symlink, say) changes what any
/// instance sees; within a directory, WASI's capability-based resolution keeps `..` and
/// symlinks inside it.
pub struct FilesGrant {
    preopens: WasiFilesystemCtx,
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
        Ok(FilesGrant {
            preopens: builder.build().filesystem().clone(),
        })
    }

    /// Gives the instance's context the directories opened at load (shared handles; no
    /// file is opened here).
    pub fn prepare(&self, wasi: &mut WasiCtx) {
        *wasi.filesystem() = self.preopens.clone();
    }
}
