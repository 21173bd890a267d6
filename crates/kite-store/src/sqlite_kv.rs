//! Key-value store in an SQLite file: WAL mode, Kite's table or Spin's, every write committed
//! before it is acknowledged; operations over many keys run on blocking threads.

use crate::key_value::{add_to_counter, count_batched, count_listed, parse_counter};
use crate::sqlite_file::{cap_size, is_locked, open_sqlite_file, LockBackoff};
use crate::{KeyValueBackend, StoreError, SwapOutcome};
use rusqlite::types::ToSql;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Pages the write-ahead log may hold before a checkpoint is started off the event loop
/// (SQLite's own auto-checkpoint size, which this replaces: it would run inside a write).
const CHECKPOINT_PAGES: i32 = 1000;

/// Operations on one key run on the calling thread: an indexed lookup or write of at most one
/// bounded value (`BoundedKeyValue`), where handing the work to another thread would cost
/// more than the work (measured: +13 µs, +40 % CPU per kv-counter request). Listings and
/// batches, whose work grows with the store or the batch, run on blocking threads. The
/// connection's lock is awaited, never blocked on, so an operation queued behind a listing
/// leaves its worker free.
pub struct SqliteKeyValue {
    /// Held by the blocking threads that run listings and batches while they run.
    connection: Arc<Mutex<Connection>>,
    /// Set when a commit leaves the write-ahead log at [`CHECKPOINT_PAGES`] or more.
    checkpoint_due: Arc<AtomicBool>,
    table: Arc<Table>,
}

/// How a store's keys are laid out in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLayout {
    /// Kite's: table `kv (key, value)`, the file holding one store.
    Kite,
    /// Spin's: table `spin_key_value (store, key, value)`, stores side by side; this store
    /// is the rows whose `store` is the label, so an app's data from `spin up` is found.
    Spin { store: String },
}

/// The statements for one layout; in Spin's, every one takes the store as its last
/// parameter.
struct Table {
    setup: &'static str,
    get: &'static str,
    set: &'static str,
    delete: &'static str,
    exists: &'static str,
    /// Keys after `?1` (all if NULL), in order, at most `?2`.
    list: &'static str,
    store: Option<String>,
}

