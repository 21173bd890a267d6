//! Outbound PostgreSQL through `fermyon:spin/postgres@2.0.0` and `spin:postgres/postgres`
//! `@3.0.0` and `@4.0.0`: a guest connects only to servers its `allowed_outbound_hosts`
//! names (`postgres://host[:port]`), over a connection Kite opens and counts. The three
//! interface versions share one connection type and one value conversion (version 4's).

// The interfaces' error type (generated from the WIT) is large; the host returns it as is.
#![allow(clippy::result_large_err)]

mod codec;
pub mod v4_2;
mod values;
mod versions;

use super::outbound_connect::{connect_tcp, ConnectionPermits, Failure};
use super::outbound_policy::{ClientUse, MAX_ADDRESS_BYTES};
use crate::held_bytes::{Held, HeldBytes};
use crate::InstanceState;
use futures::{pin_mut, TryStreamExt};
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;
use wasmtime::component::{HasData, Linker, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/postgres",
        with: {
            "fermyon:spin/postgres.connection": super::PgConnection,
            "spin:postgres/postgres@3.0.0.connection": super::PgConnection,
            "spin:postgres/postgres@4.0.0.connection": super::PgConnection,
        },
        imports: { default: async },
    });
}

/// The value types PostgreSQL 2.0.0 and MySQL share (`fermyon:spin/rdbms-types`).
pub use bindings::fermyon::spin::rdbms_types;
pub(crate) use bindings::spin::postgres4_0_0::postgres as v4;

/// The client's name in log lines.
const CLIENT: &str = "PostgreSQL";

/// How long connecting to a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of rows one query may bring into the host; counted as rows arrive.
pub(crate) const MAX_RESULT_BYTES: usize = 32 << 20;

/// The longest statement a guest may send; large values go in parameters.
const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// A connection a guest opened.
pub struct PgConnection {
    client: Arc<tokio_postgres::Client>,
    /// Drives the connection; stopped when the guest drops it.
    driver: tokio::task::JoinHandle<()>,
    _permits: ConnectionPermits,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub(crate) struct PgView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) postgres: &'a mut ClientUse,
    pub(crate) held: &'a HeldBytes,
}

pub(crate) struct Postgres;

impl HasData for Postgres {
    type Data<'a> = PgView<'a>;
}

pub(crate) fn view(state: &mut InstanceState) -> PgView<'_> {
    PgView {
        table: &mut state.table,
        postgres: &mut state.clients,
        held: &state.held,
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    bindings::fermyon::spin::postgres::add_to_linker::<_, Postgres>(linker, view)?;
    bindings::fermyon::spin::rdbms_types::add_to_linker::<_, Postgres>(linker, view)?;
    bindings::spin::postgres3_0_0::postgres::add_to_linker::<_, Postgres>(linker, view)?;
    v4::add_to_linker::<_, Postgres>(linker, view)?;
    Ok(())
}

/// Speaks PostgreSQL's start-up (with TLS as `tls` makes it) over `stream`; the driver
/// task runs the connection until the client is dropped.
async fn handshake<T>(
    config: &tokio_postgres::Config,
    stream: tokio::net::TcpStream,
    tls: T,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), v4::Error>
where
    T: TlsConnect<tokio::net::TcpStream>,
    T::Stream: Send + 'static,
{
    let failed = |message: String| v4::Error::ConnectionFailed(message);
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, config.connect_raw(stream, tls))
            .await
            .map_err(|_| failed("connecting timed out".into()))?
            .map_err(|e| failed(with_causes(&e)))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, driver))
}

