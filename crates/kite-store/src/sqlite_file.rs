//! Opening an SQLite file the way every Kite store needs it (parent directories created,
//! WAL journal with `synchronous = NORMAL`, a busy timeout), and waiting out other locks.

use rusqlite::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long an operation without a deadline waits for a lock another process holds.
pub(crate) const MAX_LOCK_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between two tries of an operation that found the file locked.
const MAX_LOCK_BACKOFF: Duration = Duration::from_millis(16);

/// Pauses between tries of an operation that found an SQLite file locked by another
/// process. Stores run with no busy timeout and wait here instead, asynchronously, so the
/// worker thread is never parked in SQLite's busy handler.
pub(crate) struct LockBackoff {
    give_up: Instant,
    pause: Duration,
}

impl LockBackoff {
    pub(crate) fn until(give_up: Instant) -> Self {
        LockBackoff {
            give_up,
            pause: Duration::from_millis(1),
        }
    }

    /// Waits before the next try (1 ms, doubling up to 16 ms); false, without waiting, once
    /// the next try would come after `give_up`.
    pub(crate) async fn wait(&mut self) -> bool {
        if Instant::now() + self.pause >= self.give_up {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(MAX_LOCK_BACKOFF);
        true
    }
}

/// For tests: sleeps briefly on the current (single-threaded) runtime and checks that no
/// task held the thread meanwhile.
#[cfg(test)]
pub(crate) async fn assert_thread_stays_free() {
    let paused = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        paused.elapsed() < Duration::from_secs(1),
        "a waiting operation held the thread for {:?}",
        paused.elapsed()
    );
}

/// Opens (creating if needed) the database at `path` and runs `setup` on it. Errors are
/// messages naming the file. The busy timeout is for start-up; stores set theirs to zero
/// and use [`LockBackoff`].
pub(crate) fn open_sqlite_file(path: &Path, setup: &str) -> Result<Connection, String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let connection =
        Connection::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    // WAL with synchronous=NORMAL: a committed write is in the WAL file before the call
    // returns, so it survives the process being killed (not necessarily power loss).
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             {setup}"
        ))
        .map_err(|e| format!("setting up {}: {e}", path.display()))?;
    Ok(connection)
}
