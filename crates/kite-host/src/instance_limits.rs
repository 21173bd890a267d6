//! The store limiter of an instance: Wasmtime's memory and table limits, plus a record of
//! how far its linear memories grew, so the host knows how much memory it dirtied.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

pub struct InstanceLimits {
    limits: StoreLimits,
    memory_bytes: usize,
}

impl InstanceLimits {
    pub(crate) fn new(memory_limit: usize) -> Self {
        InstanceLimits {
            limits: StoreLimitsBuilder::new().memory_size(memory_limit).build(),
            memory_bytes: 0,
        }
    }

    /// The total size the instance's linear memories grew to.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes = self.memory_bytes.saturating_add(desired - current);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
