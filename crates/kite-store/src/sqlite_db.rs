//! SQLite databases for guests: a file per label in WAL mode; statements run with typed
//! parameters, stop at the request's deadline, and return bounded column names and rows.

use crate::sqlite_file::{cap_size, is_locked, open_sqlite_file, START_BUSY_TIMEOUT};
use crate::{sqlite_functions, sqlite_guard};
use rusqlite::limits::Limit;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The largest string or blob a statement may build or store (SQLite's own default is
/// 1 GB, which one guest request could make the host allocate).
const MAX_VALUE_BYTES: usize = 32 << 20;
/// The largest result one statement may return to a guest.
const MAX_RESULT_BYTES: usize = 32 << 20;
/// SQLite virtual-machine steps between two looks at the deadline while a statement runs.
const STEPS_BETWEEN_DEADLINE_CHECKS: i32 = 10_000;

/// A value as guests see it.
#[derive(Debug, Clone, PartialEq)]
pub enum DbValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<DbValue>>,
    /// The row id this statement inserted, if it inserted one (the connection may be shared,
    /// so its own last id can be another request's).
    pub inserted_rowid: Option<i64>,
    /// The rows this statement changed, if it was an insert, update or delete.
    pub changes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is full")]
    Full,
    #[error("{0}")]
    Io(String),
    /// Another request's transaction, or another process, held the lock the statement needs
    /// for as long as it could wait; running it again later may work.
    #[error("the database is locked by another transaction")]
    Locked,
}

/// One database file. Statements outside any transaction run on one shared connection; a
/// statement that opens an explicit transaction hands that connection, transaction and all,
/// to its session (see [`crate::SqliteSession`]), and a spare connection takes its place.
/// So other requests go on reading (WAL: they see only committed data) while a transaction
/// is open, and a write that needs the lock it holds waits for it to end.
pub struct SqliteDatabase {
    path: PathBuf,
    max_bytes: Option<u64>,
    /// The write-ahead log's file, watched when the database is capped.
    log_path: Option<PathBuf>,
    shared: Mutex<Connection>,
    /// Connections ready to take the shared one's place, kept for the next session that
    /// opens a transaction. One is opened with the database, so a transaction opens no
    /// file on the request path unless several are open at once.
    spare: Mutex<Vec<Connection>>,
    /// Signalled whenever a session's transaction ends.
    transaction_ended: Notify,
}

/// How often a statement waiting for the shared connection looks again.
const SHARED_CONNECTION_POLL: Duration = Duration::from_millis(1);

/// Connections kept spare beyond the shared one; more are closed when they come back.
const MAX_SPARE_CONNECTIONS: usize = 4;

/// Opens one connection to the database file, set up for guests, the file capped at
/// `max_bytes` if given.
fn open_connection(path: &Path, max_bytes: Option<u64>) -> Result<Connection, DbError> {
    let mut connection =
        open_sqlite_file(path, "PRAGMA foreign_keys = ON;").map_err(DbError::Io)?;
    if let Some(max_bytes) = max_bytes {
        cap_size(&connection, max_bytes).map_err(map_error)?;
    }
    let max_value = i32::try_from(MAX_VALUE_BYTES).unwrap_or(i32::MAX);
    connection
        .set_limit(Limit::SQLITE_LIMIT_LENGTH, max_value)
        .map_err(map_error)?;
    sqlite_guard::confine(&mut connection).map_err(map_error)?;
    sqlite_functions::install(&connection, MAX_VALUE_BYTES).map_err(map_error)?;
    Ok(connection)
}

