//! Storage backends behind small traits and types. Capabilities use the traits and never know
//! which backend holds a key; the embedded SQLite backend is the zero-configuration default.

mod bounded_kv;
mod key_value;
mod redis_kv;
mod sqlite_db;
mod sqlite_file;
mod sqlite_functions;
mod sqlite_guard;
mod sqlite_kv;
mod sqlite_session;

pub use bounded_kv::{BoundedKeyValue, MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use key_value::{KeyValueBackend, StoreError, SwapOutcome, MAX_BATCH_BYTES, MAX_LISTING_BYTES};
pub use redis_kv::{default_redis_prefix, RedisKeyValue};
pub use sqlite_db::{DbError, DbValue, QueryResult, SqliteDatabase};
pub use sqlite_kv::{SqliteKeyValue, SqliteLayout};
pub use sqlite_session::SqliteSession;
