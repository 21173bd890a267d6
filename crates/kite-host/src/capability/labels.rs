//! Label-based grants shared by the store capabilities: which labels exist in the app,
//! which one component may open, and how many handles one instance holds open.

use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable, ResourceTableError};

/// Labels some component is granted or a seed flag names, each once.
pub(crate) fn labels_in_use<'a>(
    grants: impl Iterator<Item = &'a String>,
    seeded: &[&'a str],
) -> Vec<&'a str> {
    let mut labels: Vec<&str> = grants
        .map(String::as_str)
        .chain(seeded.iter().copied())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

pub(crate) struct GrantedLabels<B: ?Sized> {
    granted: HashMap<String, Arc<B>>,
    known: Vec<String>,
}

pub(crate) enum Refusal {
    /// The label exists but this component was not granted it.
    AccessDenied,
    /// No such label in this app.
    Unknown,
    /// The instance already holds the most handles it may.
    TooManyOpen,
    /// The instance's resource table is full.
    TableFull(ResourceTableError),
}

/// A handle a guest holds on a store or database: the backend behind the label it opened,
/// or the guest's own connection to it.
pub struct Handle<C> {
    connection: C,
}

/// Per-instance store state: the component's grants and how many handles are open.
pub struct OpenStores<B: ?Sized> {
    access: Arc<GrantedLabels<B>>,
    open: usize,
    max_open: usize,
    /// Bytes the host keeps between calls for the instance's handles (values a pending
    /// compare-and-swap saw).
    held_bytes: usize,
}

/// The most bytes an instance's store handles may keep between calls.
pub(crate) const MAX_HELD_BYTES: usize = 32 << 20;

impl<B: ?Sized> OpenStores<B> {
    pub(crate) fn new(access: Arc<GrantedLabels<B>>, max_open: usize) -> Self {
        OpenStores {
            access,
            open: 0,
            max_open,
            held_bytes: 0,
        }
    }

    /// The backend for `label`, counting one more open handle.
    pub(crate) fn open(&mut self, label: &str) -> Result<Arc<B>, Refusal> {
        let backend = self.access.open(label)?;
        if self.open >= self.max_open {
            return Err(Refusal::TooManyOpen);
        }
        self.open += 1;
        Ok(backend)
    }

    pub(crate) fn closed(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// Counts `bytes` more kept for a handle; false, counting nothing, past [`MAX_HELD_BYTES`].
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        match self.held_bytes.checked_add(bytes) {
            Some(held) if held <= MAX_HELD_BYTES => {
                self.held_bytes = held;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn release(&mut self, bytes: usize) {
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
    }
}

/// What a store interface's host functions see: the resource table and the open stores.
pub(crate) struct StoreView<'a, B: ?Sized> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) stores: &'a mut OpenStores<B>,
}

impl<B: ?Sized + Send + Sync + 'static> StoreView<'_, B> {
    /// A new handle on `label`'s backend, counted against the instance's limit of open
    /// handles.
    pub(crate) fn open(&mut self, label: &str) -> Result<Resource<Handle<Arc<B>>>, Refusal> {
        self.open_with(label, |backend| backend)
    }

    /// A new handle holding what `connect` makes of `label`'s backend, counted against the
    /// instance's limit of open handles.
    pub(crate) fn open_with<C: Send + 'static>(
        &mut self,
        label: &str,
        connect: impl FnOnce(Arc<B>) -> C,
    ) -> Result<Resource<Handle<C>>, Refusal> {
        let backend = self.stores.open(label)?;
        let connection = connect(backend);
        self.table.push(Handle { connection }).map_err(|e| {
            self.stores.closed();
            Refusal::TableFull(e)
        })
    }

    /// The backend behind a handle the guest holds.
    pub(crate) fn backend(
        &self,
        handle: &Resource<Handle<Arc<B>>>,
    ) -> Result<Arc<B>, ResourceTableError> {
        self.connection(handle).cloned()
    }

    /// What a handle the guest holds was opened with.
    pub(crate) fn connection<C: 'static>(
        &self,
        handle: &Resource<Handle<C>>,
    ) -> Result<&C, ResourceTableError> {
        self.table.get(handle).map(|open| &open.connection)
    }

    /// The guest dropped a handle.
    pub(crate) fn close<C: 'static>(
        &mut self,
        handle: Resource<Handle<C>>,
    ) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.stores.closed();
        Ok(())
    }
}

impl<B: ?Sized> GrantedLabels<B> {
    /// `component` is granted `grants` out of the app's `available` backends.
    pub(crate) fn new(
        component: &str,
        what: &str,
        grants: &[String],
        available: &HashMap<String, Arc<B>>,
    ) -> anyhow::Result<Self> {
        let mut granted = HashMap::new();
        for label in grants {
            let backend = available.get(label).ok_or_else(|| {
                anyhow::anyhow!("component `{component}`: no backend for {what} `{label}`")
            })?;
            granted.insert(label.clone(), backend.clone());
        }
        let mut known: Vec<String> = available.keys().cloned().collect();
        known.push(kite_app::DEFAULT_STORE.to_string());
        Ok(GrantedLabels { granted, known })
    }

    pub(crate) fn open(&self, label: &str) -> Result<Arc<B>, Refusal> {
        match self.granted.get(label) {
            Some(backend) => Ok(backend.clone()),
            None if self.known.iter().any(|k| k == label) => Err(Refusal::AccessDenied),
            None => Err(Refusal::Unknown),
        }
    }
}
