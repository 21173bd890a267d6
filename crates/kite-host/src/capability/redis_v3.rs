//! Spin 4's `spin:redis@3.0.0` (async functions), for components on the concurrent engine:
//! the same connections, outbound rules, connection caps and refused commands as
//! `fermyon:spin/redis@2.0.0`, whose error and value types (the same in both WITs) are
//! converted at the edge.

use super::outbound_policy::{open_outside_state, ClientUse};
use super::redis::{guest_command, open, query, results, view, Redis, RedisConnection};
use super::redis::{Error as V2Error, RedisParameter as V2Parameter, RedisResult as V2Result};
use crate::held_bytes::hold;
use crate::InstanceState;
use redis::Value;
use wasmtime::component::{Accessor, Linker, Resource};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/redis-v3",
        with: {
            "spin:redis/redis.connection": crate::capability::redis::RedisConnection,
        },
    });
}

use bindings::spin::redis::redis::{self as spin_redis, Error, RedisParameter, RedisResult};

fn error(e: V2Error) -> Error {
    match e {
        V2Error::InvalidAddress => Error::InvalidAddress,
        V2Error::TooManyConnections => Error::TooManyConnections,
        V2Error::TypeError => Error::TypeError,
        V2Error::Other(why) => Error::Other(why),
    }
}

fn parameter(p: RedisParameter) -> V2Parameter {
    match p {
        RedisParameter::Int64(n) => V2Parameter::Int64(n),
        RedisParameter::Binary(bytes) => V2Parameter::Binary(bytes),
    }
}

fn result(r: V2Result) -> RedisResult {
    match r {
        V2Result::Nil => RedisResult::Nil,
        V2Result::Status(s) => RedisResult::Status(s),
        V2Result::Int64(n) => RedisResult::Int64(n),
        V2Result::Binary(bytes) => RedisResult::Binary(bytes),
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_redis::add_to_linker::<_, Redis>(linker, view)?;
    Ok(())
}

impl spin_redis::Host for super::redis::RedisView<'_> {}

impl spin_redis::HostConnection for super::redis::RedisView<'_> {
    fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// Runs `command` on the connection behind `handle`, taken out of the instance's state so
/// that the command can wait without holding it.
async fn run<T: redis::FromRedisValue>(
    accessor: &Accessor<InstanceState, Redis>,
    handle: &Resource<RedisConnection>,
    command: &redis::Cmd,
) -> Result<T, Error> {
    // The command's arguments stay in the host until the server has answered.
    let arguments = command
        .args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => bytes.len(),
            redis::Arg::Cursor => 0,
        })
        .sum();
    let _held = hold(accessor, arguments, arguments).map_err(|e| Error::Other(e.to_string()))?;
    let connection = accessor
        .with(|mut access| access.get().connection(handle))
        .map_err(error)?;
    query(connection, command).await.map_err(error)
}

impl spin_redis::HostConnectionWithStore<InstanceState> for Redis {
    async fn open(
        accessor: &Accessor<InstanceState, Self>,
        address: String,
    ) -> Result<Resource<RedisConnection>, Error> {
        let connect =
            |client: ClientUse| async move { open(&client, &address).await.map_err(error) };
        open_outside_state(accessor, connect, || Error::TooManyConnections).await
    }

    async fn publish(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        let command = redis::cmd("PUBLISH").arg(channel).arg(payload).clone();
        let _: Value = run(accessor, &connection, &command).await?;
        Ok(())
    }

    async fn get(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        run(accessor, &connection, redis::cmd("GET").arg(key)).await
    }

    async fn set(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let command = redis::cmd("SET").arg(key).arg(value).clone();
        let _: Value = run(accessor, &connection, &command).await?;
        Ok(())
    }

    async fn incr(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, Error> {
        run(accessor, &connection, redis::cmd("INCR").arg(key)).await
    }

    async fn del(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, Error> {
        run(accessor, &connection, redis::cmd("DEL").arg(keys)).await
    }

    async fn sadd(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        let command = redis::cmd("SADD").arg(key).arg(values).clone();
        run(accessor, &connection, &command).await
    }

    async fn smembers(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, Error> {
        run(accessor, &connection, redis::cmd("SMEMBERS").arg(key)).await
    }

    async fn srem(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        let command = redis::cmd("SREM").arg(key).arg(values).clone();
        run(accessor, &connection, &command).await
    }

    async fn execute(
        accessor: &Accessor<InstanceState, Self>,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        let arguments = arguments.into_iter().map(parameter).collect();
        let command = accessor
            .with(|mut access| guest_command(access.get().redis, &command, arguments))
            .map_err(error)?;
        let value: Value = run(accessor, &connection, &command).await?;
        let mut out = Vec::new();
        results(value, &mut out).map_err(error)?;
        Ok(out.into_iter().map(result).collect())
    }
}
