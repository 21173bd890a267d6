#!/usr/bin/env bash
# Runs Kite's whole test suite: unit tests, and integration tests that build the guest
# components in tests/guests for wasm32-wasip2 and drive the real `kite` binary on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
