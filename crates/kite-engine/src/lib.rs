//! Kite's one Wasmtime engine per process: configuration (pooling allocator, copy-on-write
//! images, epoch deadlines), the epoch ticker, and loading components through a compile cache.

mod cache;
mod config;
mod decommit;
mod epoch;
mod load;
mod shared;

pub use cache::{CompileCache, UnusableCacheDir};
pub use config::{EngineOptions, KiteEngine};
pub use decommit::DecommitFlusher;
pub use epoch::EPOCH_TICK;
pub use load::{ComponentLoadError, LoadedComponent, LoadedModule};
pub use shared::Lease;
