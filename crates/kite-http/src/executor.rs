//! The wasi:http executor: one fresh `Store` and instance per request, filled from the
//! component's grants, with its memory limit and deadline; guest failures become 5xx.

use crate::body_limit::LimitedBody;
use crate::response_body::GuardedBody;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use kite_app::{ComponentSpec, Limits};
use kite_host::{ComponentGrants, InstanceState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

pub(crate) const REQUEST_ID_HEADER: &str = "x-kite-request-id";

pub(crate) struct WasiHttpExecutor {
    component: Arc<str>,
    pre: ProxyPre<InstanceState>,
    grants: ComponentGrants,
    limits: Limits,
}

/// Why a guest did not produce a response.
enum GuestFailure {
    Deadline,
    /// Every instance slot is in use (`--max-instances`).
    Overloaded,
    Trap(wasmtime::Error),
}

impl WasiHttpExecutor {
    pub(crate) fn new(
        spec: &ComponentSpec,
        component: &Component,
        linker: &Linker<InstanceState>,
    ) -> anyhow::Result<Self> {
        let instance_pre = linker.instantiate_pre(component).map_err(|e| {
            anyhow::anyhow!(
                "component `{}` ({}) cannot be linked: {e:#}",
                spec.id,
                spec.source.display()
            )
        })?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            anyhow::anyhow!(
                "component `{}` ({}) is not an HTTP handler: it must export `wasi:http/incoming-handler` ({e:#})",
                spec.id,
                spec.source.display()
            )
        })?;
        Ok(WasiHttpExecutor {
            component: spec.id.as_str().into(),
            pre,
            grants: ComponentGrants::validate(spec)?,
            limits: spec.limits,
        })
    }

    pub(crate) fn component(&self) -> &str {
        &self.component
    }

    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        request_id: &Arc<str>,
    ) -> Response<HyperOutgoingBody> {
        let declared_length = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|len| len > self.limits.max_request_body) {
            return self.too_large(request_id);
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let limit = self.limits.max_request_body;
        let req = req.map(|body| LimitedBody::new(body, limit, exceeded.clone()));

        let mut store = match self.new_store(request_id) {
            Ok(store) => store,
            Err(e) => {
                tracing::error!(component = %self.component, request_id = %request_id, "preparing the instance failed: {e:#}");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    request_id,
                    "the component could not be started",
                );
            }
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let prepared = (|| -> anyhow::Result<_> {
            let mut http = store.data_mut().http();
            let request = http.new_incoming_request(Scheme::Http, req)?;
            let outparam = http.new_response_outparam(sender)?;
            Ok((request, outparam))
        })();
        let (request, outparam) = match prepared {
            Ok(parts) => parts,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    request_id,
                    &format!("bad request: {e:#}"),
                );
            }
        };

        let pre = self.pre.clone();
        let timeout = self.limits.timeout;
        let component = self.component.clone();
        let task_request_id = request_id.clone();
        let (handler_done, handler_ok) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            };
            let outcome = match tokio::time::timeout(timeout, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if is_interrupt(&e) => Err(GuestFailure::Deadline),
                Ok(Err(e)) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                    Err(GuestFailure::Overloaded)
                }
                Ok(Err(e)) => Err(GuestFailure::Trap(e)),
                Err(_) => Err(GuestFailure::Deadline),
            };
            match &outcome {
                Ok(()) => {}
                Err(GuestFailure::Deadline) => tracing::error!(
                    component = %component, request_id = %task_request_id,
                    "the component ran past its {} deadline and was stopped",
                    humanize(timeout)
                ),
                Err(GuestFailure::Overloaded) => tracing::warn!(
                    component = %component, request_id = %task_request_id,
                    "no free instance slot (all --max-instances are busy); answered 503"
                ),
                Err(GuestFailure::Trap(e)) => tracing::error!(
                    component = %component, request_id = %task_request_id,
                    "the component trapped: {e:?}"
                ),
            }
            let _ = handler_done.send(outcome.is_ok());
            outcome
        });

        match receiver.await {
            Ok(Ok(response)) => {
                let mut response =
                    response.map(|body| GuardedBody::new(body, handler_ok).boxed_unsync());
                if let Ok(value) = HeaderValue::from_str(request_id) {
                    response.headers_mut().insert(REQUEST_ID_HEADER, value);
                }
                response
            }
            Ok(Err(code)) => {
                tracing::error!(component = %self.component, request_id = %request_id, "the component responded with an error: {code:?}");
                if exceeded.load(Ordering::Relaxed) {
                    return self.too_large(request_id);
                }
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    request_id,
                    "the component failed to produce a response",
                )
            }
            Err(_) => {
                let failure = match task.await {
                    Ok(Ok(())) => {
                        tracing::error!(component = %self.component, request_id = %request_id, "the component returned without sending a response");
                        None
                    }
                    Ok(Err(failure)) => Some(failure),
                    Err(join_error) => {
                        tracing::error!(component = %self.component, request_id = %request_id, "the request task failed: {join_error}");
                        None
                    }
                };
                if exceeded.load(Ordering::Relaxed) {
                    return self.too_large(request_id);
                }
                match failure {
                    Some(GuestFailure::Deadline) => error_response(
                        StatusCode::GATEWAY_TIMEOUT,
                        request_id,
                        &format!(
                            "the component did not respond within its {} deadline",
                            humanize(timeout)
                        ),
                    ),
                    Some(GuestFailure::Overloaded) => {
                        let mut response = error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            request_id,
                            "the server is at its instance limit; retry shortly",
                        );
                        response
                            .headers_mut()
                            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                        response
                    }
                    _ => error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        request_id,
                        "the component failed while handling the request",
                    ),
                }
            }
        }
    }

    fn new_store(&self, request_id: &Arc<str>) -> anyhow::Result<Store<InstanceState>> {
        let state = self.grants.instance_state(request_id.clone())?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| state.limits());
        // On every epoch tick a running guest yields to the event loop, so a guest that
        // computes for long never holds up other requests on its thread; past its deadline
        // it is interrupted.
        let deadline = Instant::now() + self.limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        Ok(store)
    }

    fn too_large(&self, request_id: &str) -> Response<HyperOutgoingBody> {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            request_id,
            &format!(
                "the request body is larger than this component's limit of {} bytes (`limits.max_request_body`)",
                self.limits.max_request_body
            ),
        )
    }
}

fn is_interrupt(error: &wasmtime::Error) -> bool {
    error.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// A plain-text error response carrying the request id, in the body and a header.
pub(crate) fn error_response(
    status: StatusCode,
    request_id: &str,
    message: &str,
) -> Response<HyperOutgoingBody> {
    let text = format!(
        "{} {}: {message} (request id {request_id})\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
