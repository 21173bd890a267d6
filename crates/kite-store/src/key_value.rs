//! The key-value backend trait: one store (bucket) of byte values under string keys.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key-value backend: {0}")]
    Backend(String),
}

pub trait KeyValueBackend: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    fn exists(&self, key: &str) -> Result<bool, StoreError>;
    fn keys(&self) -> Result<Vec<String>, StoreError>;
}
