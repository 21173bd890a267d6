//! The key-value backend trait: one store (bucket) of byte values under string keys, with
//! the atomic and batch operations every backend provides with the same semantics.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key-value backend: {0}")]
    Backend(String),
    #[error("the value of `{0}` is not a decimal integer")]
    NotAnInteger(String),
    #[error("incrementing `{key}` by {delta} would overflow a signed 64-bit integer")]
    Overflow { key: String, delta: i64 },
    /// Another process holds the lock the operation needs (SQLite).
    #[error("the store is locked by another process")]
    Locked,
    /// The call asked for more than Kite lets one call store or return.
    #[error("{0}")]
    Refused(String),
}

/// The most one batch read may return, values together.
pub const MAX_BATCH_BYTES: usize = 32 << 20;

/// Adds a value to a batch read's running size; refuses the batch once it passes
/// [`MAX_BATCH_BYTES`] (asking for one big value many times cannot make the host hold it
/// many times over).
pub(crate) fn count_batched(bytes: &mut usize, value: &Option<Vec<u8>>) -> Result<(), StoreError> {
    *bytes += value.as_ref().map_or(0, Vec::len);
    if *bytes > MAX_BATCH_BYTES {
        return Err(StoreError::Refused(format!(
            "the values asked for are larger than {} MiB together; ask for fewer keys at a time",
            MAX_BATCH_BYTES >> 20
        )));
    }
    Ok(())
}

/// The most one key listing may return, keys together (`get-keys` lists them all).
pub const MAX_LISTING_BYTES: usize = 32 << 20;

/// Adds `key` to a listing's running size; refuses the listing once it passes
/// [`MAX_LISTING_BYTES`].
pub(crate) fn count_listed(bytes: &mut usize, key: &str) -> Result<(), StoreError> {
    *bytes += key.len() + std::mem::size_of::<String>();
    if *bytes > MAX_LISTING_BYTES {
        return Err(StoreError::Refused(format!(
            "the keys are more than {} MiB together; list them a page at a time (wasi:keyvalue list-keys)",
            MAX_LISTING_BYTES >> 20
        )));
    }
    Ok(())
}

/// What a compare-and-swap found.
#[derive(Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The key still held the expected value and now holds the new one.
    Swapped,
    /// The key changed; this is its current value.
    Changed(Option<Vec<u8>>),
}

/// Operations are async so a backend across the network (Redis) waits without holding its
/// worker thread; local backends (SQLite) complete at once.
#[async_trait::async_trait]
pub trait KeyValueBackend: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// Every key, in byte order.
    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.keys_after(None, usize::MAX).await
    }
    /// At most `limit` keys greater than `after` (all keys when `None`), in byte order.
    async fn keys_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Atomically adds `delta` to the decimal integer under `key` (a missing key counts as 0)
    /// and returns the sum, which is stored as decimal text.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// Atomically sets `key` to `value` if it still holds `expected` (`None`: absent).
    async fn swap_if_unchanged(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, StoreError>;
    /// The value of each key, in the order asked; refused past [`MAX_BATCH_BYTES`] together.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// Reads a stored counter the way every backend does (and Redis's INCRBY does natively):
/// an optional `-`, then `0` or digits without a leading zero, within the i64 range.
pub(crate) fn parse_counter(key: &str, value: &[u8]) -> Result<i64, StoreError> {
    let not_an_integer = || StoreError::NotAnInteger(key.to_string());
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == value.len(),
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return Err(not_an_integer());
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(not_an_integer)
}

pub(crate) fn add_to_counter(key: &str, current: i64, delta: i64) -> Result<i64, StoreError> {
    current.checked_add(delta).ok_or(StoreError::Overflow {
        key: key.to_string(),
        delta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_only_in_canonical_decimal() {
        for (text, value) in [
            ("0", 0),
            ("7", 7),
            ("-12", -12),
            ("9223372036854775807", i64::MAX),
        ] {
            assert_eq!(
                parse_counter("k", text.as_bytes()).unwrap(),
                value,
                "{text}"
            );
        }
        for text in [
            "",
            "-",
            "-0",
            "+1",
            "01",
            " 1",
            "1 ",
            "1.5",
            "x",
            "9223372036854775808",
        ] {
            assert!(
                matches!(
                    parse_counter("k", text.as_bytes()),
                    Err(StoreError::NotAnInteger(_))
                ),
                "{text:?} parsed"
            );
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(matches!(
            add_to_counter("k", i64::MAX, 1),
            Err(StoreError::Overflow { .. })
        ));
        assert_eq!(add_to_counter("k", -5, 3).unwrap(), -2);
    }
}
