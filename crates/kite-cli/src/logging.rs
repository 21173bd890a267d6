//! Log setup: `RUST_LOG`-style filtering (default `info`), logs on stderr so stdout carries
//! only what `kite` itself reports (addresses, routes); for a host of many apps, each app's
//! lines are copied to whoever tails that app's log.

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Sets up logging; `per_app_tails` for `kite serve`.
pub fn init(per_app_tails: bool) {
    // Wasmtime's WASI crate warns on some guest calls; a guest must not be able to fill
    // the log through it (guest output has its own caps).
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new("info,wasmtime_wasi=error"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    kite_http::use_ansi_colours(ansi);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true);
    let tails = per_app_tails.then_some(kite_platform::logs::LogTail);
    if per_app_tails {
        kite_platform::logs::tap_access_log();
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(tails)
        .init();
}