impl SqliteDatabase {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Self::open_capped(path, None)
    }

    /// As [`Self::open`], the file capped at `max_bytes`: a write that would grow it
    /// further fails with [`DbError::Full`].
    pub fn open_capped(path: &Path, max_bytes: Option<u64>) -> Result<Self, DbError> {
        Ok(SqliteDatabase {
            path: path.to_path_buf(),
            max_bytes,
            log_path: max_bytes.map(|_| {
                let mut log = path.as_os_str().to_os_string();
                log.push("-wal");
                PathBuf::from(log)
            }),
            shared: Mutex::new(open_connection(path, max_bytes)?),
            spare: Mutex::new(vec![open_connection(path, max_bytes)?]),
            transaction_ended: Notify::new(),
        })
    }

    fn lock_shared(&self) -> Result<MutexGuard<'_, Connection>, DbError> {
        self.shared
            .lock()
            .map_err(|_| DbError::Io("the database connection was poisoned".into()))
    }

    /// The shared connection, waited for (on this blocking thread) no later than `deadline`:
    /// a statement queued behind a long one gives up, and frees its thread, when its
    /// request's time is over.
    fn lock_shared_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<MutexGuard<'_, Connection>, DbError> {
        let Some(deadline) = deadline else {
            return self.lock_shared();
        };
        loop {
            match self.shared.try_lock() {
                Ok(shared) => return Ok(shared),
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    return Err(DbError::Io("the database connection was poisoned".into()))
                }
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() >= deadline => {
                    return Err(DbError::Io(
                        "the statement was stopped at the request's deadline (`limits.timeout`) while another statement held the database".into(),
                    ))
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(SHARED_CONNECTION_POLL);
                }
            }
        }
    }

    /// Runs one statement outside any transaction, on the shared connection. If the
    /// statement opened a transaction, the connection is returned with it, for the session
    /// to keep until it ends.
    pub(crate) fn execute_shared(
        &self,
        statement: &str,
        parameters: &[DbValue],
        deadline: Option<Instant>,
    ) -> (Result<QueryResult, DbError>, Option<Connection>) {
        let mut shared = match self.lock_shared_until(deadline) {
            Ok(shared) => shared,
            Err(e) => return (Err(e), None),
        };
        let result = self
            .check_log(&shared, statement)
            .and_then(|()| run_until(&mut shared, statement, parameters, deadline));
        if shared.is_autocommit() {
            return (result, None);
        }
        match self.take_spare() {
            Ok(spare) => (result, Some(std::mem::replace(&mut *shared, spare))),
            Err(e) => {
                // Without a connection to take its place the transaction cannot be handed
                // over; undo it rather than let it hold the shared connection.
                let _ = shared.execute_batch("ROLLBACK");
                (Err(e), None)
            }
        }
    }

    /// With a size cap, a statement that writes is refused while the write-ahead log is
    /// past the cap and a checkpoint cannot bring it back (a reader's snapshot holds old
    /// pages): otherwise the log could grow without bound beside the capped database.
    pub(crate) fn check_log(
        &self,
        connection: &Connection,
        statement: &str,
    ) -> Result<(), DbError> {
        let Some((max_bytes, log)) = self.max_bytes.zip(self.log_path.as_ref()) else {
            return Ok(());
        };
        // The same statement cache `run` uses: a read costs no lookup of the log's size.
        let reads_only = connection
            .prepare_cached(statement)
            .map(|prepared| prepared.readonly())
            .unwrap_or(false);
        let log_size = || std::fs::metadata(log).map_or(0, |m| m.len());
        if reads_only || log_size() <= max_bytes {
            return Ok(());
        }
        checkpoint(connection);
        if log_size() <= max_bytes {
            Ok(())
        } else {
            Err(DbError::Full)
        }
    }

    fn take_spare(&self) -> Result<Connection, DbError> {
        let spare = self.spare.lock().ok().and_then(|mut spare| spare.pop());
        match spare {
            Some(connection) => Ok(connection),
            None => open_connection(&self.path, self.max_bytes),
        }
    }

    /// Takes back a session's connection whose transaction has ended (rolling it back if it
    /// is still open) and wakes the statements waiting for it.
    pub(crate) fn transaction_done(&self, connection: Connection) {
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        if connection.is_autocommit() {
            if let Ok(mut spare) = self.spare.lock() {
                if spare.len() < MAX_SPARE_CONNECTIONS {
                    spare.push(connection);
                }
            }
        }
        self.transaction_ended.notify_waiters();
    }

    /// A future that completes the next time some session's transaction ends.
    pub(crate) fn transaction_ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.transaction_ended.notified()
    }
}

