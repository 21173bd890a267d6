//! One component's outbound policy, shared by every client it may use (HTTP, Redis, ...):
//! its `allowed_outbound_hosts`, the blocked networks, and its share of the connection caps.

use super::client_tls::ClientTlsSettings;
use super::local_dispatch::LocalDispatch;
use super::outbound_connect::{
    reserve_connection, ConnectionPermits, Failure, MAX_CONNECTIONS_PER_COMPONENT,
    MAX_CONNECTIONS_PER_INSTANCE,
};
use crate::request_tag::{RefusalLine, RequestTag};
use crate::InstanceState;
use http::uri::Scheme;
use kite_app::{BlockedNetwork, ComponentSpec, OutboundRule};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;
use wasmtime::component::{Accessor, HasData, Resource};
use wasmtime::AsContextMut;

/// One component's rules, shared by all of its instances.
pub struct OutboundPolicy {
    pub(crate) component: String,
    pub(crate) rules: Vec<OutboundRule>,
    /// Networks no connection may reach, whatever the rules allow.
    pub(crate) blocked: Vec<BlockedNetwork>,
    /// How TLS connections to each host are made.
    pub(crate) tls: ClientTlsSettings,
    /// Places for the open connections of all the component's instances.
    pub(crate) connections: Arc<Semaphore>,
    /// The app's trigger, for requests that stay in the app.
    pub(crate) local: Arc<LocalDispatch>,
}

impl OutboundPolicy {
    pub fn new(
        spec: &ComponentSpec,
        blocked: &[BlockedNetwork],
        tls: ClientTlsSettings,
        local: Arc<LocalDispatch>,
    ) -> Arc<Self> {
        Arc::new(OutboundPolicy {
            component: spec.id.clone(),
            rules: spec.allowed_outbound_hosts.clone(),
            blocked: blocked.to_vec(),
            tls,
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_COMPONENT)),
            local,
        })
    }

    /// `Err` says which rule would allow a connection to `scheme://host:port`.
    pub(crate) fn check_address(&self, scheme: &str, host: &str, port: u16) -> Result<(), String> {
        if self
            .rules
            .iter()
            .any(|rule| rule.allows(scheme, host, port))
        {
            Ok(())
        } else {
            Err(format!(
                "add \"{}\" to `allowed_outbound_hosts` of component `{}` to allow it",
                OutboundRule::suggestion(scheme, host, port),
                self.component
            ))
        }
    }

    /// `Err` says why an HTTP request to `uri` is refused and, where a rule would allow it,
    /// which.
    pub(crate) fn check(&self, uri: &http::Uri) -> Result<(), String> {
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(
                "URLs with user information (`user:password@`) are refused; send credentials in a header".into(),
            );
        }
        let scheme = uri
            .scheme()
            .unwrap_or(&Scheme::HTTPS)
            .as_str()
            .to_ascii_lowercase();
        let host = uri.host().unwrap_or_default();
        let default_port = if scheme == "http" { 80 } else { 443 };
        let port = uri.port_u16().unwrap_or(default_port);
        self.check_address(&scheme, host, port)
    }
}

/// The longest server address (or user name, or password) a guest may give a database or
/// broker client: a URL, not a payload.
pub(crate) const MAX_ADDRESS_BYTES: usize = 8 << 10;

/// One instance's use of the clients that open their own connections (Redis, PostgreSQL,
/// MQTT), shared by all three: the component's policy, the instance's places for
/// connections (made on the first connection, so an instance that opens none allocates
/// nothing), and the request its refusals are logged under.
pub struct ClientUse {
    pub(crate) policy: Arc<OutboundPolicy>,
    connections: OnceLock<Arc<Semaphore>>,
    request: RequestTag,
}

impl ClientUse {
    pub(crate) fn new(policy: Arc<OutboundPolicy>, request: RequestTag) -> Self {
        ClientUse {
            policy,
            connections: OnceLock::new(),
            request,
        }
    }

    /// A copy for an operation that runs without holding the instance's state (Spin 4's
    /// async interfaces): the same policy, request and per-instance connection cap.
    pub(crate) fn shared(&self) -> ClientUse {
        let instance = self
            .connections
            .get_or_init(|| Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_INSTANCE)));
        ClientUse {
            policy: self.policy.clone(),
            connections: OnceLock::from(instance.clone()),
            request: self.request.clone(),
        }
    }

    /// Logs that the `client` (e.g. "Redis") connection to `address` was refused.
    pub(crate) fn refused(&self, client: &str, address: &str, reason: &str) {
        let log = self.request.refusal();
        if log == RefusalLine::Skip {
            return;
        }
        // The address may be the guest's own text: shown without credentials, escaped and
        // cut short.
        let address = match url::Url::parse(address) {
            Ok(mut url) => {
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.to_string()
            }
            Err(_) => "(an address that is not a URL)".to_string(),
        };
        let address: String = address
            .chars()
            .take(200)
            .flat_map(char::escape_debug)
            .collect();
        tracing::warn!(
            component = %self.policy.component,
            request_id = %self.request,
            "denied {client} connection to {address}: {reason}{}",
            log.suffix(),
        );
    }

    /// A place in the caps for one more `client` connection to `address`; `None` (logged)
    /// if the instance, the component or the process has none left.
    pub(crate) fn reserve(&self, client: &str, address: &str) -> Option<ConnectionPermits> {
        let instance = self
            .connections
            .get_or_init(|| Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_INSTANCE)));
        match reserve_connection(instance, &self.policy.connections) {
            Ok(permits) => Some(permits),
            Err(Failure::Refused { reason, .. }) => {
                self.refused(client, address, &reason);
                None
            }
            Err(Failure::Failed(_)) => None,
        }
    }
}

/// Opens a connection for one of Spin 4's async interfaces without holding the instance's
/// state while it connects: `connect` gets a [`ClientUse::shared`] copy of the instance's
/// client use; the connection goes into the instance's table (`full` if it has no room).
pub(crate) async fn open_outside_state<D, C, E, F>(
    accessor: &Accessor<InstanceState, D>,
    connect: impl FnOnce(ClientUse) -> F,
    full: impl FnOnce() -> E,
) -> Result<Resource<C>, E>
where
    D: HasData + ?Sized,
    C: Send + 'static,
    F: Future<Output = Result<C, E>>,
{
    let client = accessor.with(|mut access| access.as_context_mut().data().clients.shared());
    let connection = connect(client).await?;
    accessor.with(|mut access| {
        access
            .as_context_mut()
            .data_mut()
            .table
            .push(connection)
            .map_err(|_| full())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_scheme_host_and_port_of_the_uri() {
        let policy = OutboundPolicy {
            component: "c".into(),
            blocked: Vec::new(),
            tls: ClientTlsSettings::default(),
            connections: Arc::new(Semaphore::new(1)),
            local: Arc::default(),
            rules: vec![
                OutboundRule::parse("http://127.0.0.1:*").unwrap(),
                OutboundRule::parse("https://api.example.com").unwrap(),
            ],
        };
        let check = |u: &str| policy.check(&u.parse().unwrap());
        assert!(check("http://127.0.0.1:8080/x").is_ok());
        assert!(check("https://api.example.com/v1").is_ok());
        let refused = |u: &str| check(u).unwrap_err();
        assert!(refused("http://api.example.com/v1").contains("\"http://api.example.com\""));
        assert!(refused("http://localhost:9000/").contains("\"http://localhost:9000\""));
        assert!(refused("http://user:secret@127.0.0.1:8080/").contains("user information"));
    }
}
