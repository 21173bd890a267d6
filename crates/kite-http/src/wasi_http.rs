//! The wasi:http executor: one fresh instance per request, filled from the component's
//! grants, with its memory limit and deadline, running `wasi:http/incoming-handler` (0.2)
//! or `wasi:http/handler` (0.3).

use crate::executor::{Executor, GuestRequest, InstanceHold, Outcome};
use crate::failure::{error_response, FailureCounts, GuestFailure};
use crate::instances::{instantiate_for_request, FreshInstance, InstanceFactory, ReadyInstances};
use crate::response_body::GuardedBody;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use kite_app::ComponentSpec;
use kite_host::{AppResources, ComponentGrants, InstanceState};
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::Instrument;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::Store;
use wasmtime_wasi_http::handler::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::WasiHttpView;

/// The guest's response, or the error code it answered with instead (as text, for the log).
pub(crate) type GuestResponse = Result<Response<HyperOutgoingBody>, String>;

/// How the guest's handler ended: sent once it returns, traps or runs out of time.
pub(crate) type HandlerOutcome = Result<(), GuestFailure>;

pub(crate) struct WasiHttpExecutor {
    component: Arc<str>,
    /// This component's index in the trigger (its key in `ready`).
    index: usize,
    factory: Arc<InstanceFactory>,
    ready: Arc<ReadyInstances>,
    failures: Arc<FailureCounts>,
}

/// One request's instance, ready to run; `proxy` is `None` when it still has to be
/// instantiated.
struct PreparedCall {
    store: Store<InstanceState>,
    proxy: Option<Proxy>,
    entry: Entry,
}

/// The request as the handler takes it.
pub(crate) enum Entry {
    /// For a 0.2 handler: the request and the response slot, in the store's table.
    Incoming {
        request: Resource<HostIncomingRequest>,
        outparam: Resource<HostResponseOutparam>,
    },
    /// For a 0.3 handler: handed over inside the store's event loop.
    Service {
        request: Box<GuestRequest>,
        respond: oneshot::Sender<GuestResponse>,
    },
}

impl WasiHttpExecutor {
    pub(crate) fn new(
        spec: &ComponentSpec,
        index: usize,
        component: &Component,
        linker: &Linker<InstanceState>,
        resources: &AppResources,
        ready: Arc<ReadyInstances>,
        failures: Arc<FailureCounts>,
    ) -> anyhow::Result<Self> {
        let instance_pre = linker.instantiate_pre(component).map_err(|e| {
            let hint = release_candidate_hint(component, linker.engine()).unwrap_or_default();
            anyhow::anyhow!(
                "component `{}` ({}) cannot be linked: {e:#}{hint}",
                spec.id,
                spec.source.display()
            )
        })?;
        let pre = crate::service::handler_pre(instance_pre).map_err(|e| {
            let hint = release_candidate_hint(component, linker.engine()).unwrap_or_default();
            anyhow::anyhow!(
                "component `{}` ({}) is not an HTTP handler: it must export `wasi:http/incoming-handler@0.2.x` or `wasi:http/handler@0.3.x` ({e:#}){hint}",
                spec.id,
                spec.source.display()
            )
        })?;
        let grants = ComponentGrants::validate(spec, resources)?;
        Ok(WasiHttpExecutor {
            component: spec.id.as_str().into(),
            index,
            factory: Arc::new(InstanceFactory::new(
                pre,
                component.engine(),
                grants,
                spec.limits.timeout,
            )),
            ready,
            failures,
        })
    }
}

#[async_trait::async_trait]
impl Executor for WasiHttpExecutor {
    async fn execute(
        &self,
        request: GuestRequest,
        request_id: &Arc<str>,
        hold: InstanceHold,
    ) -> Outcome {
        let (response_sender, response_receiver) = oneshot::channel();
        let call = match self.prepare(request, request_id, response_sender) {
            Ok(call) => call,
            Err(response) => return Outcome::Response(*response),
        };
        let (handler_done, handler_outcome) = oneshot::channel();
        let (factory, ready, index) = (self.factory.clone(), self.ready.clone(), self.index);
        let (component, id) = (self.component.clone(), request_id.clone());
        let failures = self.failures.clone();
        // The task logs within the request's span (a host of many apps names the app in it).
        tokio::spawn(
            async move {
                let guest = (component.as_ref(), id.as_ref(), failures.as_ref());
                let used = run_guest(&factory, &ready, guest, call, handler_done).await;
                drop(hold);
                ready.after_request(index, &factory, used).await;
            }
            .in_current_span(),
        );
        match response_receiver.await {
            Ok(Ok(response)) => Outcome::Response(
                response.map(|body| GuardedBody::new(body, handler_outcome).boxed_unsync()),
            ),
            Ok(Err(code)) => {
                tracing::error!(component = %self.component, request_id = %request_id, "the component responded with an error: {code}");
                Outcome::Failed(None)
            }
            Err(_) => match handler_outcome.await {
                Ok(Err(failure)) => Outcome::Failed(Some(failure)),
                Ok(Ok(())) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "the component returned without sending a response");
                    Outcome::Failed(None)
                }
                Err(_) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "the request task ended without an outcome");
                    Outcome::Failed(None)
                }
            },
        }
    }
}

