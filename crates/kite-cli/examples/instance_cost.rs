//! What one request's instance costs Kite without any HTTP server: a fresh store filled from
//! the component's grants, instantiation, the handler run on an in-memory request, the
//! response body read to its end, and the store dropped, repeated on one thread.
//!
//! Usage: `cargo run --release -p kite-cli --example instance_cost -- APP_DIR [ITERATIONS]`
//! (the app's first component; its stores on SQLite under a temporary state directory).
//! Prints the thread's CPU time per iteration: the floor under Kite's per-request cost on
//! this machine, to set beside a native server's whole request (see docs/performance.md).

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use kite_app::{ResolvedVariables, RuntimeConfig, VariableSources};
use kite_engine::{EngineOptions, KiteEngine};
use kite_host::{AppResources, ComponentGrants, InstanceState, KeyValueStores, SqliteDatabases};
use kite_http::{FreshInstance, InstanceFactory};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::WasiHttpView;

// The allocator `kite` itself uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let app_dir = PathBuf::from(args.next().context("usage: instance_cost APP_DIR [N]")?);
    let iterations: u32 = args.next().map_or(Ok(20_000), |n| n.parse())?;

    let app = kite_app::load_app(&app_dir.join("kite.toml"))?;
    let spec = app.components.first().context("the app has no component")?;
    let state_dir = tempfile::tempdir()?;
    let config = RuntimeConfig::default();
    let sources = VariableSources::load(Vec::new(), &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let resources = AppResources::new(
        ResolvedVariables::resolve(&app.variables, &sources).map_err(|e| anyhow::anyhow!("{e}"))?,
        KeyValueStores::open(&app, state_dir.path(), &config, &[])?,
        SqliteDatabases::open(&app, state_dir.path(), &config, &[])?,
        config.blocked_networks.clone(),
        config.client_tls.clone(),
    )?;
    let engine = KiteEngine::new(&EngineOptions {
        max_memory: spec.limits.memory,
        max_instances: 16,
        cache_dir: kite_engine::CompileCache::default_dir(),
        pooling: true,
    })?;
    let mut linker = Linker::<InstanceState>::new(engine.engine());
    kite_host::add_to_linker(&mut linker)?;
    let component = engine.load_component(&spec.source)?.component;
    let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(linker.instantiate_pre(&component)?)?;
    let grants = ComponentGrants::validate(spec, &resources)?;
    let factory = InstanceFactory::new(
        ProxyPre::P2(pre),
        engine.engine(),
        grants,
        spec.limits.timeout,
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for _ in 0..iterations / 10 {
            one_request(&factory).await?;
        }
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        for _ in 0..iterations {
            one_request(&factory).await?;
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(iterations);
        println!(
            "{iterations} instances of `{}`: {:.1} µs CPU, {:.1} µs wall each",
            spec.id,
            per(thread_cpu_time() - cpu),
            per(wall.elapsed())
        );
        anyhow::Ok(())
    })
}

/// One request's whole instance life, as the server runs it (minus the network): the
/// server builds the instance ahead, hands it the request, runs the handler and drops it.
async fn one_request(factory: &InstanceFactory) -> anyhow::Result<()> {
    let FreshInstance { mut store, proxy } = factory
        .build()
        .await
        .context("an instance could not be built")?;
    let Proxy::P2(proxy) = proxy else {
        anyhow::bail!("instance_cost measures WASI 0.2 handlers");
    };
    store.data_mut().begin_request("bench".into(), 0);
    factory.start_deadline(&mut store);
    let request = http::Request::get("http://localhost/")
        .body(Empty::<Bytes>::new().map_err(|never| -> ErrorCode { match never {} }))?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let mut view = store.data_mut().http();
    let request = view.new_incoming_request(Scheme::Http, request)?;
    let outparam = view.new_response_outparam(sender)?;
    proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut store, request, outparam)
        .await?;
    let response = receiver
        .await?
        .map_err(|code| anyhow::anyhow!("{code:?}"))?;
    response.into_body().collect().await?;
    drop(store);
    Ok(())
}

/// This thread's time on a CPU so far, from the scheduler's nanosecond count.
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    Duration::from_nanos(nanos.unwrap_or(0))
}
