//! Links every host interface Kite provides into a component linker, once per engine:
//! the full `wasi:cli` world (filled per instance from grants), `wasi:http`, variables,
//! key-value (Spin and `wasi:keyvalue`), SQLite, and the Spin interfaces for LLMs,
//! Redis, PostgreSQL, MySQL and MQTT; and for the concurrent engine WASI 0.3 as well.

use crate::InstanceState;
use wasmtime::component::Linker;

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    crate::capability::poll_list::add_to_linker(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    crate::capability::variables::add_to_linker(linker)?;
    crate::capability::key_value::add_to_linker(linker)?;
    crate::capability::wasi_keyvalue::add_to_linker(linker)?;
    crate::capability::sqlite::add_to_linker(linker)?;
    crate::capability::llm::add_to_linker(linker)?;
    crate::capability::redis::add_to_linker(linker)?;
    crate::capability::postgres::add_to_linker(linker)?;
    crate::capability::mysql::add_to_linker(linker)?;
    crate::capability::mqtt::add_to_linker(linker)?;
    Ok(())
}

/// Everything [`add_to_linker`] adds, WASI 0.3 (`wasi:cli`, `wasi:http` and the rest at
/// `@0.3.0`) and Spin 4's async `spin:*@3` interfaces, for a linker on the concurrent engine: a 0.3 component often imports 0.2
/// interfaces too (the Rust standard library's, for one).
pub fn add_to_concurrent_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    add_to_linker(linker)?;
    wasmtime_wasi::p3::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    crate::capability::variables::add_v3_to_linker(linker)?;
    crate::capability::key_value_v3::add_to_linker(linker)?;
    crate::capability::sqlite_v3::add_to_linker(linker)?;
    crate::capability::redis_v3::add_to_linker(linker)?;
    crate::capability::mqtt_v3::add_to_linker(linker)?;
    crate::capability::mysql_v3::add_to_linker(linker)?;
    crate::capability::postgres::v4_2::add_to_linker(linker)?;
    Ok(())
}
