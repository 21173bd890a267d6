//! Serves a trigger: one current-thread tokio runtime per worker thread, all accepting on
//! the same listener; on shutdown, stop accepting and let in-flight requests finish (bounded).

use crate::access_log;
use crate::trigger::RequestBody;
use crate::trigger::DEFAULT_BODY_IDLE_TIMEOUT;
use crate::write_timeout::WriteTimeout;
use crate::HttpTrigger;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// What answers the requests a server accepts: one app's trigger (`kite up`), or a host of
/// many apps that picks one per request (`kite serve`).
pub trait RequestHandler: Send + Sync + 'static {
    /// Answers one client request.
    fn handle(
        &self,
        req: Request<RequestBody>,
        client: SocketAddr,
    ) -> impl Future<Output = Response<HyperOutgoingBody>> + Send;

    /// Told once, before the first request, how the server runs.
    fn serving(&self, options: &ServeOptions);

    /// Called about once a second on each worker thread.
    fn on_idle_tick(&self);
}

impl RequestHandler for HttpTrigger {
    fn handle(
        &self,
        req: Request<RequestBody>,
        client: SocketAddr,
    ) -> impl Future<Output = Response<HyperOutgoingBody>> + Send {
        HttpTrigger::handle(self, req, client)
    }

    fn serving(&self, options: &ServeOptions) {
        self.set_workers(options.workers);
        self.set_body_idle_timeout(options.body_idle_timeout);
    }

    fn on_idle_tick(&self) {
        HttpTrigger::on_idle_tick(self)
    }
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads, each with its own runtime; defaults to the number of CPUs.
    pub workers: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a request body may send nothing while the guest waits for it, and how long
    /// a response may wait for a client that reads none of it.
    pub body_idle_timeout: Duration,
    /// Connections open at once across all workers; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            max_connections: 1000,
        }
    }
}

/// Serves until `shutdown` turns true, then drains and returns.
pub fn serve<H: RequestHandler>(
    trigger: Arc<H>,
    listener: TcpListener,
    options: &ServeOptions,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    trigger.serving(options);
    let connections = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut workers = Vec::with_capacity(options.workers);
    for index in 0..options.workers.max(1) {
        let listener = listener.try_clone()?;
        let trigger = trigger.clone();
        let shutdown = shutdown.clone();
        let settings = WorkerSettings {
            grace: options.shutdown_timeout,
            header_timeout: options.header_timeout,
            write_timeout: options.body_idle_timeout,
            connections: connections.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("kite-http-{index}"))
            .spawn(move || worker(listener, trigger, shutdown, settings))?;
        workers.push(handle);
    }
    drop(listener);
    let mut result = Ok(());
    for handle in workers {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(anyhow::anyhow!("an HTTP worker thread panicked")),
        }
    }
    result
}

/// How often a worker checks whether it went idle with work left to tidy.
const IDLE_TICK: Duration = Duration::from_secs(1);

async fn idle_ticks<H: RequestHandler>(trigger: Arc<H>) {
    let mut ticks = tokio::time::interval(IDLE_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        trigger.on_idle_tick();
    }
}

/// What every worker shares or is told when serving starts.
struct WorkerSettings {
    grace: Duration,
    header_timeout: Duration,
    /// How long a response may wait for a client that reads nothing.
    write_timeout: Duration,
    /// Places for open connections, shared by all workers.
    connections: Arc<Semaphore>,
}

fn worker<H: RequestHandler>(
    listener: TcpListener,
    trigger: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
    settings: WorkerSettings,
) -> anyhow::Result<()> {
    let WorkerSettings {
        grace,
        header_timeout,
        write_timeout,
        connections,
    } = settings;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(access_log::write_queued_records());
        tokio::spawn(idle_ticks(trigger.clone()));
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        loop {
            // At the connection cap, new connections wait in the listen backlog until one
            // closes (idle ones close after the header timeout).
            let place = tokio::select! {
                place = connections.clone().acquire_owned() => place?,
                _ = shutdown.changed() => break,
            };
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Usually out of file descriptors: back off instead of spinning.
                            tracing::warn!("accepting a connection failed: {e}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let trigger = trigger.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let trigger = trigger.clone();
                        let req = req.map(|body: hyper::body::Incoming| {
                            body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync()
                        });
                        async move { Ok::<_, Infallible>(trigger.handle(req, client).await) }
                    });
                    let stream = WriteTimeout::new(stream, write_timeout);
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _place = place;
                        if let Err(e) = connection.await {
                            tracing::debug!("connection ended with an error: {e}");
                        }
                    });
                }
                _ = shutdown.changed() => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!(
                "requests still in flight after {}s; closing their connections",
                grace.as_secs()
            );
        }
        Ok(())
    })
}