impl Table {
    fn new(layout: SqliteLayout) -> Self {
        match layout {
            SqliteLayout::Kite => Table {
                setup: "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
                get: "SELECT value FROM kv WHERE key = ?1",
                set: "INSERT INTO kv (key, value) VALUES (?1, ?2)
                      ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                delete: "DELETE FROM kv WHERE key = ?1",
                exists: "SELECT 1 FROM kv WHERE key = ?1",
                list: "SELECT key FROM kv WHERE ?1 IS NULL OR key > ?1 ORDER BY key LIMIT ?2",
                store: None,
            },
            SqliteLayout::Spin { store } => Table {
                setup: "CREATE TABLE IF NOT EXISTS spin_key_value (
                          store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                          PRIMARY KEY (store, key));",
                get: "SELECT value FROM spin_key_value WHERE key = ?1 AND store = ?2",
                set: "INSERT INTO spin_key_value (key, value, store) VALUES (?1, ?2, ?3)
                      ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
                delete: "DELETE FROM spin_key_value WHERE key = ?1 AND store = ?2",
                exists: "SELECT 1 FROM spin_key_value WHERE key = ?1 AND store = ?2",
                list: "SELECT key FROM spin_key_value WHERE (?1 IS NULL OR key > ?1)
                       AND store = ?3 ORDER BY key LIMIT ?2",
                store: Some(store),
            },
        }
    }

    /// `args`, then the store in Spin's layout.
    fn args<'a>(&'a self, args: &'a [&'a dyn ToSql]) -> impl Iterator<Item = &'a dyn ToSql> {
        let store = self.store.as_ref().map(|s| s as &dyn ToSql);
        args.iter().copied().chain(store)
    }

    fn read(&self, c: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        c.prepare_cached(self.get)?
            .query_row(params_from_iter(self.args(&[&key])), |row| row.get(0))
            .optional()
    }

    fn write(&self, c: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
        c.prepare_cached(self.set)?
            .execute(params_from_iter(self.args(&[&key, &value])))
            .map(|_| ())
    }

    fn remove(&self, c: &Connection, key: &str) -> rusqlite::Result<()> {
        c.prepare_cached(self.delete)?
            .execute(params_from_iter(self.args(&[&key])))
            .map(|_| ())
    }

    fn exists(&self, c: &Connection, key: &str) -> rusqlite::Result<bool> {
        let found = c
            .prepare_cached(self.exists)?
            .query_row(params_from_iter(self.args(&[&key])), |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }
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

impl SqliteKeyValue {
    /// Opens (creating if needed) the store at `path` in Kite's layout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteLayout::Kite)
    }

    pub fn open_with(path: &Path, layout: SqliteLayout) -> Result<Self, StoreError> {
        Self::open_capped(path, layout, None)
    }

    /// As [`Self::open_with`], the file capped at `max_bytes` (see [`cap_size`]).
    pub fn open_capped(
        path: &Path,
        layout: SqliteLayout,
        max_bytes: Option<u64>,
    ) -> Result<Self, StoreError> {
        let table = Table::new(layout);
        let mut connection = open_sqlite_file(path, table.setup).map_err(StoreError::Backend)?;
        if let Some(max_bytes) = max_bytes {
            cap_size(&connection, max_bytes)?;
        }
        let checkpoint_due = Arc::new(AtomicBool::new(false));
        let due = checkpoint_due.clone();
        // Registering a WAL hook turns SQLite's auto-checkpoint off.
        connection.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            if pages >= CHECKPOINT_PAGES {
                due.store(true, Ordering::Relaxed);
            }
            Ok(())
        }))?;
        Ok(SqliteKeyValue {
            connection: Arc::new(Mutex::new(connection)),
            checkpoint_due,
            table: Arc::new(table),
        })
    }

    /// Starts a checkpoint on a blocking thread if one is due; operations arriving meanwhile
    /// wait for it asynchronously.
    fn checkpoint_if_due(&self) {
        if !self.checkpoint_due.swap(false, Ordering::Relaxed) {
            return;
        }
        let connection = self.connection.clone();
        tokio::spawn(async move {
            let connection = connection.lock_owned().await;
            let _ = tokio::task::spawn_blocking(move || {
                // Passive: copies what it can without waiting for readers in other processes.
                connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            })
            .await;
        });
    }

    /// Runs `operation` on the store's connection on this thread, trying again while another
    /// process holds the file's lock.
    async fn inline<T>(
        &self,
        operation: impl Fn(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = unless_locked(|| async { operation(&*self.connection.lock().await) }).await;
        self.checkpoint_if_due();
        result
    }

    /// Runs `operation` like [`Self::inline`], but on a blocking thread, so work that grows
    /// with the store or the batch never holds the event loop.
    async fn blocking<T: Send + 'static>(
        &self,
        operation: impl Fn(&Connection) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        let operation = Arc::new(operation);
        let result = unless_locked(|| {
            let (connection, operation) = (self.connection.clone(), operation.clone());
            async move {
                let connection = connection.lock_owned().await;
                tokio::task::spawn_blocking(move || operation(&connection))
                    .await
                    .map_err(|e| StoreError::Backend(format!("the store operation failed: {e}")))?
            }
        })
        .await;
        self.checkpoint_if_due();
        result
    }
}

/// Runs `attempt` again while another process holds the file's lock, for at most
/// [`crate::sqlite_file::MAX_LOCK_WAIT`].
async fn unless_locked<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    attempt: impl Fn() -> F,
) -> Result<T, StoreError> {
    let mut backoff = LockBackoff::until(None);
    loop {
        match attempt().await {
            Err(StoreError::Locked) if backoff.wait().await => {}
            result => return result,
        }
    }
}

/// `f` in one write transaction, committed only if it succeeds.
fn in_transaction<T>(
    connection: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let transaction = Transaction::new_unchecked(connection, TransactionBehavior::Immediate)?;
    let value = f(&transaction)?;
    transaction.commit()?;
    Ok(value)
}

#[async_trait::async_trait]
impl KeyValueBackend for SqliteKeyValue {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inline(|c| Ok(self.table.read(c, key)?)).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inline(|c| Ok(self.table.write(c, key, value)?)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inline(|c| Ok(self.table.remove(c, key)?)).await
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.inline(|c| Ok(self.table.exists(c, key)?)).await
    }