/// Copies the write-ahead log into the database and truncates it, as far as readers allow.
/// Through the C API: the guest's authorizer, installed on the connection, refuses the
/// `wal_checkpoint` pragma.
fn checkpoint(connection: &Connection) {
    // SAFETY: the handle is the connection's own, used on this thread while the connection
    // is borrowed; a null database name means every attached database, which is only `main`.
    unsafe {
        rusqlite::ffi::sqlite3_wal_checkpoint_v2(
            connection.handle(),
            std::ptr::null(),
            rusqlite::ffi::SQLITE_CHECKPOINT_TRUNCATE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}

/// Runs `statement` on `connection`, stopping it if it is still running at `deadline`, so a
/// runaway query cannot hold the database (and the thread) past its request's time.
pub(crate) fn run_until(
    connection: &mut Connection,
    statement: &str,
    parameters: &[DbValue],
    deadline: Option<Instant>,
) -> Result<QueryResult, DbError> {
    if let Some(deadline) = deadline {
        connection
            .progress_handler(
                STEPS_BETWEEN_DEADLINE_CHECKS,
                Some(move || Instant::now() >= deadline),
            )
            .map_err(map_error)?;
    }
    let result = run(connection, statement, parameters);
    if deadline.is_some() {
        let _ = connection.progress_handler(0, None::<fn() -> bool>);
    }
    result
}

/// Runs `statement` and collects its rows, refusing results over [`MAX_RESULT_BYTES`].
fn run(
    connection: &Connection,
    statement: &str,
    parameters: &[DbValue],
) -> Result<QueryResult, DbError> {
    sqlite_guard::take_refusal();
    let (rowid_before, total_changes_before) =
        (connection.last_insert_rowid(), connection.total_changes());
    let mut prepared = connection.prepare_cached(statement).map_err(map_error)?;
    let columns: Vec<String> = prepared.column_names().map(|c| c.to_string()).collect();
    let mut rows = prepared
        .query(rusqlite::params_from_iter(parameters.iter()))
        .map_err(map_error)?;
    let mut result = QueryResult {
        columns,
        ..QueryResult::default()
    };
    // What the host holds for the result: every value's own size plus its bytes, and each
    // row's list.
    let mut size: usize = result.columns.iter().map(String::len).sum();
    while let Some(row) = rows.next().map_err(map_error)? {
        let mut values = Vec::with_capacity(result.columns.len());
        size += std::mem::size_of::<Vec<DbValue>>();
        for index in 0..result.columns.len() {
            let value = row.get_ref(index).map_err(map_error)?;
            size += std::mem::size_of::<DbValue>()
                + match value {
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.len(),
                    _ => 0,
                };
            if size > MAX_RESULT_BYTES {
                return Err(DbError::Io(format!(
                    "the result is larger than {} MiB; select fewer rows or columns",
                    MAX_RESULT_BYTES >> 20
                )));
            }
            values.push(from_sql(value));
        }
        result.rows.push(values);
    }
    drop(rows);
    let rowid = connection.last_insert_rowid();
    result.inserted_rowid = (rowid != rowid_before).then_some(rowid);
    result.changes =
        (connection.total_changes() != total_changes_before).then(|| connection.changes());
    Ok(result)
}

impl SqliteDatabase {
    /// Runs a script of statements once per database: a script whose exact text was already
    /// applied is skipped, so seeding at every start is idempotent. Returns whether it ran.
    pub fn apply_once(&self, script: &str) -> Result<bool, DbError> {
        let mut shared = self.lock_shared()?;
        // Before serving, a lock held by another process may be waited for here.
        shared.busy_timeout(START_BUSY_TIMEOUT).map_err(map_error)?;
        let result = sqlite_guard::unconfined(&mut shared, |connection| {
            apply_script_once(connection, script)
        });
        let _ = shared.busy_timeout(Duration::ZERO);
        result.map_err(map_error)?
    }
}

fn apply_script_once(connection: &mut Connection, script: &str) -> Result<bool, DbError> {
    let digest = fnv1a(script.as_bytes());
    let transaction = connection.transaction().map_err(map_error)?;
    transaction
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS _kite_applied_scripts (digest TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(map_error)?;
    let seen: bool = transaction
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM _kite_applied_scripts WHERE digest = ?1)",
            [&digest],
            |row| row.get(0),
        )
        .map_err(map_error)?;
    if seen {
        return Ok(false);
    }
    transaction.execute_batch(script).map_err(map_error)?;
    transaction
        .execute(
            "INSERT INTO _kite_applied_scripts (digest, applied_at) VALUES (?1, datetime('now'))",
            [&digest],
        )
        .map_err(map_error)?;
    transaction.commit().map_err(map_error)?;
    Ok(true)
}

/// A stable 64-bit FNV-1a digest, as hex: identifies a script across runs.
fn fnv1a(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}-{}", bytes.len())
}

