//! Outbound HTTP through `wasi:http/outgoing-handler`: a request leaves only if its URL
//! matches one of the component's `allowed_outbound_hosts`; redirects are not followed.
//! Requests to `<component>.spin.internal` and to the app itself stay in the process.

use super::local_dispatch::{
    local_target, ChainDepth, LocalDispatch, LocalTarget, MAX_CHAIN_DEPTH,
};
use super::outbound_connect::{
    reserve_connection, send, Failure, Sent, MAX_CONNECTIONS_PER_COMPONENT,
    MAX_CONNECTIONS_PER_INSTANCE,
};
use crate::request_tag::RequestTag;
use http::uri::Scheme;
use kite_app::{BlockedNetwork, ComponentSpec, OutboundRule};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub struct OutboundHttpGrant {
    policy: Arc<OutboundPolicy>,
}

/// One component's rules, shared by all of its instances.
struct OutboundPolicy {
    component: String,
    rules: Vec<OutboundRule>,
    /// Networks no connection may reach, whatever the rules allow.
    blocked: Vec<BlockedNetwork>,
    /// Places for the open connections of all the component's instances.
    connections: Arc<Semaphore>,
    /// The app's trigger, for requests that stay in the app.
    local: Arc<LocalDispatch>,
}

impl OutboundHttpGrant {
    pub fn validate(
        spec: &ComponentSpec,
        blocked: &[BlockedNetwork],
        local: Arc<LocalDispatch>,
    ) -> anyhow::Result<Self> {
        Ok(OutboundHttpGrant {
            policy: Arc::new(OutboundPolicy {
                component: spec.id.clone(),
                rules: spec.allowed_outbound_hosts.clone(),
                blocked: blocked.to_vec(),
                connections: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_COMPONENT)),
                local,
            }),
        })
    }

    pub(crate) fn prepare(&self, request: RequestTag) -> OutboundHttp {
        OutboundHttp {
            policy: self.policy.clone(),
            request,
            connections: None,
            told_connection_limit: false,
        }
    }
}

/// Per-instance hooks that wasi:http calls for every outgoing request.
pub struct OutboundHttp {
    policy: Arc<OutboundPolicy>,
    request: RequestTag,
    /// This instance's places for open connections (made on its first outbound request).
    connections: Option<Arc<Semaphore>>,
    /// Whether a request refused for want of a connection place was logged (once is enough).
    told_connection_limit: bool,
}

type SendFuture = Box<dyn Future<Output = Result<Sent, HttpError>> + Send>;

impl OutboundPolicy {
    /// `Err` says why the request is refused and, where a rule would allow it, which.
    fn check(&self, uri: &http::Uri) -> Result<(), String> {
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
        if self
            .rules
            .iter()
            .any(|rule| rule.allows(&scheme, host, port))
        {
            Ok(())
        } else {
            Err(format!(
                "add \"{}\" to `allowed_outbound_hosts` of component `{}` to allow it",
                OutboundRule::suggestion(&scheme, host, port),
                self.component
            ))
        }
    }
}

/// `uri` without its query string, which may carry secrets, for log lines.
fn without_query(uri: &http::Uri) -> String {
    let mut text = String::new();
    if let Some(scheme) = uri.scheme_str() {
        text.push_str(scheme);
        text.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        text.push_str(authority.as_str().rsplit('@').next().unwrap_or_default());
    }
    text.push_str(uri.path());
    text
}

/// Logs Kite's refusals of one instance's outbound requests.
#[derive(Clone)]
struct RefusalLog {
    policy: Arc<OutboundPolicy>,
    request: RequestTag,
}

impl RefusalLog {
    fn refused(&self, uri: &http::Uri, reason: &str) {
        tracing::warn!(
            component = %self.policy.component,
            request_id = %self.request,
            "denied outbound request to {}: {reason}",
            without_query(uri),
        );
    }

