//! Service chaining: outbound requests to `<component>.spin.internal` and to the app itself
//! (`self`, relative URLs) are served in-process by the app's trigger, without a socket.

use futures::future::BoxFuture;
use std::sync::{Arc, OnceLock, Weak};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// How many in-process hops brought a request here (none for a client's request); kept in
/// the request's extensions, never in a header a guest could set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainDepth(pub u32);

/// Most hops one client request may take through the app's components: a component that
/// calls itself (directly or round a loop) is refused there instead of filling every
/// instance slot.
pub const MAX_CHAIN_DEPTH: u32 = 8;

/// Where a local request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTarget {
    /// `<id>.spin.internal`: that component, whatever its routes (private ones included).
    Component(String),
    /// `self`: through the app's public routes, as a client's request would go.
    App,
}

/// The app's trigger, as outbound HTTP sees it.
pub trait LocalHandler: Send + Sync {
    /// Whether `component` can be reached by chaining (some trigger of the app targets it).
    fn has_component(&self, component: &str) -> bool;

    /// Serves `request` in a fresh instance of the target.
    fn handle(
        self: Arc<Self>,
        target: LocalTarget,
        request: http::Request<WasiBody>,
    ) -> BoxFuture<'static, Result<http::Response<WasiBody>, HttpError>>;
}

/// The slot the trigger plugs itself into once it is built (it is built from the grants
/// that hold this, so it cannot exist first). Held weakly: the trigger owns the grants.
#[derive(Default)]
pub struct LocalDispatch(OnceLock<Weak<dyn LocalHandler>>);

impl LocalDispatch {
    /// Plugs in the app's trigger; the first call wins.
    pub fn connect(&self, handler: Weak<dyn LocalHandler>) {
        let _ = self.0.set(handler);
    }

    pub(crate) fn handler(&self) -> Option<Arc<dyn LocalHandler>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

/// Where a request to `host` goes if it stays in the app: `<id>.spin.internal` (one label
/// before the suffix, any port), or the app itself for `self`, `self.alt` and no host.
pub(crate) fn local_target(host: &str) -> Option<LocalTarget> {
    let host = host.to_ascii_lowercase();
    if host.is_empty() || host == "self" || host == "self.alt" {
        return Some(LocalTarget::App);
    }
    let component = host.strip_suffix(".spin.internal")?;
    (!component.is_empty() && !component.contains('.'))
        .then(|| LocalTarget::Component(component.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaining_hosts() {
        assert_eq!(
            local_target("API.spin.internal"),
            Some(LocalTarget::Component("api".into()))
        );
        assert_eq!(local_target("a.b.spin.internal"), None);
        assert_eq!(local_target(".spin.internal"), None);
        assert_eq!(local_target("spin.internal"), None);
        assert_eq!(local_target("self"), Some(LocalTarget::App));
        assert_eq!(local_target(""), Some(LocalTarget::App));
        assert_eq!(local_target("example.com"), None);
    }
}
