//! Outbound MySQL and MariaDB through `fermyon:spin/mysql@2.0.0`: a guest connects only to
//! servers its `allowed_outbound_hosts` names (`mysql://host[:port]`), on an address Kite
//! resolved and checked (with TLS when the address asks for it), with no client-side file
//! access (`LOAD DATA LOCAL` is refused).

// The interface's error type (generated from the WIT) is large; the host returns it as is.
#![allow(clippy::result_large_err)]

use super::client_tls::HostTls;
use super::outbound_connect::{checked_addresses, ConnectionPermits, Failure};
use super::outbound_policy::{ClientUse, MAX_ADDRESS_BYTES};
use super::postgres::rdbms_types::{
    Column, DbDataType, DbValue, Error, ParameterValue, Row, RowSet,
};
use crate::held_bytes::Held;
use crate::InstanceState;
use futures::TryStreamExt;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{ClientIdentity, Conn, OptsBuilder, Params, SslOpts, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/mysql",
        with: {
            "fermyon:spin/rdbms-types": super::super::postgres::rdbms_types,
            "fermyon:spin/mysql.connection": super::MysqlConnection,
        },
        imports: { default: async },
    });
}

use bindings::fermyon::spin::mysql as spin_mysql;

/// The client's name in log lines.
const CLIENT: &str = "MySQL";

/// How long resolving the server's name and connecting to it may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of rows one query may bring into the host; counted as rows arrive.
pub(crate) const MAX_RESULT_BYTES: usize = 32 << 20;

/// The largest packet the client reads or writes: one row, or one statement with its
/// parameters, cannot be larger.
const MAX_PACKET_BYTES: usize = 32 << 20;

/// The longest statement a guest may send; large values go in parameters. Prepared
/// statements are cached with their text, so this also bounds what the cache holds.
const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// Prepared statements kept per connection (each is closed on the server when evicted).
const STATEMENT_CACHE: usize = 4;

/// How long closing a connection the guest dropped may take (reading what is left of a
/// result, then saying goodbye); after that the socket is simply closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The client connection behind a guest's handle and its places in the caps, which it
/// keeps for as long as anything (a statement still running) holds it. Statements on it
/// take turns: Spin 4's async functions may run several at once.
pub(crate) struct ConnSlot {
    conn: Mutex<Option<Conn>>,
    /// Set when the guest's handle is dropped (with its instance, at the latest):
    /// statements still waiting their turn then do not run.
    closed: AtomicBool,
    _permits: ConnectionPermits,
}

pub(crate) type SharedConn = Arc<ConnSlot>;

/// A connection a guest opened. Dropped, it is closed on a task that gives up after
/// [`CLOSE_TIMEOUT`].
pub struct MysqlConnection {
    conn: SharedConn,
}

impl Drop for MysqlConnection {
    fn drop(&mut self) {
        let slot = self.conn.clone();
        slot.closed.store(true, Ordering::Release);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async move {
                    if let Some(conn) = slot.conn.lock().await.take() {
                        let _ = conn.disconnect().await;
                    }
                })
                .await;
            });
        }
    }
}

pub(crate) struct MysqlView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) mysql: &'a mut ClientUse,
}

pub(crate) struct Mysql;

impl HasData for Mysql {
    type Data<'a> = MysqlView<'a>;
}

pub(crate) fn view(state: &mut InstanceState) -> MysqlView<'_> {
    MysqlView {
        table: &mut state.table,
        mysql: &mut state.clients,
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_mysql::add_to_linker::<_, Mysql>(linker, view)?;
    Ok(())
}

/// What a guest's `mysql://user:password@host[:port]/database[?ssl-mode=...]` address
/// names. Other URL parameters (a Unix socket, statements run on connect, pool settings)
/// are refused: they would reach past the host and port the rule was checked against.
#[derive(Debug, PartialEq)]
struct Address {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    /// TLS, as Spin decides it: asked for by an `ssl-mode` other than `DISABLED`.
    use_tls: bool,
}

