//! Kite's Wasmtime engines (classic for WASI 0.2, concurrent for 0.3): pooling allocator,
//! copy-on-write images, epoch deadlines, and loading components through a compile cache.

mod cache;
mod classify;
mod config;
mod decommit;
mod epoch;
mod load;
mod shared;
mod wasi_versions;

pub use cache::{CompileCache, UnusableCacheDir};
pub use config::{EngineKind, EngineOptions, KiteEngine};
pub use decommit::DecommitFlusher;
pub use epoch::EPOCH_TICK;
pub use load::{ComponentLoadError, LoadedComponent, LoadedModule};
pub use shared::Lease;
pub use wasi_versions::{served_release_candidates, unsupported_release_candidate};
