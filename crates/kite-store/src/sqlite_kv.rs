//! Key-value store in an SQLite file: WAL mode, one table, every write committed before it
//! is acknowledged, so an acknowledged write survives the server being killed.

use crate::sqlite_file::open_sqlite_file;
use crate::{KeyValueBackend, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

pub struct SqliteKeyValue {
    connection: Mutex<Connection>,
}

fn backend_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteKeyValue {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = open_sqlite_file(
            path,
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
        )
        .map_err(StoreError::Backend)?;
        Ok(SqliteKeyValue {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| StoreError::Backend("the store's connection was poisoned".into()))?;
        f(&connection).map_err(backend_error)
    }
}

impl KeyValueBackend for SqliteKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                .query_row(params![key], |row| row.get(0))
                .optional()
        })
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])
            .map(|_| ())
        })
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute(params![key])
                .map(|_| ())
        })
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
                .query_row(params![key], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
        })
    }

    fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare_cached("SELECT key FROM kv ORDER BY key")?;
            let keys = statement.query_map([], |row| row.get(0))?;
            keys.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/kv.sqlite");
        let store = SqliteKeyValue::open(&path).unwrap();
        assert_eq!(store.get("a").unwrap(), None);
        assert!(!store.exists("a").unwrap());
        store.set("a", b"1").unwrap();
        store.set("b", b"").unwrap();
        store.set("a", b"2").unwrap();
        assert_eq!(store.get("a").unwrap(), Some(b"2".to_vec()));
        assert!(store.exists("b").unwrap());
        assert_eq!(store.keys().unwrap(), vec!["a", "b"]);
        store.delete("b").unwrap();
        store.delete("missing").unwrap();
        drop(store);
        let reopened = SqliteKeyValue::open(&path).unwrap();
        assert_eq!(reopened.keys().unwrap(), vec!["a"]);
    }
}
