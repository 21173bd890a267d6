//! Request ids: short, unique within a process run and unlikely to repeat across runs,
//! so a log line and the error response a user sees can be matched up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn run_prefix() -> u32 {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    })
}

pub(crate) fn next_request_id() -> Arc<str> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}-{n:x}", run_prefix()).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique() {
        let a = super::next_request_id();
        let b = super::next_request_id();
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next());
    }
}
