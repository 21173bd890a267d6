//! Log setup: `RUST_LOG`-style filtering (default `info`), logs on stderr so stdout carries
//! only what `kite` itself reports (addresses, routes).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init() {
    // Wasmtime's WASI crate warns on some guest calls; a guest must not be able to fill
    // the log through it (guest output has its own caps).
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new("info,wasmtime_wasi=error"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    kite_http::use_ansi_colours(ansi);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true)
        .init();
}
