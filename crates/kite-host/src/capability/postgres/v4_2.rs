//! Spin 4's `spin:postgres@4.2.0`, for components on the concurrent engine: version 4.0's
//! functions, a connection builder that can trust a root certificate the guest names, and
//! async variants that run without holding the instance's state. Its types (the same as
//! version 4.0's) are converted at the edge.

use super::values::parameters_size;
use super::MAX_RESULT_BYTES;
use super::{client, execute, open, query, v4, view, PgConnection, PgView, Postgres};
use crate::capability::detached::{run_detached, STATEMENT_OVERHEAD};
use crate::capability::outbound_policy::MAX_ADDRESS_BYTES;
use crate::capability::outbound_policy::{open_outside_state, ClientUse};
use crate::capability::row_stream::rows_and_end;
use crate::capability::same_cases;
use crate::held_bytes::{hold, Held, Refused};
use crate::InstanceState;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};
use wasmtime::AsContextMut;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/postgres-v4-2",
        with: {
            "spin:postgres/postgres@4.2.0.connection": crate::capability::postgres::PgConnection,
            "spin:postgres/postgres@4.2.0.connection-builder": super::PgConnectionBuilder,
        },
        imports: {
            "spin:postgres/postgres@4.2.0.[static]connection.open": async,
            "spin:postgres/postgres@4.2.0.[method]connection.query": async,
            "spin:postgres/postgres@4.2.0.[method]connection.execute": async,
            "spin:postgres/postgres@4.2.0.[method]connection-builder.build": async,
            // Making a builder or a row stream can fail only in the host (its table full).
            "spin:postgres/postgres@4.2.0.[constructor]connection-builder": trappable,
            "spin:postgres/postgres@4.2.0.[method]connection.query-async": trappable,
        },
    });
}

use bindings::spin::postgres4_2_0::postgres::{self as pg, Column, DbValue, Error, ParameterValue};

/// The longest root certificate text a builder takes.
const MAX_CA_ROOT_BYTES: usize = 64 << 10;

/// A connection not yet made: the address, and roots to trust besides the component's,
/// counted against the instance's host memory while the builder lives.
pub struct PgConnectionBuilder {
    address: String,
    ca_roots: Vec<CertificateDer<'static>>,
    held: Held,
    /// Why the instance could not hold the builder, reported when it is built.
    refused: Option<Refused>,
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    pg::add_to_linker::<_, Postgres>(linker, view)?;
    Ok(())
}

/// What `query-async` answers: the columns, the rows as a stream, and how it ended.
type Answer = (
    Vec<Column>,
    StreamReader<Vec<DbValue>>,
    FutureReader<Result<(), Error>>,
);

fn bound<N, A, B>(bound: Option<(N, A)>, kind: fn(A) -> B) -> Option<(N, B)> {
    bound.map(|(n, k)| (n, kind(k)))
}

fn kind_in(kind: pg::RangeBoundKind) -> v4::RangeBoundKind {
    use pg::RangeBoundKind as F;
    use v4::RangeBoundKind as T;
    same_cases!(kind, unit: [Inclusive, Exclusive], carry: [])
}

fn kind_out(kind: v4::RangeBoundKind) -> pg::RangeBoundKind {
    use pg::RangeBoundKind as T;
    use v4::RangeBoundKind as F;
    same_cases!(kind, unit: [Inclusive, Exclusive], carry: [])
}

fn parameter(p: ParameterValue) -> v4::ParameterValue {
    use v4::ParameterValue as T;
    use ParameterValue as F;
    same_cases!(p,
        unit: [DbNull],
        carry: [Boolean, Int8, Int16, Int32, Int64, Floating32, Floating64, Str, Binary, Date,
            Time, Datetime, Timestamp, Uuid, Jsonb, Decimal, ArrayInt32, ArrayInt64,
            ArrayDecimal, ArrayStr],
        F::RangeInt32((low, high)) => T::RangeInt32((bound(low, kind_in), bound(high, kind_in))),
        F::RangeInt64((low, high)) => T::RangeInt64((bound(low, kind_in), bound(high, kind_in))),
        F::RangeDecimal((low, high)) => T::RangeDecimal((bound(low, kind_in), bound(high, kind_in))),
        F::Interval(i) => T::Interval(v4::Interval { micros: i.micros, days: i.days, months: i.months }),
    )
}

