//! Label-based grants shared by the store capabilities: which labels exist in the app and
//! which of them one component may open. Opening decides between granted, denied, unknown.

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct GrantedLabels<B: ?Sized> {
    granted: HashMap<String, Arc<B>>,
    known: Vec<String>,
}

pub(crate) enum Refusal {
    /// The label exists but this component was not granted it.
    AccessDenied,
    /// No such label in this app.
    Unknown,
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
