//! Spin 4's `spin:mysql@3.0.0` (async functions), for components on the concurrent engine:
//! the same servers, outbound rules, connection caps and bounds as `fermyon:spin/mysql@2.0.0`,
//! whose value and error types (the same in both WITs) are converted at the edge.

// The interface's error type (generated from the WIT) is large; the host returns it as is.
#![allow(clippy::result_large_err)]

use super::mysql::{conn, execute, open, query, view, Mysql, MysqlConnection, MysqlView};
use super::postgres::rdbms_types as v2;
use super::row_stream::{rows_and_end, same_cases};
use crate::InstanceState;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

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

/// The connection behind `handle`, taken out of the instance's state so that a statement
/// can run without holding it.
fn shared_conn<T>(
    accessor: &Accessor<T, Mysql>,
    handle: &Resource<MysqlConnection>,
    statement: &str,
) -> Result<super::mysql::SharedConn, Error> {
    accessor
        .with(|mut access| conn(access.get().table, handle, statement))
        .map_err(error)
}

impl<T> spin_mysql::HostConnectionWithStore<T> for Mysql {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<MysqlConnection>, Error> {
        let client = accessor.with(|mut access| access.get().mysql.shared());
        let connection = open(&client, &address).await.map_err(error)?;
        accessor.with(|mut access| {
            access
                .get()
                .table
                .push(connection)
                .map_err(|_| Error::ConnectionFailed("too many connections".into()))
        })
    }

    /// The statement's columns, its rows as a stream, and how it ended.
    async fn query(
        accessor: &Accessor<T, Self>,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<Answer, Error>> {
        let conn = match shared_conn(accessor, &connection, &statement) {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        let params = params.into_iter().map(parameter).collect();
        let set = match query(conn, &statement, params).await {
            Ok(set) => set,
            Err(e) => return Ok(Err(error(e))),
        };
        let rows = set
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(value).collect())
            .collect();
        let (rows, ended) = rows_and_end(accessor, rows)?;
        Ok(Ok((
            set.columns.into_iter().map(column).collect(),
            rows,
            ended,
        )))
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<(), Error> {
        let conn = shared_conn(accessor, &connection, &statement)?;
        let params = params.into_iter().map(parameter).collect();
        execute(conn, &statement, params).await.map_err(error)
    }
}
