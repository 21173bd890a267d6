//! TCP through `wasi:sockets`: a component may connect only to addresses its
//! `allowed_outbound_hosts` allow for `tcp://` (or `*://`), checked on the address itself;
//! names in those rules are resolved when the app loads. No listening, no UDP, and the
//! connections count in the same caps as every other outbound client.

use super::outbound_connect::{
    reserve_connection, ConnectionPermits, MAX_CONNECTIONS_PER_INSTANCE,
};
use super::outbound_policy::OutboundPolicy;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

/// What one component may reach over TCP, worked out at load.
pub struct TcpGrant {
    policy: Arc<OutboundPolicy>,
    /// The addresses each rule that names a host stood for at load, with that rule's index.
    resolved: Vec<(usize, Vec<IpAddr>)>,
    /// Whether any rule is for TCP at all (otherwise the sockets stay switched off).
    any: bool,
}

impl TcpGrant {
    pub fn validate(policy: Arc<OutboundPolicy>) -> anyhow::Result<Self> {
        let mut resolved = Vec::new();
        let mut any = false;
        for (index, rule) in policy.rules.iter().enumerate() {
            if !rule.covers_scheme("tcp") {
                continue;
            }
            any = true;
            if let Some(name) = rule
                .host_name()
                .filter(|_| rule.as_str().starts_with("tcp"))
            {
                let addresses = match (name, 0).to_socket_addrs() {
                    Ok(found) => found.map(|a| a.ip()).collect(),
                    Err(e) => {
                        tracing::warn!(
                            "component `{}`: allowed_outbound_hosts {:?}: {name} does not resolve ({e}); TCP connections to it are refused until Kite restarts",
                            policy.component,
                            rule.as_str()
                        );
                        Vec::new()
                    }
                };
                resolved.push((index, addresses));
            }
        }
        Ok(TcpGrant {
            policy,
            resolved,
            any,
        })
    }

    fn allows(&self, address: SocketAddr) -> bool {
        let ip = address.ip();
        if self.policy.blocked.iter().any(|b| b.contains(ip)) {
            return false;
        }
        let by_address = self.policy.rules.iter().any(|rule| {
            rule.covers_scheme("tcp") && rule.allows("tcp", &ip.to_string(), address.port())
        });
        by_address
            || self.resolved.iter().any(|(index, addresses)| {
                addresses.contains(&ip) && self.policy.rules[*index].allows_port(address.port())
            })
    }

    /// Sets up one instance's sockets: TCP connections to allowed addresses only (each
    /// taking a place in the caps until the instance ends), name lookups if TCP is granted.
    pub(crate) fn prepare(self: &Arc<Self>, wasi: &mut WasiCtxBuilder, component: &str) {
        wasi.allow_udp(false)
            .allow_tcp(self.any)
            .allow_ip_name_lookup(self.any);
        if !self.any {
            return;
        }
        let grant = self.clone();
        let instance = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_INSTANCE));
        let held: Arc<Mutex<Vec<ConnectionPermits>>> = Arc::default();
        let component = component.to_string();
        wasi.socket_addr_check(move |address, use_| {
            let allowed = match use_ {
                // The bind a connect makes implicitly, on the wildcard address.
                SocketAddrUse::TcpBind => address.ip().is_unspecified() && address.port() == 0,
                SocketAddrUse::TcpConnect if grant.allows(address) => {
                    match reserve_connection(&instance, &grant.policy.connections) {
                        Ok(permits) => {
                            held.lock().map(|mut h| h.push(permits)).is_ok()
                        }
                        Err(_) => {
                            tracing::warn!(component = %component, "denied TCP connection to {address}: the connection cap is reached");
                            false
                        }
                    }
                }
                SocketAddrUse::TcpConnect => {
                    tracing::warn!(
                        component = %component,
                        "denied TCP connection to {address}: add \"tcp://{address}\" to `allowed_outbound_hosts` to allow it"
                    );
                    false
                }
                _ => false,
            };
            Box::pin(std::future::ready(allowed))
        });
    }
}
