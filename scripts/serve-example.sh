#!/usr/bin/env bash
# Quickstart: installs the wasm32-wasip2 Rust target if needed, builds Kite and the
# hello-rust example, and serves it on http://127.0.0.1:3000 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

exec cargo run -p kite-cli -- up --build -f examples/hello-rust "$@"