fn parse_address(address: &str) -> Result<Address, String> {
    let url = url::Url::parse(address).map_err(|e| format!("invalid address: {e}"))?;
    if url.scheme() != "mysql" {
        return Err(format!(
            "invalid address: the scheme is {:?}, expected \"mysql\"",
            url.scheme()
        ));
    }
    let mut use_tls = false;
    for (key, value) in url.query_pairs() {
        if !(key.eq_ignore_ascii_case("ssl-mode") || key.eq_ignore_ascii_case("sslmode")) {
            return Err(format!(
                "the address parameter {key:?} is not supported (only ssl-mode is)"
            ));
        }
        use_tls = !value.eq_ignore_ascii_case("disabled");
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("invalid address: it names no host")?;
    let decode = |text: &str| {
        percent_decode(text).ok_or_else(|| "invalid address: bad percent-encoding".to_string())
    };
    let user = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(decode)
        .transpose()?;
    let password = url.password().map(decode).transpose()?;
    let database = url
        .path()
        .strip_prefix('/')
        .filter(|d| !d.is_empty())
        .map(decode)
        .transpose()?;
    Ok(Address {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: url.port().unwrap_or(3306),
        user,
        password,
        database,
        use_tls,
    })
}

fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// Connects to the server `address` names if a rule of `mysql` allows it; refusals are
/// logged with the rule to add.
pub(crate) async fn open(mysql: &ClientUse, address: &str) -> Result<MysqlConnection, Error> {
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(Error::ConnectionFailed(format!(
            "the address is longer than {MAX_ADDRESS_BYTES} bytes"
        )));
    }
    let address = parse_address(address).map_err(Error::ConnectionFailed)?;
    let shown = format!("mysql://{}:{}", address.host, address.port);
    let refused = |reason: &str| {
        mysql.refused(CLIENT, &shown, reason);
        Error::ConnectionFailed(format!("address {shown} is not permitted"))
    };
    if let Err(reason) = mysql
        .policy
        .check_address("mysql", &address.host, address.port)
    {
        return Err(refused(&reason));
    }
    let permits = mysql
        .reserve(CLIENT, &shown)
        .ok_or_else(|| Error::ConnectionFailed("too many connections".into()))?;
    let ips = match checked_addresses(
        &address.host,
        address.port,
        &mysql.policy.blocked,
        CONNECT_TIMEOUT,
    )
    .await
    {
        Ok(found) => found.into_iter().map(|a| a.ip()).collect::<Vec<_>>(),
        Err(Failure::Refused { reason, .. }) => return Err(refused(&reason)),
        Err(Failure::Failed(code)) => return Err(Error::ConnectionFailed(code.to_string())),
    };
    let tls = address
        .use_tls
        .then(|| ssl_options(&mysql.policy.tls.for_host(&address.host)));
    let options = OptsBuilder::default()
        .ssl_opts(tls)
        .ip_or_hostname(address.host)
        .resolved_ips(Some(ips))
        .tcp_port(address.port)
        .user(address.user)
        .pass(address.password)
        .db_name(address.database)
        // The client would otherwise switch to the server's Unix socket when it runs
        // on this machine: a path nobody checked.
        .prefer_socket(false)
        .max_allowed_packet(Some(MAX_PACKET_BYTES))
        .stmt_cache_size(Some(STATEMENT_CACHE))
        // Known, so the client runs no query of its own to learn it on connecting.
        .wait_timeout(Some(28_800));
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(options))
        .await
        .map_err(|_| Error::ConnectionFailed("connecting timed out".into()))?
        .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
    Ok(MysqlConnection {
        conn: Arc::new(ConnSlot {
            conn: Mutex::new(Some(conn)),
            closed: AtomicBool::new(false),
            _permits: permits,
        }),
    })
}

/// The client connection behind `connection`, for running `statement` on it.
pub(crate) fn conn(
    table: &ResourceTable,
    connection: &Resource<MysqlConnection>,
    statement: &str,
) -> Result<SharedConn, Error> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(Error::BadParameter(format!(
            "the statement is longer than {MAX_STATEMENT_BYTES} bytes; pass large values as parameters"
        )));
    }
    table
        .get(connection)
        .map(|c| c.conn.clone())
        .map_err(|e| Error::Other(e.to_string()))
}

fn closed() -> Error {
    Error::Other("the connection is closed".into())
}

