//! Spin 4's `spin:sqlite@3.1.0`, for components on the concurrent engine: the same
//! databases, grants, sessions and limits as `fermyon:spin/sqlite@2.0.0`, with the
//! interface's async functions and rows as a stream.

use super::detached::{run_detached, STATEMENT_OVERHEAD};
use super::labels::Refusal;
use super::row_stream::rows_and_end;
use super::sqlite::{too_many_open, view, OpenDatabase, Sqlite, SqliteView};
use crate::held_bytes::hold;
use crate::InstanceState;
use kite_store::{DbError, DbValue, SqliteSession};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/sqlite-v3",
        with: {
            "spin:sqlite/sqlite.connection": crate::capability::sqlite::OpenDatabase,
        },
        imports: {
            // A statement may wait for another request's transaction to end.
            "spin:sqlite/sqlite.[method]connection.execute": async,
            // Making the row stream can fail only in the host (its table full): a trap.
            "spin:sqlite/sqlite.[method]connection.execute-async": trappable,
        },
    });
}

use bindings::spin::sqlite::sqlite::{self as spin_sqlite, Error, QueryResult, RowResult, Value};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_sqlite::add_to_linker::<_, Sqlite>(linker, view)?;
    Ok(())
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

fn db_error(e: DbError) -> Error {
    match e {
        DbError::Full => Error::DatabaseFull,
        DbError::Io(_) | DbError::Locked => Error::Io(e.to_string()),
    }
}

/// The most bytes of rows one statement's stream may hold (as kite-store bounds a result).
const MAX_RESULT_BYTES: usize = 32 << 20;

/// Roughly what `values` cost the host to hold.
fn values_size(values: &[DbValue]) -> usize {
    values
        .iter()
        .map(|value| {
            std::mem::size_of::<DbValue>()
                + match value {
                    DbValue::Text(t) => t.len(),
                    DbValue::Blob(b) => b.len(),
                    _ => 0,
                }
        })
        .sum()
}

fn rows(rows: Vec<Vec<DbValue>>) -> Vec<RowResult> {
    rows.into_iter()
        .map(|values| RowResult {
            values: values.into_iter().map(to_guest).collect(),
        })
        .collect()
}

fn open(view: &mut SqliteView<'_>, database: &str) -> Result<Resource<OpenDatabase>, Error> {
    view.databases
        .open_with(database, |database| Arc::new(SqliteSession::new(database)))
        .map_err(|refusal| match refusal {
            Refusal::AccessDenied => Error::AccessDenied,
            Refusal::Unknown => Error::NoSuchDatabase,
            Refusal::TooManyOpen => Error::Io(too_many_open()),
            Refusal::TableFull(e) => Error::Io(e.to_string()),
        })
}

fn session(
    view: &SqliteView<'_>,
    connection: &Resource<OpenDatabase>,
) -> Result<Arc<SqliteSession>, Error> {
    view.databases
        .connection(connection)
        .cloned()
        .map_err(|_| Error::InvalidConnection)
}

/// The session behind `connection` and the request's deadline, taken out of the instance's
/// state so that a statement can run without holding it.
fn session_and_deadline<T>(
    accessor: &Accessor<T, Sqlite>,
    connection: &Resource<OpenDatabase>,
) -> Result<(Arc<SqliteSession>, Option<Instant>), Error> {
    accessor.with(|mut access| {
        let view = access.get();
        Ok((session(&view, connection)?, view.deadline))
    })
}

impl spin_sqlite::Host for SqliteView<'_> {}

impl spin_sqlite::HostConnection for SqliteView<'_> {
    fn open(&mut self, database: String) -> Result<Resource<OpenDatabase>, Error> {
        open(self, &database)
    }

    async fn execute(
        &mut self,
        connection: Resource<OpenDatabase>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let session = session(self, &connection)?;
        let parameters: Vec<DbValue> = parameters.into_iter().map(from_guest).collect();
        let result = session
            .execute(&statement, &parameters, self.deadline)
            .await
            .map_err(db_error)?;
        Ok(QueryResult {
            columns: result.columns,
            rows: rows(result.rows),
        })
    }

    fn last_insert_rowid(&mut self, connection: Resource<OpenDatabase>) -> i64 {
        session(self, &connection).map_or(0, |session| session.last_insert_rowid())
    }

    fn changes(&mut self, connection: Resource<OpenDatabase>) -> u64 {
        session(self, &connection).map_or(0, |session| session.changes())
    }

    fn drop(&mut self, connection: Resource<OpenDatabase>) -> wasmtime::Result<()> {
        self.databases.close(connection)
    }
}

impl spin_sqlite::HostConnectionWithStore<InstanceState> for Sqlite {
    async fn open_async(
        accessor: &Accessor<InstanceState, Self>,
        database: String,
    ) -> Result<Resource<OpenDatabase>, Error> {
        accessor.with(|mut access| open(&mut access.get(), &database))
    }

    /// The statement's columns, its rows as a stream, and how it ended.
    async fn execute_async(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<OpenDatabase>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<String>,
                StreamReader<RowResult>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let parameters: Vec<DbValue> = parameters.into_iter().map(from_guest).collect();
        let arguments = STATEMENT_OVERHEAD + statement.len() + values_size(&parameters);
        let held = match hold(accessor, arguments + MAX_RESULT_BYTES, arguments) {
            Ok(held) => held,
            Err(refused) => return Ok(Err(Error::Io(refused.to_string()))),
        };
        let (session, deadline) = match session_and_deadline(accessor, &connection) {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        // Detached, holding what it holds counted: a guest that cancels the call does
        // not stop the statement's thread.
        let run = async move {
            let result = session.execute(&statement, &parameters, deadline).await;
            (result, held)
        };
        let (result, mut held) = match run_detached(deadline, run).await {
            Ok((Ok(result), held)) => (result, held),
            Ok((Err(e), _)) => return Ok(Err(db_error(e))),
            Err(why) => return Ok(Err(Error::Io(why.into()))),
        };
        let size = result.rows.iter().map(|row| values_size(row)).sum();
        if let Err(refused) = held.grow(size) {
            return Ok(Err(Error::Io(refused.to_string())));
        }
        let (rows, ended) = rows_and_end(accessor, rows(result.rows), held)?;
        Ok(Ok((result.columns, rows, ended)))
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<OpenDatabase>,
    ) -> i64 {
        session_and_deadline(accessor, &connection)
            .map_or(0, |(session, _)| session.last_insert_rowid())
    }

    async fn changes_async(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<OpenDatabase>,
    ) -> u64 {
        session_and_deadline(accessor, &connection).map_or(0, |(session, _)| session.changes())
    }
}
