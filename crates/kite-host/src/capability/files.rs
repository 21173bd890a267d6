//! Files: only the granted directories, at their guest paths, read-only unless marked
//! writable. WASI's capability-based directory handles keep `..` and symlinks inside.

use kite_app::{ComponentSpec, FileMount};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub struct FilesGrant {
    mounts: Vec<FileMount>,
}

impl FilesGrant {
    pub fn validate(spec: &ComponentSpec) -> anyhow::Result<Self> {
        for mount in &spec.files {
            anyhow::ensure!(
                mount.source.is_dir(),
                "component `{}`: granted directory {} is missing",
                spec.id,
                mount.source.display()
            );
        }
        Ok(FilesGrant {
            mounts: spec.files.clone(),
        })
    }

    pub fn prepare(&self, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        for mount in &self.mounts {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&mount.source, &mount.destination, perms)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "opening granted directory {}: {e:#}",
                        mount.source.display()
                    )
                })?;
        }
        Ok(())
    }
}
