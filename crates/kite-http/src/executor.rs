//! The wasi:http executor: one fresh `Store` and instance per request, filled from the
//! component's grants, with its memory limit and deadline; guest failures become 5xx.

use crate::body_limit::LimitedBody;
use crate::failure::{busy_response, error_response, set_request_id, GuestFailure};
use crate::response_body::GuardedBody;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kite_app::{ComponentSpec, Limits};
use kite_host::{AppResources, ComponentGrants, InstanceState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, Semaphore};
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::WasiHttpView;

type GuestResponse = Result<Response<HyperOutgoingBody>, ErrorCode>;

pub(crate) struct WasiHttpExecutor {
    component: Arc<str>,
    pre: ProxyPre<InstanceState>,
    grants: ComponentGrants,
    limits: Limits,
    /// Present when the manifest sets `limits.max_concurrency`.
    concurrency: Option<Arc<Semaphore>>,
}

/// One request's instance, ready to run.
struct PreparedCall {
    store: Store<InstanceState>,
    request: Resource<HostIncomingRequest>,
    outparam: Resource<HostResponseOutparam>,
}

impl WasiHttpExecutor {
    pub(crate) fn new(
        spec: &ComponentSpec,
        component: &Component,
        linker: &Linker<InstanceState>,
        resources: &AppResources,
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
            grants: ComponentGrants::validate(spec, resources)?,
            limits: spec.limits,
            concurrency: spec
                .limits
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
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
        let permit = match &self.concurrency {
            None => None,
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(component = %self.component, request_id = %request_id, "at its max_concurrency; answered 503");
                    return busy_response(
                        request_id,
                        "this component is at its `limits.max_concurrency`; retry shortly",
                    );
                }
            },
        };
        let exceeded = Arc::new(AtomicBool::new(false));
        let limit = self.limits.max_request_body;
        let req = req.map(|body| LimitedBody::new(body, limit, exceeded.clone()));

        let (response_sender, response_receiver) = oneshot::channel();
        let call = match self.prepare(req, request_id, response_sender) {
            Ok(call) => call,
            Err(response) => return *response,
        };
        let (handler_done, handler_ok) = oneshot::channel();
        let guest = self.run_guest(call, request_id.clone(), handler_done);
        let task = tokio::spawn(async move {
            let outcome = guest.await;
            drop(permit);
            outcome
        });

        let failure = match response_receiver.await {
            Ok(Ok(response)) => {
                let mut response =
                    response.map(|body| GuardedBody::new(body, handler_ok).boxed_unsync());
                set_request_id(&mut response, request_id);
                return response;
            }
            Ok(Err(code)) => {
                tracing::error!(component = %self.component, request_id = %request_id, "the component responded with an error: {code:?}");
                None
            }
            Err(_) => match task.await {
                Ok(Err(failure)) => Some(failure),
                Ok(Ok(())) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "the component returned without sending a response");
                    None
                }
                Err(join_error) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "the request task failed: {join_error}");
                    None
                }
            },
        };
        if exceeded.load(Ordering::Relaxed) {
            return self.too_large(request_id);
        }
        match failure {
            Some(failure) => failure.response(request_id),
            None => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                "the component failed to produce a response",
            ),
        }
    }

    /// A fresh store from this component's grants, with the request and the response slot
    /// in its resource table. `Err` is the response to send instead.
    fn prepare(
        &self,
        req: Request<LimitedBody<Incoming>>,
        request_id: &Arc<str>,
        response_sender: oneshot::Sender<GuestResponse>,
    ) -> Result<PreparedCall, Box<Response<HyperOutgoingBody>>> {
        let mut store = self.new_store(request_id).map_err(|e| {
            tracing::error!(component = %self.component, request_id = %request_id, "preparing the instance failed: {e:#}");
            Box::new(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                "the component could not be started",
            ))
        })?;
        let mut http = store.data_mut().http();
        let request = http.new_incoming_request(Scheme::Http, req).map_err(|e| {
            Box::new(error_response(
                StatusCode::BAD_REQUEST,
                request_id,
                &format!("bad request: {e:#}"),
            ))
        })?;
        let outparam = http.new_response_outparam(response_sender).map_err(|e| {
            Box::new(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                &format!("{e:#}"),
            ))
        })?;
        Ok(PreparedCall {
            store,
            request,
            outparam,
        })
    }

    /// Instantiates and runs the guest's handler within the deadline; logs any failure and
    /// reports through `handler_done` whether the handler finished normally.
    fn run_guest(
        &self,
        call: PreparedCall,
        request_id: Arc<str>,
        handler_done: oneshot::Sender<bool>,
    ) -> impl std::future::Future<Output = Result<(), GuestFailure>> + Send + 'static {
        let pre = self.pre.clone();
        let timeout = self.limits.timeout;
        let component = self.component.clone();
        async move {
            let PreparedCall {
                mut store,
                request,
                outparam,
            } = call;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            };
            let outcome = match tokio::time::timeout(timeout, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(GuestFailure::from_error(e, timeout)),
                Err(_) => Err(GuestFailure::Deadline(timeout)),
            };
            if let Err(failure) = &outcome {
                failure.log(&component, &request_id);
            }
            let _ = handler_done.send(outcome.is_ok());
            // Resetting the instance's memory and tables can wait until the response has
            // been written: yielding lets the connection task send it first.
            tokio::task::yield_now().await;
            drop(store);
            outcome
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
