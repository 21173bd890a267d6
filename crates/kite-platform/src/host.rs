//! The running apps of a host and the request path into them: the Host header picks the
//! app, its quotas admit the request, and its current version's trigger serves it.

use crate::quotas::{QuotaGate, Refusal};
use crate::runtime::AppRuntime;
use crate::stats::AppStats;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kite_engine::DecommitFlusher;
use kite_http::{FailureCounts, RequestBody, RequestHandler, ServeOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// One deployed app while the host runs.
pub struct LiveApp {
    pub name: Arc<str>,
    runtime: ArcSwap<AppRuntime>,
    /// Shared with the app's versions, which admit requests the app sends itself.
    quota: Arc<ArcSwap<QuotaGate>>,
    pub stats: AppStats,
    /// Guests' traps and timeouts, across versions.
    pub failures: Arc<FailureCounts>,
    /// Seconds since the host started, at this app's last request.
    last_request: AtomicU64,
    /// The app's request count (`stats.answered()`) when the instances built ahead were
    /// last dropped: an idle app is tidied once, not at every sweep.
    released_at: AtomicU64,
    /// Second (since the host started, plus one) of the last refusal logged: refusals are
    /// logged at most once a second per app, with how many there were, so a flood cannot
    /// turn into a flood of log lines.
    refusal_logged: AtomicU64,
    /// Refusals counted when the last one was logged.
    refusals_at_log: AtomicU64,
}

impl LiveApp {
    pub fn new(name: &str, runtime: AppRuntime, quota: QuotaGate) -> Self {
        let cell = runtime.quota.clone();
        cell.store(Arc::new(quota));
        LiveApp {
            name: name.into(),
            failures: runtime.failures.clone(),
            runtime: ArcSwap::from_pointee(runtime),
            quota: cell,
            stats: AppStats::default(),
            last_request: AtomicU64::new(0),
            released_at: AtomicU64::new(0),
            refusal_logged: AtomicU64::new(0),
            refusals_at_log: AtomicU64::new(0),
        }
    }

    /// The version serving new requests.
    pub fn runtime(&self) -> Arc<AppRuntime> {
        self.runtime.load_full()
    }

    /// Makes `runtime` serve every request that starts from now on; requests already
    /// running finish on the version they started on.
    pub fn activate(&self, runtime: AppRuntime) {
        self.runtime.store(Arc::new(runtime));
    }

    pub fn set_quota(&self, quota: QuotaGate) {
        self.quota.store(Arc::new(quota));
    }

    pub fn quota(&self) -> Arc<QuotaGate> {
        self.quota.load_full()
    }

    /// The app's quota gate as its versions see it.
    pub fn quota_cell(&self) -> Arc<ArcSwap<QuotaGate>> {
        self.quota.clone()
    }

    async fn serve(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        client: SocketAddr,
        now: u64,
    ) -> Response<HyperOutgoingBody> {
        self.last_request.store(now, Ordering::Relaxed);
        let quota = self.quota.load();
        let admission = match quota.admit() {
            Ok(admission) => admission,
            Err(refusal) => {
                self.stats.count_refusal(refusal);
                return self.refused(refusal, &quota, now);
            }
        };
        let in_flight = InFlight::enter(self);
        let runtime = self.runtime.load_full();
        let started = Instant::now();
        let response = runtime.trigger.handle(req, client).await;
        self.stats
            .count_response(response.status(), started.elapsed());
        // The request is in flight, and holds its place, until its body has been sent.
        response.map(|body| {
            Held {
                body,
                _held: (admission, runtime, in_flight),
            }
            .boxed_unsync()
        })
    }

    fn refused(
        &self,
        refusal: Refusal,
        quota: &QuotaGate,
        now: u64,
    ) -> Response<HyperOutgoingBody> {
        let (status, why) = refusal.describe(&self.name, &quota.quotas);
        self.log_refusal(&why, status, now);
        let mut response = text_response(status, &why);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}

impl LiveApp {
    /// Logs a refusal, unless one was logged this second already: then the next line, in
    /// a later second, says how many went unlogged.
    fn log_refusal(&self, why: &str, status: StatusCode, now: u64) {
        let last = self.refusal_logged.load(Ordering::Relaxed);
        if last == now + 1
            || self
                .refusal_logged
                .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let total = self.stats.refusals();
        let before = self.refusals_at_log.swap(total, Ordering::Relaxed);
        let unlogged = total.saturating_sub(before).saturating_sub(1);
        if unlogged > 0 {
            tracing::warn!(
                "{why}; answered {} (and {unlogged} more refusals since the last line)",
                status.as_u16()
            );
        } else {
            tracing::warn!("{why}; answered {}", status.as_u16());
        }
    }
}

/// Counts a request in its app's `in_flight` until dropped.
struct InFlight(Arc<LiveApp>);

impl InFlight {
    fn enter(app: &Arc<LiveApp>) -> Self {
        app.stats.enter();
        InFlight(app.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.leave();
    }
}

/// A plain-text response of one line.
pub fn text_response(status: StatusCode, message: &str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response body that keeps something alive until it is finished or dropped.
struct Held<T> {
    body: HyperOutgoingBody,
    _held: T,
}

impl<T: Unpin> http_body::Body for Held<T> {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Which app each host name and app name means; replaced whole on every change.
#[derive(Default, Clone)]
struct Directory {
    by_host: HashMap<Box<str>, Arc<LiveApp>>,
    by_name: HashMap<Box<str>, (Arc<LiveApp>, Vec<String>)>,
}

/// Every running app, routed by Host header.
pub struct Host {
    directory: ArcSwap<Directory>,
    serve: OnceLock<ServeOptions>,
    started: Instant,
    decommits: Option<Arc<DecommitFlusher>>,
    /// Seconds since start at the last sweep for idle apps (one worker sweeps per second).
    last_sweep: AtomicU64,
    /// An app's instances built ahead are dropped after this long without a request: idle
    /// apps hold no instance slots.
    idle_after: Duration,
}

impl Host {
    pub fn new(decommits: Option<Arc<DecommitFlusher>>, idle_after: Duration) -> Self {
        Host {
            idle_after,
            directory: ArcSwap::default(),
            serve: OnceLock::new(),
            started: Instant::now(),
            decommits,
            last_sweep: AtomicU64::new(0),
        }
    }

    /// How apps' triggers are told to run (the server's options, once serving).
    pub fn serve_options(&self) -> ServeOptions {
        self.serve.get().cloned().unwrap_or_default()
    }

    pub fn app(&self, name: &str) -> Option<Arc<LiveApp>> {
        self.directory
            .load()
            .by_name
            .get(name)
            .map(|(app, _)| app.clone())
    }

    /// Every live app with its host names, in name order.
    pub fn apps(&self) -> Vec<(Arc<LiveApp>, Vec<String>)> {
        let mut apps: Vec<_> = self.directory.load().by_name.values().cloned().collect();
        apps.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        apps
    }

    /// Routes `hosts` to `app` (replacing what its name had before). The caller has checked
    /// that no other app has these hosts.
    pub fn insert(&self, app: Arc<LiveApp>, hosts: Vec<String>) {
        let mut directory = Directory::clone(&self.directory.load());
        remove_from(&mut directory, &app.name);
        for host in &hosts {
            directory.by_host.insert(host.as_str().into(), app.clone());
        }
        directory
            .by_name
            .insert(app.name.as_ref().into(), (app, hosts));
        self.directory.store(Arc::new(directory));
    }

    pub fn remove(&self, name: &str) -> Option<Arc<LiveApp>> {
        let mut directory = Directory::clone(&self.directory.load());
        let removed = remove_from(&mut directory, name);
        self.directory.store(Arc::new(directory));
        removed
    }

    fn seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Frees the instance slots of apps that have had no request for a while.
    fn release_idle_apps(&self) {
        let now = self.seconds();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now == last
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Runs on a worker thread once a second over every app: touches only atomics for
        // apps already tidied.
        for (app, _) in self.directory.load().by_name.values() {
            let requests = app.stats.answered();
            if requests == app.released_at.load(Ordering::Relaxed) {
                continue;
            }
            let idle_since = app.last_request.load(Ordering::Relaxed);
            if now.saturating_sub(idle_since) >= self.idle_after.as_secs().max(1) {
                app.runtime.load().trigger.release_instances_ahead();
                // Tidied for good only once nothing runs that could build another.
                if app.stats.in_flight() == 0 {
                    app.released_at.store(requests, Ordering::Relaxed);
                }
            }
        }
    }
}

fn remove_from(directory: &mut Directory, name: &str) -> Option<Arc<LiveApp>> {
    let (app, hosts) = directory.by_name.remove(name)?;
    for host in hosts {
        // Only the app's own entries: a host may belong to another app by now.
        if directory
            .by_host
            .get(host.as_str())
            .is_some_and(|owner| &*owner.name == name)
        {
            directory.by_host.remove(host.as_str());
        }
    }
    Some(app)
}

/// The host a request is for: its absolute URI's, or its `Host` header's, without port or
/// trailing dot, lowercase (copied only if it was not). A malformed one names no app.
fn request_host<B>(req: &Request<B>) -> Option<std::borrow::Cow<'_, str>> {
    let authority = match req.uri().authority() {
        Some(authority) => authority.as_str(),
        None => req.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        // An IPv6 literal keeps its brackets, as `Authority::host` gives it.
        Some(rest) => &authority[..rest.find(']')? + 2],
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let host = host.trim_end_matches('.');
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    })
}

impl RequestHandler for Host {
    async fn handle(
        &self,
        req: Request<RequestBody>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let app = request_host(&req).and_then(|host| {
            let directory = self.directory.load();
            directory.by_host.get(host.as_ref()).cloned()
        });
        match app {
            Some(app) => {
                let span = tracing::info_span!(crate::logs::APP_SPAN, app = %app.name);
                app.serve(req, client, self.seconds())
                    .instrument(span)
                    .await
            }
            None => text_response(
                StatusCode::NOT_FOUND,
                "no app is deployed at this host name",
            ),
        }
    }

    fn serving(&self, options: &ServeOptions) {
        let _ = self.serve.set(options.clone());
        for (app, _) in self.directory.load().by_name.values() {
            let runtime = app.runtime();
            runtime.trigger.set_workers(options.workers);
            runtime
                .trigger
                .set_body_idle_timeout(options.body_idle_timeout);
        }
    }

    fn on_idle_tick(&self) {
        if let Some(decommits) = &self.decommits {
            decommits.flush_if_idle();
        }
        self.release_idle_apps();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(header: &str) -> Option<String> {
        let req = Request::get("/").header("host", header).body(()).unwrap();
        request_host(&req).map(|h| h.into_owned())
    }

    #[test]
    fn the_host_is_the_header_without_port_or_trailing_dot_in_lowercase() {
        assert_eq!(
            host("shop.kite.localhost").as_deref(),
            Some("shop.kite.localhost")
        );
        assert_eq!(
            host("Shop.Example.COM.:8080").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(host("[::1]:3000").as_deref(), Some("[::1]"));
        assert_eq!(host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("[::1").as_deref(), None);
        let absolute = Request::get("http://user@A.example:81/x").body(()).unwrap();
        assert_eq!(request_host(&absolute).as_deref(), Some("a.example"));
    }
}
