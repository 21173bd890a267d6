//! Opening an SQLite file the way every Kite store needs it (parent directories created,
//! WAL journal with `synchronous = NORMAL`), and waiting out other processes' locks.

use rusqlite::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long an operation without a deadline waits for a lock another process holds.
pub(crate) const MAX_LOCK_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between two tries of an operation that found the file locked.
const MAX_LOCK_BACKOFF: Duration = Duration::from_millis(16);

/// How long start-up (opening, setting up, seeding) waits in SQLite for another process's
/// lock, before any request is served.
pub(crate) const START_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `error` is another connection (another process, or another request's
/// transaction) holding the lock an operation needs: plain SQLITE_BUSY, since its extended
/// forms, such as a stale snapshot, do not clear by waiting.
pub(crate) fn is_locked(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if failure.extended_code == rusqlite::ffi::SQLITE_BUSY)
}

/// Pauses between tries of an operation that found an SQLite file locked by another
/// connection. Stores' connections have no busy timeout and wait here instead,
/// asynchronously, so the worker thread is never parked in SQLite's busy handler.
pub(crate) struct LockBackoff {
    /// `None`: [`MAX_LOCK_WAIT`] from the first wait (the clock is read only then).
    give_up: Option<Instant>,
    pause: Duration,
}

impl LockBackoff {
    /// Tries stop at `deadline`, or [`MAX_LOCK_WAIT`] after the first lock met without one.
    pub(crate) fn until(deadline: Option<Instant>) -> Self {
        LockBackoff {
            give_up: deadline,
            pause: Duration::from_millis(1),
        }
    }

    /// Waits before the next try (1 ms, doubling up to 16 ms); false, without waiting, once
    /// the next try would come after the time to give up.
    pub(crate) async fn wait(&mut self) -> bool {
        let now = Instant::now();
        let give_up = *self.give_up.get_or_insert(now + MAX_LOCK_WAIT);
        if now + self.pause >= give_up {
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

/// Caps the database file `connection` writes to at about `max_bytes` (whole pages, at
/// least one): writes that would grow it further fail with `SQLITE_FULL`. A database
/// already larger keeps its size and cannot grow.
pub(crate) fn cap_size(connection: &Connection, max_bytes: u64) -> rusqlite::Result<()> {
    let page_size: i64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let pages = (max_bytes / page_size.max(1) as u64).max(1);
    connection.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
    // After a checkpoint the write-ahead log is cut back to at most this.
    connection.query_row(
        &format!("PRAGMA journal_size_limit = {max_bytes}"),
        [],
        |_| Ok(()),
    )?;
    Ok(())
}

/// Opens (creating if needed) the database at `path` and runs `setup` on it, waiting up to
/// [`START_BUSY_TIMEOUT`] for other processes' locks; the connection returned has no busy
/// timeout (see [`LockBackoff`]). Errors are messages naming the file.
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
             PRAGMA busy_timeout = {};
             {setup}
             PRAGMA busy_timeout = 0;",
            START_BUSY_TIMEOUT.as_millis()
        ))
        .map_err(|e| format!("setting up {}: {e}", path.display()))?;
    Ok(connection)
}
