//! The HTTP trigger for one app: every component compiled once into a pre-instantiated
//! executor at load, a router over the app's routes, and the per-request dispatch.

use crate::access_log::{self, AccessRecord};
use crate::failure::{error_response, set_request_id, FailureCounts};
use crate::gate::ComponentGate;
use crate::instances::{AheadBudget, ReadyInstances};
use crate::request_id::next_request_id;
use crate::router::Router;
use crate::spin_headers::{self, RouteHeaders};
use crate::static_response::StaticBody;
use crate::wagi::{CgiRoute, WagiExecutor};
use crate::wasi_http::WasiHttpExecutor;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use kite_app::{App, Executor, HttpSettings, Route, RoutePattern, Target};
use kite_engine::{ComponentLoadError, EngineKind, KiteEngine, Lease};
use kite_host::{AppResources, CgiState, InstanceState};
use kite_host::{LocalHandler, LocalTarget};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

pub struct HttpTrigger {
    router: Router,
    /// What each route answers with, and its fixed Spin headers; indexed by the router.
    targets: Vec<(RouteTarget, RouteHeaders)>,
    /// One per component and way of running it that some route uses.
    gates: Vec<ComponentGate>,
    settings: HttpSettings,
    /// Components some trigger targets (private routes included), with the gate of the
    /// first such trigger: what `<id>.spin.internal` may name, and where it goes.
    chainable: Vec<(String, usize)>,
    /// The route a chained request is given (`/...`), for Spin's headers.
    chained_route: (RoutePattern, RouteHeaders),
    ready: Arc<ReadyInstances>,
    /// How long a request body may stall while the guest waits for it (set when serving).
    body_idle_timeout: OnceLock<Duration>,
    /// The app's name in access lines, on a host of many apps.
    app_label: Option<Arc<str>>,
    /// Keeps the compiled components shared with other triggers loading the same bytes.
    _leases: Vec<Lease>,
    chain_admission: Option<ChainAdmission>,
}

enum RouteTarget {
    Component {
        /// Index into `gates`.
        gate: usize,
        /// For a CGI program: the route as written and its script name (shared, so a
        /// request only counts references).
        cgi: Option<(Arc<str>, Arc<str>)>,
    },
    Static(StaticBody),
}

/// A request's body as the trigger takes it: from a client connection, or from a component
/// of the app (service chaining).
pub type RequestBody = WasiBody;

/// A request body's idle timeout unless serving sets one.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a trigger fits into a host of many apps.
#[derive(Default)]
pub struct TriggerOptions {
    /// Where guests' failures are counted (e.g. across an app's versions).
    pub failures: Arc<FailureCounts>,
    /// Shared bound on instances built ahead; `None`: only the pool bounds them.
    pub ahead_budget: Option<Arc<AheadBudget>>,
    /// The linkers, made once for every trigger of a host; `None`: made for this one.
    pub linkers: Option<Arc<Linkers>>,
    /// Admits requests the app's components send to the app itself (the host's quotas).
    pub chain_admission: Option<ChainAdmission>,
}

/// Admits one request, returning what to hold while it is served, or the status and reason
/// to refuse it with.
pub type ChainAdmission =
    Arc<dyn Fn() -> Result<Box<dyn std::any::Any + Send>, (StatusCode, String)> + Send + Sync>;

/// What guests are linked against: every import a component may have, and WASI preview 1
/// for CGI programs. Made once per engine and shared by the triggers built on it; the
/// concurrent engine's when a component first needs it.
pub struct Linkers {
    component: Linker<InstanceState>,
    concurrent: OnceLock<Linker<InstanceState>>,
    cgi: wasmtime::Linker<CgiState>,
}

impl Linkers {
    pub fn new(engine: &KiteEngine) -> anyhow::Result<Arc<Self>> {
        let mut component = Linker::<InstanceState>::new(engine.engine());
        kite_host::add_to_linker(&mut component)?;
        let mut cgi = wasmtime::Linker::<CgiState>::new(engine.engine());
        kite_host::add_cgi_to_linker(&mut cgi)?;
        Ok(Arc::new(Linkers {
            component,
            concurrent: OnceLock::new(),
            cgi,
        }))
    }

