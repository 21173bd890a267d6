//! Opening an SQLite file the way every Kite store needs it: parent directories created,
//! WAL journal with `synchronous = NORMAL`, a busy timeout, then the store's own setup.

use rusqlite::Connection;
use std::path::Path;

/// Opens (creating if needed) the database at `path` and runs `setup` on it. Errors are
/// messages naming the file.
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
