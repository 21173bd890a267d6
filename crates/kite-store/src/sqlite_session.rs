//! A guest's connection to a SQLite database: a transaction it opens is its own until it
//! commits or rolls back, and is rolled back when the connection goes away.

use crate::sqlite_db::{run_until, DbError, DbValue, QueryResult, SqliteDatabase};
use crate::sqlite_file::LockBackoff;
use rusqlite::Connection;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One guest connection. Its statements run on the database's shared connection until one
/// opens a transaction; from then until the transaction ends the session has a connection
/// of its own, so no other request runs inside, or sees the uncommitted writes of, its
/// transaction, while they go on reading meanwhile.
pub struct SqliteSession {
    database: Arc<SqliteDatabase>,
    /// The connection holding this session's open transaction, if it has one.
    in_transaction: Mutex<Option<Connection>>,
    /// The row id this session's statements last inserted, and the rows its last insert,
    /// update or delete changed (what SQLite keeps per connection; sessions share one).
    last: Mutex<(i64, u64)>,
}

impl SqliteSession {
    pub fn new(database: Arc<SqliteDatabase>) -> Self {
        SqliteSession {
            database,
            in_transaction: Mutex::new(None),
            last: Mutex::new((0, 0)),
        }
    }

    /// The row id this session's statements last inserted (0 before any insert).
    pub fn last_insert_rowid(&self) -> i64 {
        self.last.lock().map_or(0, |last| last.0)
    }

    /// The rows this session's last insert, update or delete changed.
    pub fn changes(&self) -> u64 {
        self.last.lock().map_or(0, |last| last.1)
    }

    fn note(&self, result: &QueryResult) {
        if let Ok(mut last) = self.last.lock() {
            if let Some(rowid) = result.inserted_rowid {
                last.0 = rowid;
            }
            if let Some(changes) = result.changes {
                last.1 = changes;
            }
        }
    }

    /// Runs one statement. One that needs a lock another request's transaction holds waits
    /// for that transaction to end, and one that needs a lock another process holds tries
    /// again; both waits leave the thread free and last until `deadline` (or
    /// [`crate::sqlite_file::MAX_LOCK_WAIT`]), after which the statement fails with
    /// [`DbError::Locked`].
    pub async fn execute(
        &self,
        statement: &str,
        parameters: &[DbValue],
        deadline: Option<Instant>,
    ) -> Result<QueryResult, DbError> {
        let statement: Arc<str> = statement.into();
        let parameters: Arc<[DbValue]> = parameters.into();
        let mut backoff = LockBackoff::until(deadline);
        loop {
            // Created before trying, so a transaction ending in between is not missed
            // (`notify_waiters` reaches every `Notified` from its creation on).
            let ended = self.database.transaction_ended();
            match self
                .try_execute(statement.clone(), parameters.clone(), deadline)
                .await
            {
                Err(DbError::Locked) => {
                    tokio::select! {
                        () = ended => {}
                        more = backoff.wait() => if !more { return Err(DbError::Locked) },
                    }
                }
                result => {
                    if let Ok(result) = &result {
                        self.note(result);
                    }
                    return result;
                }
            }
        }
    }

    /// Runs the statement once on a blocking thread, so a long statement never holds the
    /// event loop that other requests share. The session's own connection (if it has a
    /// transaction open) goes with it and comes back.
    async fn try_execute(
        &self,
        statement: Arc<str>,
        parameters: Arc<[DbValue]>,
        deadline: Option<Instant>,
    ) -> Result<QueryResult, DbError> {
        let own = self
            .in_transaction
            .lock()
            .map_err(|_| DbError::Io("the connection was poisoned".into()))?
            .take();
        let database = self.database.clone();
        let ran = tokio::task::spawn_blocking(move || {
            run_statement(&database, own, &statement, &parameters, deadline)
        })
        .await;
        let (result, own) = ran.map_err(|e| DbError::Io(format!("the statement failed: {e}")))?;
        if let Ok(mut slot) = self.in_transaction.lock() {
            *slot = own;
        }
        result
    }
}

