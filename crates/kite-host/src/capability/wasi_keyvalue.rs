//! Key-value stores through the standard `wasi:keyvalue@0.2.0-draft2` (store, atomics,
//! batch): buckets are the app's key-value store labels, under the same grants as Spin's.

use kite_store::{KeyValueBackend, StoreError, SwapOutcome};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTableError};

use super::key_value::{view, KeyValueView, OpenStore};
use super::labels::{Refusal, StoreView, MAX_HELD_BYTES};
use crate::InstanceState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/wasi-keyvalue",
        with: {
            "wasi:keyvalue/store.bucket": crate::capability::key_value::OpenStore,
            "wasi:keyvalue/atomics.cas": super::PendingSwap,
        },
        // Store operations may wait on the network (Redis) without holding the thread.
        imports: {
            "wasi:keyvalue/store.[method]bucket.get": async,
            "wasi:keyvalue/store.[method]bucket.set": async,
            "wasi:keyvalue/store.[method]bucket.delete": async,
            "wasi:keyvalue/store.[method]bucket.exists": async,
            "wasi:keyvalue/store.[method]bucket.list-keys": async,
            "wasi:keyvalue/atomics.increment": async,
            "wasi:keyvalue/atomics.swap": async,
            "wasi:keyvalue/atomics.[static]cas.new": async,
            "wasi:keyvalue/batch": async,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};
use store::{Error, KeyResponse};

/// Keys one `list-keys` call returns; the cursor continues after the last of them.
pub const KEYS_PER_PAGE: usize = 1000;

/// A compare-and-swap handle: the key and the value it held when the handle was made.
pub struct PendingSwap {
    backend: Arc<dyn KeyValueBackend>,
    key: String,
    seen: Option<Vec<u8>>,
}

impl PendingSwap {
    /// What the host keeps for it between calls.
    fn held_bytes(&self) -> usize {
        self.key.len() + self.seen.as_ref().map_or(0, Vec::len)
    }
}

fn too_much_held() -> String {
    format!(
        "pending compare-and-swaps of this instance would keep more than {} MiB; finish or drop some first",
        MAX_HELD_BYTES >> 20
    )
}

impl KeyValueView<'_> {
    /// Keeps `swap` in the table, counting what it holds against the instance's bound.
    fn keep_swap(&mut self, swap: PendingSwap) -> Result<Resource<PendingSwap>, String> {
        let held = swap.held_bytes();
        if !self.stores.hold(held) {
            return Err(too_much_held());
        }
        self.table.push(swap).map_err(|e| {
            self.stores.release(held);
            e.to_string()
        })
    }

    /// Takes `swap` out of the table, no longer counting what it held.
    fn take_swap(
        &mut self,
        swap: Resource<PendingSwap>,
    ) -> Result<PendingSwap, ResourceTableError> {
        let pending = self.table.delete(swap)?;
        self.stores.release(pending.held_bytes());
        Ok(pending)
    }
}

struct WasiKeyValue;

impl HasData for WasiKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    store::add_to_linker::<_, WasiKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, WasiKeyValue>(linker, view)?;
    batch::add_to_linker::<_, WasiKeyValue>(linker, view)?;
    Ok(())
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

fn cas_store_error(e: impl std::fmt::Display) -> atomics::CasError {
    atomics::CasError::StoreError(other(e))
}

impl From<ResourceTableError> for Error {
    fn from(e: ResourceTableError) -> Self {
        other(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        other(e)
    }
}

impl store::Host for KeyValueView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<OpenStore>, Error> {
        StoreView::open(self, &identifier).map_err(|refusal| match refusal {
            Refusal::AccessDenied => Error::AccessDenied,
            Refusal::Unknown => Error::NoSuchStore,
            Refusal::TooManyOpen => {
                Error::Other("this instance has too many buckets open; drop some first".into())
            }
            Refusal::TableFull(e) => other(e),
        })
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.backend(&bucket)?.get(&key).await.map_err(Error::from)
    }

    async fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        self.backend(&bucket)?
            .set(&key, &value)
            .await
            .map_err(Error::from)
    }

    async fn delete(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<(), Error> {
        self.backend(&bucket)?
            .delete(&key)
            .await
            .map_err(Error::from)
    }

    async fn exists(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<bool, Error> {
        self.backend(&bucket)?
            .exists(&key)
            .await
            .map_err(Error::from)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> Result<KeyResponse, Error> {
        let mut keys = self
            .backend(&bucket)?
            .keys_after(cursor.as_deref(), KEYS_PER_PAGE + 1)
            .await?;
        let cursor = if keys.len() > KEYS_PER_PAGE {
            keys.truncate(KEYS_PER_PAGE);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(bucket)
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> Result<i64, Error> {
        self.backend(&bucket)?
            .increment(&key, delta)
            .await
            .map_err(Error::from)
    }

    async fn swap(
        &mut self,
        swap: Resource<PendingSwap>,
        value: Vec<u8>,
    ) -> Result<(), atomics::CasError> {
        let PendingSwap { backend, key, seen } = self.take_swap(swap).map_err(cas_store_error)?;
        let outcome = backend
            .swap_if_unchanged(&key, seen.as_deref(), &value)
            .await
            .map_err(cas_store_error)?;
        match outcome {
            SwapOutcome::Swapped => Ok(()),
            SwapOutcome::Changed(current) => {
                let retry = self
                    .keep_swap(PendingSwap {
                        backend,
                        key,
                        seen: current,
                    })
                    .map_err(cas_store_error)?;
                Err(atomics::CasError::CasFailed(retry))
            }
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Result<Resource<PendingSwap>, Error> {
        let backend = self.backend(&bucket)?;
        let seen = backend.get(&key).await?;
        self.keep_swap(PendingSwap { backend, key, seen })
            .map_err(Error::Other)
    }

    fn current(&mut self, swap: Resource<PendingSwap>) -> Result<Option<Vec<u8>>, Error> {
        self.table
            .get(&swap)
            .map(|pending| pending.seen.clone())
            .map_err(Error::from)
    }

    fn drop(&mut self, swap: Resource<PendingSwap>) -> wasmtime::Result<()> {
        self.take_swap(swap)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, Error> {
        let values = self.backend(&bucket)?.get_many(&keys).await?;
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn set_many(
        &mut self,
        bucket: Resource<OpenStore>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        self.backend(&bucket)?
            .set_many(&key_values)
            .await
            .map_err(Error::from)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Result<(), Error> {
        self.backend(&bucket)?
            .delete_many(&keys)
            .await
            .map_err(Error::from)
    }
}
