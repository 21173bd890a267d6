//! `kite serve`: a long-lived host for many apps. Starts empty (or with the apps deployed
//! before), serves apps' traffic by Host header and the admin API on a second listener.

use anyhow::Context;
use kite_engine::{EngineOptions, KiteEngine};
use kite_platform::{AdminToken, Platform, PlatformSettings, Quotas, TOKEN_FILE};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Host many apps: deploy, update and remove them at runtime through the admin API
/// (`kite deploy`, `kite apps`), each on its own host name, isolated and within quotas.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address for apps' traffic. Use port 0 to let the OS choose a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Address for the admin API (keep it on loopback or a private network).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3001")]
    pub admin_listen: SocketAddr,

    /// Where the registry, bundles, the admin token and apps' data live [default:
    /// $XDG_DATA_HOME/kite/serve or ~/.local/share/kite/serve].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Apps answer on `<app>.<DOMAIN>` (and any host names they are deployed with).
    /// Names under `localhost` reach this machine without DNS setup.
    #[arg(long, value_name = "DOMAIN", default_value = "kite.localhost")]
    pub domain: String,

    #[command(flatten)]
    pub cache: super::CacheFlags,

    /// Largest number of instances alive at once across all apps (the shared budget).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_instances: u32,

    /// The most linear memory any instance may have; no app's quota goes above it.
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub max_memory: u64,

    /// Default quota: requests of one app served at once.
    #[arg(long, value_name = "N")]
    pub app_max_concurrency: Option<u32>,

    /// Default quota: one app's sustained requests per second.
    #[arg(long, value_name = "N")]
    pub app_requests_per_second: Option<u32>,

    /// Default quota: requests above the sustained rate one app may make at once.
    #[arg(long, value_name = "N")]
    pub app_burst: Option<u32>,

    /// Default quota: linear memory per instance of one app's components.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub app_memory: Option<u64>,

    /// Default quota: the size each of an app's stores and databases may grow to.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub app_store_size: u64,

    /// Default quota: bytes of files in one app's bundle.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub app_bundle_size: u64,

    /// A network no app may connect to, whatever its manifest allows, besides `private`
    /// (loopback, link-local, RFC 1918 and the other internal ranges, always blocked unless
    /// `none` is given): a CIDR range or an address (repeatable).
    #[arg(long = "block-network", value_name = "CIDR|none")]
    pub block_networks: Vec<String>,

    /// The longest deadline any request may have; components asking for more get this.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub max_timeout: Duration,

    /// After an app has had no request for this long, the instances built ahead for it
    /// are dropped, giving their slots back to the shared pool.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub idle_after: Duration,

    /// Most client connections open at once.
    #[arg(long, value_name = "N", default_value_t = 10000)]
    pub max_connections: usize,

    #[command(flatten)]
    pub server: super::ServerFlags,
}

fn parse_size(text: &str) -> Result<u64, String> {
    kite_app::parse_size(text)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    kite_app::parse_duration(text)
}

fn default_state_dir() -> anyhow::Result<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .map(|d| PathBuf::from(d).join("kite/serve"))
        .or_else(|| {
            std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".local/share/kite/serve"))
        })
        .ok_or_else(|| anyhow::anyhow!("no state directory: pass --state-dir"))
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    super::up::raise_open_file_limit();
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => default_state_dir()?,
    };
    let cache_dir = args.cache.dir();
    let engine = KiteEngine::new(&EngineOptions {
        max_memory: args.max_memory,
        max_instances: args.max_instances,
        cache_dir,
        pooling: true,
    })
    .context("creating the WebAssembly engine")?;
    let mut blocked_networks = args
        .block_networks
        .iter()
        .filter(|n| n.as_str() != "none")
        .map(|n| {
            kite_app::BlockedNetwork::parse(n).map_err(|e| anyhow::anyhow!("--block-network: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !args.block_networks.iter().any(|n| n == "none") {
        blocked_networks.push(kite_app::BlockedNetwork::Private);
    }
    let settings = PlatformSettings {
        blocked_networks,
        max_timeout: args.max_timeout,
        state_dir: state_dir.clone(),
        domain: args.domain.trim_matches('.').to_ascii_lowercase(),
        public_port: None,
        default_quotas: Quotas {
            max_concurrency: args.app_max_concurrency,
            memory: args.app_memory,
            requests_per_second: args.app_requests_per_second,
            burst: args.app_burst,
            bundle_size: Some(args.app_bundle_size),
            store_size: Some(args.app_store_size),
        },
        max_memory: args.max_memory,
        max_bundle_files: 10_000,
        idle_after: args.idle_after,
        // A quarter of the slots may wait built ahead; the rest are for requests.
        instances_ahead: (args.max_instances as usize / 4).max(1),
    };
    let listener = TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let admin_listener = TcpListener::bind(args.admin_listen)
        .with_context(|| format!("cannot listen on {} (admin API)", args.admin_listen))?;
    let admin_address = admin_listener.local_addr()?;
    let settings = PlatformSettings {
        public_port: Some(address.port()),
        ..settings
    };
    let platform = Arc::new(Platform::open(settings, engine)?);
    let (token, made) = AdminToken::load_or_create(&state_dir)?;
    let serving = platform.restore()?;
    tracing::info!("{serving} app(s) restored from {}", state_dir.display());
    let host = platform.host.clone();
    let mut out = std::io::stdout().lock();
    if made {
        let _ = writeln!(
            out,
            "admin token (shown once; kept in {}): {}",
            state_dir.join(TOKEN_FILE).display(),
            token.as_str()
        );
    }
    kite_platform::admin::spawn(platform, token, admin_listener)?;
    let _ = writeln!(out, "admin API on http://{admin_address}");
    let _ = writeln!(
        out,
        "apps answer on http://<app>.{}:{}/",
        args.domain,
        address.port()
    );
    let _ = writeln!(out, "listening on http://{address}");
    let _ = out.flush();
    drop(out);

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    super::up::watch_for_shutdown_signals(stop)?;
    let serve_options = args.server.serve_options(args.max_connections);
    kite_http::serve(host, listener, &serve_options, shutdown)?;
    tracing::info!("stopped");
    Ok(())
}
