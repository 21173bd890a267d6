//! Turns a `.wasm` file into a compiled component, through the compile cache. A WASI
//! preview 1 core module (what `wasm32-wasip1` builds and older Spin SDKs produce) is made
//! a component first, as Spin does; other files get an error saying what to do instead.

use crate::shared::Lease;
use crate::{EngineKind, KiteEngine};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

pub struct LoadedComponent {
    pub component: Component,
    /// The engine it was compiled for.
    pub kind: EngineKind,
    /// From the compile cache, or shared with another load of the same bytes.
    pub from_cache: bool,
    pub elapsed: Duration,
    /// Hold it as long as the component is used: others loading the same bytes meanwhile
    /// get this compilation.
    pub lease: Lease,
}

#[derive(Debug)]
pub enum ComponentLoadError {
    Read(PathBuf, std::io::Error),
    NotWasm(PathBuf),
    /// A core module that could not be made a component.
    CoreModule(PathBuf, String),
    Invalid(PathBuf, String),
    /// A component where a core module was needed.
    NotCoreModule(PathBuf),
    InvalidModule(PathBuf, String),
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
            Self::CoreModule(path, e) => write!(
                f,
                "{} is a core WebAssembly module (WASI preview 1) that cannot be made a \
                 component: {e}. Modules built with wit-bindgen (Spin SDK 3 or newer, for \
                 `wasm32-wasip1`) are converted; older Spin SDKs (1.x, 2.x) used an interface \
                 Kite does not serve: rebuild with spin-sdk 3 or newer, or for `wasm32-wasip2`.",
                path.display()
            ),
            Self::Invalid(path, e) => write!(f, "{} is not a valid component: {e}", path.display()),
            Self::NotCoreModule(path) => write!(
                f,
                "{} is a component; a CGI program (Wagi) must be a WASI preview 1 core module, \
                 e.g. built for `wasm32-wasip1`",
                path.display()
            ),
            Self::InvalidModule(path, e) => {
                write!(f, "{} is not a valid core module: {e}", path.display())
            }
        }
    }
}

impl std::error::Error for ComponentLoadError {}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl KiteEngine {
    fn count(&self, found: bool) {
        let counter = if found { &self.hits } else { &self.misses };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compiles (or loads from the cache) the component at `path`.
    pub fn load_component(&self, path: &Path) -> Result<LoadedComponent, ComponentLoadError> {
        let started = Instant::now();
        let wasm = std::fs::read(path).map_err(|e| ComponentLoadError::Read(path.into(), e))?;
        if wasm.len() < 8 || &wasm[..4] != WASM_MAGIC {
            return Err(ComponentLoadError::NotWasm(path.into()));
        }
        let digest: [u8; 32] = Sha256::digest(&wasm).into();
        // Bytes another load compiled are found without reading them again.
        for kind in [EngineKind::Classic, EngineKind::Concurrent] {
            let shared = self
                .made(kind)
                .and_then(|flavour| flavour.shared_components.get(&digest));
            if let Some((component, lease)) = shared {
                self.count(true);
                return Ok(LoadedComponent {
                    component,
                    kind,
                    from_cache: true,
                    elapsed: started.elapsed(),
                    lease,
                });
            }
        }
        let is_core_module = wasm[4..8] == CORE_MODULE_VERSION;
        let kind = if !is_core_module && crate::classify::needs_concurrency(&wasm) {
            EngineKind::Concurrent
        } else {
            EngineKind::Classic
        };
        let flavour = self
            .flavour(kind)
            .map_err(|e| ComponentLoadError::Invalid(path.into(), format!("{e:#}")))?;
        let loaded = |component, from_cache, lease| LoadedComponent {
            component,
            kind,
            from_cache,
            elapsed: started.elapsed(),
            lease,
        };
        if let Some(component) = flavour
            .cache
            .as_ref()
            .and_then(|c| c.get::<Component>(&flavour.engine, &digest))
        {
            self.count(true);
            let lease = flavour.shared_components.insert(digest, component.clone());
            return Ok(loaded(component, true, lease));
        }
        let component = if is_core_module {
            let converted = componentize(&wasm)
                .map_err(|e| ComponentLoadError::CoreModule(path.into(), format!("{e:#}")))?;
            Component::new(&flavour.engine, &converted)
        } else {
            let named = crate::wasi_versions::rename_release_candidates(&wasm);
            Component::new(&flavour.engine, &named)
        }
        .map_err(|e| ComponentLoadError::Invalid(path.into(), format!("{e:#}")))?;
        if let Some(cache) = &flavour.cache {
            cache.put(&component, &digest);
        }
        self.count(false);
        let lease = flavour.shared_components.insert(digest, component.clone());
        Ok(loaded(component, false, lease))
    }
}

/// A core WebAssembly module (a WASI preview 1 program), compiled as such.
pub struct LoadedModule {
    pub module: wasmtime::Module,
    pub from_cache: bool,
    pub elapsed: Duration,
    /// As [`LoadedComponent::lease`].
    pub lease: Lease,
}

impl KiteEngine {
    /// Compiles (or loads from the cache) the core module at `path`, for running as a WASI
    /// preview 1 program; a component or anything else is an error saying so.
    pub fn load_module(&self, path: &Path) -> Result<LoadedModule, ComponentLoadError> {
        let started = Instant::now();
        let wasm = std::fs::read(path).map_err(|e| ComponentLoadError::Read(path.into(), e))?;
        if wasm.len() < 8 || &wasm[..4] != WASM_MAGIC {
            return Err(ComponentLoadError::NotWasm(path.into()));
        }
        if wasm[4..8] != CORE_MODULE_VERSION {
            return Err(ComponentLoadError::NotCoreModule(path.into()));
        }
        let digest: [u8; 32] = Sha256::digest(&wasm).into();
        if let Some((module, lease)) = self.shared_modules.get(&digest) {
            self.count(true);
            return Ok(LoadedModule {
                module,
                from_cache: true,
                elapsed: started.elapsed(),
                lease,
            });
        }
        if let Some(module) = self
            .cache()
            .and_then(|c| c.get::<wasmtime::Module>(self.engine(), &digest))
        {
            self.count(true);
            let lease = self.shared_modules.insert(digest, module.clone());
            return Ok(LoadedModule {
                module,
                from_cache: true,
                elapsed: started.elapsed(),
                lease,
            });
        }
        let module = wasmtime::Module::new(self.engine(), &wasm)
            .map_err(|e| ComponentLoadError::InvalidModule(path.into(), format!("{e:#}")))?;
        if let Some(cache) = self.cache() {
            cache.put(&module, &digest);
        }
        self.count(false);
        let lease = self.shared_modules.insert(digest, module.clone());
        Ok(LoadedModule {
            module,
            from_cache: false,
            elapsed: started.elapsed(),
            lease,
        })
    }
}

/// A WASI preview 1 core module as a component: its own interfaces (from the component-type
/// sections wit-bindgen embeds) plus the published preview 1 adapter, the command one for a
/// module with `_start`, the reactor one otherwise.
fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    use wasi_preview1_component_adapter_provider as adapters;
    let adapter = if exports_start(module)? {
        adapters::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
    } else {
        adapters::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
    };
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(adapters::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)?
        .encode()
}

/// Whether the core module exports a `_start` function (a WASI command).
fn exports_start(module: &[u8]) -> anyhow::Result<bool> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ExportSection(exports) = payload? {
            for export in exports {
                if export?.name == "_start" {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}
