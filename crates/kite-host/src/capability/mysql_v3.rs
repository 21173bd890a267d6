//! Spin 4's `spin:mysql@3.0.0` (async functions), for components on the concurrent engine:
//! the same servers, outbound rules, connection caps and bounds as `fermyon:spin/mysql@2.0.0`,
//! whose value and error types (the same in both WITs) are converted at the edge.

// The interface's error type (generated from the WIT) is large; the host returns it as is.
#![allow(clippy::result_large_err)]

use super::detached::{run_detached, STATEMENT_OVERHEAD};
use super::mysql::{conn, execute, open, parameters_size, query, view, MAX_RESULT_BYTES};
use super::mysql::{Mysql, MysqlConnection, MysqlView};
use super::outbound_policy::{open_outside_state, ClientUse};
use super::postgres::rdbms_types as v2;
use super::row_stream::rows_and_end;
use super::same_cases;
use crate::held_bytes::{hold, Held};
use crate::InstanceState;
use std::time::Instant;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};
use wasmtime::AsContextMut;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/mysql-v3",
        with: {
            "spin:mysql/mysql.connection": crate::capability::mysql::MysqlConnection,
        },
        imports: {
            // Making the row stream can fail only in the host (its table full): a trap.
            "spin:mysql/mysql.[method]connection.query": trappable,
        },
    });
}

use bindings::spin::mysql::mysql::{self as spin_mysql, Column, DbValue, Error, ParameterValue};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_mysql::add_to_linker::<_, Mysql>(linker, view)?;
    Ok(())
}

/// What `query` answers: the columns, the rows as a stream, and how the statement ended.
type Answer = (
    Vec<Column>,
    StreamReader<Vec<DbValue>>,
    FutureReader<Result<(), Error>>,
);

fn error(e: v2::Error) -> Error {
    use v2::Error as F;
    use Error as T;
    same_cases!(e, unit: [], carry: [ConnectionFailed, BadParameter, QueryFailed, ValueConversionFailed, Other])
}

fn parameter(p: ParameterValue) -> v2::ParameterValue {
    use v2::ParameterValue as T;
    use ParameterValue as F;
    same_cases!(p,
        unit: [DbNull],
        carry: [Boolean, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Floating32, Floating64, Str, Binary])
}

fn value(v: v2::DbValue) -> DbValue {
    use v2::DbValue as F;
    use DbValue as T;
    same_cases!(v,
        unit: [DbNull, Unsupported],
        carry: [Boolean, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Floating32, Floating64, Str, Binary])
}

fn column(c: v2::Column) -> Column {
    use spin_mysql::DbDataType as T;
    use v2::DbDataType as F;
    let data_type = same_cases!(c.data_type,
        unit: [Boolean, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Floating32, Floating64, Str, Binary, Other],
        carry: []);
    Column {
        name: c.name,
        data_type,
    }
}

impl spin_mysql::Host for MysqlView<'_> {}

impl spin_mysql::HostConnection for MysqlView<'_> {
    fn drop(&mut self, connection: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// The connection behind `handle` and the request's deadline, taken out of the instance's
/// state so that a statement can run without holding it.
fn shared_conn(
    accessor: &Accessor<InstanceState, Mysql>,
    handle: &Resource<MysqlConnection>,
    statement: &str,
) -> Result<(super::mysql::SharedConn, Option<Instant>), Error> {
    accessor.with(|mut access| {
        let deadline = access.as_context_mut().data().deadline;
        let conn = conn(access.get().table, handle, statement).map_err(error)?;
        Ok((conn, deadline))
    })
}

/// A hold on the instance's host memory for a statement and its parameters, which may
/// grow by a result's bound.
fn hold_statement(
    accessor: &Accessor<InstanceState, Mysql>,
    statement: &str,
    params: &[v2::ParameterValue],
    result: usize,
) -> Result<Held, Error> {
    let arguments = STATEMENT_OVERHEAD + statement.len() + parameters_size(params);
    hold(accessor, arguments + result, arguments).map_err(|e| Error::Other(e.to_string()))
}

impl spin_mysql::HostConnectionWithStore<InstanceState> for Mysql {
    async fn open(
        accessor: &Accessor<InstanceState, Self>,
        address: String,
    ) -> Result<Resource<MysqlConnection>, Error> {
        let connect =
            |client: ClientUse| async move { open(&client, &address).await.map_err(error) };
        let full = || Error::ConnectionFailed("too many connections".into());
        open_outside_state(accessor, connect, full).await
    }

    /// The statement's columns, its rows as a stream, and how it ended.
    async fn query(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<Answer, Error>> {
        let params: Vec<v2::ParameterValue> = params.into_iter().map(parameter).collect();
        let started =
            shared_conn(accessor, &connection, &statement).and_then(|(conn, deadline)| {
                let held = hold_statement(accessor, &statement, &params, MAX_RESULT_BYTES)?;
                Ok((conn, deadline, held))
            });
        let (conn, deadline, mut held) = match started {
            Ok(started) => started,
            Err(e) => return Ok(Err(e)),
        };
        let run = async move {
            let set = query(conn, &statement, params, &mut held).await;
            (set, held)
        };
        let (set, held) = match run_detached(deadline, run).await {
            Ok((Ok(set), held)) => (set, held),
            Ok((Err(e), _)) => return Ok(Err(error(e))),
            Err(why) => return Ok(Err(Error::Other(why.into()))),
        };
        let rows = set
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(value).collect())
            .collect();
        let (rows, ended) = rows_and_end(accessor, rows, held)?;
        Ok(Ok((
            set.columns.into_iter().map(column).collect(),
            rows,
            ended,
        )))
    }

    async fn execute(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<(), Error> {
        let params: Vec<v2::ParameterValue> = params.into_iter().map(parameter).collect();
        let (conn, deadline) = shared_conn(accessor, &connection, &statement)?;
        let held = hold_statement(accessor, &statement, &params, 0)?;
        let run = async move {
            let _held = held;
            execute(conn, &statement, params).await
        };
        run_detached(deadline, run)
            .await
            .unwrap_or_else(|why| Err(v2::Error::Other(why.into())))
            .map_err(error)
    }
}
