//! Bounds on what one key-value call may ask a backend to store: key and value sizes.
//! Wraps every backend a guest reaches (batch reads and listings are bounded in each backend).

use crate::{KeyValueBackend, StoreError, SwapOutcome};
use std::sync::Arc;

/// The longest key a guest may use.
pub const MAX_KEY_BYTES: usize = 4 << 10;
/// The largest value a guest may store.
pub const MAX_VALUE_BYTES: usize = 8 << 20;

pub struct BoundedKeyValue(Arc<dyn KeyValueBackend>);

impl BoundedKeyValue {
    pub fn new(backend: Arc<dyn KeyValueBackend>) -> Self {
        BoundedKeyValue(backend)
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::Refused(format!(
            "a key may be at most {MAX_KEY_BYTES} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_entry(key: &str, value: &[u8]) -> Result<(), StoreError> {
    check_key(key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::Refused(format!(
            "a value may be at most {} MiB; the one for `{key}` is {} bytes",
            MAX_VALUE_BYTES >> 20,
            value.len()
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl KeyValueBackend for BoundedKeyValue {
    // Reads and deletes take any key, so that data stored before these bounds (or by
    // other software) stays reachable; only writes are bounded.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        self.0.set(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.0.exists(key).await
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.0.keys().await
    }

    async fn keys_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.0.keys_after(after, limit).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        check_key(key)?;
        self.0.increment(key, delta).await
    }

    async fn swap_if_unchanged(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, StoreError> {
        check_entry(key, value)?;
        self.0.swap_if_unchanged(key, expected, value).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.0.get_many(keys).await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        entries
            .iter()
            .try_for_each(|(key, value)| check_entry(key, value))?;
        self.0.set_many(entries).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        self.0.delete_many(keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteKeyValue, MAX_BATCH_BYTES};

    fn store(dir: &tempfile::TempDir) -> BoundedKeyValue {
        let backend = SqliteKeyValue::open(&dir.path().join("kv.sqlite")).unwrap();
        BoundedKeyValue::new(Arc::new(backend))
    }

    #[tokio::test]
    async fn oversized_keys_and_values_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            store.set(&long_key, b"v").await,
            Err(StoreError::Refused(_))
        ));
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(matches!(
            store.set("k", &big).await,
            Err(StoreError::Refused(_))
        ));
        let entries = [("a".to_string(), b"1".to_vec()), ("b".to_string(), big)];
        assert!(matches!(
            store.set_many(&entries).await,
            Err(StoreError::Refused(_))
        ));
        assert_eq!(
            store.get("a").await.unwrap(),
            None,
            "a refused batch writes nothing"
        );
        store.set("k", &vec![0u8; MAX_VALUE_BYTES]).await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_read_returns_at_most_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.set("big", &vec![7u8; MAX_VALUE_BYTES]).await.unwrap();
        let fits = vec!["big".to_string(); MAX_BATCH_BYTES / MAX_VALUE_BYTES];
        assert_eq!(store.get_many(&fits).await.unwrap().len(), fits.len());
        let too_many = vec!["big".to_string(); 10_000];
        let Err(StoreError::Refused(message)) = store.get_many(&too_many).await else {
            panic!("a batch over the bound must be refused");
        };
        assert!(message.contains("fewer keys"), "{message}");
    }
}
