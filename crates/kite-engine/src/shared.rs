//! Compilations shared by everything that loads the same bytes while any of it is alive: a
//! host of many apps deploys one Wasm many times, and keeps one copy of its code and one
//! memory image (so instance slots keep their affinity across apps).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Keeps a shared compilation alive; whoever uses the compilation holds one. The map of
/// shared compilations holds none, so the last lease dropped frees the compilation.
#[derive(Clone)]
pub struct Lease(#[allow(dead_code)] Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lease")
    }
}

/// Compilations by the SHA-256 of their bytes, each kept while some [`Lease`] on it lives.
pub(crate) struct Shared<T> {
    entries: Mutex<HashMap<[u8; 32], Weak<T>>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared {
            entries: Mutex::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Weak<T>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live compilation of these bytes, with a new lease on it.
    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<(T, Lease)> {
        let shared = self.lock().get(digest)?.upgrade()?;
        Some((T::clone(&shared), Lease(shared)))
    }

    /// Shares `compiled` from now on; returns the first lease on it. Entries whose
    /// compilation is gone are dropped.
    pub(crate) fn insert(&self, digest: [u8; 32], compiled: T) -> Lease {
        let shared = Arc::new(compiled);
        let mut entries = self.lock();
        entries.retain(|_, alive| alive.strong_count() > 0);
        entries.insert(digest, Arc::downgrade(&shared));
        Lease(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compilation_is_shared_while_leased_and_freed_with_the_last_lease() {
        let shared: Shared<Arc<str>> = Shared::default();
        let code: Arc<str> = "code".into();
        let first = shared.insert([1; 32], code.clone());
        let (again, second) = shared.get(&[1; 32]).expect("shared while leased");
        assert_eq!(&*again, "code");
        drop(again);
        drop(first);
        assert!(shared.get(&[1; 32]).is_some(), "one lease still held");
        drop(second);
        assert!(shared.get(&[1; 32]).is_none());
        assert_eq!(Arc::strong_count(&code), 1, "the map keeps nothing alive");
        shared.insert([2; 32], "other".into());
        assert_eq!(shared.lock().len(), 1, "the dead entry was dropped");
    }
}
