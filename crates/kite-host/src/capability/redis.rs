//! Outbound Redis through `fermyon:spin/redis`: a guest connects only to a server its
//! `allowed_outbound_hosts` names (`redis://host[:port]`), over a connection Kite opens
//! (resolved once, blocked networks refused, counted in the connection caps).

use super::outbound_connect::{connect_tcp, tls, ConnectionPermits, Failure};
use super::outbound_policy::{ClientUse, MAX_ADDRESS_BYTES};
use crate::InstanceState;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, Value};
use std::time::Duration;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/redis",
        with: {
            "fermyon:spin/redis.connection": super::RedisConnection,
        },
        imports: {
            "fermyon:spin/redis.[static]connection.open": async,
            "fermyon:spin/redis.[method]connection.publish": async,
            "fermyon:spin/redis.[method]connection.get": async,
            "fermyon:spin/redis.[method]connection.set": async,
            "fermyon:spin/redis.[method]connection.incr": async,
            "fermyon:spin/redis.[method]connection.del": async,
            "fermyon:spin/redis.[method]connection.sadd": async,
            "fermyon:spin/redis.[method]connection.smembers": async,
            "fermyon:spin/redis.[method]connection.srem": async,
            "fermyon:spin/redis.[method]connection.execute": async,
        },
    });
}

use bindings::fermyon::spin::redis::{self as spin_redis};
pub use bindings::fermyon::spin::redis::{Error, RedisParameter, RedisResult};

/// The client's name in log lines.
const CLIENT: &str = "Redis";

/// How long connecting to a Redis server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes one reply may bring into the host (it is read whole before it is
/// counted, so this bounds what the host keeps, not what it briefly reads).
const MAX_REPLY_BYTES: usize = 32 << 20;

/// Commands that act on the Redis server itself (its configuration, replication, other
/// clients) or turn the connection into a stream, rather than on data: a component granted
/// a server may use its data, not run it.
const REFUSED_COMMANDS: &[&str] = &[
    "ACL",
    "BGREWRITEAOF",
    "BGSAVE",
    "CLIENT",
    "CLUSTER",
    "CONFIG",
    "DEBUG",
    "FAILOVER",
    "MODULE",
    "MONITOR",
    "PSUBSCRIBE",
    "PSYNC",
    "REPLICAOF",
    "RESET",
    "SAVE",
    "SHUTDOWN",
    "SLAVEOF",
    "SSUBSCRIBE",
    "SUBSCRIBE",
    "SYNC",
];

/// A connection a guest opened.
pub struct RedisConnection {
    connection: MultiplexedConnection,
    /// Reads the connection's replies; stopped when the guest drops the connection.
    driver: tokio::task::JoinHandle<()>,
    _permits: ConnectionPermits,
}

impl Drop for RedisConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub(crate) struct RedisView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) redis: &'a mut ClientUse,
}

pub(crate) struct Redis;

impl HasData for Redis {
    type Data<'a> = RedisView<'a>;
}

/// The Redis part of an instance's state, as both interface generations see it.
pub(crate) fn view(state: &mut InstanceState) -> RedisView<'_> {
    RedisView {
        table: &mut state.table,
        redis: &mut state.clients,
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_redis::add_to_linker::<_, Redis>(linker, view)?;
    Ok(())
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl RedisView<'_> {
    pub(crate) fn connection(
        &self,
        handle: &Resource<RedisConnection>,
    ) -> Result<MultiplexedConnection, Error> {
        self.table
            .get(handle)
            .map(|c| c.connection.clone())
            .map_err(other)
    }

    async fn query<T: redis::FromRedisValue>(
        &mut self,
        handle: &Resource<RedisConnection>,
        command: &redis::Cmd,
    ) -> Result<T, Error> {
        query(self.connection(handle)?, command).await
    }
}

