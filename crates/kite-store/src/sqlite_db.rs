//! SQLite databases for guests: a file per label in WAL mode; statements run with typed
//! parameters and return column names and typed rows.

use crate::sqlite_file::open_sqlite_file;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Mutex;

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
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is full")]
    Full,
    #[error("{0}")]
    Io(String),
}

pub struct SqliteDatabase {
    connection: Mutex<Connection>,
}

impl SqliteDatabase {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let connection =
            open_sqlite_file(path, "PRAGMA foreign_keys = ON;").map_err(DbError::Io)?;
        Ok(SqliteDatabase {
            connection: Mutex::new(connection),
        })
    }

    /// Runs one statement; rows are returned for statements that produce them.
    pub fn execute(&self, statement: &str, parameters: &[DbValue]) -> Result<QueryResult, DbError> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| DbError::Io("the database connection was poisoned".into()))?;
        let mut prepared = connection.prepare_cached(statement).map_err(map_error)?;
        let columns: Vec<String> = prepared.column_names().map(|c| c.to_string()).collect();
        let parameters: Vec<SqlValue> = parameters.iter().map(to_sql).collect();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(parameters))
            .map_err(map_error)?;
        let mut result = QueryResult {
            columns,
            rows: Vec::new(),
        };
        while let Some(row) = rows.next().map_err(map_error)? {
            let mut values = Vec::with_capacity(result.columns.len());
            for index in 0..result.columns.len() {
                values.push(from_sql(row.get_ref(index).map_err(map_error)?));
            }
            result.rows.push(values);
        }
        Ok(result)
    }
}

impl SqliteDatabase {
    /// Runs a script of statements once per database: a script whose exact text was already
    /// applied is skipped, so seeding at every start is idempotent. Returns whether it ran.
    pub fn apply_once(&self, script: &str) -> Result<bool, DbError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| DbError::Io("the database connection was poisoned".into()))?;
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

fn to_sql(value: &DbValue) -> SqlValue {
    match value {
        DbValue::Integer(i) => SqlValue::Integer(*i),
        DbValue::Real(r) => SqlValue::Real(*r),
        DbValue::Text(t) => SqlValue::Text(t.clone()),
        DbValue::Blob(b) => SqlValue::Blob(b.clone()),
        DbValue::Null => SqlValue::Null,
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
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => DbError::Full,
        _ => DbError::Io(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_with_typed_parameters_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("db/default.sqlite")).unwrap();
        db.execute(
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)",
            &[],
        )
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
            )
            .unwrap();
        assert!(inserted.rows.is_empty());
        let selected = db
            .execute("SELECT * FROM t WHERE i = ?", &[DbValue::Integer(7)])
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
            db.execute("SELEC nonsense", &[]),
            Err(DbError::Io(_))
        ));
    }

    #[test]
    fn scripts_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("d.sqlite")).unwrap();
        let script = "CREATE TABLE seeded (x INTEGER); INSERT INTO seeded VALUES (1);";
        assert!(db.apply_once(script).unwrap());
        assert!(!db.apply_once(script).unwrap());
        let count = db.execute("SELECT count(*) FROM seeded", &[]).unwrap();
        assert_eq!(count.rows, vec![vec![DbValue::Integer(1)]]);
        assert!(db.apply_once("CREATE TABLE broken (").is_err());
        assert!(db.apply_once("INSERT INTO seeded VALUES (2);").unwrap());
    }
}
