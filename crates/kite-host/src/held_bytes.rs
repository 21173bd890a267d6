//! Bytes the host holds for one instance outside its resource table: the statements and
//! rows of Spin 4's async database calls while they run, and rows waiting in a stream for
//! the guest to read. Together they stay within the instance's `limits.host_memory`.

use crate::InstanceState;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use wasmtime::component::{Accessor, HasData};
use wasmtime::AsContextMut;

/// One instance's ledger, made on its first hold: an instance that holds nothing (every
/// WASI 0.2 request) allocates nothing for it.
pub(crate) struct HeldBytes {
    limit: usize,
    ledger: OnceLock<Arc<Ledger>>,
}

struct Ledger {
    used: AtomicUsize,
    limit: usize,
}

/// Bytes held for one call or stream, given back to the ledger when dropped.
pub(crate) struct Held {
    ledger: Option<Arc<Ledger>>,
    bytes: usize,
    most: usize,
}

/// Why a [`Held`] could not grow.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// The call or stream would hold more than its own bound.
    TooLarge { most: usize },
    /// The instance would hold more than its `host_memory`.
    OverBudget { limit: usize },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooLarge { most } => write!(f, "the result is larger than {most} bytes"),
            Refused::OverBudget { limit } => write!(
                f,
                "this request's results and statements in flight would hold more than its \
                 host memory limit ({limit} bytes): read or drop earlier results first"
            ),
        }
    }
}

/// A hold of `most` bytes at most on the instance's ledger, with `bytes` (what a call's
/// arguments hold, already lifted) in it: for one of Spin 4's async host functions.
pub(crate) fn hold<D: HasData + ?Sized>(
    accessor: &Accessor<InstanceState, D>,
    most: usize,
    bytes: usize,
) -> Result<Held, Refused> {
    let mut held = accessor.with(|mut access| access.as_context_mut().data().held.hold(most));
    held.grow(bytes)?;
    Ok(held)
}

impl std::error::Error for Refused {}

impl HeldBytes {
    pub(crate) fn new(limit: u64) -> Self {
        HeldBytes {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            ledger: OnceLock::new(),
        }
    }

    /// An empty hold on this ledger that may grow to `most` bytes.
    pub(crate) fn hold(&self, most: usize) -> Held {
        let ledger = self.ledger.get_or_init(|| {
            Arc::new(Ledger {
                used: AtomicUsize::new(0),
                limit: self.limit,
            })
        });
        Held {
            ledger: Some(ledger.clone()),
            bytes: 0,
            most,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.ledger
            .get()
            .map_or(0, |ledger| ledger.used.load(Ordering::Relaxed))
    }
}

impl Held {
    /// A hold on no ledger, bounded by `most` alone (a call whose result goes straight to
    /// the guest).
    pub(crate) fn alone(most: usize) -> Held {
        Held {
            ledger: None,
            bytes: 0,
            most,
        }
    }

    /// Holds `bytes` more, or refuses and holds what it held.
    pub(crate) fn grow(&mut self, bytes: usize) -> Result<(), Refused> {
        let total = self.bytes.saturating_add(bytes);
        if total > self.most {
            return Err(Refused::TooLarge { most: self.most });
        }
        if let Some(ledger) = &self.ledger {
            ledger
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(bytes).filter(|&sum| sum <= ledger.limit)
                })
                .map_err(|_| Refused::OverBudget {
                    limit: ledger.limit,
                })?;
        }
        self.bytes = total;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(ledger) = &self.ledger {
            ledger.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_stay_within_their_own_bound_and_the_instance_s() {
        let ledger = HeldBytes::new(100);
        let mut a = ledger.hold(60);
        assert_eq!(a.grow(50), Ok(()));
        assert_eq!(a.grow(20), Err(Refused::TooLarge { most: 60 }));
        let mut b = ledger.hold(60);
        assert_eq!(b.grow(60), Err(Refused::OverBudget { limit: 100 }));
        assert_eq!(b.grow(50), Ok(()));
        assert_eq!(ledger.used(), 100);
        drop(a);
        assert_eq!(ledger.used(), 50);
        drop(b);
        assert_eq!(ledger.used(), 0);
        let mut alone = Held::alone(10);
        assert!(alone.grow(11).is_err());
    }
}