/// Runs `statement` on `conn`, counting the rows in `held` as they arrive (the query fails
/// when it refuses more).
pub(crate) async fn query(
    conn: SharedConn,
    statement: &str,
    params: Vec<ParameterValue>,
    held: &mut Held,
) -> Result<RowSet, Error> {
    let mut guard = conn.conn.lock().await;
    if conn.closed.load(Ordering::Acquire) {
        return Err(closed());
    }
    let conn = guard.as_mut().ok_or_else(closed)?;
    let mut result = conn
        .exec_iter(statement, positional(params))
        .await
        .map_err(|e| Error::QueryFailed(e.to_string()))?;
    let columns: Vec<Column> = result
        .columns()
        .map(|columns| columns.iter().map(column).collect())
        .unwrap_or_default();
    let Some(mut rows) = result
        .stream::<mysql_async::Row>()
        .await
        .map_err(|e| Error::QueryFailed(e.to_string()))?
    else {
        return Ok(RowSet {
            columns,
            rows: Vec::new(),
        });
    };
    let mut out = Vec::new();
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| Error::QueryFailed(e.to_string()))?
    {
        let row = convert_row(row, &columns)?;
        held.grow(std::mem::size_of::<Row>() + row.iter().map(value_size).sum::<usize>())
            .map_err(|refused| Error::Other(refused.to_string()))?;
        out.push(row);
    }
    Ok(RowSet { columns, rows: out })
}

