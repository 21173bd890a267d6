//! Compilations shared by everything that loads the same bytes while any of it is alive: a
//! host of many apps deploys one Wasm many times, and keeps one copy of its code and one
//! memory image (so instance slots keep their affinity across apps).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Keeps a shared compilation alive; whoever uses the compilation holds one.
#[derive(Clone, Debug)]
pub struct Lease(#[allow(dead_code)] Arc<()>);

/// A compilation, and whether some [`Lease`] on it still lives.
type Entry<T> = (T, Weak<()>);

/// Compilations by the SHA-256 of their bytes, each kept while some [`Lease`] on it lives.
pub(crate) struct Shared<T> {
    entries: Mutex<HashMap<[u8; 32], Entry<T>>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared {
            entries: Mutex::default(),
        }
    }
}

impl<T: Clone> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry<T>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live compilation of these bytes, with a new lease on it.
    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<(T, Lease)> {
        let entries = self.lock();
        let (compiled, alive) = entries.get(digest)?;
        alive
            .upgrade()
            .map(|lease| (compiled.clone(), Lease(lease)))
    }

    /// Shares `compiled` from now on; returns the first lease on it. Compilations nobody
    /// holds any more are dropped.
    pub(crate) fn insert(&self, digest: [u8; 32], compiled: T) -> Lease {
        let lease = Arc::new(());
        let mut entries = self.lock();
        entries.retain(|_, (_, alive)| alive.strong_count() > 0);
        entries.insert(digest, (compiled, Arc::downgrade(&lease)));
        Lease(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compilation_is_shared_while_leased_and_dropped_after() {
        let shared: Shared<Arc<str>> = Shared::default();
        let first = shared.insert([1; 32], "code".into());
        let (again, second) = shared.get(&[1; 32]).expect("shared while leased");
        assert_eq!(&*again, "code");
        drop(first);
        assert!(shared.get(&[1; 32]).is_some(), "one lease still held");
        drop(second);
        assert!(shared.get(&[1; 32]).is_none());
        shared.insert([2; 32], "other".into());
        assert_eq!(shared.lock().len(), 1, "the dead entry was dropped");
    }
}
