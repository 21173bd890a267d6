//! SQLite through `fermyon:spin/sqlite@2.0.0`: a component opens only the databases it was
//! granted and runs statements with typed parameters; the database file belongs to the app.

use super::labels::{labels_in_use, GrantedLabels, Handle, OpenStores, Refusal, StoreView};
use super::store_places::{NamedPlace, StorePlace};
use crate::InstanceState;
use kite_app::{App, ComponentSpec, DatabaseBackend, RuntimeConfig, DEFAULT_STORE};
use kite_store::{DbError, DbValue, SqliteDatabase, SqliteSession};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasData, Linker, Resource};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/sqlite",
        with: {
            "fermyon:spin/sqlite.connection": super::OpenDatabase,
        },
        // A statement may wait for another request's transaction to end.
        imports: {
            "fermyon:spin/sqlite.[method]connection.execute": async,
        },
    });
}

use bindings::fermyon::spin::sqlite::{self as spin_sqlite, Error, QueryResult, RowResult, Value};

/// Connections one instance may have open at once. Each one in a transaction holds a
/// database connection of its own (descriptors and a page cache), so this stays small.
const MAX_OPEN_CONNECTIONS: usize = 8;

/// A database a guest has opened: its own session, whose open transaction is rolled back
/// when the guest drops the connection or the instance ends (shared with statements of
/// Spin 4's interface still running, which hold it without holding the instance's state).
pub type OpenDatabase = Handle<Arc<SqliteSession>>;

/// The app's SQLite databases by label.
#[derive(Default)]
pub struct SqliteDatabases {
    databases: HashMap<String, Arc<SqliteDatabase>>,
    /// The file behind each database.
    pub(crate) places: Vec<NamedPlace>,
}

impl SqliteDatabases {
    /// Opens every database some component is granted or `seeded` names: the runtime
    /// configuration's file for its label, or for `default` without one, a file under
    /// `state_dir`.
    pub fn open(
        app: &App,
        state_dir: &Path,
        config: &RuntimeConfig,
        seeded: &[&str],
    ) -> anyhow::Result<Self> {
        let granted = app.components.iter().flat_map(|c| &c.sqlite_databases);
        let mut databases = HashMap::new();
        let mut places = Vec::new();
        for label in labels_in_use(granted, seeded) {
            let path = match config.sqlite_databases.get(label) {
                Some(DatabaseBackend::Sqlite { path }) => path.clone(),
                None if label == DEFAULT_STORE && app.format.is_spin() => {
                    state_dir.join("sqlite_db.db")
                }
                None if label == DEFAULT_STORE => state_dir.join("sqlite").join("default.sqlite"),
                None => anyhow::bail!(
                    "no backend for SQLite database `{label}`: define [sqlite_database.{label}] in the runtime configuration"
                ),
            };
            let database = SqliteDatabase::open_capped(&path, config.max_store_bytes)
                .map_err(|e| anyhow::anyhow!("SQLite database `{label}`: {e}"))?;
            databases.insert(label.to_string(), Arc::new(database));
            let place = StorePlace::File { path, part: None };
            places.push((format!("SQLite database `{label}`"), place));
        }
        Ok(SqliteDatabases { databases, places })
    }

    /// Runs `script` on the database `label` unless this exact script was applied before
    /// (`kite up --sqlite`). Returns whether it ran.
    pub fn seed(&self, label: &str, script: &str) -> anyhow::Result<bool> {
        let database = self.databases.get(label).ok_or_else(|| {
            anyhow::anyhow!("--sqlite {label}:...: the app has no SQLite database `{label}`")
        })?;
        database
            .apply_once(script)
            .map_err(|e| anyhow::anyhow!("--sqlite {label}:...: {e}"))
    }
}

pub struct SqliteGrant {
    access: Arc<GrantedLabels<SqliteDatabase>>,
}

impl SqliteGrant {
    pub fn validate(spec: &ComponentSpec, databases: &SqliteDatabases) -> anyhow::Result<Self> {
        let access = GrantedLabels::new(
            &spec.id,
            "SQLite database",
            &spec.sqlite_databases,
            &databases.databases,
        )?;
        Ok(SqliteGrant {
            access: Arc::new(access),
        })
    }

    pub fn prepare(&self) -> ComponentSqlite {
        OpenStores::new(self.access.clone(), MAX_OPEN_CONNECTIONS)
    }
}

/// Per-instance SQLite state.
pub type ComponentSqlite = OpenStores<SqliteDatabase>;

/// What the SQLite host functions see: the open databases, and the request's deadline, at
/// which a statement still running is stopped.
pub(super) struct SqliteView<'a> {
    pub(super) databases: StoreView<'a, SqliteDatabase>,
    pub(super) deadline: Option<Instant>,
}

pub(super) struct Sqlite;

impl HasData for Sqlite {
    type Data<'a> = SqliteView<'a>;
}

/// The SQLite part of an instance's state, as both interface generations see it.
pub(super) fn view(state: &mut InstanceState) -> SqliteView<'_> {
    SqliteView {
        databases: StoreView {
            table: &mut state.table,
            stores: &mut state.sqlite,
        },
        deadline: state.deadline,
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_sqlite::add_to_linker::<_, Sqlite>(linker, view)?;
    Ok(())
}

/// Why opening a database was refused, in words for `io` errors.
pub(super) fn too_many_open() -> String {
    format!("too many open connections (at most {MAX_OPEN_CONNECTIONS} per instance)")
}

fn from_guest(value: Value) -> DbValue {
    match value {
        Value::Integer(i) => DbValue::Integer(i),
        Value::Real(r) => DbValue::Real(r),
        Value::Text(t) => DbValue::Text(t),
        Value::Blob(b) => DbValue::Blob(b),
        Value::Null => DbValue::Null,
    }
}

fn to_guest(value: DbValue) -> Value {
    match value {
        DbValue::Integer(i) => Value::Integer(i),
        DbValue::Real(r) => Value::Real(r),
        DbValue::Text(t) => Value::Text(t),
        DbValue::Blob(b) => Value::Blob(b),
        DbValue::Null => Value::Null,
    }
}

impl spin_sqlite::Host for SqliteView<'_> {}

impl spin_sqlite::HostConnection for SqliteView<'_> {
    fn open(&mut self, database: String) -> Result<Resource<OpenDatabase>, Error> {
        self.databases
            .open_with(&database, |database| Arc::new(SqliteSession::new(database)))
            .map_err(|refusal| match refusal {
                Refusal::AccessDenied => Error::AccessDenied,
                Refusal::Unknown => Error::NoSuchDatabase,
                Refusal::TooManyOpen => Error::Io(too_many_open()),
                Refusal::TableFull(e) => Error::Io(e.to_string()),
            })
    }

    async fn execute(
        &mut self,
        connection: Resource<OpenDatabase>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let session = self
            .databases
            .connection(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let parameters: Vec<DbValue> = parameters.into_iter().map(from_guest).collect();
        let result = session
            .execute(&statement, &parameters, self.deadline)
            .await
            .map_err(|e| match e {
                DbError::Full => Error::DatabaseFull,
                DbError::Io(_) | DbError::Locked => Error::Io(e.to_string()),
            })?;
        Ok(QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|values| RowResult {
                    values: values.into_iter().map(to_guest).collect(),
                })
                .collect(),
        })
    }

    fn drop(&mut self, connection: Resource<OpenDatabase>) -> wasmtime::Result<()> {
        self.databases.close(connection)
    }
}
