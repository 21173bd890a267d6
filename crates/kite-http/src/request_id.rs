//! Request ids: short, unique within a process run and unlikely to repeat across runs,
//! so a log line and the error response a user sees can be matched up.

use std::io::Write;
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
    // Formatted on the stack so the id costs one allocation (the Arc): at most 8 + 1 + 16
    // hex digits.
    let mut buffer = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    write!(cursor, "{:08x}-{n:x}", run_prefix()).expect("32 bytes hold any id");
    let len = cursor.position() as usize;
    Arc::from(std::str::from_utf8(&buffer[..len]).expect("hex digits are ASCII"))
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