impl WasiHttpExecutor {
    /// This request's fresh instance (built ahead if one is ready), with the request and
    /// the response slot in its resource table. `Err` is the response to send instead.
    fn prepare(
        &self,
        req: GuestRequest,
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
        let chain_depth = req
            .extensions()
            .get::<kite_host::ChainDepth>()
            .map_or(0, |depth| depth.0);
        store
            .data_mut()
            .begin_request(request_id.clone(), chain_depth);
        self.factory.start_deadline(&mut store);
        if self.factory.is_service() {
            return Ok(PreparedCall {
                store,
                proxy,
                entry: Entry::Service {
                    request: Box::new(req),
                    respond: response_sender,
                },
            });
        }
        let mut http = store.data_mut().http();
        let request = http.new_incoming_request(Scheme::Http, req).map_err(|e| {
            Box::new(error_response(
                StatusCode::BAD_REQUEST,
                request_id,
                &format!("bad request: {e:#}"),
            ))
        })?;
        let outparam = http
            .new_response_outparam_from_callback(move |response| {
                // The receiver is gone only if the request was abandoned.
                let _ = response_sender.send(response.map_err(|code| format!("{code:?}")));
            })
            .map_err(|e| {
                Box::new(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    request_id,
                    &format!("{e:#}"),
                ))
            })?;
        Ok(PreparedCall {
            store,
            proxy,
            entry: Entry::Incoming { request, outparam },
        })
    }
}

/// Instantiates (unless built ahead) and runs the guest's handler within the deadline; logs
/// any failure and reports the outcome through `handler_done`. Returns the used store, for
/// the caller to drop once the response is out.
async fn run_guest(
    factory: &InstanceFactory,
    ready: &ReadyInstances,
    (component, request_id, failures): (&str, &str, &FailureCounts),
    call: PreparedCall,
    handler_done: oneshot::Sender<HandlerOutcome>,
) -> Store<InstanceState> {
    let PreparedCall {
        mut store,
        proxy,
        entry,
    } = call;
    let timeout = factory.timeout();
    let run = async {
        let proxy = match proxy {
            Some(proxy) => proxy,
            None => instantiate_for_request(factory, ready, &mut store).await?,
        };
        match (proxy, entry) {
            (Proxy::P2(proxy), Entry::Incoming { request, outparam })
                if !factory.is_concurrent() =>
            {
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            }
            (proxy, entry) => crate::service::run_concurrent(&mut store, proxy, entry).await,
        }
    };
    let outcome = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(GuestFailure::from_error(e, timeout)),
        Err(_) => Err(GuestFailure::Deadline(timeout)),
    };
    if let Err(failure) = &outcome {
        failure.report(component, request_id, failures);
    }
    let _ = handler_done.send(outcome);
    store
}

/// What to do about an import of `component` from a WASI release candidate Kite does not
/// serve: a pre-release 0.2 snapshot (`@0.2.0-rc-2023-11-10`, Spin 2.0-era SDKs), or a 0.3
/// candidate that differs from 0.3.0.
fn release_candidate_hint(component: &Component, engine: &wasmtime::Engine) -> Option<String> {
    let component_type = component.component_type();
    let names = || {
        let exports = component_type.exports(engine).map(|(name, _)| name);
        component_type
            .imports(engine)
            .map(|(name, _)| name)
            .chain(exports)
    };
    if let Some(import) = names().find(|name| name.contains("@0.2.0-rc-")) {
        return Some(format!(
            "; it uses `{import}`, from a WASI 0.2 release candidate that Spin 2.0-era SDKs used (spin-sdk 2.x): rebuild it with spin-sdk 3 or newer, or another toolchain that targets WASI 0.2.0"
        ));
    }
    let import = kite_engine::unsupported_release_candidate(names())?;
    Some(format!(
        "; it uses `{import}`, from a WASI 0.3 release candidate Kite does not serve (Kite serves WASI 0.3.0 and the candidates identical to it: {}): rebuild it with a current toolchain (spin-sdk 6 or newer, wasip3 0.5 or newer)",
        kite_engine::served_release_candidates().join(", ")
    ))
}