/// Runs `statement` on `conn` for its effect.
pub(crate) async fn execute(
    conn: SharedConn,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<(), Error> {
    let mut guard = conn.conn.lock().await;
    if conn.closed.load(Ordering::Acquire) {
        return Err(closed());
    }
    let conn = guard.as_mut().ok_or_else(closed)?;
    conn.exec_drop(statement, positional(params))
        .await
        .map_err(|e| Error::QueryFailed(e.to_string()))
}

impl spin_mysql::Host for MysqlView<'_> {}

impl spin_mysql::HostConnection for MysqlView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<MysqlConnection>, Error> {
        let connection = open(self.mysql, &address).await?;
        self.table
            .push(connection)
            .map_err(|_| Error::ConnectionFailed("too many connections".into()))
    }

    async fn query(
        &mut self,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let conn = conn(self.table, &connection, &statement)?;
        query(conn, &statement, params, &mut Held::alone(MAX_RESULT_BYTES)).await
    }

    async fn execute(
        &mut self,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<(), Error> {
        execute(
            conn(self.table, &connection, &statement)?,
            &statement,
            params,
        )
        .await
    }

    async fn drop(&mut self, connection: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// The component's TLS settings for a host, in the form the MySQL client takes them (it
/// builds its own TLS configuration, checking the certificate against the host's name).
fn ssl_options(tls: &HostTls) -> SslOpts {
    // The client asks rustls for its process-wide default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = tls.roots_pem.iter().map(|pem| pem.clone().into()).collect();
    let identity = tls
        .identity_pem
        .as_ref()
        .map(|(chain, key)| ClientIdentity::new(chain.clone().into(), key.clone().into()));
    SslOpts::default()
        .with_root_certs(roots)
        .with_disable_built_in_roots(!tls.builtin_roots)
        .with_client_identity(identity)
}

fn positional(params: Vec<ParameterValue>) -> Params {
    if params.is_empty() {
        return Params::Empty;
    }
    Params::Positional(params.into_iter().map(parameter).collect())
}

fn parameter(value: ParameterValue) -> Value {
    use ParameterValue as P;
    match value {
        P::Boolean(b) => Value::from(b),
        P::Int8(n) => Value::from(n),
        P::Int16(n) => Value::from(n),
        P::Int32(n) => Value::from(n),
        P::Int64(n) => Value::from(n),
        P::Uint8(n) => Value::from(n),
        P::Uint16(n) => Value::from(n),
        P::Uint32(n) => Value::from(n),
        P::Uint64(n) => Value::from(n),
        P::Floating32(f) => Value::from(f),
        P::Floating64(f) => Value::from(f),
        P::Str(s) => Value::from(s),
        P::Binary(b) => Value::from(b),
        P::DbNull => Value::NULL,
    }
}

/// A column and the type its values are given as: integers by width and sign, floats,
/// text and binary strings; every other type (dates, decimals, JSON, ...) is `other`,
/// as the interface's other hosts do.
fn column(column: &mysql_async::Column) -> Column {
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.flags().contains(ColumnFlags::BINARY_FLAG);
    use ColumnType::*;
    use DbDataType as D;
    let data_type = match (column.column_type(), unsigned) {
        (MYSQL_TYPE_TINY, false) => D::Int8,
        (MYSQL_TYPE_TINY, true) => D::Uint8,
        (MYSQL_TYPE_SHORT, false) => D::Int16,
        (MYSQL_TYPE_SHORT, true) => D::Uint16,
        (MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG, false) => D::Int32,
        (MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG, true) => D::Uint32,
        (MYSQL_TYPE_LONGLONG, false) => D::Int64,
        (MYSQL_TYPE_LONGLONG, true) => D::Uint64,
        (MYSQL_TYPE_FLOAT, _) => D::Floating32,
        (MYSQL_TYPE_DOUBLE, _) => D::Floating64,
        (MYSQL_TYPE_BLOB, _) if !binary => D::Str,
        (MYSQL_TYPE_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_MEDIUM_BLOB, _) => D::Binary,
        (MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING, _) if binary => D::Binary,
        (MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING, _) => D::Str,
        _ => D::Other,
    };
    Column {
        name: column.name_str().into_owned(),
        data_type,
    }
}

fn convert_row(mut row: mysql_async::Row, columns: &[Column]) -> Result<Row, Error> {
    (0..row.len())
        .map(
            |index| match (row.take::<Value, _>(index), columns.get(index)) {
                (None | Some(Value::NULL), _) => Ok(DbValue::DbNull),
                (Some(_), None) => Err(Error::Other(format!("no column at index {index}"))),
                (Some(value), Some(column)) => convert_value(value, column),
            },
        )
        .collect()
}

fn convert_value(value: Value, column: &Column) -> Result<DbValue, Error> {
    fn to<T: FromValue>(value: Value) -> Result<T, Error> {
        mysql_async::from_value_opt::<T>(value)
            .map_err(|e| Error::ValueConversionFailed(e.to_string()))
    }
    use DbDataType as D;
    Ok(match column.data_type {
        D::Boolean => DbValue::Boolean(to(value)?),
        D::Int8 => DbValue::Int8(to(value)?),
        D::Int16 => DbValue::Int16(to(value)?),
        D::Int32 => DbValue::Int32(to(value)?),
        D::Int64 => DbValue::Int64(to(value)?),
        D::Uint8 => DbValue::Uint8(to(value)?),
        D::Uint16 => DbValue::Uint16(to(value)?),
        D::Uint32 => DbValue::Uint32(to(value)?),
        D::Uint64 => DbValue::Uint64(to(value)?),
        D::Floating32 => DbValue::Floating32(to(value)?),
        D::Floating64 => DbValue::Floating64(to(value)?),
        D::Str => DbValue::Str(to(value)?),
        D::Binary => DbValue::Binary(to(value)?),
        D::Other => {
            return Err(Error::ValueConversionFailed(format!(
                "cannot convert the value in column {:?}: its type has no counterpart in the interface; cast it in the query (e.g. CAST(x AS CHAR))",
                column.name
            )))
        }
    })
}

/// Roughly what a statement's parameters cost the host to hold.
pub(crate) fn parameters_size(params: &[ParameterValue]) -> usize {
    params
        .iter()
        .map(|p| {
            std::mem::size_of::<ParameterValue>()
                + match p {
                    ParameterValue::Str(s) => s.len(),
                    ParameterValue::Binary(b) => b.len(),
                    _ => 0,
                }
        })
        .sum()
}

/// Roughly what a value costs the host to hold.
fn value_size(value: &DbValue) -> usize {
    std::mem::size_of::<DbValue>()
        + match value {
            DbValue::Str(s) => s.len(),
            DbValue::Binary(b) => b.len(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_host_port_credentials_and_database() {
        assert_eq!(
            parse_address("mysql://me:p%40ss@db.internal:3307/shop").unwrap(),
            Address {
                host: "db.internal".into(),
                port: 3307,
                user: Some("me".into()),
                password: Some("p@ss".into()),
                database: Some("shop".into()),
                use_tls: false,
            }
        );
        let bare = parse_address("mysql://127.0.0.1").unwrap();
        assert_eq!(
            (bare.port, bare.user, bare.database, bare.use_tls),
            (3306, None, None, false)
        );
        assert!(
            !parse_address("mysql://h/db?ssl-mode=DISABLED")
                .unwrap()
                .use_tls
        );
        assert!(
            parse_address("mysql://h/db?sslMode=REQUIRED")
                .unwrap()
                .use_tls
        );
    }

    #[test]
    fn parameters_that_reach_past_the_checked_address_are_refused() {
        for address in [
            "mysql://h/db?socket=/run/mysqld/mysqld.sock",
            "mysql://h/db?prefer_socket=true",
            "mysql://h/db?init=SELECT%201",
            "postgres://h/db",
            "mysql:///db",
        ] {
            assert!(parse_address(address).is_err(), "{address}");
        }
    }
}