/// `error` and the errors that caused it, as one line ("error performing TLS handshake:
/// invalid peer certificate: UnknownIssuer").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Connects to the server `address` names (a `postgres://` URL or `key=value` string) if a
/// rule of `postgres` allows it; refusals are logged with the rule to add. `ca_roots` are
/// trusted for this connection besides the component's roots (Spin 4's connection builder).
pub(crate) async fn open(
    postgres: &ClientUse,
    address: &str,
    ca_roots: &[CertificateDer<'static>],
) -> Result<PgConnection, v4::Error> {
    let failed = |message: String| v4::Error::ConnectionFailed(message);
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(failed(format!(
            "the address is longer than {MAX_ADDRESS_BYTES} bytes"
        )));
    }
    let config: tokio_postgres::Config = address
        .parse()
        .map_err(|e: tokio_postgres::Error| failed(e.to_string()))?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(_) => return Err(failed("Unix sockets are not supported".into())),
        None => return Err(failed("the address names no host".into())),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let shown = format!("postgres://{host}:{port}");
    if let Err(reason) = postgres.policy.check_address("postgres", &host, port) {
        postgres.refused(CLIENT, &shown, &reason);
        return Err(failed(format!("address {shown} is not permitted")));
    }
    let permits = postgres
        .reserve(CLIENT, &shown)
        .ok_or_else(|| failed("too many connections".into()))?;
    let stream = match connect_tcp(&host, port, &postgres.policy.blocked, CONNECT_TIMEOUT).await {
        Ok(stream) => stream,
        Err(Failure::Refused { reason, .. }) => {
            postgres.refused(CLIENT, &shown, &reason);
            return Err(failed(format!("address {shown} is not permitted")));
        }
        Err(Failure::Failed(code)) => return Err(failed(code.to_string())),
    };
    // As libpq and Spin: TLS unless `sslmode=disable`; with `prefer` (the default) a
    // server without TLS is spoken to in plain text, one with TLS must present a
    // certificate the component trusts for `host`.
    let (client, driver) = if config.get_ssl_mode() == SslMode::Disable {
        handshake(&config, stream, tokio_postgres::NoTls).await?
    } else {
        let settings = postgres.policy.tls.for_host(&host);
        let config_for_host = if ca_roots.is_empty() {
            settings.config.clone()
        } else {
            settings
                .with_roots(ca_roots)
                .map_err(|e| failed(format!("TLS to {host}: {e:#}")))?
        };
        let mut maker = MakeRustlsConnect::new(config_for_host.as_ref().clone());
        let tls = MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(&mut maker, &host)
            .map_err(|e| failed(format!("TLS to {host}: {e}")))?;
        handshake(&config, stream, tls).await?
    };
    Ok(PgConnection {
        client: Arc::new(client),
        driver,
        _permits: permits,
    })
}

/// The client behind `connection`, for a statement that runs without holding the table.
pub(crate) fn client(
    table: &ResourceTable,
    connection: &wasmtime::component::Resource<PgConnection>,
) -> Result<Arc<tokio_postgres::Client>, v4::Error> {
    table
        .get(connection)
        .map(|c| c.client.clone())
        .map_err(|e| v4::Error::Other(e.to_string()))
}

/// Runs `statement`, counting the rows in `held` as they arrive (the query fails when it
/// refuses more).
pub(crate) async fn query(
    client: Arc<tokio_postgres::Client>,
    statement: &str,
    params: Vec<v4::ParameterValue>,
    held: &mut Held,
) -> Result<v4::RowSet, v4::Error> {
    check_statement(statement)?;
    let prepared = client
        .prepare(statement)
        .await
        .map_err(values::query_failed)?;
    let columns = values::columns(prepared.columns());
    let params = values::params(&params);
    let rows = client
        .query_raw(
            &prepared,
            params
                .iter()
                .map(|p| p as &dyn tokio_postgres::types::ToSql),
        )
        .await
        .map_err(values::bad_parameter_or_query_failed)?;
    pin_mut!(rows);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(values::query_failed)? {
        let (row, size) = values::row(&row)?;
        held.grow(size)
            .map_err(|refused| v4::Error::QueryFailed(v4::QueryError::Text(refused.to_string())))?;
        out.push(row);
    }
    Ok(v4::RowSet { columns, rows: out })
}

/// Runs `statement` for its effect; the number of rows it changed.
pub(crate) async fn execute(
    client: Arc<tokio_postgres::Client>,
    statement: &str,
    params: Vec<v4::ParameterValue>,
) -> Result<u64, v4::Error> {
    check_statement(statement)?;
    let prepared = client
        .prepare(statement)
        .await
        .map_err(values::query_failed)?;
    let params = values::params(&params);
    client
        .execute_raw(
            &prepared,
            params
                .iter()
                .map(|p| p as &dyn tokio_postgres::types::ToSql),
        )
        .await
        .map_err(values::bad_parameter_or_query_failed)
}

fn check_statement(statement: &str) -> Result<(), v4::Error> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(v4::Error::BadParameter(format!(
            "the statement is longer than {MAX_STATEMENT_BYTES} bytes; pass large values as parameters"
        )));
    }
    Ok(())
}
