#!/usr/bin/env bash
# Profiles `kite up` (release) serving examples/hello-rust under wrk load: perf record
# with cpu-clock on the pinned server core, then a report of the hottest symbols.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out=bench/results
mkdir -p "$out"
port=3077
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
RUST_LOG="${KITE_LOG:-info}" taskset -c 0 "$target/release/kite" up -f examples/hello-rust \
    --listen "127.0.0.1:$port" > /dev/null 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
taskset -c 1 wrk -t2 -c32 -d2s "http://127.0.0.1:$port/" > /dev/null
perf record -e cpu-clock -F 2000 -g -p "$server" -o "$out/perf.data" -- sleep 5 > /dev/null 2>&1 &
recorder=$!
taskset -c 1 wrk -t2 -c32 -d5s "http://127.0.0.1:$port/"
wait $recorder
perf report -i "$out/perf.data" --no-children --percent-limit 0.7 --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' > "$out/profile.txt"
head -40 "$out/profile.txt"