    /// The error the guest gets for `failure`, logged first if Kite refused the request.
    fn error_for(&self, uri: &http::Uri, failure: Failure) -> HttpError {
        match failure {
            Failure::Refused { reason, code } => {
                self.refused(uri, &reason);
                code
            }
            Failure::Failed(code) => code,
        }
    }
}

impl OutboundHttp {
    /// A request that stays in the app: allowed by a rule (`http://<id>.spin.internal`,
    /// `http://*.spin.internal`, `http://self`, `*://*:*`), within [`MAX_CHAIN_DEPTH`] hops,
    /// served by the app's trigger in a fresh instance of the target.
    fn send_local(
        &mut self,
        target: LocalTarget,
        mut request: http::Request<WasiBody>,
        log: RefusalLog,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let refuse = |reason: String| -> SendFuture {
            log.refused(&uri, &reason);
            Box::new(async { Err(HttpError::HttpRequestDenied) })
        };
        let allowed = match &target {
            LocalTarget::App => self.policy.rules.iter().any(|rule| rule.allows_self()),
            LocalTarget::Component(_) => self.policy.check(&uri).is_ok(),
        };
        if !allowed {
            let rule = match &target {
                LocalTarget::App => "http://self".to_string(),
                LocalTarget::Component(id) => format!("http://{id}.spin.internal"),
            };
            return refuse(format!(
                "add \"{rule}\" to `allowed_outbound_hosts` of component `{}` to allow it",
                self.policy.component
            ));
        }
        let Some(handler) = self.policy.local.handler() else {
            return refuse("the app is not serving".into());
        };
        if let LocalTarget::Component(id) = &target {
            if !handler.has_component(id) {
                return refuse(format!("the app has no component `{id}` with a route"));
            }
        }
        let depth = self.request.chain_depth() + 1;
        if depth > MAX_CHAIN_DEPTH {
            return refuse(format!(
                "this would be hop {depth} within the app; requests may pass through at most {MAX_CHAIN_DEPTH} components"
            ));
        }
        request.extensions_mut().insert(ChainDepth(depth));
        // The callee sees no `host` (as under Spin): its `spin-full-url` names `localhost`.
        request.headers_mut().remove(http::header::HOST);
        let response = handler.handle(target, request);
        Box::new(async move {
            let response = response.await?;
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::host_budget::BODY_CHUNK_BYTES
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let log = RefusalLog {
            policy: self.policy.clone(),
            request: self.request.clone(),
        };
        let uri = request.uri().clone();
        if let Some(target) = local_target(uri.host().unwrap_or_default()) {
            return self.send_local(target, request, log);
        }
        if let Err(reason) = self.policy.check(&uri) {
            log.refused(&uri, &reason);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let connections = self
            .connections
            .get_or_insert_with(|| Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_INSTANCE)));
        let permits = match reserve_connection(connections, &self.policy.connections) {
            Ok(permits) => permits,
            Err(Failure::Refused { reason, code }) => {
                if !std::mem::replace(&mut self.told_connection_limit, true) {
                    log.refused(
                        &uri,
                        &format!("{reason}; further refusals of this request are not logged"),
                    );
                }
                return Box::new(async move { Err(code) });
            }
            Err(Failure::Failed(code)) => return Box::new(async move { Err(code) }),
        };
        Box::new(async move {
            send(request, options, &log.policy.blocked, permits)
                .await
                .map_err(|failure| log.error_for(&uri, failure))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_scheme_host_and_port_of_the_uri() {
        let policy = OutboundPolicy {
            component: "c".into(),
            blocked: Vec::new(),
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

    #[test]
    fn logged_urls_have_no_query_or_user_information() {
        let uri: http::Uri = "https://u:pw@api.example.com:8443/v1/x?token=secret"
            .parse()
            .unwrap();
        assert_eq!(without_query(&uri), "https://api.example.com:8443/v1/x");
    }
}
