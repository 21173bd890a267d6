//! Key-value stores through `fermyon:spin/key-value@2.0.0`: a component opens only the
//! labels it was granted; the backend behind a label belongs to the app and is shared.
//! (`wasi_keyvalue` hosts the standard interface over the same stores and grants.)

use kite_app::{ComponentSpec, DEFAULT_STORE};
use kite_app::{RuntimeConfig, StoreBackend};
use kite_store::{
    default_redis_prefix, BoundedKeyValue, KeyValueBackend, RedisKeyValue, SqliteKeyValue,
    SqliteLayout, StoreError,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTableError};

use super::labels::{labels_in_use, GrantedLabels, Handle, OpenStores, Refusal, StoreView};
use super::store_places::{NamedPlace, StorePlace};
use crate::InstanceState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/key-value",
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
        // Store operations may wait on the network (Redis) without holding the thread.
        imports: {
            "fermyon:spin/key-value.[method]store.get": async,
            "fermyon:spin/key-value.[method]store.set": async,
            "fermyon:spin/key-value.[method]store.delete": async,
            "fermyon:spin/key-value.[method]store.exists": async,
            "fermyon:spin/key-value.[method]store.get-keys": async,
        },
    });
}

use bindings::fermyon::spin::key_value::{self as spin_kv, Error};

/// Stores one instance may have open at once.
const MAX_OPEN_STORES: usize = 64;

/// A store a guest has opened (a Spin `store` or a `wasi:keyvalue` bucket).
pub type OpenStore = Handle<Arc<dyn KeyValueBackend>>;

/// The app's key-value stores by label.
#[derive(Clone, Default)]
pub struct KeyValueStores {
    stores: HashMap<String, Arc<dyn KeyValueBackend>>,
    /// Where each store keeps its keys.
    pub(crate) places: Vec<NamedPlace>,
}

impl KeyValueStores {
    /// Opens every store some component is granted or `seeded` names: the runtime
    /// configuration's backend for its label, or for `default` without one, an SQLite file
    /// under `state_dir`.
    pub fn open(
        app: &kite_app::App,
        state_dir: &Path,
        config: &RuntimeConfig,
        seeded: &[&str],
    ) -> anyhow::Result<Self> {
        let granted = app.components.iter().flat_map(|c| &c.key_value_stores);
        let mut stores: HashMap<String, Arc<dyn KeyValueBackend>> = HashMap::new();
        let mut places = Vec::new();
        for label in labels_in_use(granted, seeded) {
            let (file, layout) = match config.key_value_stores.get(label) {
                Some(StoreBackend::Sqlite { path }) => (path.clone(), SqliteLayout::Kite),
                Some(StoreBackend::SpinSqlite { path }) => (
                    path.clone(),
                    SqliteLayout::Spin {
                        store: label.to_string(),
                    },
                ),
                Some(StoreBackend::Redis {
                    url,
                    prefix,
                    timeout,
                }) => {
                    let prefix = prefix
                        .clone()
                        .unwrap_or_else(|| default_redis_prefix(&app.name, label));
                    let store = RedisKeyValue::open(url, prefix, *timeout).map_err(|e| {
                        anyhow::anyhow!("key-value store `{label}` (Redis): {e}")
                    })?;
                    let place = StorePlace::Redis {
                        server: store.server(),
                        prefix: store.prefix().to_string(),
                    };
                    places.push((format!("key-value store `{label}`"), place));
                    stores.insert(label.to_string(), bounded(Arc::new(store)));
                    continue;
                }
                // Where `spin up` keeps it, so a Spin app's data is found.
                None if label == DEFAULT_STORE && app.format.is_spin() => (
                    state_dir.join("sqlite_key_value.db"),
                    SqliteLayout::Spin {
                        store: label.to_string(),
                    },
                ),
                None if label == DEFAULT_STORE => (
                    state_dir.join("key_value").join("default.sqlite"),
                    SqliteLayout::Kite,
                ),
                None => anyhow::bail!(
                    "no backend for key-value store `{label}`: define [key_value_store.{label}] in the runtime configuration"
                ),
            };
            let part = match &layout {
                SqliteLayout::Kite => "kv".to_string(),
                SqliteLayout::Spin { store } => format!("spin_key_value:{store}"),
            };
            let store = SqliteKeyValue::open_capped(&file, layout, config.max_store_bytes)
                .map_err(|e| anyhow::anyhow!("key-value store `{label}`: {e}"))?;
            let place = StorePlace::File {
                path: file,
                part: Some(part),
            };
            places.push((format!("key-value store `{label}`"), place));
            stores.insert(label.to_string(), bounded(Arc::new(store)));
        }
        Ok(KeyValueStores { stores, places })
    }

