//! Builds the process-wide `wasmtime::Engine`: pooling allocator sized for the app's
//! limits (on-demand allocation if the address space cannot be reserved), epochs on.

use crate::decommit::{DecommitFlusher, KEEP_RESIDENT_BYTES};
use crate::epoch::EpochTicker;
use crate::shared::Shared;
use crate::CompileCache;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// What the engine must accommodate, derived from the app being served.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The largest linear memory any component may grow to, in bytes.
    pub max_memory: u64,
    /// How many instances may be alive at once across the whole process.
    pub max_instances: u32,
    /// Where compiled components are cached; `None` disables the cache, as does a directory
    /// that other users can write to.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator (falls back to on-demand if reservation fails).
    pub pooling: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_memory: 128 << 20,
            max_instances: 1000,
            cache_dir: CompileCache::default_dir(),
            pooling: true,
        }
    }
}

/// Kite's engines, their epoch tickers and compile caches, and the compilations shared
/// between loads.
///
/// Two engines: the classic one runs WASI 0.2 components with the concurrency machinery
/// off (it costs every 0.2 request time); the concurrent one, made when a component first
/// needs it, runs components using the component model's async ABI (WASI 0.3).
pub struct KiteEngine {
    classic: Flavour,
    concurrent: std::sync::OnceLock<Result<Flavour, String>>,
    options: EngineOptions,
    pub(crate) shared_modules: Shared<wasmtime::Module>,
    /// Loads that found a compilation (shared, or in the compile cache), and loads that
    /// compiled.
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
}

/// One engine with what belongs to it.
pub(crate) struct Flavour {
    pub(crate) engine: Engine,
    pub(crate) cache: Option<CompileCache>,
    pooling: bool,
    decommits: Option<Arc<DecommitFlusher>>,
    pub(crate) shared_components: Shared<Component>,
    _ticker: EpochTicker,
}

/// Which of the two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// WASI 0.2 and preview 1: the concurrency machinery off.
    Classic,
    /// The component model's async ABI (WASI 0.3, async imports).
    Concurrent,
}

/// Slot regions each thread's pool batches before decommitting them in one call.
const DECOMMIT_BATCH_SIZE: usize = 64;

impl KiteEngine {
    pub fn new(options: &EngineOptions) -> anyhow::Result<Self> {
        Ok(KiteEngine {
            classic: Flavour::new(options, EngineKind::Classic)?,
            concurrent: std::sync::OnceLock::new(),
            options: options.clone(),
            shared_modules: Shared::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    pub(crate) fn flavour(&self, kind: EngineKind) -> anyhow::Result<&Flavour> {
        match kind {
            EngineKind::Classic => Ok(&self.classic),
            EngineKind::Concurrent => self
                .concurrent
                .get_or_init(|| {
                    Flavour::new(&self.options, EngineKind::Concurrent)
                        .map_err(|e| format!("{e:#}"))
                })
                .as_ref()
                .map_err(|e| {
                    anyhow::anyhow!("the engine for WASI 0.3 components cannot be made: {e}")
                }),
        }
    }

    /// The engine of `kind` if it has been made (the classic one always is).
    pub(crate) fn made(&self, kind: EngineKind) -> Option<&Flavour> {
        match kind {
            EngineKind::Classic => Some(&self.classic),
            EngineKind::Concurrent => self.concurrent.get()?.as_ref().ok(),
        }
    }

    /// The classic engine (WASI 0.2 components and preview 1 modules).
    pub fn engine(&self) -> &Engine {
        &self.classic.engine
    }

    /// The engine of `kind`, made on first use.
    pub fn engine_of(&self, kind: EngineKind) -> anyhow::Result<&Engine> {
        Ok(&self.flavour(kind)?.engine)
    }

    pub fn cache(&self) -> Option<&CompileCache> {
        self.classic.cache.as_ref()
    }

    /// Loads that found a compilation (shared with another load of the same bytes, or in
    /// the compile cache), and loads that compiled, so far.
    pub fn compile_hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Flushes the classic engine's decommit batches on demand (pooling allocator only).
    pub fn decommits(&self) -> Option<&Arc<DecommitFlusher>> {
        self.classic.decommits.as_ref()
    }

    /// Whether the classic engine uses the pooling allocator (false after a fallback).
    pub fn is_pooling(&self) -> bool {
        self.classic.pooling
    }
}

impl Flavour {
    fn new(options: &EngineOptions, kind: EngineKind) -> anyhow::Result<Self> {
        let (engine, pooling) = if options.pooling {
            match Engine::new(&Self::config(options, kind, true)) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    tracing::warn!(
                        "pooling allocator unavailable ({e:#}); using on-demand instance allocation, which is slower"
                    );
                    (Engine::new(&Self::config(options, kind, false))?, false)
                }
            }
        } else {
            (Engine::new(&Self::config(options, kind, false))?, false)
        };
        let cache = options
            .cache_dir
            .as_ref()
            .and_then(|dir| Self::open_cache(dir, &engine));
        let ticker = EpochTicker::start(engine.clone())?;
        let decommits = if pooling {
            Some(Arc::new(DecommitFlusher::new(
                &engine,
                DECOMMIT_BATCH_SIZE,
            )?))
        } else {
            None
        };
        Ok(Flavour {
            engine,
            cache,
            pooling,
            decommits,
            shared_components: Shared::default(),
            _ticker: ticker,
        })
    }

    fn open_cache(dir: &Path, engine: &Engine) -> Option<CompileCache> {
        CompileCache::new(dir.to_path_buf(), engine)
            .inspect_err(|refusal| {
                tracing::warn!("{refusal}; running without a compile cache (compiling every time)")
            })
            .ok()
    }

    fn config(options: &EngineOptions, kind: EngineKind, pooling: bool) -> Config {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Skipping the concurrency machinery saves every 0.2 (non-async ABI) request work;
        // components that use the async ABI need it.
        config.concurrency_support(kind == EngineKind::Concurrent);
        config.memory_init_cow(true);
        if pooling {
            let mut pool = PoolingAllocationConfig::default();
            let max_memory = usize::try_from(options.max_memory).unwrap_or(usize::MAX);
            pool.total_component_instances(options.max_instances)
                .total_core_instances(options.max_instances.saturating_mul(4))
                .total_memories(options.max_instances.saturating_mul(2))
                .total_tables(options.max_instances.saturating_mul(4))
                .total_stacks(options.max_instances)
                .max_memory_size(max_memory)
                .max_core_instances_per_component(50)
                .max_memories_per_component(10)
                .max_tables_per_component(50)
                .table_elements(100_000)
                .max_component_instance_size(4 << 20)
                .max_core_instance_size(4 << 20)
                .decommit_batch_size(DECOMMIT_BATCH_SIZE);
            // Keeping the first 16 KiB of each table slot resident saves page faults on
            // every instantiation (measured: 7 -> 4 faults per hello-world request).
            pool.table_keep_resident(16 << 10);
            // Reset a used memory slot by copying back only the pages the guest dirtied
            // (found with Linux's PAGEMAP_SCAN, kernel 6.7+; elsewhere Wasmtime falls back
            // to madvise), up to 1 MiB: the pages stay resident, so the next instance in the
            // slot takes no page faults for them. Measured +25 % req/s on hello-world.
            pool.pagemap_scan(Enabled::Auto)
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES as usize);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config
    }
}
