//! Outbound HTTP through `wasi:http/outgoing-handler`: a request leaves only if its URL
//! matches one of the component's `allowed_outbound_hosts`; redirects are not followed.
//! Requests to `<component>.spin.internal` and to the app itself stay in the process.

use super::local_dispatch::{local_target, ChainDepth, LocalTarget, MAX_CHAIN_DEPTH};
use super::outbound_connect::{
    reserve_connection, send, Failure, Sent, MAX_CONNECTIONS_PER_INSTANCE,
};
use super::outbound_policy::OutboundPolicy;
use crate::request_tag::{RefusalLine, RequestTag};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub struct OutboundHttpGrant {
    policy: Arc<OutboundPolicy>,
}

impl OutboundHttpGrant {
    pub fn validate(policy: Arc<OutboundPolicy>) -> anyhow::Result<Self> {
        Ok(OutboundHttpGrant { policy })
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
        let log = self.request.refusal();
        if log == RefusalLine::Skip {
            return;
        }
        tracing::warn!(
            component = %self.policy.component,
            request_id = %self.request,
            "denied outbound request to {}: {reason}{}",
            without_query(uri),
            log.suffix(),
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
    /// The default list, checked in place: the trait's default builds a shared closure for
    /// every header of every request.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::host_budget::BODY_CHUNK_BYTES
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p3_outgoing_body_chunk_size(&mut self) -> usize {
        crate::host_budget::BODY_CHUNK_BYTES
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
                        &format!(
                            "{reason}; the cap's further refusals of this request are not logged"
                        ),
                    );
                }
                return Box::new(async move { Err(code) });
            }
            Err(Failure::Failed(code)) => return Box::new(async move { Err(code) }),
        };
        Box::new(async move {
            send(request, options, &log.policy, permits)
                .await
                .map_err(|failure| log.error_for(&uri, failure))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_have_no_query_or_user_information() {
        let uri: http::Uri = "https://u:pw@api.example.com:8443/v1/x?token=secret"
            .parse()
            .unwrap();
        assert_eq!(without_query(&uri), "https://api.example.com:8443/v1/x");
    }
}
