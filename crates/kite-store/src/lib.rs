//! Storage backends behind small traits. Capabilities use the traits and never know
//! which backend holds a key; the embedded SQLite backend is the zero-configuration default.

mod key_value;
mod sqlite_kv;

pub use key_value::{KeyValueBackend, StoreError};
pub use sqlite_kv::SqliteKeyValue;
