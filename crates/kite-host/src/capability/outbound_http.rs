//! Outbound HTTP through `wasi:http/outgoing-handler`: a request leaves only if its URL
//! matches one of the component's `allowed_outbound_hosts`; redirects are not followed.

use crate::request_tag::RequestTag;
use http::uri::Scheme;
use kite_app::{ComponentSpec, OutboundRule};
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub struct OutboundHttpGrant {
    policy: Arc<OutboundPolicy>,
}

/// One component's rules, shared by all of its instances.
struct OutboundPolicy {
    component: String,
    rules: Vec<OutboundRule>,
}

impl OutboundHttpGrant {
    pub fn validate(spec: &ComponentSpec) -> anyhow::Result<Self> {
        Ok(OutboundHttpGrant {
            policy: Arc::new(OutboundPolicy {
                component: spec.id.clone(),
                rules: spec.allowed_outbound_hosts.clone(),
            }),
        })
    }

    pub(crate) fn prepare(&self, request: RequestTag) -> OutboundHttp {
        OutboundHttp {
            policy: self.policy.clone(),
            request,
        }
    }
}

/// Per-instance hooks that wasi:http calls for every outgoing request.
pub struct OutboundHttp {
    policy: Arc<OutboundPolicy>,
    request: RequestTag,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl OutboundPolicy {
    /// `Err(hint)` names the rule that would allow the request.
    fn check(&self, uri: &http::Uri) -> Result<(), String> {
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
            Err(OutboundRule::suggestion(&scheme, host, port))
        }
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        if let Err(rule) = self.policy.check(request.uri()) {
            tracing::warn!(
                component = %self.policy.component,
                request_id = %self.request,
                "denied outbound request to {}: add \"{rule}\" to `allowed_outbound_hosts` of component `{}` to allow it",
                request.uri(),
                self.policy.component,
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
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
            rules: vec![
                OutboundRule::parse("http://127.0.0.1:*").unwrap(),
                OutboundRule::parse("https://api.example.com").unwrap(),
            ],
        };
        let check = |u: &str| policy.check(&u.parse().unwrap());
        assert!(check("http://127.0.0.1:8080/x").is_ok());
        assert!(check("https://api.example.com/v1").is_ok());
        assert_eq!(
            check("http://api.example.com/v1"),
            Err("http://api.example.com".into())
        );
        assert_eq!(
            check("http://localhost:9000/"),
            Err("http://localhost:9000".into())
        );
    }
}
