//! The HTTP trigger for one app: every component compiled once into a pre-instantiated
//! executor at load, a router over the app's routes, and the per-request dispatch.

use crate::access_log::{self, AccessRecord};
use crate::failure::{error_response, set_request_id};
use crate::gate::ComponentGate;
use crate::instances::ReadyInstances;
use crate::request_id::next_request_id;
use crate::router::Router;
use crate::spin_headers;
use crate::static_response::StaticBody;
use crate::wasi_http::WasiHttpExecutor;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use kite_app::{App, HttpSettings, Target};
use kite_engine::KiteEngine;
use kite_host::{AppResources, InstanceState};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub struct HttpTrigger {
    router: Router,
    /// What each route answers with, indexed by the router.
    targets: Vec<RouteTarget>,
    /// One per component, in the app's component order.
    gates: Vec<ComponentGate>,
    settings: HttpSettings,
    ready: Arc<ReadyInstances>,
    /// How long a request body may stall while the guest waits for it (set when serving).
    body_idle_timeout: OnceLock<Duration>,
}

enum RouteTarget {
    /// Index into `gates`.
    Component(usize),
    Static(StaticBody),
}

/// A request body's idle timeout unless serving sets one.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reported once per component while an app loads (for progress output).
pub struct ComponentLoaded<'a> {
    pub id: &'a str,
    pub from_cache: bool,
    pub elapsed: Duration,
}

impl HttpTrigger {
    /// Compiles (or loads from cache) and links every component of `app`.
    pub fn prepare(
        app: &App,
        engine: &KiteEngine,
        resources: &AppResources,
        mut on_loaded: impl FnMut(ComponentLoaded<'_>),
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::<InstanceState>::new(engine.engine());
        kite_host::add_to_linker(&mut linker)?;
        let mut gates = Vec::with_capacity(app.components.len());
        let ready = Arc::new(ReadyInstances::new(
            app.components.len(),
            engine.decommits().cloned(),
        ));
        for (index, spec) in app.components.iter().enumerate() {
            let loaded = engine
                .load_component(&spec.source)
                .map_err(|e| anyhow::anyhow!("component `{}`: {e}", spec.id))?;
            let executor = WasiHttpExecutor::new(
                spec,
                index,
                &loaded.component,
                &linker,
                resources,
                ready.clone(),
            )?;
            gates.push(ComponentGate::new(
                &spec.id,
                spec.limits,
                Box::new(executor),
            ));
            on_loaded(ComponentLoaded {
                id: &spec.id,
                from_cache: loaded.from_cache,
                elapsed: loaded.elapsed,
            });
        }
        let mut targets = Vec::new();
        let mut routes = Vec::new();
        for (pattern, target) in app.routes() {
            let target = match target {
                Target::Component(id) => RouteTarget::Component(
                    app.components
                        .iter()
                        .position(|c| &c.id == id)
                        .ok_or_else(|| anyhow::anyhow!("route {pattern:?}: no component {id:?}"))?,
                ),
                Target::Static(response) => RouteTarget::Static(StaticBody::new(response)?),
            };
            routes.push((pattern.clone(), targets.len()));
            targets.push(target);
        }
        Ok(HttpTrigger {
            router: Router::new(routes),
            targets,
            gates,
            settings: app.http,
            ready,
            body_idle_timeout: OnceLock::new(),
        })
    }

    /// Serving on `workers` threads: keep one instance of each component ahead per thread.
    pub(crate) fn set_workers(&self, workers: usize) {
        self.ready.keep_per_component(workers.max(1));
    }

    /// How long a request body may stall; the first call wins.
    pub(crate) fn set_body_idle_timeout(&self, timeout: Duration) {
        let _ = self.body_idle_timeout.set(timeout);
    }

    /// Called about once a second on each worker thread.
    pub(crate) fn on_idle_tick(&self) {
        self.ready.flush_decommits_if_idle();
    }

    /// `(route, target)` pairs, most specific first, in the order they are matched; the
    /// target is a component id or `(static response)`.
    pub fn route_table(&self) -> Vec<(String, String)> {
        self.router
            .patterns()
            .map(|(pattern, i)| {
                let target = match &self.targets[i] {
                    RouteTarget::Component(gate) => self.gates[*gate].component().to_string(),
                    RouteTarget::Static(_) => "(static response)".to_string(),
                };
                (pattern.as_str().to_string(), target)
            })
            .collect()
    }

    pub(crate) async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let request_id = next_request_id();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let body_idle = *self
            .body_idle_timeout
            .get()
            .unwrap_or(&DEFAULT_BODY_IDLE_TIMEOUT);
        let (mut response, component) = match self.router.route(uri.path()) {
            Some((index, pattern, found)) => match &self.targets[index] {
                RouteTarget::Component(gate) => {
                    let gate = &self.gates[*gate];
                    spin_headers::set(&mut req, pattern, &found, client);
                    let response = gate.handle(req, &request_id, body_idle).await;
                    (response, Some(gate.component().clone()))
                }
                RouteTarget::Static(body) => (body.response(), None),
            },
            None => (
                error_response(
                    StatusCode::NOT_FOUND,
                    &request_id,
                    &format!("no route matches {}", uri.path()),
                ),
                None,
            ),
        };
        if self.settings.request_id_header {
            set_request_id(&mut response, &request_id);
        }
        access_log::log(AccessRecord {
            method,
            uri,
            status: response.status(),
            elapsed: started.elapsed(),
            component,
            request_id,
        });
        response
    }
}
