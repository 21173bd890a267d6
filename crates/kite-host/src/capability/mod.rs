//! The capabilities. Each module has `Grant::validate(spec)` (load time: every grant
//! names something real), an optional `add_to_linker` (once per engine) and a per-instance
//! step that fills a fresh instance from the grant alone.

pub mod client_tls;
mod detached;
pub mod env;
pub mod files;
pub mod key_value;
pub mod key_value_v3;
mod labels;
pub mod llm;
pub mod local_dispatch;
pub mod mqtt;
pub mod mqtt_v3;
pub mod mysql;
pub mod mysql_v3;
pub(crate) mod outbound_connect;
pub mod outbound_http;
pub mod outbound_policy;
pub(crate) mod poll_list;
pub mod postgres;
pub mod redis;
pub mod redis_v3;
mod row_stream;
pub mod sqlite;
pub mod sqlite_v3;
pub(crate) mod store_places;
pub mod tcp;
pub mod variables;
pub mod wasi_keyvalue;

/// Converts between two generations of one WIT variant or enum whose cases have the same
/// names and payloads (bindgen makes a type per interface version). `F` and `T` are the
/// source and target types, imported under those names where this is used.
macro_rules! same_cases {
    ($value:expr, unit: [$($unit:ident),* $(,)?], carry: [$($carry:ident),* $(,)?] $(, $rest:pat => $other:expr)* $(,)?) => {
        match $value {
            $(F::$unit => T::$unit,)*
            $(F::$carry(payload) => T::$carry(payload),)*
            $($rest => $other,)*
        }
    };
}
pub(crate) use same_cases;
