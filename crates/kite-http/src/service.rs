//! Running a handler on the concurrent engine: a WASI 0.3 `wasi:http/handler` (or a 0.2
//! handler whose imports are async) inside its store's event loop, until every task it
//! started, its response body's writer included, has finished.

use crate::response_body::DeadlineBody;
use crate::wasi_http::{Entry, GuestResponse};
use http_body_util::BodyExt;
use kite_host::InstanceState;
use wasmtime::component::{Accessor, InstancePre};
use wasmtime::Store;
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};
use wasmtime_wasi_http::WasiHttpView;

/// The handler a component exports: `wasi:http/handler@0.3.x` when it runs on the
/// concurrent engine and exports one, else `wasi:http/incoming-handler@0.2.x`.
pub(crate) fn handler_pre(
    pre: InstancePre<InstanceState>,
) -> anyhow::Result<ProxyPre<InstanceState>> {
    if pre.engine().get_concurrency_support() {
        if let Ok(service) = ServicePre::new(pre.clone()) {
            return Ok(ProxyPre::P3(service));
        }
    }
    Ok(ProxyPre::P2(
        wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)?,
    ))
}

/// Runs the request in `store`'s event loop; returns once the handler and every task it
/// spawned are done (the caller bounds this with the deadline).
pub(crate) async fn run_concurrent(
    store: &mut Store<InstanceState>,
    proxy: Proxy,
    entry: Entry,
) -> wasmtime::Result<()> {
    store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            match (proxy, entry) {
                (Proxy::P3(service), Entry::Service { request, respond }) => {
                    serve(accessor, &service, *request, respond).await?;
                }
                (Proxy::P2(proxy), Entry::Incoming { request, outparam }) => {
                    proxy
                        .wasi_http_incoming_handler()
                        .func_handle()
                        .call_concurrent(accessor, (request, outparam))
                        .await?;
                }
                _ => wasmtime::bail!("the request was prepared for another kind of handler"),
            }
            std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
            Ok(())
        })
        .await?
}

/// Reports how reading the request body ended, to the response body's end.
type RequestIo = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
>;

/// Hands the request to a 0.3 handler and its response (or error code) to `respond`. The
/// response body streams from the guest while the event loop keeps running.
async fn serve(
    accessor: &Accessor<InstanceState>,
    service: &Service,
    request: crate::executor::GuestRequest,
    respond: tokio::sync::oneshot::Sender<GuestResponse>,
) -> wasmtime::Result<()> {
    let (request, request_io) = accessor.with(|mut access| {
        let http = access.get().http();
        let (request, io) = wasmtime_wasi_http::p3::Request::from_http(http.hooks, request);
        // Boxed: the future is `'static`, but its type names the hooks' borrow.
        let io: RequestIo = Box::pin(io);
        (request, io)
    });
    match service.handle(accessor, request).await? {
        Ok(response) => {
            let (response, deadline) = accessor.with(|mut access| {
                let deadline = access.get().deadline();
                response
                    .into_http(&mut access, request_io)
                    .map(|response| (response, deadline))
            })?;
            // The body may be one the host streams (an outbound response handed through),
            // which would outlive the instance: it still ends at the deadline.
            let response = match deadline {
                Some(deadline) => {
                    response.map(|body| DeadlineBody::new(body, deadline).boxed_unsync())
                }
                None => response,
            };
            // The receiver is gone only if the request was abandoned.
            let _ = respond.send(Ok(response));
        }
        Err(code) => {
            let _ = respond.send(Err(format!("{code:?}")));
        }
    }
    Ok(())
}
