//! Spin 4's `spin:key-value@3.0.0` (async functions, keys as a stream), for components on
//! the concurrent engine: the same stores, grants and limits as `fermyon:spin/key-value`.

use super::key_value::{view, KeyValue, OpenStore};
use super::labels::Refusal;
use super::row_stream::{ended, held_stream};
use crate::held_bytes::{hold, Held};
use crate::InstanceState;
use kite_store::StoreError;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/key-value-v3",
        with: {
            "spin:key-value/key-value.store": crate::capability::key_value::OpenStore,
        },
        // Making the stream can fail only in the host (its table full): a trap.
        imports: {
            "spin:key-value/key-value.[method]store.get-keys": trappable,
        },
    });
}

use bindings::spin::key_value::key_value::{self as spin_kv, Error};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_kv::add_to_linker::<_, KeyValue>(linker, view)?;
    Ok(())
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

fn store_error(e: StoreError) -> Error {
    other(e)
}

impl spin_kv::Host for super::key_value::KeyValueView<'_> {}

impl spin_kv::HostStore for super::key_value::KeyValueView<'_> {
    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(store)
    }
}

/// The backend behind `store`, cloned out of the instance's state so that the operation
/// can wait without holding the store.
fn backend<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> Result<std::sync::Arc<dyn kite_store::KeyValueBackend>, Error> {
    accessor
        .with(|mut access| access.get().backend(store))
        .map_err(other)
}

impl spin_kv::HostStoreWithStore<InstanceState> for KeyValue {
    async fn open(
        accessor: &Accessor<InstanceState, Self>,
        label: String,
    ) -> Result<Resource<OpenStore>, Error> {
        accessor
            .with(|mut access| access.get().open(&label))
            .map_err(|refusal| match refusal {
                Refusal::AccessDenied => Error::AccessDenied,
                Refusal::Unknown => Error::NoSuchStore,
                Refusal::TooManyOpen | Refusal::TableFull(_) => Error::StoreTableFull,
            })
    }

    async fn get(
        accessor: &Accessor<InstanceState, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        backend(accessor, &store)?
            .get(&key)
            .await
            .map_err(store_error)
    }

    async fn set(
        accessor: &Accessor<InstanceState, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let arguments = key.len() + value.len();
        let _held = hold(accessor, arguments, arguments).map_err(other)?;
        backend(accessor, &store)?
            .set(&key, &value)
            .await
            .map_err(store_error)
    }

    async fn delete(
        accessor: &Accessor<InstanceState, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<(), Error> {
        backend(accessor, &store)?
            .delete(&key)
            .await
            .map_err(store_error)
    }

    async fn exists(
        accessor: &Accessor<InstanceState, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, Error> {
        backend(accessor, &store)?
            .exists(&key)
            .await
            .map_err(store_error)
    }

    /// The keys as a stream, and how listing them ended.
    async fn get_keys(
        accessor: &Accessor<InstanceState, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let listed = match backend(accessor, &store) {
            Ok(backend) => backend.keys().await.map_err(store_error),
            Err(e) => Err(e),
        };
        let size = |keys: &[String]| keys.iter().map(|k| 24 + k.len()).sum::<usize>();
        let listed = listed.and_then(|keys| {
            let held = hold(accessor, usize::MAX, size(&keys)).map_err(other)?;
            Ok((keys, held))
        });
        let (keys, held, how) = match listed {
            Ok((keys, held)) => (keys, held, Ok(())),
            Err(e) => (Vec::new(), Held::alone(0), Err(e)),
        };
        Ok((held_stream(accessor, keys, held)?, ended(accessor, how)?))
    }
}
