//! Key-value store on a Redis server: every key lives under a prefix of the app and the
//! store label, so apps and stores sharing one server never see each other's keys.

use crate::key_value::{count_batched, count_listed};
use crate::{KeyValueBackend, StoreError, SwapOutcome};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

/// Commands are sent on asynchronous connections, so a request waiting for Redis leaves its
/// worker thread free for other requests. Each worker thread has its own connection (whose
/// driver runs on that thread's runtime), on which its concurrent requests' commands are
/// pipelined.
pub struct RedisKeyValue {
    client: redis::Client,
    connections: Mutex<HashMap<ThreadId, MultiplexedConnection>>,
    prefix: String,
    /// How long connecting, or waiting for a command's reply, may take.
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
    /// Checks that `url` answers now, so a wrong address fails at start-up; keys are stored
    /// as `<prefix><key>`. No connect or reply may take longer than `timeout`.
    pub fn open(url: &str, prefix: String, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", without_password(url))))?;
        let store = RedisKeyValue {
            client,
            connections: Mutex::new(HashMap::new()),
            prefix,
            timeout,
        };
        store.check_reachable().map_err(|e| {
            StoreError::Backend(format!("connecting to {}: {e}", without_password(url)))
        })?;
        Ok(store)
    }

    /// One blocking round trip, made before any runtime serves requests.
    fn check_reachable(&self) -> Result<(), StoreError> {
        let mut connection = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.error(e))?;
        connection
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| self.error(e))?;
        redis::cmd("PING")
            .query::<()>(&mut connection)
            .map_err(|e| self.error(e))
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

    /// This thread's connection, connecting first if it has none.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let thread = std::thread::current().id();
        if let Some(connection) = self.lock_connections()?.get(&thread) {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout);
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error(e))?;
        self.lock_connections()?.insert(thread, connection.clone());
        Ok(connection)
    }

    fn lock_connections(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<ThreadId, MultiplexedConnection>>, StoreError>
    {
        self.connections
            .lock()
            .map_err(|_| StoreError::Backend("the Redis connections were poisoned".into()))
    }

    /// Runs `command` on this thread's connection. A connection that failed is dropped (the
    /// next command connects again); `Retry::Idempotent` operations then run once more on
    /// a new connection, unless the failure was a timeout (the server is slow, not gone).
    async fn with<T, F, Fut>(&self, retry: Retry, command: F) -> Result<T, StoreError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let mut may_retry = retry == Retry::Idempotent;
        loop {
            match command(self.connection().await?).await {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_io_error() => return Err(backend_error(e)),
                Err(e) => {
                    if !e.is_timeout() {
                        self.lock_connections()?
                            .remove(&std::thread::current().id());
                    }
                    if e.is_timeout() || !may_retry {
                        return Err(self.error(e));
                    }
                    may_retry = false;
                }
            }
        }
    }

    /// The server and database this store's keys live in, for telling whether two stores
    /// could address the same key.
    pub fn server(&self) -> String {
        let info = self.client.get_connection_info();
        format!("{}/{}", info.addr, info.redis.db)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Every key of the store, sorted; with `bounded`, refused past
    /// [`crate::MAX_LISTING_BYTES`] (for a listing that goes to the guest whole).
    async fn scan_keys(&self, bounded: bool) -> Result<Vec<String>, StoreError> {
        let pattern = &format!("{}*", escape_glob(&self.prefix));
        let mut keys: Vec<String> = self
            .with(Retry::Idempotent, |mut c| async move {
                let mut bytes = 0;
                let mut found = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await?;
                    for key in page {
                        if bounded {
                            if let Err(refused) = count_listed(&mut bytes, &key) {
                                return Ok(Err(refused));
                            }
                        }
                        found.push(key);
                    }
                    if next == 0 {
                        return Ok(Ok(found));
                    }
                    cursor = next;
                }
            })
            .await??;
        for key in &mut keys {
            key.drain(..self.prefix.len());
        }
        // SCAN may return a key more than once.
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn keys_of(&self, keys: &[String]) -> Vec<String> {
        keys.iter().map(|key| self.key(key)).collect()
    }
}

