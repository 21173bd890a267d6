//! One module per `kite` subcommand.

pub mod apps;
pub mod build;
pub mod client;
pub mod deploy;
pub mod login;
pub mod new;
pub mod serve;
pub mod up;

use std::path::PathBuf;
use std::time::Duration;

/// `-f DIR|FILE`, shared by commands that read an app.
#[derive(clap::Args, Debug, Clone)]
pub struct AppLocation {
    /// The app's directory (holding kite.toml, or a Spin app's spin.toml) or manifest file.
    #[arg(
        short = 'f',
        long = "file",
        visible_alias = "from",
        value_name = "DIR|FILE",
        default_value = "."
    )]
    pub path: PathBuf,
}

impl AppLocation {
    pub fn load(&self) -> anyhow::Result<kite_app::App> {
        Ok(kite_app::load_app(&self.path)?)
    }
}

/// Where compiled components are cached, shared by `kite up` and `kite serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct CacheFlags {
    /// Directory for compiled components [default: $KITE_CACHE_DIR, $XDG_CACHE_HOME/kite or ~/.cache/kite].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile every component afresh and do not write the compile cache.
    #[arg(long, alias = "disable-cache", conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

impl CacheFlags {
    /// The compile cache's directory, or `None` without a cache.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(kite_engine::CompileCache::default_dir)
        }
    }
}

/// How the HTTP server runs, shared by `kite up` and `kite serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerFlags {
    /// HTTP worker threads, each with its own event loop [default: number of CPUs].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// After Ctrl-C, how long in-flight requests may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long a client may take to send a request's headers; an idle keep-alive
    /// connection is closed after it too.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// How long a request body may send nothing (or less than 1 KiB) while the component
    /// waits for it (then the component's read fails and the client gets 408), and how long
    /// a response may wait for a client that reads none of it (then the connection closes).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
}

impl ServerFlags {
    /// The server's options, with at most `max_connections` client connections open.
    pub fn serve_options(&self, max_connections: usize) -> kite_http::ServeOptions {
        kite_http::ServeOptions {
            workers: self
                .workers
                .unwrap_or_else(|| kite_http::ServeOptions::default().workers),
            shutdown_timeout: self.shutdown_timeout,
            header_timeout: self.header_timeout,
            body_idle_timeout: self.body_timeout,
            max_connections,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    kite_app::parse_duration(text)
}