fn value(v: v4::DbValue) -> DbValue {
    use v4::DbValue as F;
    use DbValue as T;
    same_cases!(v,
        unit: [DbNull],
        carry: [Boolean, Int8, Int16, Int32, Int64, Floating32, Floating64, Str, Binary, Date,
            Time, Datetime, Timestamp, Uuid, Jsonb, Decimal, ArrayInt32, ArrayInt64,
            ArrayDecimal, ArrayStr, Unsupported],
        F::RangeInt32((low, high)) => T::RangeInt32((bound(low, kind_out), bound(high, kind_out))),
        F::RangeInt64((low, high)) => T::RangeInt64((bound(low, kind_out), bound(high, kind_out))),
        F::RangeDecimal((low, high)) => T::RangeDecimal((bound(low, kind_out), bound(high, kind_out))),
        F::Interval(i) => T::Interval(pg::Interval { micros: i.micros, days: i.days, months: i.months }),
    )
}

fn column(c: v4::Column) -> Column {
    use pg::DbDataType as T;
    use v4::DbDataType as F;
    let data_type = same_cases!(c.data_type,
        unit: [Boolean, Int8, Int16, Int32, Int64, Floating32, Floating64, Str, Binary, Date,
            Time, Datetime, Timestamp, Uuid, Jsonb, Decimal, RangeInt32, RangeInt64,
            RangeDecimal, ArrayInt32, ArrayInt64, ArrayDecimal, ArrayStr, Interval],
        carry: [Other]);
    Column {
        name: c.name,
        data_type,
    }
}

fn error(e: v4::Error) -> Error {
    use v4::Error as F;
    use Error as T;
    same_cases!(e,
        unit: [],
        carry: [ConnectionFailed, BadParameter, ValueConversionFailed, Other],
        F::QueryFailed(v4::QueryError::Text(text)) => T::QueryFailed(pg::QueryError::Text(text)),
        F::QueryFailed(v4::QueryError::DbError(db)) => T::QueryFailed(pg::QueryError::DbError(pg::DbError {
            as_text: db.as_text,
            severity: db.severity,
            code: db.code,
            message: db.message,
            detail: db.detail,
            extras: db.extras,
        })),
    )
}

fn row_set(set: v4::RowSet) -> pg::RowSet {
    pg::RowSet {
        columns: set.columns.into_iter().map(column).collect(),
        rows: set.rows.into_iter().map(row).collect(),
    }
}

fn row(values: Vec<v4::DbValue>) -> Vec<DbValue> {
    values.into_iter().map(value).collect()
}

fn parameters(params: Vec<ParameterValue>) -> Vec<v4::ParameterValue> {
    params.into_iter().map(parameter).collect()
}

/// The PEM certificates in `text`: at least one, and nothing but certificates.
fn ca_roots(text: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let invalid = |why: String| Error::Other(format!("invalid root certificate: {why}"));
    if text.len() > MAX_CA_ROOT_BYTES {
        return Err(invalid(format!("longer than {MAX_CA_ROOT_BYTES} bytes")));
    }
    let roots = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if roots.is_empty() {
        return Err(invalid("no PEM certificate".into()));
    }
    if text.matches("-----BEGIN ").count() != roots.len() {
        return Err(invalid(
            "it holds PEM sections that are not certificates".into(),
        ));
    }
    Ok(roots)
}

impl PgView<'_> {
    fn push(&mut self, connection: PgConnection) -> Result<Resource<PgConnection>, Error> {
        self.table
            .push(connection)
            .map_err(|_| Error::ConnectionFailed("too many connections".into()))
    }

    fn builder(
        &self,
        builder: &Resource<PgConnectionBuilder>,
    ) -> Result<(String, Vec<CertificateDer<'static>>), Error> {
        let builder = self
            .table
            .get(builder)
            .map_err(|e| Error::Other(e.to_string()))?;
        if let Some(refused) = &builder.refused {
            return Err(Error::Other(refused.to_string()));
        }
        Ok((builder.address.clone(), builder.ca_roots.clone()))
    }
}

impl pg::Host for PgView<'_> {}

