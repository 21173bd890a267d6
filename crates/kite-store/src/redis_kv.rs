//! Key-value store on a Redis server: every key lives under a prefix of the app and the
//! store label, so apps and stores sharing one server never see each other's keys.

use crate::{KeyValueBackend, StoreError, SwapOutcome};
use redis::Commands;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

pub struct RedisKeyValue {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    prefix: String,
    /// How long connecting, sending a command or waiting for its reply may take.
    timeout: Duration,
}

/// Whether an operation may run again on a new connection after the old one failed: only
/// when running it twice does the same as once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    Never,
}

/// Compare-and-swap in one atomic step on the server. ARGV: whether a value is expected
/// ("1") or absence ("0"), the expected value, the new value. Returns {1, false} when swapped,
/// else {0, current value or false}.
static SWAP_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        local unchanged
        if ARGV[1] == '1' then unchanged = (current == ARGV[2]) else unchanged = (current == false) end
        if unchanged then
            redis.call('SET', KEYS[1], ARGV[3])
            return {1, false}
        end
        return {0, current}
        ",
    )
});

/// INCRBY's replies for a stored value it cannot read as an integer and for an overflow.
const REDIS_NOT_AN_INTEGER: &str = "not an integer";
const REDIS_OVERFLOW: &str = "overflow";

fn backend_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedisKeyValue {
    /// Connects to `url` (checked now, so a wrong address fails at start-up); keys are stored
    /// as `<prefix><key>`. No connect, send or reply may take longer than `timeout`.
    pub fn open(url: &str, prefix: String, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", without_password(url))))?;
        let store = RedisKeyValue {
            client,
            connection: Mutex::new(None),
            prefix,
            timeout,
        };
        let connection = store.connect().map_err(|e| {
            StoreError::Backend(format!("connecting to {}: {e}", without_password(url)))
        })?;
        *store.connection.lock().expect("a new mutex") = Some(connection);
        Ok(store)
    }

    fn connect(&self) -> Result<redis::Connection, StoreError> {
        let connection = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.error(e))?;
        connection
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| connection.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.error(e))?;
        Ok(connection)
    }

    fn error(&self, e: redis::RedisError) -> StoreError {
        if e.is_timeout() {
            StoreError::Backend(format!(
                "Redis at {} did not answer within {:?}",
                self.client.get_connection_info().addr,
                self.timeout
            ))
        } else {
            backend_error(e)
        }
    }

    /// Runs `f` on the connection (connecting first if there is none). A connection that
    /// failed or timed out is dropped, since a late reply would answer the next command;
    /// `Retry::Idempotent` operations then run once more on a new connection, unless the
    /// failure was a timeout (the server is slow, not gone).
    fn with<T>(
        &self,
        retry: Retry,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self
            .connection
            .lock()
            .map_err(|_| StoreError::Backend("the Redis connection was poisoned".into()))?;
        let mut may_retry = retry == Retry::Idempotent;
        loop {
            let connection = match slot.as_mut() {
                Some(connection) => connection,
                None => slot.insert(self.connect()?),
            };
            match f(connection) {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_io_error() => return Err(backend_error(e)),
                Err(e) => {
                    *slot = None;
                    if e.is_timeout() || !may_retry {
                        return Err(self.error(e));
                    }
                    may_retry = false;
                }
            }
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn keys_of(&self, keys: &[String]) -> Vec<String> {
        keys.iter().map(|key| self.key(key)).collect()
    }
}

impl KeyValueBackend for RedisKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        self.with(Retry::Idempotent, |c| c.get(&key))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = self.key(key);
        self.with(Retry::Idempotent, |c| c.set(&key, value))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        self.with(Retry::Idempotent, |c| c.del(&key))
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let key = self.key(key);
        self.with(Retry::Idempotent, |c| c.exists(&key))
    }

    fn keys(&self) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let mut keys: Vec<String> = self.with(Retry::Idempotent, |c| {
            let found: Vec<String> = c.scan_match(&pattern)?.collect();
            Ok(found)
        })?;
        for key in &mut keys {
            key.drain(..self.prefix.len());
        }
        keys.sort();
        Ok(keys)
    }

    /// Redis has no ordered key listing, so this sorts a full scan: pages cost as much as
    /// listing every key, the price of the same order and cursor as the SQLite backend.
    fn keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let keys = self.keys()?;
        let start = after.map_or(0, |after| keys.partition_point(|key| key.as_str() <= after));
        Ok(keys.into_iter().skip(start).take(limit).collect())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let full_key = self.key(key);
        let reply: Result<i64, StoreError> = self.with(Retry::Never, |c| c.incr(&full_key, delta));
        match reply {
            Err(StoreError::Backend(message)) if message.contains(REDIS_OVERFLOW) => {
                Err(StoreError::Overflow {
                    key: key.to_string(),
                    delta,
                })
            }
            // Redis reads stored values exactly as `parse_counter` does, so this is the
            // same refusal the other backends give.
            Err(StoreError::Backend(message)) if message.contains(REDIS_NOT_AN_INTEGER) => {
                Err(StoreError::NotAnInteger(key.to_string()))
            }
            other => other,
        }
    }

    fn swap_if_unchanged(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, StoreError> {
        let key = self.key(key);
        let expects_value = if expected.is_some() { "1" } else { "0" };
        let expected = expected.unwrap_or_default();
        let (swapped, current): (i64, Option<Vec<u8>>) = self.with(Retry::Never, |c| {
            SWAP_IF_UNCHANGED
                .key(&key)
                .arg(expects_value)
                .arg(expected)
                .arg(value)
                .invoke(c)
        })?;
        Ok(if swapped == 1 {
            SwapOutcome::Swapped
        } else {
            SwapOutcome::Changed(current)
        })
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys_of(keys);
        self.with(Retry::Idempotent, |c| c.mget(&keys))
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries: Vec<(String, &[u8])> = entries
            .iter()
            .map(|(key, value)| (self.key(key), value.as_slice()))
            .collect();
        self.with(Retry::Idempotent, |c| c.mset(&entries))
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys = self.keys_of(keys);
        self.with(Retry::Idempotent, |c| c.del(&keys))
    }
}

/// `url` without the password in its user info, for messages.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
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

#[cfg(test)]
mod tests {
    #[test]
    fn messages_never_show_the_password() {
        assert_eq!(
            super::without_password("redis://user:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            super::without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