/// Runs `command` on `connection`, refusing replies over [`MAX_REPLY_BYTES`].
pub(crate) async fn query<T: redis::FromRedisValue>(
    mut connection: MultiplexedConnection,
    command: &redis::Cmd,
) -> Result<T, Error> {
    let value: Value = command
        .query_async(&mut connection)
        .await
        .map_err(|e| match e.kind() {
            redis::ErrorKind::TypeError => Error::TypeError,
            _ => other(e),
        })?;
    if reply_bytes(&value) > MAX_REPLY_BYTES {
        return Err(Error::Other(format!(
            "the reply is larger than {MAX_REPLY_BYTES} bytes"
        )));
    }
    redis::from_redis_value(&value).map_err(|_| Error::TypeError)
}

/// Connects to `address` if a rule of `client` allows it; refusals are logged with the
/// rule to add.
pub(crate) async fn open(client: &ClientUse, address: &str) -> Result<RedisConnection, Error> {
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(Error::InvalidAddress);
    }
    let Some((info, use_tls)) = parse_address(address) else {
        client.refused(
            CLIENT,
            address,
            "only redis:// and rediss:// over TCP are supported (no Unix sockets, no #insecure)",
        );
        return Err(Error::InvalidAddress);
    };
    let ConnectionAddr::Tcp(host, port) = &info.addr else {
        return Err(Error::InvalidAddress);
    };
    let (host, port) = (host.clone(), *port);
    let scheme = if use_tls { "rediss" } else { "redis" };
    let shown = format!("{scheme}://{host}:{port}");
    if let Err(reason) = client.policy.check_address(scheme, &host, port) {
        client.refused(CLIENT, &shown, &reason);
        return Err(Error::InvalidAddress);
    }
    let Some(permits) = client.reserve(CLIENT, &shown) else {
        return Err(Error::TooManyConnections);
    };
    let stream = match connect_tcp(&host, port, &client.policy.blocked, CONNECT_TIMEOUT).await {
        Ok(stream) => stream,
        Err(Failure::Refused { reason, .. }) => {
            client.refused(CLIENT, &shown, &reason);
            return Err(Error::InvalidAddress);
        }
        Err(Failure::Failed(code)) => return Err(other(code)),
    };
    let (connection, driver) = if use_tls {
        let config = client.policy.tls.for_host(&host).config.clone();
        let stream = tls(config, &host, stream, CONNECT_TIMEOUT)
            .await
            .map_err(|failure| match failure {
                Failure::Refused { reason, .. } => Error::Other(reason),
                Failure::Failed(code) => other(code),
            })?;
        handshake(&info, stream).await?
    } else {
        handshake(&info, stream).await?
    };
    Ok(RedisConnection {
        connection,
        driver,
        _permits: permits,
    })
}

/// The command a guest asked `execute` to run, unless it acts on the server itself.
pub(crate) fn guest_command(
    client: &ClientUse,
    command: &str,
    arguments: Vec<RedisParameter>,
) -> Result<redis::Cmd, Error> {
    let name = command.trim().to_ascii_uppercase();
    if REFUSED_COMMANDS.contains(&name.as_str()) {
        client.refused(
            CLIENT,
            "its server",
            &format!("`{name}` acts on the server, not on data, and is not allowed"),
        );
        return Err(Error::Other(format!("the command {name} is not allowed")));
    }
    let mut cmd = redis::cmd(&name);
    for argument in arguments {
        match argument {
            RedisParameter::Int64(n) => cmd.arg(n),
            RedisParameter::Binary(bytes) => cmd.arg(bytes),
        };
    }
    Ok(cmd)
}

/// What a `redis://` or `rediss://` address names, and whether it asks for TLS. The TLS
/// form is read as the plain one: Kite makes the TLS connection itself.
fn parse_address(address: &str) -> Option<(redis::ConnectionInfo, bool)> {
    let mut url = url::Url::parse(address).ok()?;
    let use_tls = match url.scheme() {
        "redis" => false,
        "rediss" if url.fragment().is_none() => true,
        _ => return None,
    };
    url.set_scheme("redis").ok()?;
    let info = url.into_connection_info().ok()?;
    matches!(info.addr, ConnectionAddr::Tcp(..)).then_some((info, use_tls))
}

