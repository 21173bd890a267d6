#!/usr/bin/env python3
"""Kite's load benchmark: a hello-world wasi:http component served by `kite up` (as a WASI
0.2 handler, and the same as a 0.3 one), by `wasmtime serve -S cli` (when a `wasmtime` binary
is on PATH) and, as the baseline, a native hyper server; all in one run, interleaved, server
pinned to core 0 and wrk to core 1.

Usage: bench/run.py [--scenario hello|kv] [--reps 3] [--duration 5] [--warmup 2] [--skip-build]
Prints a markdown table (medians over reps) and the ratios to the baseline.

The kv scenario serves examples/kv-counter-rust (an atomic get + increment + set per request) from
Kite on SQLite and on Redis, against bench/native-kv doing the same on the same backends. Each
repetition also measures Kite's instance floor (the `instance_cost` example: one request's
instance cycle, with no server) for hello-world and the kv-counter, and the native hello
server (what HTTP costs at the least), and reports the best ratio Kite could reach: native's
whole request over Kite's instance floor plus native's HTTP cost.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
HELLO_DIR = ROOT / "examples" / "hello-rust"
HELLO_WASM = HELLO_DIR / "target" / "wasm32-wasip2" / "release" / "hello_rust.wasm"
HELLO_P3_DIR = ROOT / "examples" / "hello-p3"
NATIVE_DIR = ROOT / "bench" / "native-hello"
KV_DIR = ROOT / "examples" / "kv-counter-rust"
NATIVE_KV_DIR = ROOT / "bench" / "native-kv"
SERVER_CORE, LOAD_CORE = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, **kw)


def build(scenario):
    run(["cargo", "build", "--release", "-p", "kite-cli"], cwd=ROOT)
    if scenario == "hello":
        run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=HELLO_DIR)
        run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=HELLO_P3_DIR)
        run(["cargo", "build", "--release"], cwd=NATIVE_DIR)
    else:
        run(["cargo", "build", "--release", "-p", "kite-cli", "--example", "instance_cost"],
            cwd=ROOT)
        run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=HELLO_DIR)
        run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=KV_DIR)
        run(["cargo", "build", "--release"], cwd=NATIVE_KV_DIR)
        run(["cargo", "build", "--release"], cwd=NATIVE_DIR)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(extra=None):
    env = dict(os.environ)
    # Backtrace capture changes what a server costs; none of the servers gets it.
    env.pop("RUST_BACKTRACE", None)
    env.pop("RUST_LIB_BACKTRACE", None)
    env.update(extra or {})
    return env


def servers(port, kite_log):
    kite = TARGET / "release" / "kite"
    native = NATIVE_DIR / "target" / "release" / "native-hello"
    addr = f"127.0.0.1:{port}"
    yield "native hyper", [str(native), addr], {}
    yield "kite up", [str(kite), "up", "-f", str(HELLO_DIR), "--listen", addr], {"RUST_LOG": kite_log}
    yield "kite up, WASI 0.3 hello", [str(kite), "up", "-f", str(HELLO_P3_DIR), "--listen", addr], {"RUST_LOG": kite_log}
    wasmtime = subprocess.run(["which", "wasmtime"], capture_output=True, text=True).stdout.strip()
    if wasmtime:
        yield "wasmtime serve -S cli", [
            wasmtime, "serve", "-S", "cli", "--env", "GREETING=Hello from Kite",
            "--addr", addr, str(HELLO_WASM)], {}


def kv_servers(port, kite_log, work, redis_url):
    kite = TARGET / "release" / "kite"
    native = NATIVE_KV_DIR / "target" / "release" / "native-kv"
    addr = f"127.0.0.1:{port}"
    config = work / "redis-runtime.toml"
    config.write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_url}"\n')
    yield "native kv, SQLite", [str(native), addr, "sqlite", str(work / "native.sqlite")], {}
    yield "kite up kv-counter, SQLite", [str(kite), "up", "-f", str(KV_DIR), "--listen", addr,
                                         "--state-dir", str(work / "kite-state")], {"RUST_LOG": kite_log}
    yield "native kv, Redis", [str(native), addr, "redis", redis_url], {}
    yield "kite up kv-counter, Redis", [str(kite), "up", "-f", str(KV_DIR), "--listen", addr,
                                        "--runtime-config", str(config)], {"RUST_LOG": kite_log}
    # What serving HTTP costs at the least: no server can do with less than this.
    native_hello = NATIVE_DIR / "target" / "release" / "native-hello"
    yield "native hello (HTTP alone)", [str(native_hello), addr], {}


def start_redis():
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", LOAD_CORE, "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, f"redis://127.0.0.1:{port}"


def wait_ready(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def to_us(text):
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not match:
        raise RuntimeError(f"unexpected latency from wrk: {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000}[unit]


def wrk(url, connections, threads, duration, latency=False):
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s"]
    if latency:
        cmd.append("--latency")
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(errors.group(1)) if errors else 0
    if latency:
        result["p50"] = to_us(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
        result["p99"] = to_us(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    return result


def stop_server(proc):
    """Asks a server to shut down (SIGINT), killing it if it has not within 15 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(name, cmd, env, port, args):
    proc = subprocess.Popen(["taskset", "-c", SERVER_CORE] + cmd, env=server_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        url = f"http://127.0.0.1:{port}/"
        wrk(url, 32, 2, args.warmup)
        cpu_before = cpu_seconds(proc.pid)
        c32 = wrk(url, 32, 2, args.duration)
        cpu_per_request = (cpu_seconds(proc.pid) - cpu_before) / max(c32["requests"], 1) * 1e6
        c1 = wrk(url, 1, 1, args.duration, latency=True)
        if c32["errors"] or c1["errors"]:
            raise RuntimeError(f"{name}: non-2xx responses during the run")
        return {"rps32": c32["rps"], "cpu_us": cpu_per_request, "rps1": c1["rps"],
                "p50": c1["p50"], "p99": c1["p99"]}
    finally:
        stop_server(proc)


def instance_floor(app_dir, iterations=20000):
    """CPU µs of one request's instance cycle for the app's component, with no server."""
    out = subprocess.run(["taskset", "-c", SERVER_CORE,
                          str(TARGET / "release" / "examples" / "instance_cost"), str(app_dir),
                          str(iterations)], env=server_env(), check=True, capture_output=True,
                         text=True).stdout
    return float(re.search(r"([0-9.]+) µs CPU", out).group(1))


FLOORS = {"floor: hello-world instance": HELLO_DIR, "floor: kv-counter instance, SQLite": KV_DIR}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["hello", "kv"], default="hello")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--kite-log", default="info",
                        help="RUST_LOG for kite (default info: one log line per request)")
    args = parser.parse_args()
    if not args.skip_build:
        build(args.scenario)
    results = {}
    redis = None
    work = Path(tempfile.mkdtemp(prefix="kite-bench-"))
    try:
        if args.scenario == "kv":
            redis, redis_url = start_redis()
        for rep in range(args.reps):
            port = free_port()
            if args.scenario == "kv":
                candidates = kv_servers(port, args.kite_log, work, redis_url)
            else:
                candidates = servers(port, args.kite_log)
            for name, cmd, env in candidates:
                print(f"rep {rep + 1}/{args.reps}: {name}", file=sys.stderr)
                results.setdefault(name, []).append(measure(name, cmd, env, port, args))
                time.sleep(0.5)
            if args.scenario == "kv":
                for name, app_dir in FLOORS.items():
                    print(f"rep {rep + 1}/{args.reps}: {name}", file=sys.stderr)
                    results.setdefault(name, []).append({"cpu_us": instance_floor(app_dir)})
    finally:
        if redis:
            redis.kill()
    if args.scenario == "kv":
        report_kv(results, args)
        return

    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for name, runs in results.items()}
    base = med["native hyper"]
    print(f"\nreps={args.reps} duration={args.duration}s warmup={args.warmup}s "
          f"server core {SERVER_CORE}, wrk core {LOAD_CORE}, kite RUST_LOG={args.kite_log}\n")
    print("| server | req/s c=32 | CPU µs/req | req/s c=1 | p50 µs c=1 | p99 µs c=1 | added p50 vs native |")
    print("|---|---|---|---|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m['rps32']:,.0f} | {m['cpu_us']:.1f} | {m['rps1']:,.0f} | "
              f"{m['p50']:.0f} | {m['p99']:.0f} | {m['p50'] - base['p50']:+.0f} |")
    if "wasmtime serve -S cli" in med:
        ratio = med["kite up"]["rps32"] / med["wasmtime serve -S cli"]["rps32"]
        print(f"\nkite / wasmtime serve throughput at c=32: {ratio:.2f}x (target >= 1.6x)")
    print(f"kite / native throughput at c=32: {med['kite up']['rps32'] / base['rps32']:.2f}x")
    p3 = med["kite up, WASI 0.3 hello"]
    print(f"kite WASI 0.3 / 0.2 hello: throughput {p3['rps32'] / med['kite up']['rps32']:.2f}x, "
          f"CPU per request {p3['cpu_us'] / med['kite up']['cpu_us']:.2f}x, "
          f"p50 c=1 {p3['p50'] - med['kite up']['p50']:+.0f} µs")
    print(f"kite added p50 latency at c=1: {med['kite up']['p50'] - base['p50']:.0f} µs (target <= 20 µs)")