    /// The linker for components compiled for `kind`'s engine.
    fn component(
        &self,
        engine: &KiteEngine,
        kind: EngineKind,
    ) -> anyhow::Result<&Linker<InstanceState>> {
        match kind {
            EngineKind::Classic => Ok(&self.component),
            EngineKind::Concurrent => {
                if let Some(linker) = self.concurrent.get() {
                    return Ok(linker);
                }
                let mut linker = Linker::<InstanceState>::new(engine.engine_of(kind)?);
                kite_host::add_to_concurrent_linker(&mut linker)?;
                Ok(self.concurrent.get_or_init(|| linker))
            }
        }
    }
}

/// Reported once per component while an app loads (for progress output).
pub struct ComponentLoaded<'a> {
    pub id: &'a str,
    pub from_cache: bool,
    pub elapsed: Duration,
}

impl HttpTrigger {
    /// Compiles (or loads from cache) and links every component of `app`, and plugs the
    /// trigger into `resources` for requests components send to the app (service chaining).
    pub fn prepare(
        app: &App,
        engine: &KiteEngine,
        resources: &AppResources,
        on_loaded: impl FnMut(ComponentLoaded<'_>),
    ) -> anyhow::Result<Arc<Self>> {
        Self::prepare_with(app, engine, resources, TriggerOptions::default(), on_loaded)
    }

    /// As [`Self::prepare`], as one app among many: failures counted where they outlive the
    /// trigger, instances built ahead within a budget shared with other apps.
    pub fn prepare_with(
        app: &App,
        engine: &KiteEngine,
        resources: &AppResources,
        options: TriggerOptions,
        mut on_loaded: impl FnMut(ComponentLoaded<'_>),
    ) -> anyhow::Result<Arc<Self>> {
        let TriggerOptions {
            failures,
            ahead_budget,
            linkers,
            chain_admission,
        } = options;
        let linkers = match linkers {
            Some(linkers) => linkers,
            None => Linkers::new(engine)?,
        };
        let cgi_linker = &linkers.cgi;
        let mut leases = Vec::new();
        let ready = Arc::new(ReadyInstances::new(
            app.components.len(),
            engine.decommits().cloned(),
            ahead_budget,
        ));
        ready.register_with_budget();
        // A gate for each (component, executor) pair some trigger uses, in trigger order.
        let mut gates: Vec<ComponentGate> = Vec::new();
        let concurrency: Vec<_> = app
            .components
            .iter()
            .map(|c| ComponentGate::concurrency_for(&c.limits))
            .collect();
        let mut gate_keys: Vec<(usize, Executor)> = Vec::new();
        // Returns the gate, and for a Wagi program asked for them, the sub-routes it
        // declares (`_routes`).
        let mut gate_for = |index: usize,
                            executor: &Executor,
                            want_routes: bool|
         -> anyhow::Result<(usize, Vec<(String, String)>)> {
            if let Some(gate) = gate_keys
                .iter()
                .position(|(i, e)| *i == index && e == executor)
            {
                return Ok((gate, Vec::new()));
            }
            let mut declared = Vec::new();
            let spec = &app.components[index];
            let component_of = |spec: &kite_app::ComponentSpec| {
                engine
                    .load_component(&spec.source)
                    .map_err(|e| anyhow::anyhow!("component `{}`: {e}", spec.id))
            };
            let (executor_box, lease, from_cache, elapsed): (
                Box<dyn crate::executor::Executor>,
                _,
                _,
                _,
            ) = match executor {
                Executor::WasiHttp => {
                    let loaded = component_of(spec)?;
                    let executor = WasiHttpExecutor::new(
                        spec,
                        index,
                        &loaded.component,
                        linkers.component(engine, loaded.kind)?,
                        resources,
                        ready.clone(),
                        failures.clone(),
                    )?;
                    (
                        Box::new(executor),
                        loaded.lease,
                        loaded.from_cache,
                        loaded.elapsed,
                    )
                }
                Executor::Wagi(settings) => match engine.load_module(&spec.source) {
                    Ok(loaded) => {
                        let executor = WagiExecutor::new(
                            spec,
                            &loaded.module,
                            cgi_linker,
                            resources,
                            settings,
                            failures.clone(),
                        )?;
                        if want_routes {
                            declared = executor.declared_routes()?;
                        }
                        (
                            Box::new(executor),
                            loaded.lease,
                            loaded.from_cache,
                            loaded.elapsed,
                        )
                    }
                    // A WASI 0.2 command component (`wasi:cli/run`) is a CGI program too.
                    Err(ComponentLoadError::NotCoreModule(_)) => {
                        let loaded = component_of(spec)?;
                        let executor = WagiExecutor::new_command(
                            spec,
                            &loaded.component,
                            linkers.component(engine, loaded.kind)?,
                            resources,
                            settings,
                            failures.clone(),
                        )?;
                        (
                            Box::new(executor),
                            loaded.lease,
                            loaded.from_cache,
                            loaded.elapsed,
                        )
                    }
                    Err(e) => anyhow::bail!("component `{}`: {e}", spec.id),
                },
            };
            leases.push(lease);
            gates.push(ComponentGate::new(
                &spec.id,
                spec.limits,
                concurrency[index].clone(),
                executor_box,
            ));
            gate_keys.push((index, executor.clone()));
            on_loaded(ComponentLoaded {
                id: &spec.id,
                from_cache,
                elapsed,
            });
            Ok((gates.len() - 1, declared))
        };
        let component_index = |id: &str| {
            app.components
                .iter()
                .position(|c| c.id == id)
                .ok_or_else(|| anyhow::anyhow!("no component {id:?}"))
        };
        let mut targets = Vec::new();
        let mut routes = Vec::new();
        let mut chain_gates = Vec::new();
        let mut declared_routes = Vec::new();
        for trigger in &app.triggers {
            let mut declared = Vec::new();
            let gate = match &trigger.target {
                Target::Component(id) => {
                    let index = component_index(id)?;
                    let want_routes = matches!(trigger.route, Route::Path(_));
                    let (gate, routes) = gate_for(index, &trigger.executor, want_routes)?;
                    if !chain_gates.iter().any(|(known, _)| known == id) {
                        chain_gates.push((id.clone(), gate));
                    }
                    if let Executor::Wagi(settings) = &trigger.executor {
                        for (path, entrypoint) in routes {
                            let sub = Executor::Wagi(kite_app::WagiSettings {
                                argv: settings.argv.clone(),
                                entrypoint,
                            });
                            declared.push((path, gate_for(index, &sub, false)?.0));
                        }
                    }
                    Some(gate)
                }
                Target::Static(_) => None,
            };
            let Route::Path(pattern) = &trigger.route else {
                continue;
            };
            // Sub-routes a Wagi program declared, below its route (added after every route
            // the manifest writes, so those win a tie).
            for (path, gate) in declared {
                let text = format!("{}{path}", pattern.component_route().trim_end_matches('/'));
                let sub = RoutePattern::parse(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "route {text:?}, declared by the `_routes` of the program at {}: {e}",
                        pattern.as_str()
                    )
                })?;
                // The declaring route's target is the next one pushed.
                let owner = (targets.len(), pattern.as_str().to_string());
                declared_routes.push((sub, gate, owner));
            }
            let target = match (&trigger.target, gate) {
                (Target::Static(response), _) => RouteTarget::Static(StaticBody::new(response)?),
                (Target::Component(_), Some(gate)) => RouteTarget::Component {
                    gate,
                    cgi: matches!(trigger.executor, Executor::Wagi(_)).then(|| {
                        (
                            Arc::from(pattern.as_str()),
                            Arc::from(pattern.component_route()),
                        )
                    }),
                },
                (Target::Component(id), None) => anyhow::bail!("no gate for component {id:?}"),
            };
            routes.push((pattern.clone(), targets.len()));
            targets.push((target, RouteHeaders::new(pattern)));
        }
        // A declared route may only take paths its program's own route already had: it
        // cannot take over another route's paths by being more specific.
        let manifest_router = Router::new(routes.clone());
        for (sub, gate, (owner, owner_route)) in declared_routes {
            let sample = sample_path(&sub);
            if manifest_router.route(&sample).map(|(index, _)| index) != Some(owner) {
                anyhow::bail!(
                    "route {:?}, declared by the `_routes` of the program at {owner_route:?}, covers paths (such as {sample:?}) that another route of the app serves",
                    sub.as_str()
                );
            }
            let cgi = Some((Arc::from(sub.as_str()), Arc::from(sub.component_route())));
            routes.push((sub.clone(), targets.len()));
            targets.push((
                RouteTarget::Component { gate, cgi },
                RouteHeaders::new(&sub),
            ));
        }
        // A component no trigger targets is still compiled and checked (as a wasi:http
        // handler), so a mistake in it shows at start, not when a route is added.
        for index in 0..app.components.len() {
            if !chain_gates
                .iter()
                .any(|(id, _)| *id == app.components[index].id)
            {
                gate_for(index, &Executor::WasiHttp, false)?;
            }
        }
        let trigger = Arc::new(HttpTrigger {
            router: Router::new(routes),
            targets,
            gates,
            settings: app.http,
            chainable: chain_gates,
            chained_route: {
                let pattern = RoutePattern::parse("/...").expect("a valid route");
                let headers = RouteHeaders::new(&pattern);
                (pattern, headers)
            },
            ready,
            body_idle_timeout: OnceLock::new(),
            app_label: resources.app_label.clone(),
            _leases: leases,
            chain_admission,
        });
        let handler: Arc<dyn LocalHandler> = trigger.clone();
        resources.local.connect(Arc::downgrade(&handler));
        Ok(trigger)
    }