#[async_trait::async_trait]
impl KeyValueBackend for RedisKeyValue {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = &self.key(key);
        self.with(Retry::Idempotent, |mut c| async move { c.get(key).await })
            .await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = &self.key(key);
        self.with(
            Retry::Idempotent,
            |mut c| async move { c.set(key, value).await },
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = &self.key(key);
        self.with(Retry::Idempotent, |mut c| async move { c.del(key).await })
            .await
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let key = &self.key(key);
        self.with(
            Retry::Idempotent,
            |mut c| async move { c.exists(key).await },
        )
        .await
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.scan_keys(true).await
    }

    /// Redis has no ordered key listing, so this sorts a full scan: pages cost as much as
    /// listing every key, the price of the same order and cursor as the SQLite backend.
    async fn keys_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let keys = self.scan_keys(false).await?;
        let start = after.map_or(0, |after| keys.partition_point(|key| key.as_str() <= after));
        Ok(keys.into_iter().skip(start).take(limit).collect())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let full_key = &self.key(key);
        let reply: Result<i64, StoreError> = self
            .with(Retry::Never, |mut c| async move {
                c.incr(full_key, delta).await
            })
            .await;
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

    async fn swap_if_unchanged(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, StoreError> {
        let key = &self.key(key);
        let expects_value = if expected.is_some() { "1" } else { "0" };
        let expected = expected.unwrap_or_default();
        let (swapped, current): (i64, Option<Vec<u8>>) = self
            .with(Retry::Never, |mut c| async move {
                SWAP_IF_UNCHANGED
                    .key(key)
                    .arg(expects_value)
                    .arg(expected)
                    .arg(value)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(if swapped == 1 {
            SwapOutcome::Swapped
        } else {
            SwapOutcome::Changed(current)
        })
    }

    /// A reply cannot be cut short once asked for, so keys are asked for a few at a time:
    /// no reply can be larger than the batch bound (values written through Kite are at most
    /// [`crate::MAX_VALUE_BYTES`]).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let per_request = (crate::MAX_BATCH_BYTES / crate::MAX_VALUE_BYTES).max(1);
        let mut values = Vec::with_capacity(keys.len());
        let mut bytes = 0;
        for chunk in keys.chunks(per_request) {
            let chunk = &self.keys_of(chunk);
            let replies: Vec<Option<Vec<u8>>> = self
                .with(
                    Retry::Idempotent,
                    |mut c| async move { c.mget(chunk).await },
                )
                .await?;
            for value in replies {
                count_batched(&mut bytes, &value)?;
                values.push(value);
            }
        }
        Ok(values)
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries: &Vec<(String, &[u8])> = &entries
            .iter()
            .map(|(key, value)| (self.key(key), value.as_slice()))
            .collect();
        self.with(
            Retry::Idempotent,
            |mut c| async move { c.mset(entries).await },
        )
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys = &self.keys_of(keys);
        self.with(Retry::Idempotent, |mut c| async move { c.del(keys).await })
            .await
    }
}

/// `url` without the password in its user info, for messages.
fn without_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => text.to_string(),
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// The prefix of every key of store `label` of app `app` when the runtime configuration
/// names none: `kite:<app>:<label>:`, with `%` and `:` in the names percent-encoded, so no
/// two (app, label) pairs share a prefix or one prefix starts another's keys.
pub fn default_redis_prefix(app: &str, label: &str) -> String {
    fn encode(name: &str) -> String {
        name.replace('%', "%25").replace(':', "%3A")
    }
    format!("kite:{}:{}:", encode(app), encode(label))
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
            "redis://user:***@cache:6379/0"
        );
        assert_eq!(
            super::without_password("redis://:p@ss@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(
            super::without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn default_prefixes_never_overlap() {
        use super::default_redis_prefix as prefix;
        assert_eq!(prefix("shop", "cache"), "kite:shop:cache:");
        let pairs = [
            ("a", "b"),
            ("a", "b:c"),
            ("a:b", "c"),
            ("a", "b%3Ac"),
            ("a%", "b"),
        ];
        for (i, first) in pairs.iter().enumerate() {
            for second in &pairs[i + 1..] {
                let (p, q) = (prefix(first.0, first.1), prefix(second.0, second.1));
                assert!(
                    !p.starts_with(&q) && !q.starts_with(&p),
                    "{first:?} and {second:?} overlap: {p} {q}"
                );
            }
        }
    }
}
