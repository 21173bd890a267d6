//! Key-value store in an SQLite file: WAL mode, one table, every write committed before it
//! is acknowledged, so an acknowledged write survives the server being killed.

use crate::key_value::{add_to_counter, count_listed, parse_counter};
use crate::sqlite_file::{is_locked, open_sqlite_file, LockBackoff};
use crate::{KeyValueBackend, StoreError, SwapOutcome};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct SqliteKeyValue {
    /// Shared with the blocking threads that run listings.
    connection: Arc<Mutex<Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if is_locked(&e) {
            StoreError::Locked
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

/// Runs `operation`, trying again while another process holds the file's lock, for at
/// most [`crate::sqlite_file::MAX_LOCK_WAIT`].
async fn unless_locked<T>(operation: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut backoff = LockBackoff::until(None);
    loop {
        match operation() {
            Err(StoreError::Locked) if backoff.wait().await => {}
            result => return result,
        }
    }
}

fn lock(connection: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>, StoreError> {
    connection
        .lock()
        .map_err(|_| StoreError::Backend("the store's connection was poisoned".into()))
}

impl SqliteKeyValue {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = open_sqlite_file(
            path,
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
        )
        .map_err(StoreError::Backend)?;
        // A guest's values are bounded before they get here (`BoundedKeyValue`); this bounds
        // what any statement on the store may build.
        let max = i32::try_from(crate::MAX_VALUE_BYTES + crate::MAX_KEY_BYTES).unwrap_or(i32::MAX);
        connection.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, max)?;
        Ok(SqliteKeyValue {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        lock(&self.connection)
    }

    async fn with<T>(
        &self,
        f: impl Fn(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        unless_locked(|| Ok(f(&*self.lock()?)?)).await
    }

    /// Runs `f` in one write transaction, committed only if `f` succeeds.
    async fn in_transaction<T>(
        &self,
        f: impl Fn(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        unless_locked(|| {
            let connection = self.lock()?;
            let transaction =
                Transaction::new_unchecked(&connection, TransactionBehavior::Immediate)?;
            let value = f(&transaction)?;
            transaction.commit()?;
            Ok(value)
        })
        .await
    }
}

fn read(c: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    c.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
        .query_row(params![key], |row| row.get(0))
        .optional()
}

fn write(c: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO kv (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])
    .map(|_| ())
}

fn remove(c: &Connection, key: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM kv WHERE key = ?1")?
        .execute(params![key])
        .map(|_| ())
}

#[async_trait::async_trait]
impl KeyValueBackend for SqliteKeyValue {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| read(c, key)).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with(|c| write(c, key, value)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|c| remove(c, key)).await
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
                .query_row(params![key], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
        })
        .await
    }

    /// A listing may scan the whole store, so it runs on a blocking thread, leaving the
    /// event loop to other requests. (Point and batch operations touch only the keys the
    /// guest names, so their cost follows the guest's own input; they run inline.)
    async fn keys_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map(str::to_string);
        let mut backoff = LockBackoff::until(None);
        loop {
            let (connection, after) = (self.connection.clone(), after.clone());
            let listed = tokio::task::spawn_blocking(move || {
                let connection = lock(&connection)?;
                let mut statement = connection.prepare_cached(
                    "SELECT key FROM kv WHERE ?1 IS NULL OR key > ?1 ORDER BY key LIMIT ?2",
                )?;
                let mut keys = statement.query(params![after, limit])?;
                let (mut listed, mut bytes) = (Vec::new(), 0);
                while let Some(row) = keys.next()? {
                    let key: String = row.get(0)?;
                    count_listed(&mut bytes, &key)?;
                    listed.push(key);
                }
                Ok(listed)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("listing keys failed: {e}")))?;
            match listed {
                Err(StoreError::Locked) if backoff.wait().await => {}
                result => return result,
            }
        }
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.in_transaction(|c| {
            let current = match read(c, key)? {
                Some(value) => parse_counter(key, &value)?,
                None => 0,
            };
            let sum = add_to_counter(key, current, delta)?;
            write(c, key, sum.to_string().as_bytes())?;
            Ok(sum)
        })
        .await
    }

    async fn swap_if_unchanged(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, StoreError> {
        self.in_transaction(|c| {
            let current = read(c, key)?;
            if current.as_deref() != expected {
                return Ok(SwapOutcome::Changed(current));
            }
            write(c, key, value)?;
            Ok(SwapOutcome::Swapped)
        })
        .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.with(|c| keys.iter().map(|key| read(c, key)).collect())
            .await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.in_transaction(|c| {
            for (key, value) in entries {
                write(c, key, value)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        self.in_transaction(|c| {
            for key in keys {
                remove(c, key)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_operation_round_trips_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/kv.sqlite");
        let store = SqliteKeyValue::open(&path).unwrap();
        assert_eq!(store.get("a").await.unwrap(), None);
        assert!(!store.exists("a").await.unwrap());
        store.set("a", b"1").await.unwrap();
        store.set("b", b"").await.unwrap();
        store.set("a", b"2").await.unwrap();
        assert_eq!(store.get("a").await.unwrap(), Some(b"2".to_vec()));
        assert!(store.exists("b").await.unwrap());
        assert_eq!(store.keys().await.unwrap(), vec!["a", "b"]);
        store.delete("b").await.unwrap();
        store.delete("missing").await.unwrap();
        drop(store);
        let reopened = SqliteKeyValue::open(&path).unwrap();
        assert_eq!(reopened.keys().await.unwrap(), vec!["a"]);
    }

    #[tokio::test]
    async fn atomics_batches_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteKeyValue::open(&dir.path().join("kv.sqlite")).unwrap();
        assert_eq!(store.increment("n", 5).await.unwrap(), 5);
        assert_eq!(store.increment("n", -7).await.unwrap(), -2);
        assert_eq!(store.get("n").await.unwrap(), Some(b"-2".to_vec()));
        store.set("text", b"abc").await.unwrap();
        assert!(matches!(
            store.increment("text", 1).await,
            Err(StoreError::NotAnInteger(_))
        ));
        assert_eq!(store.get("text").await.unwrap(), Some(b"abc".to_vec()));

        assert_eq!(
            store
                .swap_if_unchanged("text", Some(b"abd"), b"x")
                .await
                .unwrap(),
            SwapOutcome::Changed(Some(b"abc".to_vec()))
        );
        assert_eq!(
            store
                .swap_if_unchanged("text", Some(b"abc"), b"x")
                .await
                .unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(
            store.swap_if_unchanged("new", None, b"1").await.unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(
            store.swap_if_unchanged("new", None, b"2").await.unwrap(),
            SwapOutcome::Changed(Some(b"1".to_vec()))
        );

        let entries = vec![
            ("b".to_string(), b"B".to_vec()),
            ("a".to_string(), b"A".to_vec()),
        ];
        store.set_many(&entries).await.unwrap();
        let asked = ["a", "zz", "b"].map(String::from);
        assert_eq!(
            store.get_many(&asked).await.unwrap(),
            vec![Some(b"A".to_vec()), None, Some(b"B".to_vec())]
        );
        assert_eq!(store.keys_after(None, 2).await.unwrap(), vec!["a", "b"]);
        assert_eq!(
            store.keys_after(Some("b"), 2).await.unwrap(),
            vec!["n", "new"]
        );
        assert_eq!(
            store.keys_after(Some("new"), 2).await.unwrap(),
            vec!["text"]
        );
        store.delete_many(&asked).await.unwrap();
        assert_eq!(store.keys().await.unwrap(), vec!["n", "new", "text"]);
    }

    #[tokio::test]
    async fn a_lock_held_by_another_process_is_waited_for_without_holding_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.sqlite");
        let store = std::sync::Arc::new(SqliteKeyValue::open(&path).unwrap());
        let elsewhere = Connection::open(&path).unwrap();
        elsewhere.execute_batch("BEGIN IMMEDIATE").unwrap();
        let writer = store.clone();
        let write = tokio::spawn(async move { writer.increment("n", 1).await });
        crate::sqlite_file::assert_thread_stays_free().await;
        assert!(!write.is_finished(), "must wait for the lock");
        elsewhere.execute_batch("COMMIT").unwrap();
        assert_eq!(write.await.unwrap().unwrap(), 1);
    }
}
