//! Gives memory that finished instances dirtied back to the operating system promptly. The
//! pooling allocator batches decommits per thread and flushes a batch only once it is full.

use std::cell::Cell;
use wasmtime::{Engine, Instance, Module, Store};

/// Linear memory a slot keeps resident when it is reset (`linear_memory_keep_resident`);
/// only what an instance grew beyond this waits in a decommit batch.
pub(crate) const KEEP_RESIDENT_BYTES: u64 = 1 << 20;
/// Dirtied bytes one thread may leave waiting in its batch before it is flushed at once.
const MAX_PENDING_BYTES: u64 = 64 << 20;

thread_local! {
    /// Bytes dropped instances on this thread left waiting to be decommitted.
    static PENDING_BYTES: Cell<u64> = const { Cell::new(0) };
    /// Instances dropped on this thread, and that count at the last idle check.
    static DROPPED: Cell<u64> = const { Cell::new(0) };
    static DROPPED_AT_LAST_CHECK: Cell<u64> = const { Cell::new(0) };
}

/// Flushes the calling thread's decommit batch on demand. Wasmtime has no call for this,
/// so it drops `batch` instances of an empty module: each adds one (empty) region to the
/// thread's batch, and a batch that reaches its size is flushed.
pub struct DecommitFlusher {
    engine: Engine,
    empty: Module,
    batch: usize,
}

impl DecommitFlusher {
    pub(crate) fn new(engine: &Engine, batch: usize) -> anyhow::Result<Self> {
        Ok(DecommitFlusher {
            engine: engine.clone(),
            empty: Module::new(engine, "(module (memory 1))")?,
            batch,
        })
    }

    /// Records that an instance whose memory had grown to `memory_bytes` was dropped on
    /// this thread. Returns whether the thread's batch now holds enough to flush at once.
    pub fn note_dropped(&self, memory_bytes: u64) -> bool {
        DROPPED.set(DROPPED.get().wrapping_add(1));
        let dirtied = memory_bytes.saturating_sub(KEEP_RESIDENT_BYTES);
        let pending = PENDING_BYTES.get().saturating_add(dirtied);
        PENDING_BYTES.set(pending);
        pending >= MAX_PENDING_BYTES
    }

    /// Called periodically on each thread that drops instances: flushes its batch if
    /// dirtied memory waits in it and no instance was dropped since the last call, so an
    /// idle server holds no more than its slots keep resident.
    pub fn flush_if_idle(&self) {
        let dropped = DROPPED.get();
        let idle = DROPPED_AT_LAST_CHECK.replace(dropped) == dropped;
        if idle && PENDING_BYTES.get() > 0 {
            self.flush();
        }
    }

    /// Decommits everything waiting in this thread's batch.
    pub fn flush(&self) {
        PENDING_BYTES.set(0);
        for _ in 0..self.batch {
            let mut store = Store::new(&self.engine, ());
            if let Err(e) = Instance::new(&mut store, &self.empty, &[]) {
                tracing::debug!("flushing decommits: {e:#}");
                return;
            }
        }
    }
}