/// Runs one statement on the session's connection `own` if it has one, else on the shared
/// connection; returns the connection the session holds afterwards (one whose transaction
/// is still open).
fn run_statement(
    database: &SqliteDatabase,
    own: Option<Connection>,
    statement: &str,
    parameters: &[DbValue],
    deadline: Option<Instant>,
) -> (Result<QueryResult, DbError>, Option<Connection>) {
    let Some(mut connection) = own else {
        return database.execute_shared(statement, parameters, deadline);
    };
    let result = database
        .check_log(&connection, statement)
        .and_then(|()| run_until(&mut connection, statement, parameters, deadline));
    // A failed statement may have ended the transaction too (SQLite rolls back on some
    // errors), so this follows the connection's state, not the statement's text.
    if connection.is_autocommit() {
        database.transaction_done(connection);
        return (result, None);
    }
    (result, Some(connection))
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        let own = self.in_transaction.get_mut().ok().and_then(Option::take);
        if let Some(connection) = own {
            self.database.transaction_done(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fresh database with an empty table `t`.
    async fn database() -> (tempfile::TempDir, Arc<SqliteDatabase>) {
        let dir = tempfile::tempdir().unwrap();
        let database = Arc::new(SqliteDatabase::open(&dir.path().join("d.sqlite")).unwrap());
        SqliteSession::new(database.clone())
            .execute("CREATE TABLE t (x INTEGER)", &[], None)
            .await
            .unwrap();
        (dir, database)
    }

    async fn count(session: &SqliteSession) -> i64 {
        let result = session
            .execute("SELECT count(*) FROM t", &[], None)
            .await
            .unwrap();
        match result.rows[0][0] {
            DbValue::Integer(n) => n,
            ref other => panic!("not a count: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reader_holding_old_pages_cannot_make_a_capped_databases_log_grow_past_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sqlite");
        let cap = 256 << 10;
        let database = Arc::new(SqliteDatabase::open_capped(&path, Some(cap)).unwrap());
        let writer = SqliteSession::new(database.clone());
        writer
            .execute("CREATE TABLE t (b BLOB)", &[], None)
            .await
            .unwrap();
        writer
            .execute("INSERT INTO t VALUES (zeroblob(100000))", &[], None)
            .await
            .unwrap();
        // A reader's snapshot keeps the checkpoint from going past it.
        let reader = SqliteSession::new(database.clone());
        reader.execute("BEGIN", &[], None).await.unwrap();
        reader
            .execute("SELECT count(*) FROM t", &[], None)
            .await
            .unwrap();
        let mut refused = None;
        for _ in 0..100 {
            match writer
                .execute("UPDATE t SET b = randomblob(100000)", &[], None)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert!(matches!(refused, Some(DbError::Full)), "{refused:?}");
        let log = std::fs::metadata(dir.path().join("d.sqlite-wal"))
            .unwrap()
            .len();
        assert!(log < 2 * cap + (256 << 10), "the log grew to {log} bytes");
        // Reads go on; once the reader lets go, writes do too.
        reader
            .execute("SELECT count(*) FROM t", &[], None)
            .await
            .unwrap();
        reader.execute("COMMIT", &[], None).await.unwrap();
        writer
            .execute("UPDATE t SET b = zeroblob(10)", &[], None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn readers_go_on_and_writers_wait_while_a_transaction_is_open() {
        let (_dir, database) = database().await;
        let writer = SqliteSession::new(database.clone());
        writer.execute("BEGIN", &[], None).await.unwrap();
        writer
            .execute("INSERT INTO t VALUES (1)", &[], None)
            .await
            .unwrap();
        assert_eq!(count(&writer).await, 1, "a transaction sees its own writes");

        let reader = SqliteSession::new(database.clone());
        assert_eq!(count(&reader).await, 0, "others read, without its rows");
        let other_writer = SqliteSession::new(database.clone());
        let waiting = tokio::spawn(async move {
            other_writer
                .execute("INSERT INTO t VALUES (2)", &[], None)
                .await
        });
        crate::sqlite_file::assert_thread_stays_free().await;
        assert!(
            !waiting.is_finished(),
            "a write must wait for the open transaction"
        );
        writer.execute("ROLLBACK", &[], None).await.unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(
            count(&reader).await,
            1,
            "only the other writer's row is left"
        );
    }

    #[tokio::test]
    async fn waiting_for_another_transaction_ends_at_the_deadline() {
        let (_dir, database) = database().await;
        let holder = SqliteSession::new(database.clone());
        holder.execute("BEGIN IMMEDIATE", &[], None).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let refused = SqliteSession::new(database)
            .execute("INSERT INTO t VALUES (1)", &[], Some(deadline))
            .await;
        assert!(matches!(refused, Err(DbError::Locked)), "{refused:?}");
        assert!(Instant::now() >= deadline - Duration::from_millis(20));
    }

    #[tokio::test]
    async fn a_transaction_whose_snapshot_went_stale_is_told_so() {
        let (_dir, database) = database().await;
        let slow = SqliteSession::new(database.clone());
        slow.execute("BEGIN", &[], None).await.unwrap();
        assert_eq!(count(&slow).await, 0);
        SqliteSession::new(database.clone())
            .execute("INSERT INTO t VALUES (1)", &[], None)
            .await
            .unwrap();
        let Err(DbError::Io(message)) = slow.execute("INSERT INTO t VALUES (2)", &[], None).await
        else {
            panic!("a write on a stale snapshot must fail");
        };
        assert!(message.contains("BEGIN IMMEDIATE"), "{message}");
        slow.execute("ROLLBACK", &[], None).await.unwrap();
        assert_eq!(count(&slow).await, 1);
    }

    #[tokio::test]
    async fn a_dropped_session_rolls_back_and_lets_the_next_one_in() {
        let (_dir, database) = database().await;
        let abandoned = SqliteSession::new(database.clone());
        abandoned
            .execute("BEGIN IMMEDIATE", &[], None)
            .await
            .unwrap();
        abandoned
            .execute("INSERT INTO t VALUES (1)", &[], None)
            .await
            .unwrap();
        drop(abandoned);
        let next = SqliteSession::new(database);
        assert_eq!(count(&next).await, 0);
        // The next session can open a transaction of its own.
        next.execute("BEGIN", &[], None).await.unwrap();
        next.execute("INSERT INTO t VALUES (2)", &[], None)
            .await
            .unwrap();
        next.execute("COMMIT", &[], None).await.unwrap();
        assert_eq!(count(&next).await, 1);
    }

    #[tokio::test]
    async fn a_lock_held_by_another_process_is_waited_for_without_holding_the_thread() {
        let (dir, database) = database().await;
        let elsewhere = rusqlite::Connection::open(dir.path().join("d.sqlite")).unwrap();
        elsewhere.execute_batch("BEGIN IMMEDIATE").unwrap();

        let session = SqliteSession::new(database.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        let write = tokio::spawn(async move {
            session
                .execute("INSERT INTO t VALUES (1)", &[], Some(deadline))
                .await
        });
        // This test's single-threaded runtime goes on running while the write waits.
        crate::sqlite_file::assert_thread_stays_free().await;
        assert!(!write.is_finished(), "must wait for the lock");
        elsewhere.execute_batch("COMMIT").unwrap();
        write.await.unwrap().unwrap();

        elsewhere.execute_batch("BEGIN IMMEDIATE").unwrap();
        let session = SqliteSession::new(database);
        let deadline = Instant::now() + Duration::from_millis(200);
        let refused = session
            .execute("INSERT INTO t VALUES (2)", &[], Some(deadline))
            .await;
        assert!(matches!(refused, Err(DbError::Locked)), "{refused:?}");
        assert!(Instant::now() >= deadline - Duration::from_millis(20));
        assert_eq!(count(&session).await, 1, "reading is never blocked (WAL)");
    }
}