/// Speaks Redis's connection set-up (authentication, database) over `stream`; the driver
/// task reads replies until the connection is dropped.
async fn handshake<S>(
    info: &redis::ConnectionInfo,
    stream: S,
) -> Result<(MultiplexedConnection, tokio::task::JoinHandle<()>), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static,
{
    let (connection, driver) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        MultiplexedConnection::new(&info.redis, stream),
    )
    .await
    .map_err(|_| Error::Other("connecting to Redis timed out".into()))?
    .map_err(other)?;
    Ok((connection, tokio::spawn(driver)))
}

/// Roughly how many bytes `value` holds.
fn reply_bytes(value: &Value) -> usize {
    match value {
        Value::BulkString(bytes) => bytes.len(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => text.len(),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            items.iter().map(reply_bytes).sum::<usize>() + 16 * items.len()
        }
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| reply_bytes(k) + reply_bytes(v))
            .sum(),
        Value::Attribute { data, .. } => reply_bytes(data),
        _ => 16,
    }
}

/// A reply as `execute` returns it: arrays flattened, as Spin does.
pub(crate) fn results(value: Value, into: &mut Vec<RedisResult>) -> Result<(), Error> {
    match value {
        Value::Nil => into.push(RedisResult::Nil),
        Value::Int(n) => into.push(RedisResult::Int64(n)),
        Value::BulkString(bytes) => into.push(RedisResult::Binary(bytes)),
        Value::SimpleString(text) => into.push(RedisResult::Status(text)),
        Value::Okay => into.push(RedisResult::Status("OK".into())),
        Value::Double(d) => into.push(RedisResult::Binary(d.to_string().into_bytes())),
        Value::Boolean(b) => into.push(RedisResult::Int64(b.into())),
        Value::BigNumber(n) => into.push(RedisResult::Binary(n.to_string().into_bytes())),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                results(item, into)?;
            }
        }
        Value::ServerError(e) => return Err(Error::Other(format!("{e:?}"))),
        other => {
            return Err(Error::Other(format!(
                "a reply of this kind cannot be returned: {other:?}"
            )))
        }
    }
    Ok(())
}

impl spin_redis::Host for RedisView<'_> {}

impl spin_redis::HostConnection for RedisView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<RedisConnection>, Error> {
        let connection = open(self.redis, &address).await?;
        self.table
            .push(connection)
            .map_err(|_| Error::TooManyConnections)
    }

    async fn publish(
        &mut self,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        let _: Value = self
            .query(&connection, redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await?;
        Ok(())
    }

    async fn get(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.query(&connection, redis::cmd("GET").arg(key)).await
    }

    async fn set(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let _: Value = self
            .query(&connection, redis::cmd("SET").arg(key).arg(value))
            .await?;
        Ok(())
    }

    async fn incr(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, Error> {
        self.query(&connection, redis::cmd("INCR").arg(key)).await
    }

    async fn del(
        &mut self,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, Error> {
        self.query(&connection, redis::cmd("DEL").arg(keys)).await
    }

    async fn sadd(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        self.query(&connection, redis::cmd("SADD").arg(key).arg(values))
            .await
    }

    async fn smembers(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, Error> {
        self.query(&connection, redis::cmd("SMEMBERS").arg(key))
            .await
    }

    async fn srem(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        self.query(&connection, redis::cmd("SREM").arg(key).arg(values))
            .await
    }

    async fn execute(
        &mut self,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        let cmd = guest_command(self.redis, &command, arguments)?;
        let value: Value = self.query(&connection, &cmd).await?;
        let mut out = Vec::new();
        results(value, &mut out)?;
        Ok(out)
    }

    fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
