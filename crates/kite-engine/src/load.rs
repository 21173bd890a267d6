//! Turns a `.wasm` file into a compiled component, through the compile cache. Files that
//! are not components get an error saying what they are and what to do instead.

use crate::KiteEngine;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

pub struct LoadedComponent {
    pub component: Component,
    pub from_cache: bool,
    pub elapsed: Duration,
}

#[derive(Debug)]
pub enum ComponentLoadError {
    Read(PathBuf, std::io::Error),
    NotWasm(PathBuf),
    CoreModule(PathBuf),
    Invalid(PathBuf, String),
}

impl std::fmt::Display for ComponentLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            Self::NotWasm(path) => write!(
                f,
                "{} is not a WebAssembly file (it does not start with the `\\0asm` header)",
                path.display()
            ),
            Self::CoreModule(path) => write!(
                f,
                "{} is not a component: it is a core WebAssembly module (WASI preview 1). \
                 Kite's wasi:http executor runs WASI 0.2 components; build for \
                 `wasm32-wasip2` (or convert with `wasm-tools component new`). CGI-style \
                 preview 1 programs will be served by the Wagi executor, which this version \
                 of Kite does not have yet.",
                path.display()
            ),
            Self::Invalid(path, e) => write!(f, "{} is not a valid component: {e}", path.display()),
        }
    }
}

impl std::error::Error for ComponentLoadError {}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl KiteEngine {
    /// Compiles (or loads from the cache) the component at `path`.
    pub fn load_component(&self, path: &Path) -> Result<LoadedComponent, ComponentLoadError> {
        let started = Instant::now();
        let wasm = std::fs::read(path).map_err(|e| ComponentLoadError::Read(path.into(), e))?;
        if wasm.len() < 8 || &wasm[..4] != WASM_MAGIC {
            return Err(ComponentLoadError::NotWasm(path.into()));
        }
        if wasm[4..8] == CORE_MODULE_VERSION {
            return Err(ComponentLoadError::CoreModule(path.into()));
        }
        if let Some(component) = self.cache().and_then(|c| c.get(self.engine(), &wasm)) {
            return Ok(LoadedComponent {
                component,
                from_cache: true,
                elapsed: started.elapsed(),
            });
        }
        let component = Component::new(self.engine(), &wasm)
            .map_err(|e| ComponentLoadError::Invalid(path.into(), format!("{e:#}")))?;
        if let Some(cache) = self.cache() {
            cache.put(&component, &wasm);
        }
        Ok(LoadedComponent {
            component,
            from_cache: false,
            elapsed: started.elapsed(),
        })
    }
}