impl pg::HostConnectionBuilder for PgView<'_> {
    fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgConnectionBuilder>> {
        // Kept whole up to one byte past the bound, so that building still says it is
        // too long.
        let mut address = address;
        if address.len() > MAX_ADDRESS_BYTES {
            let mut end = MAX_ADDRESS_BYTES + 1;
            while !address.is_char_boundary(end) {
                end -= 1;
            }
            address.truncate(end);
            address.shrink_to_fit();
        }
        // A builder the instance's host memory cannot hold fails when built, not here: a
        // constructor cannot answer with an error, only trap.
        let mut held = self.held.hold(MAX_ADDRESS_BYTES + 1 + MAX_CA_ROOT_BYTES);
        let refused = held.grow(address.len()).err();
        Ok(self.table.push(PgConnectionBuilder {
            address,
            ca_roots: Vec::new(),
            held,
            refused,
        })?)
    }

    fn set_ca_root(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
        certificate: String,
    ) -> Result<(), Error> {
        let roots = ca_roots(&certificate)?;
        let builder = self
            .table
            .get_mut(&builder)
            .map_err(|e| Error::Other(e.to_string()))?;
        let mut held = self.held.hold(MAX_ADDRESS_BYTES + 1 + MAX_CA_ROOT_BYTES);
        let size = builder.address.len() + roots.iter().map(|root| root.len()).sum::<usize>();
        held.grow(size).map_err(|e| Error::Other(e.to_string()))?;
        builder.ca_roots = roots;
        builder.held = held;
        builder.refused = None;
        Ok(())
    }

    async fn build(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
    ) -> Result<Resource<PgConnection>, Error> {
        let (address, roots) = self.builder(&builder)?;
        let connection = open(self.postgres, &address, &roots).await.map_err(error)?;
        self.push(connection)
    }

    fn drop(&mut self, builder: Resource<PgConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl pg::HostConnection for PgView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, Error> {
        let connection = open(self.postgres, &address, &[]).await.map_err(error)?;
        self.push(connection)
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<pg::RowSet, Error> {
        let client = client(self.table, &connection).map_err(error)?;
        let alone = &mut Held::alone(MAX_RESULT_BYTES);
        let set = query(client, &statement, parameters(params), alone)
            .await
            .map_err(error)?;
        Ok(row_set(set))
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let client = client(self.table, &connection).map_err(error)?;
        execute(client, &statement, parameters(params))
            .await
            .map_err(error)
    }

    fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// Opens a connection to `address` trusting `roots` too, without holding the instance's
/// state while it connects.
async fn open_async(
    accessor: &Accessor<InstanceState, Postgres>,
    address: &str,
    roots: &[CertificateDer<'static>],
) -> Result<Resource<PgConnection>, Error> {
    let connect =
        |client: ClientUse| async move { open(&client, address, roots).await.map_err(error) };
    let full = || Error::ConnectionFailed("too many connections".into());
    open_outside_state(accessor, connect, full).await
}

/// What a statement needs to run away from the instance's state: the client, the
/// request's deadline, and a hold on the instance's host memory for the statement and its
/// parameters, which may grow by a result's bound.
fn start(
    accessor: &Accessor<InstanceState, Postgres>,
    connection: &Resource<PgConnection>,
    statement: &str,
    params: &[v4::ParameterValue],
    result: usize,
) -> Result<(Arc<tokio_postgres::Client>, Option<Instant>, Held), Error> {
    let arguments = STATEMENT_OVERHEAD + statement.len() + parameters_size(params);
    let held =
        hold(accessor, arguments + result, arguments).map_err(|e| Error::Other(e.to_string()))?;
    accessor.with(|mut access| {
        let deadline = access.as_context_mut().data().deadline;
        let client = client(access.get().table, connection).map_err(error)?;
        Ok((client, deadline, held))
    })
}

impl pg::HostConnectionBuilderWithStore<InstanceState> for Postgres {
    async fn build_async(
        accessor: &Accessor<InstanceState, Self>,
        builder: Resource<PgConnectionBuilder>,
    ) -> Result<Resource<PgConnection>, Error> {
        let (address, roots) = accessor.with(|mut access| access.get().builder(&builder))?;
        open_async(accessor, &address, &roots).await
    }
}

impl pg::HostConnectionWithStore<InstanceState> for Postgres {
    async fn open_async(
        accessor: &Accessor<InstanceState, Self>,
        address: String,
    ) -> Result<Resource<PgConnection>, Error> {
        open_async(accessor, &address, &[]).await
    }

    async fn query_async(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<Answer, Error>> {
        let params = parameters(params);
        let (client, deadline, mut held) =
            match start(accessor, &connection, &statement, &params, MAX_RESULT_BYTES) {
                Ok(started) => started,
                Err(e) => return Ok(Err(e)),
            };
        let run = async move {
            let set = query(client, &statement, params, &mut held).await;
            (set, held)
        };
        let (set, held) = match run_detached(deadline, run).await {
            Ok((Ok(set), held)) => (set, held),
            Ok((Err(e), _)) => return Ok(Err(error(e))),
            Err(why) => return Ok(Err(Error::Other(why.into()))),
        };
        let columns = set.columns.into_iter().map(column).collect();
        let rows = set.rows.into_iter().map(row).collect();
        let (rows, ended) = rows_and_end(accessor, rows, held)?;
        Ok(Ok((columns, rows, ended)))
    }

    async fn execute_async(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let params = parameters(params);
        let (client, deadline, held) = start(accessor, &connection, &statement, &params, 0)?;
        let run = async move {
            let _held = held;
            execute(client, &statement, params).await
        };
        match run_detached(deadline, run).await {
            Ok(done) => done.map_err(error),
            Err(why) => Err(Error::Other(why.into())),
        }
    }
}