    async fn keys_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map(str::to_owned);
        let table = self.table.clone();
        self.blocking(move |c| {
            let mut statement = c.prepare_cached(table.list)?;
            let mut keys = statement.query(params_from_iter(table.args(&[&after, &limit])))?;
            let (mut listed, mut bytes) = (Vec::new(), 0);
            while let Some(row) = keys.next()? {
                let key: String = row.get(0)?;
                count_listed(&mut bytes, &key)?;
                listed.push(key);
            }
            Ok(listed)
        })
        .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inline(|c| {
            in_transaction(c, |c| {
                let current = match self.table.read(c, key)? {
                    Some(value) => parse_counter(key, &value)?,
                    None => 0,
                };
                let sum = add_to_counter(key, current, delta)?;
                self.table.write(c, key, sum.to_string().as_bytes())?;
                Ok(sum)
            })
        })
        .await
    }

    async fn swap_if_unchanged(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, StoreError> {
        self.inline(|c| {
            in_transaction(c, |c| {
                let current = self.table.read(c, key)?;
                if current.as_deref() != expected {
                    return Ok(SwapOutcome::Changed(current));
                }
                self.table.write(c, key, value)?;
                Ok(SwapOutcome::Swapped)
            })
        })
        .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let (keys, table) = (keys.to_vec(), self.table.clone());
        self.blocking(move |c| {
            let mut bytes = 0;
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                let value = table.read(c, key)?;
                count_batched(&mut bytes, &value)?;
                values.push(value);
            }
            Ok(values)
        })
        .await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let (entries, table) = (entries.to_vec(), self.table.clone());
        self.blocking(move |c| {
            in_transaction(c, |c| {
                for (key, value) in &entries {
                    table.write(c, key, value)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        let (keys, table) = (keys.to_vec(), self.table.clone());
        self.blocking(move |c| {
            in_transaction(c, |c| {
                for key in &keys {
                    table.remove(c, key)?;
                }
                Ok(())
            })
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

    #[tokio::test]
    async fn an_operation_queued_behind_a_listing_leaves_the_thread_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteKeyValue::open(&dir.path().join("kv.sqlite")).unwrap());
        let (held, holding) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (holder, signals) = (store.clone(), std::sync::Mutex::new(Some((held, released))));
        let long_operation = tokio::spawn(async move {
            holder
                .blocking(move |_| {
                    let (held, released) = signals.lock().unwrap().take().unwrap();
                    let _ = held.send(());
                    // Bounded so that a thread stuck behind this fails the test, not hangs it.
                    let _ = released.recv_timeout(std::time::Duration::from_secs(30));
                    Ok(())
                })
                .await
        });
        holding.await.unwrap();
        let reader = store.clone();
        let read = tokio::spawn(async move { reader.get("k").await });
        crate::sqlite_file::assert_thread_stays_free().await;
        assert!(!read.is_finished(), "must wait for the connection");
        release.send(()).unwrap();
        long_operation.await.unwrap().unwrap();
        assert_eq!(read.await.unwrap().unwrap(), None);
    }

    #[tokio::test]
    async fn the_write_ahead_log_is_checkpointed_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.sqlite");
        let store = SqliteKeyValue::open(&path).unwrap();
        let mut value = vec![7u8; 8192];
        for n in 0..5000u32 {
            // A changed value: SQLite writes nothing for an unchanged one.
            value[..4].copy_from_slice(&n.to_le_bytes());
            store.set(&format!("k{}", n % 100), &value).await.unwrap();
            tokio::task::yield_now().await;
        }
        // 40 MB were written; without checkpoints the log would hold all of them.
        let wal = std::fs::metadata(dir.path().join("kv.sqlite-wal"))
            .unwrap()
            .len();
        assert!(wal < 12 << 20, "the write-ahead log grew to {wal} bytes");
        assert_eq!(store.get("k99").await.unwrap(), Some(value));
    }

    #[tokio::test]
    async fn spins_layout_finds_spins_data_and_keeps_stores_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sqlite_key_value.db");
        // The table as `spin up` creates and fills it.
        let spin = Connection::open(&path).unwrap();
        spin.execute_batch(
            "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL,
               value BLOB NOT NULL, PRIMARY KEY (store, key));
             INSERT INTO spin_key_value VALUES ('default', 'greeting', x'6869');",
        )
        .unwrap();
        drop(spin);
        let layout = |store: &str| SqliteLayout::Spin {
            store: store.to_string(),
        };
        let default = SqliteKeyValue::open_with(&path, layout("default")).unwrap();
        let other = SqliteKeyValue::open_with(&path, layout("other")).unwrap();
        assert_eq!(default.get("greeting").await.unwrap(), Some(b"hi".to_vec()));
        assert_eq!(other.get("greeting").await.unwrap(), None);
        other.set("greeting", b"other").await.unwrap();
        other
            .set_many(&[("b".into(), b"2".to_vec())])
            .await
            .unwrap();
        assert_eq!(default.get("greeting").await.unwrap(), Some(b"hi".to_vec()));
        assert_eq!(default.keys().await.unwrap(), vec!["greeting"]);
        assert_eq!(other.keys().await.unwrap(), vec!["b", "greeting"]);
        assert_eq!(default.increment("n", 2).await.unwrap(), 2);
        assert!(!other.exists("n").await.unwrap());
        default.delete("greeting").await.unwrap();
        assert_eq!(
            other.get("greeting").await.unwrap(),
            Some(b"other".to_vec())
        );
    }
}
