//! A guest's connection to a SQLite database: a transaction it opens is its own until it
//! commits or rolls back, and is rolled back when the connection goes away.

use crate::sqlite_db::{DbError, DbValue, QueryResult, SqliteDatabase};
use crate::sqlite_file::LockBackoff;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// One guest connection. While its explicit transaction is open, other sessions' statements
/// on the same database wait (asynchronously) for it to end, so no request ever runs inside,
/// or sees the uncommitted writes of, another request's transaction.
pub struct SqliteSession {
    database: Arc<SqliteDatabase>,
    id: u64,
}

impl SqliteSession {
    pub fn new(database: Arc<SqliteDatabase>) -> Self {
        SqliteSession {
            database,
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Runs one statement, first waiting for another session's transaction to end if one is
    /// open. That wait has no limit of its own: the caller's request deadline bounds it, and
    /// the holder's transaction ends at the latest when its own request ends. A lock held by
    /// another process is waited for too, by trying again, until `deadline` (or for
    /// [`crate::sqlite_file::MAX_LOCK_WAIT`]). Both waits leave the thread free.
    pub async fn execute(
        &self,
        statement: &str,
        parameters: &[DbValue],
        deadline: Option<Instant>,
    ) -> Result<QueryResult, DbError> {
        let mut backoff = LockBackoff::until(deadline);
        loop {
            // Created before looking, so an end signalled in between is not missed
            // (`notify_waiters` reaches every `Notified` from its creation on).
            let ended = self.database.transaction_ended();
            match self
                .database
                .try_execute(self.id, statement, parameters, deadline)
            {
                Some(Err(DbError::Locked)) if backoff.wait().await => {}
                Some(result) => return result,
                None => ended.await,
            }
        }
    }
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        self.database.end_session(self.id);
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
    async fn others_wait_for_an_open_transaction_and_never_see_inside_it() {
        let (_dir, database) = database().await;
        let writer = SqliteSession::new(database.clone());
        writer.execute("BEGIN", &[], None).await.unwrap();
        writer
            .execute("INSERT INTO t VALUES (1)", &[], None)
            .await
            .unwrap();
        assert_eq!(count(&writer).await, 1, "a transaction sees its own writes");

        let reader = SqliteSession::new(database.clone());
        let waiting = tokio::spawn(async move { count(&reader).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "must wait for the open transaction");
        writer.execute("ROLLBACK", &[], None).await.unwrap();
        assert_eq!(waiting.await.unwrap(), 0, "the rolled-back row is gone");
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