    /// Sets `key` in the store `label` (`kite up --key-value`); setting is idempotent.
    pub async fn seed(&self, label: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let store = self.stores.get(label).ok_or_else(|| {
            anyhow::anyhow!("--key-value {label}:...: the app has no key-value store `{label}`")
        })?;
        store
            .set(key, value.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("--key-value {label}:{key}=...: {e}"))
    }
}

/// A backend as guests reach it: with bounds on key and value sizes and batch reads.
fn bounded(backend: Arc<dyn KeyValueBackend>) -> Arc<dyn KeyValueBackend> {
    Arc::new(BoundedKeyValue::new(backend))
}

pub struct KeyValueGrant {
    access: Arc<GrantedLabels<dyn KeyValueBackend>>,
}

impl KeyValueGrant {
    pub fn validate(spec: &ComponentSpec, stores: &KeyValueStores) -> anyhow::Result<Self> {
        let access = GrantedLabels::new(
            &spec.id,
            "key-value store",
            &spec.key_value_stores,
            &stores.stores,
        )?;
        Ok(KeyValueGrant {
            access: Arc::new(access),
        })
    }

    pub fn prepare(&self) -> ComponentKeyValue {
        OpenStores::new(self.access.clone(), MAX_OPEN_STORES)
    }
}

/// Per-instance key-value state.
pub type ComponentKeyValue = OpenStores<dyn KeyValueBackend>;
pub(super) type KeyValueView<'a> = StoreView<'a, dyn KeyValueBackend>;

pub(super) struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// The key-value part of an instance's state, as both key-value interfaces see it.
pub(super) fn view(state: &mut InstanceState) -> KeyValueView<'_> {
    StoreView {
        table: &mut state.table,
        stores: &mut state.key_value,
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_kv::add_to_linker::<_, KeyValue>(linker, view)?;
    Ok(())
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
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

impl spin_kv::Host for KeyValueView<'_> {}

impl spin_kv::HostStore for KeyValueView<'_> {
    fn open(&mut self, label: String) -> Result<Resource<OpenStore>, Error> {
        StoreView::open(self, &label).map_err(|refusal| match refusal {
            Refusal::AccessDenied => Error::AccessDenied,
            Refusal::Unknown => Error::NoSuchStore,
            Refusal::TooManyOpen | Refusal::TableFull(_) => Error::StoreTableFull,
        })
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.backend(&store)?.get(&key).await.map_err(Error::from)
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        self.backend(&store)?
            .set(&key, &value)
            .await
            .map_err(Error::from)
    }

    async fn delete(&mut self, store: Resource<OpenStore>, key: String) -> Result<(), Error> {
        self.backend(&store)?
            .delete(&key)
            .await
            .map_err(Error::from)
    }

    async fn exists(&mut self, store: Resource<OpenStore>, key: String) -> Result<bool, Error> {
        self.backend(&store)?
            .exists(&key)
            .await
            .map_err(Error::from)
    }

    async fn get_keys(&mut self, store: Resource<OpenStore>) -> Result<Vec<String>, Error> {
        self.backend(&store)?.keys().await.map_err(Error::from)
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(store)
    }
}