def report_kv(results, args):
    floors = {name: statistics.median(r["cpu_us"] for r in results.pop(name)) for name in FLOORS}
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for name, runs in results.items()}
    print(f"\nscenario kv: reps={args.reps} duration={args.duration}s warmup={args.warmup}s "
          f"server core {SERVER_CORE}, wrk and redis-server core {LOAD_CORE}, kite RUST_LOG={args.kite_log}\n")
    print("| server | req/s c=32 | CPU µs/req | req/s c=1 | p50 µs c=1 | p99 µs c=1 |")
    print("|---|---|---|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m['rps32']:,.0f} | {m['cpu_us']:.1f} | {m['rps1']:,.0f} | "
              f"{m['p50']:.0f} | {m['p99']:.0f} |")
    for backend in ("SQLite", "Redis"):
        ratio = med[f"kite up kv-counter, {backend}"]["rps32"] / med[f"native kv, {backend}"]["rps32"]
        print(f"kite / native throughput on {backend} at c=32: {ratio:.2f}x (target >= 0.5x)")
    http = med["native hello (HTTP alone)"]["cpu_us"]
    hello, counter = floors.values()
    print("\nKite's instance floor (store, instantiation, handler, teardown; no server, no network):")
    for name, cpu in floors.items():
        print(f"  {name}: {cpu:.1f} µs CPU")
    print(f"best ratio Kite could reach, with its own HTTP costing what native hello's does "
          f"({http:.1f} µs) and the kv call on Redis nothing:")
    print(f"  SQLite: {med['native kv, SQLite']['cpu_us'] / (counter + http):.2f}x "
          f"(native's whole request / (kv-counter instance floor + native hello))")
    print(f"  Redis: {med['native kv, Redis']['cpu_us'] / (hello + http):.2f}x "
          f"(native's whole request / (hello-world instance floor + native hello))")


if __name__ == "__main__":
    main()