/// Parameters are bound straight from the guest's values, without copying them.
impl ToSql for DbValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            DbValue::Integer(i) => ValueRef::Integer(*i),
            DbValue::Real(r) => ValueRef::Real(*r),
            DbValue::Text(t) => ValueRef::Text(t.as_bytes()),
            DbValue::Blob(b) => ValueRef::Blob(b),
            DbValue::Null => ValueRef::Null,
        }))
    }
}

fn from_sql(value: ValueRef<'_>) -> DbValue {
    match value {
        ValueRef::Integer(i) => DbValue::Integer(i),
        ValueRef::Real(r) => DbValue::Real(r),
        ValueRef::Text(t) => DbValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => DbValue::Blob(b.to_vec()),
        ValueRef::Null => DbValue::Null,
    }
}

fn map_error(e: rusqlite::Error) -> DbError {
    // SQLite reports some refusals (functions) as plain errors; the authorizer's own
    // record says what was refused and why.
    if let Some(reason) = sqlite_guard::take_refusal() {
        return DbError::Io(format!("refused: {reason}"));
    }
    if is_locked(&e) {
        return DbError::Locked;
    }
    if let rusqlite::Error::SqliteFailure(failure, _) = &e {
        if failure.extended_code == rusqlite::ffi::SQLITE_BUSY_SNAPSHOT {
            return DbError::Io(
                "another request wrote to the database after this transaction began reading; \
                 roll back and try again (a transaction begun with BEGIN IMMEDIATE cannot meet this)"
                    .into(),
            );
        }
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => DbError::Full,
        Some(ErrorCode::AuthorizationForStatementDenied) => DbError::Io(format!("refused: {e}")),
        // Only the deadline's progress handler interrupts statements.
        Some(ErrorCode::OperationInterrupted) => DbError::Io(
            "the statement was stopped at the request's deadline (`limits.timeout`)".into(),
        ),
        _ => DbError::Io(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteSession;
    use std::sync::Arc;

    fn session(path: &Path) -> SqliteSession {
        SqliteSession::new(Arc::new(SqliteDatabase::open(path).unwrap()))
    }

    #[tokio::test]
    async fn statements_with_typed_parameters_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = session(&dir.path().join("db/default.sqlite"));
        db.execute(
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)",
            &[],
            None,
        )
        .await
        .unwrap();
        let inserted = db
            .execute(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                &[
                    DbValue::Integer(7),
                    DbValue::Real(1.5),
                    DbValue::Text("hi".into()),
                    DbValue::Blob(vec![0, 255]),
                    DbValue::Null,
                ],
                None,
            )
            .await
            .unwrap();
        assert!(inserted.rows.is_empty());
        let selected = db
            .execute("SELECT * FROM t WHERE i = ?", &[DbValue::Integer(7)], None)
            .await
            .unwrap();
        assert_eq!(selected.columns, vec!["i", "r", "s", "b", "n"]);
        assert_eq!(
            selected.rows,
            vec![vec![
                DbValue::Integer(7),
                DbValue::Real(1.5),
                DbValue::Text("hi".into()),
                DbValue::Blob(vec![0, 255]),
                DbValue::Null
            ]]
        );
        assert!(matches!(
            db.execute("SELEC nonsense", &[], None).await,
            Err(DbError::Io(_))
        ));
    }

    #[tokio::test]
    async fn scripts_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let database = Arc::new(SqliteDatabase::open(&dir.path().join("d.sqlite")).unwrap());
        let db = SqliteSession::new(database.clone());
        let script = "CREATE TABLE seeded (x INTEGER); INSERT INTO seeded VALUES (1);";
        assert!(database.apply_once(script).unwrap());
        assert!(!database.apply_once(script).unwrap());
        let count = db
            .execute("SELECT count(*) FROM seeded", &[], None)
            .await
            .unwrap();
        assert_eq!(count.rows, vec![vec![DbValue::Integer(1)]]);
        assert!(database.apply_once("CREATE TABLE broken (").is_err());
        assert!(database
            .apply_once("INSERT INTO seeded VALUES (2);")
            .unwrap());
    }

    #[tokio::test]
    async fn runaway_statements_stop_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let db = session(&dir.path().join("d.sqlite"));
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c";
        let started = Instant::now();
        let deadline = started + std::time::Duration::from_millis(200);
        let Err(DbError::Io(message)) = db.execute(endless, &[], Some(deadline)).await else {
            panic!("an endless statement must be stopped");
        };
        assert!(message.contains("deadline"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The next statement, with no deadline, is not interrupted by the old one's.
        let one = db.execute("SELECT 1", &[], None).await.unwrap();
        assert_eq!(one.rows, vec![vec![DbValue::Integer(1)]]);
    }

    #[tokio::test]
    async fn a_statement_queued_behind_a_long_one_gives_up_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let database = Arc::new(SqliteDatabase::open(&dir.path().join("d.sqlite")).unwrap());
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c";
        let long = SqliteSession::new(database.clone());
        // Its own deadline ends it (the test's runtime waits for its blocking thread).
        let holder = tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            long.execute(endless, &[], Some(deadline)).await
        });
        // Wait until the long statement holds the shared connection.
        while database.shared.try_lock().is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let queued = SqliteSession::new(database.clone());
        let deadline = Instant::now() + Duration::from_millis(300);
        let Err(DbError::Io(message)) = queued.execute("SELECT 1", &[], Some(deadline)).await
        else {
            panic!("a statement queued past its deadline must give up");
        };
        assert!(
            message.contains("another statement held the database"),
            "{message}"
        );
        assert!(!holder.is_finished(), "the long statement still runs");
        assert!(
            holder.await.unwrap().is_err(),
            "stopped at its own deadline"
        );
    }

    #[tokio::test]
    async fn values_and_results_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = session(&dir.path().join("d.sqlite"));
        let huge = format!("SELECT zeroblob({})", MAX_VALUE_BYTES + 1);
        let Err(DbError::Io(message)) = db.execute(&huge, &[], None).await else {
            panic!("a value over the limit must be refused");
        };
        assert!(message.contains("too big"), "{message}");
        let many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 40) \
                    SELECT zeroblob(1000000) FROM c";
        let Err(DbError::Io(message)) = db.execute(many, &[], None).await else {
            panic!("a result over the limit must be refused");
        };
        assert!(message.contains("larger than 32 MiB"), "{message}");
        let fits = db
            .execute(&many.replace("LIMIT 40", "LIMIT 3"), &[], None)
            .await
            .unwrap();
        assert_eq!(fits.rows.len(), 3);
    }
}
