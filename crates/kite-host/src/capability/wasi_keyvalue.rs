//! Key-value stores through the standard `wasi:keyvalue@0.2.0-draft2` (store, atomics,
//! batch): buckets are the app's key-value store labels, under the same grants as Spin's.

use kite_store::{KeyValueBackend, StoreError, SwapOutcome};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource};

use super::key_value::{KeyValueView, OpenStore};
use super::labels::{Refusal, StoreView};
use crate::InstanceState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/wasi-keyvalue",
        with: {
            "wasi:keyvalue/store.bucket": crate::capability::key_value::OpenStore,
            "wasi:keyvalue/atomics.cas": super::PendingSwap,
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

struct WasiKeyValue;

impl HasData for WasiKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    fn view(state: &mut InstanceState) -> KeyValueView<'_> {
        StoreView {
            table: &mut state.table,
            stores: &mut state.key_value,
        }
    }
    store::add_to_linker::<_, WasiKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, WasiKeyValue>(linker, view)?;
    batch::add_to_linker::<_, WasiKeyValue>(linker, view)?;
    Ok(())
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

fn store_error(e: StoreError) -> Error {
    Error::Other(e.to_string())
}

impl KeyValueView<'_> {
    fn bucket(&self, bucket: &Resource<OpenStore>) -> Result<Arc<dyn KeyValueBackend>, Error> {
        self.table
            .get(bucket)
            .map(|open| open.backend.clone())
            .map_err(other)
    }

    fn pending_swap(
        &mut self,
        backend: Arc<dyn KeyValueBackend>,
        key: String,
    ) -> Result<Resource<PendingSwap>, Error> {
        let seen = backend.get(&key).map_err(store_error)?;
        self.table
            .push(PendingSwap { backend, key, seen })
            .map_err(other)
    }
}

impl store::Host for KeyValueView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<OpenStore>, Error> {
        let backend = self
            .stores
            .open(&identifier)
            .map_err(|refusal| match refusal {
                Refusal::AccessDenied => Error::AccessDenied,
                Refusal::Unknown => Error::NoSuchStore,
                Refusal::TooManyOpen => {
                    Error::Other("this instance has too many buckets open; drop some first".into())
                }
            })?;
        self.table.push(OpenStore { backend }).map_err(|e| {
            self.stores.closed();
            other(e)
        })
    }
}

impl store::HostBucket for KeyValueView<'_> {
    fn get(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.bucket(&bucket)?.get(&key).map_err(store_error)
    }

    fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        self.bucket(&bucket)?.set(&key, &value).map_err(store_error)
    }

    fn delete(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<(), Error> {
        self.bucket(&bucket)?.delete(&key).map_err(store_error)
    }

    fn exists(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<bool, Error> {
        self.bucket(&bucket)?.exists(&key).map_err(store_error)
    }

    fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> Result<KeyResponse, Error> {
        let mut keys = self
            .bucket(&bucket)?
            .keys_after(cursor.as_deref(), KEYS_PER_PAGE + 1)
            .map_err(store_error)?;
        let cursor = if keys.len() > KEYS_PER_PAGE {
            keys.truncate(KEYS_PER_PAGE);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        self.stores.closed();
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> Result<i64, Error> {
        self.bucket(&bucket)?
            .increment(&key, delta)
            .map_err(store_error)
    }

    fn swap(
        &mut self,
        swap: Resource<PendingSwap>,
        value: Vec<u8>,
    ) -> Result<(), atomics::CasError> {
        let PendingSwap { backend, key, seen } = self
            .table
            .delete(swap)
            .map_err(|e| atomics::CasError::StoreError(other(e)))?;
        let outcome = backend
            .swap_if_unchanged(&key, seen.as_deref(), &value)
            .map_err(|e| atomics::CasError::StoreError(store_error(e)))?;
        match outcome {
            SwapOutcome::Swapped => Ok(()),
            SwapOutcome::Changed(current) => {
                let retry = self
                    .table
                    .push(PendingSwap {
                        backend,
                        key,
                        seen: current,
                    })
                    .map_err(|e| atomics::CasError::StoreError(other(e)))?;
                Err(atomics::CasError::CasFailed(retry))
            }
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Result<Resource<PendingSwap>, Error> {
        let backend = self.bucket(&bucket)?;
        self.pending_swap(backend, key)
    }

    fn current(&mut self, swap: Resource<PendingSwap>) -> Result<Option<Vec<u8>>, Error> {
        self.table
            .get(&swap)
            .map(|pending| pending.seen.clone())
            .map_err(other)
    }

    fn drop(&mut self, swap: Resource<PendingSwap>) -> wasmtime::Result<()> {
        self.table.delete(swap)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, Error> {
        let values = self.bucket(&bucket)?.get_many(&keys).map_err(store_error)?;
        Ok(keys.into_iter().zip(values).collect())
    }

    fn set_many(
        &mut self,
        bucket: Resource<OpenStore>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        self.bucket(&bucket)?
            .set_many(&key_values)
            .map_err(store_error)
    }

    fn delete_many(&mut self, bucket: Resource<OpenStore>, keys: Vec<String>) -> Result<(), Error> {
        self.bucket(&bucket)?
            .delete_many(&keys)
            .map_err(store_error)
    }
}
