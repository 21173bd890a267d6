//! On-disk cache of compiled components, keyed by the wasm's SHA-256 and the engine's
//! compatibility hash, so a second start of the same app skips compilation.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// `$KITE_CACHE_DIR`, else `$XDG_CACHE_HOME/kite`, else `~/.cache/kite`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("KITE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("kite"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("kite"))
    }

    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = Sha256::digest(wasm);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of `wasm`, if there is a usable one.
    pub(crate) fn get(&self, engine: &Engine, wasm: &[u8]) -> Option<Component> {
        let path = self.entry_path(wasm);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `put` below from `Component::serialize` for an
        // engine with the same compatibility hash; the cache directory belongs to the user.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!("ignoring unusable cache entry {}: {e:#}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component. Failures are logged, never fatal: the cache is an
    /// optimisation.
    pub(crate) fn put(&self, component: &Component, wasm: &[u8]) {
        let path = self.entry_path(wasm);
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let bytes = component.serialize()?;
            let tmp = tempfile_path(&path);
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(
                "could not write compile cache entry {}: {e:#}",
                path.display()
            );
        }
    }
}

fn tempfile_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}
