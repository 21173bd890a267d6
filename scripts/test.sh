#!/usr/bin/env bash
# Runs Kite's whole test suite: unit tests, and integration tests that build the guest
# components in tests/guests for wasm32-wasip2 and drive the real `kite` binary on loopback
# (and real redis-server, PostgreSQL, MariaDB and mosquitto servers, openssl, and clang with
# wasi-libc for the C example, installed here with apt-get if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        rustup target add "$target"
    fi
done

# The Redis, PostgreSQL, MySQL and MQTT tests start their own servers on free loopback ports.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
if ! command -v postgres >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then
    missing+=(mariadb-server)
fi
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
# The TLS tests use `openssl s_server` as an HTTPS server that demands client certificates.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# examples/wagi-c is built with Debian's clang and wasi-libc.
if ! command -v clang >/dev/null 2>&1 || [ ! -f /usr/lib/wasm32-wasi/libc.a ] \
    || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    missing+=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