    /// Serving on `workers` threads: keep one instance of each component ahead per thread.
    pub fn set_workers(&self, workers: usize) {
        self.ready.keep_per_component(workers.max(1));
    }

    /// How long a request body may stall; the first call wins.
    pub fn set_body_idle_timeout(&self, timeout: Duration) {
        let _ = self.body_idle_timeout.set(timeout);
    }

    /// Called about once a second on each worker thread.
    pub fn on_idle_tick(&self) {
        self.ready.flush_decommits_if_idle();
    }

    /// Drops the instances built ahead for this app, giving their slots back (a host of
    /// many apps calls this for apps gone idle).
    pub fn release_instances_ahead(&self) {
        self.ready.release_all();
    }

    /// `(route, target)` pairs, most specific first, in the order they are matched; the
    /// target is a component id or `(static response)`.
    pub fn route_table(&self) -> Vec<(String, String)> {
        self.router
            .patterns()
            .map(|(pattern, i)| {
                let target = match &self.targets[i].0 {
                    RouteTarget::Component { gate, .. } => {
                        self.gates[*gate].component().to_string()
                    }
                    RouteTarget::Static(_) => "(static response)".to_string(),
                };
                (pattern.as_str().to_string(), target)
            })
            .collect()
    }

    /// Serves a client's request (or one a component sent to the app itself) through the
    /// app's public routes.
    pub async fn handle(
        &self,
        mut req: Request<RequestBody>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let request_id = next_request_id();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let (response, component) = match self.router.route(uri.path()) {
            Some((index, found)) => match &self.targets[index] {
                (RouteTarget::Component { gate, cgi }, headers) => {
                    let gate = &self.gates[*gate];
                    // A CGI program is told about its route in its environment instead.
                    if self.settings.spin_headers && cgi.is_none() {
                        spin_headers::set(&mut req, headers, &found, client);
                    }
                    if let Some((matched_route, script_name)) = cgi {
                        req.extensions_mut().insert(CgiRoute {
                            matched_route: matched_route.clone(),
                            script_name: script_name.clone(),
                            raw_path_info: found.tail.to_string(),
                            client,
                        });
                    }
                    let response = gate.handle(req, &request_id, self.body_idle()).await;
                    (response, Some(gate.component().clone()))
                }
                (RouteTarget::Static(body), _) => (body.response(), None),
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
        self.finish(response, started, method, uri, component, request_id)
    }

    /// Serves a request a component sent to `<component>.spin.internal`: straight to that
    /// component, whatever its routes, with Spin's headers for a chained request (the
    /// route `/...`, the whole path as path info, client `0.0.0.0:0`).
    async fn handle_chained(
        &self,
        component: &str,
        mut req: Request<RequestBody>,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let request_id = next_request_id();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let gate = self
            .chainable
            .iter()
            .find(|(id, _)| id == component)
            .map(|(_, gate)| &self.gates[*gate]);
        let Some(gate) = gate else {
            let response = error_response(
                StatusCode::NOT_FOUND,
                &request_id,
                &format!("the app has no component `{component}`"),
            );
            return self.finish(response, started, method, uri, None, request_id);
        };
        let (pattern, headers) = &self.chained_route;
        if let Some(found) = pattern.matches(uri.path()) {
            spin_headers::set(&mut req, headers, &found, CHAINED_CLIENT);
        }
        let response = gate.handle(req, &request_id, self.body_idle()).await;
        let component = Some(gate.component().clone());
        self.finish(response, started, method, uri, component, request_id)
    }

    fn body_idle(&self) -> Duration {
        *self
            .body_idle_timeout
            .get()
            .unwrap_or(&DEFAULT_BODY_IDLE_TIMEOUT)
    }

    /// Adds the request id where the app wants it and writes the access-log record.
    fn finish(
        &self,
        mut response: Response<HyperOutgoingBody>,
        started: Instant,
        method: http::Method,
        uri: http::Uri,
        component: Option<Arc<str>>,
        request_id: Arc<str>,
    ) -> Response<HyperOutgoingBody> {
        if self.settings.request_id_header {
            set_request_id(&mut response, &request_id);
        }
        access_log::log(AccessRecord {
            method,
            uri,
            status: response.status(),
            elapsed: started.elapsed(),
            app: self.app_label.clone(),
            component,
            request_id,
        });
        response
    }
}

/// A path `pattern` matches: parameters as `x`, the wildcard tail left off.
fn sample_path(pattern: &RoutePattern) -> String {
    let path: String = pattern
        .component_route()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            if segment.starts_with(':') {
                "/x".to_string()
            } else {
                format!("/{segment}")
            }
        })
        .collect();
    if path.is_empty() {
        "/".to_string()
    } else {
        path
    }
}

/// The client address a chained request reports (Spin's).
const CHAINED_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl LocalHandler for HttpTrigger {
    fn has_component(&self, component: &str) -> bool {
        self.chainable.iter().any(|(id, _)| id == component)
    }

    fn handle(
        self: Arc<Self>,
        target: LocalTarget,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>> {
        Box::pin(async move {
            // A request a component sends to its own app counts against the app's quotas
            // like one from a client.
            let _admitted = match &self.chain_admission {
                None => None,
                Some(admit) => match admit() {
                    Ok(admitted) => Some(admitted),
                    Err((status, why)) => {
                        let request_id = next_request_id();
                        return Ok(error_response(status, &request_id, &why));
                    }
                },
            };
            Ok(match target {
                LocalTarget::App => HttpTrigger::handle(&self, request, CHAINED_CLIENT).await,
                LocalTarget::Component(id) => self.handle_chained(&id, request).await,
            })
        })
    }
}
