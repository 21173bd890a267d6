//! Key-value store on a Redis server: every key lives under a prefix of the app and the
//! store label, so apps and stores sharing one server never see each other's keys.

use crate::{KeyValueBackend, StoreError};
use redis::Commands;
use std::sync::Mutex;

pub struct RedisKeyValue {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    prefix: String,
}

fn backend_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedisKeyValue {
    /// Connects to `url` (checked now, so a wrong address fails at start-up); keys are stored
    /// as `<prefix><key>`.
    pub fn open(url: &str, prefix: String) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Backend(format!("{url}: {e}")))?;
        let connection = client
            .get_connection()
            .map_err(|e| StoreError::Backend(format!("connecting to {url}: {e}")))?;
        Ok(RedisKeyValue {
            client,
            connection: Mutex::new(Some(connection)),
            prefix,
        })
    }

    /// Runs `f` on the connection, reconnecting once if the server dropped it.
    fn with<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self
            .connection
            .lock()
            .map_err(|_| StoreError::Backend("the Redis connection was poisoned".into()))?;
        if let Some(connection) = slot.as_mut() {
            match f(connection) {
                Ok(value) => return Ok(value),
                Err(e) if !(e.is_io_error() || e.is_connection_dropped()) => {
                    return Err(backend_error(e))
                }
                Err(_) => *slot = None,
            }
        }
        let mut connection = self.client.get_connection().map_err(backend_error)?;
        let result = f(&mut connection).map_err(backend_error);
        *slot = Some(connection);
        result
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl KeyValueBackend for RedisKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        self.with(|c| c.get(&key))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = self.key(key);
        self.with(|c| c.set(&key, value))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        self.with(|c| c.del(&key))
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let key = self.key(key);
        self.with(|c| c.exists(&key))
    }

    fn keys(&self) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let mut keys: Vec<String> = self.with(|c| {
            let found: Vec<String> = c.scan_match(&pattern)?.collect();
            Ok(found)
        })?;
        for key in &mut keys {
            key.drain(..self.prefix.len());
        }
        keys.sort();
        Ok(keys)
    }
}

/// Escapes Redis glob characters so a prefix matches only itself.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
