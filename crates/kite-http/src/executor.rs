//! The wasi:http executor: one fresh instance per request, filled from the component's
//! grants, with its memory limit and deadline; guest failures become 5xx.

use crate::body_limit::{BodyFaults, LimitedBody, MIN_BYTES_PER_WINDOW};
use crate::failure::{busy_response, error_response, set_request_id, GuestFailure};
use crate::instances::{instantiate_for_request, FreshInstance, InstanceFactory, ReadyInstances};
use crate::response_body::GuardedBody;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kite_app::{ComponentSpec, Limits};
use kite_host::{AppResources, ComponentGrants, InstanceState};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::WasiHttpView;

type GuestResponse = Result<Response<HyperOutgoingBody>, ErrorCode>;

/// How the guest's handler ended: sent once it returns, traps or runs out of time.
pub(crate) type HandlerOutcome = Result<(), GuestFailure>;

pub(crate) struct WasiHttpExecutor {
    component: Arc<str>,
    /// This component's index in the trigger (its key in `ready`).
    index: usize,
    factory: Arc<InstanceFactory>,
    ready: Arc<ReadyInstances>,
    limits: Limits,
    /// Present when the manifest sets `limits.max_concurrency`.
    concurrency: Option<Arc<Semaphore>>,
}

/// One request's instance, ready to run; `proxy` is `None` when it still has to be
/// instantiated.
struct PreparedCall {
    store: Store<InstanceState>,
    proxy: Option<Proxy>,
    request: Resource<HostIncomingRequest>,
    outparam: Resource<HostResponseOutparam>,
}

impl WasiHttpExecutor {
    pub(crate) fn new(
        spec: &ComponentSpec,
        index: usize,
        component: &Component,
        linker: &Linker<InstanceState>,
        resources: &AppResources,
        ready: Arc<ReadyInstances>,
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
        let grants = ComponentGrants::validate(spec, resources)?;
        Ok(WasiHttpExecutor {
            component: spec.id.as_str().into(),
            index,
            factory: Arc::new(InstanceFactory::new(pre, grants, spec.limits.timeout)),
            ready,
            limits: spec.limits,
            concurrency: spec
                .limits
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
        })
    }

    pub(crate) fn component(&self) -> &Arc<str> {
        &self.component
    }

    /// Runs one request in a fresh instance. A request body that stalls for `body_idle`
    /// while the guest waits for it fails the guest's read, and the request gets 408.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        request_id: &Arc<str>,
        body_idle: Duration,
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
        let faults = Arc::new(BodyFaults::default());
        let limit = self.limits.max_request_body;
        let req = req.map(|body| LimitedBody::new(body, limit, body_idle, faults.clone()));

        let (response_sender, response_receiver) = oneshot::channel();
        let call = match self.prepare(req, request_id, response_sender) {
            Ok(call) => call,
            Err(response) => return *response,
        };
        let (handler_done, handler_outcome) = oneshot::channel();
        let (factory, ready, index) = (self.factory.clone(), self.ready.clone(), self.index);
        let (component, id) = (self.component.clone(), request_id.clone());
        tokio::spawn(async move {
            let used = run_guest(&factory, &ready, &component, call, &id, handler_done).await;
            drop(permit);
            ready.after_request(index, &factory, used).await;
        });

        let failure = match response_receiver.await {
            Ok(Ok(response)) => {
                let mut response =
                    response.map(|body| GuardedBody::new(body, handler_outcome).boxed_unsync());
                set_request_id(&mut response, request_id);
                return response;
            }
            Ok(Err(code)) => {
                tracing::error!(component = %self.component, request_id = %request_id, "the component responded with an error: {code:?}");
                None
            }
            Err(_) => match handler_outcome.await {
                Ok(Err(failure)) => Some(failure),
                Ok(Ok(())) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "the component returned without sending a response");
                    None
                }
                Err(_) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "the request task ended without an outcome");
                    None
                }
            },
        };
        if faults.too_large.load(Ordering::Relaxed) {
            return self.too_large(request_id);
        }
        if faults.stalled.load(Ordering::Relaxed) {
            tracing::warn!(component = %self.component, request_id = %request_id, "the request body stalled (no bytes for {body_idle:?}, or under {MIN_BYTES_PER_WINDOW} bytes in that time); answered 408");
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                request_id,
                &format!("the request body stalled (no bytes for {body_idle:?}, or under {MIN_BYTES_PER_WINDOW} bytes in that time)"),
            );
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

    /// This request's fresh instance (built ahead if one is ready), with the request and
    /// the response slot in its resource table. `Err` is the response to send instead.
    fn prepare(
        &self,
        req: Request<LimitedBody<Incoming>>,
        request_id: &Arc<str>,
        response_sender: oneshot::Sender<GuestResponse>,
    ) -> Result<PreparedCall, Box<Response<HyperOutgoingBody>>> {
        let (mut store, proxy) = match self.ready.take(self.index) {
            Some(FreshInstance { store, proxy }) => (store, Some(proxy)),
            None => (
                self.factory.new_store().map_err(|e| {
                    tracing::error!(component = %self.component, request_id = %request_id, "preparing the instance failed: {e:#}");
                    Box::new(error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        request_id,
                        "the component could not be started",
                    ))
                })?,
                None,
            ),
        };
        store.data_mut().begin_request(request_id.clone());
        self.factory.start_deadline(&mut store);
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
            proxy,
            request,
            outparam,
        })
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

/// Instantiates (unless built ahead) and runs the guest's handler within the deadline; logs
/// any failure and reports the outcome through `handler_done`. Returns the used store, for
/// the caller to drop once the response is out.
async fn run_guest(
    factory: &InstanceFactory,
    ready: &ReadyInstances,
    component: &str,
    call: PreparedCall,
    request_id: &str,
    handler_done: oneshot::Sender<HandlerOutcome>,
) -> Store<InstanceState> {
    let PreparedCall {
        mut store,
        proxy,
        request,
        outparam,
    } = call;
    let timeout = factory.timeout();
    let run = async {
        let proxy = match proxy {
            Some(proxy) => proxy,
            None => instantiate_for_request(factory, ready, &mut store).await?,
        };
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
        failure.log(component, request_id);
    }
    let _ = handler_done.send(outcome);
    store
}
