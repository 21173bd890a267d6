#!/usr/bin/env python3
"""`kite serve` at scale: many small apps in one process. Measures, in one run:

- RSS of the empty host, and RSS per idle app above it, with --apps apps deployed
- deploy throughput (apps/s, one client deploying one after another)
- deploy request to the app's first 200 (compile cache warm)
- the first request to an app never requested, and to an app idle past --idle-after
- restart: a host holding every app, from process start to listening, and to a first 200
- requests spread uniformly over --spread apps against requests to one app (req/s at c=32,
  p99), interleaved, server pinned to core 0 and wrk to core 1
- the same spread over --distinct apps whose Wasm differs (each compiled on its own)

Usage: bench/serve.py [--apps 10000] [--spread 1000] [--distinct 100] [--reps 3] [--duration 5]
                      [--skip-build]
Every app is examples/hello-rust, deployed under its own name (app-1, app-2, ...); the
distinct ones (d-1, ...) carry a custom section naming them, so no two share a compilation.
"""

import argparse
import gzip
import hashlib
import http.client
import io
import json
import tarfile
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
KITE = TARGET / "release" / "kite"
HELLO_DIR = ROOT / "examples" / "hello-rust"
SERVER_CORE, LOAD_CORE = "0", "1"
DOMAIN = "kite.localhost"


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def server_env():
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    env.pop("RUST_LIB_BACKTRACE", None)
    env["RUST_LOG"] = "warn"
    return env


def rss_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


class Host:
    """A `kite serve` process on loopback with its own state directory."""

    def __init__(self, state, cache, extra=()):
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, str(KITE), "serve", "--listen", "127.0.0.1:0",
             "--admin-listen", "127.0.0.1:0", "--state-dir", str(state), "--cache-dir",
             str(cache), *extra],
            env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.admin = self.port = None
        for line in self.proc.stdout:
            if line.startswith("admin API on http://"):
                host, port = line.strip().removeprefix("admin API on http://").rsplit(":", 1)
                self.admin = int(port)
            if line.startswith("listening on http://"):
                self.port = int(line.strip().rsplit(":", 1)[1])
                break
        if self.port is None:
            raise RuntimeError("kite serve did not start")
        self.listening = time.perf_counter() - self.started
        self.token = (Path(state) / "admin-token").read_text().strip()
        self.api = http.client.HTTPConnection("127.0.0.1", self.admin)

    def call(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        self.api.request(method, path, body=body, headers=headers)
        response = self.api.getresponse()
        data = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def deploy(self, name, bundle):
        return self.call("POST", f"/v1/apps/{name}/versions", bundle)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def get(port, host, path="/"):
    """One request on a fresh connection: (status, seconds)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", path, headers={"Host": host})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - started


def until_200(port, host, timeout=30):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if get(port, host)[0] == 200:
                return
        except OSError:
            pass
    raise RuntimeError(f"{host} never answered 200")


def to_us(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)$", text).groups()
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def wrk(port, duration, host=None, script=None):
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t2", "-c32", f"-d{duration}s", "--latency"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99": to_us(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
    }


def distinct_bundle(bundle, name):
    """`bundle` with its component made distinct by a custom section naming `name`."""
    source = tarfile.open(fileobj=io.BytesIO(gzip.decompress(bundle)))
    members = {m.name: source.extractfile(m).read() for m in source.getmembers() if m.isfile()}
    index = json.loads(members.pop("kite-bundle.json"))
    section = f"bench-{name}".encode()
    for component, digest in index["components"].items():
        wasm = members.pop(f"components/{digest}.wasm") + bytes([0, 1 + len(section), len(section)]) + section
        digest = hashlib.sha256(wasm).hexdigest()
        members[f"components/{digest}.wasm"] = wasm
        index["components"][component] = digest
    members["kite-bundle.json"] = json.dumps(index).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, data in sorted(members.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def spread_script(path, prefix, count):
    path.write_text(
        "local i = 0\n"
        "request = function()\n"
        f"  i = (i % {count}) + 1\n"
        f"  return wrk.format('GET', '/', {{['Host'] = '{prefix}' .. i .. '.{DOMAIN}'}})\n"
        "end\n")


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=10000)
    parser.add_argument("--spread", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    if not args.skip_build:
        run(["cargo", "build", "--release", "-p", "kite-cli"], cwd=ROOT)
        run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=HELLO_DIR)
    work = Path(tempfile.mkdtemp(prefix="kite-serve-bench-"))
    results = {}
    try:
        bundle_file = work / "hello.tar.gz"
        run([str(KITE), "deploy", "-f", str(HELLO_DIR), "--output", str(bundle_file)],
            stdout=subprocess.DEVNULL)
        bundle = bundle_file.read_bytes()
        cache = work / "cache"
        # Warm the compile cache once, in a host of its own.
        warm = Host(work / "warm-state", cache)
        warm.deploy("warm", bundle)
        warm.stop()

        state = work / "state"
        host = Host(state, cache, ["--idle-after", "2s", "--max-connections", "20000"])
        time.sleep(2)
        empty_rss = rss_kib(host.proc.pid)
        results["empty host RSS"] = f"{empty_rss / 1024:.1f} MiB"

        started = time.perf_counter()
        for i in range(1, args.apps + 1):
            host.deploy(f"app-{i}", bundle)
            if i % 1000 == 0:
                print(f"{i} apps deployed", file=sys.stderr)
        elapsed = time.perf_counter() - started
        results["deploy throughput"] = f"{args.apps / elapsed:.0f} apps/s ({elapsed:.1f} s for {args.apps})"

        time.sleep(3)
        idle_rss = rss_kib(host.proc.pid)
        per_app = (idle_rss - empty_rss) / args.apps
        results[f"RSS with {args.apps} idle apps"] = f"{idle_rss / 1024:.1f} MiB"
        results["RSS per idle app"] = f"{per_app:.1f} KiB"

        # Deploy request to first 200, for apps not deployed before.
        to_first = []
        for i in range(20):
            name = f"fresh-{i}"
            started = time.perf_counter()
            host.deploy(name, bundle)
            until_200(host.port, f"{name}.{DOMAIN}")
            to_first.append(time.perf_counter() - started)
        results["deploy request to first 200 (median of 20)"] = ms(statistics.median(to_first))

        # First request to an app never requested; then a second one.
        first, second = [], []
        for i in range(1, 21):
            hostname = f"app-{i}.{DOMAIN}"
            first.append(get(host.port, hostname)[1])
            second.append(get(host.port, hostname)[1])
        results["first request to a never-requested app (median of 20)"] = ms(statistics.median(first))
        results["second request to it (median of 20)"] = ms(statistics.median(second))
        time.sleep(5)
        after_idle = [get(host.port, f"app-{i}.{DOMAIN}")[1] for i in range(1, 21)]
        results["first request after idling past --idle-after (median of 20)"] = ms(statistics.median(after_idle))

        # Apps with Wasm of their own.
        started = time.perf_counter()
        for i in range(1, args.distinct + 1):
            host.deploy(f"d-{i}", distinct_bundle(bundle, f"d-{i}"))
        elapsed = time.perf_counter() - started
        results[f"deploy of {args.distinct} apps with distinct Wasm (compiled)"] = f"{args.distinct / elapsed:.1f} apps/s"

        # Spread over many apps against one app.
        same, distinct = work / "spread.lua", work / "distinct.lua"
        spread_script(same, "app-", args.spread)
        spread_script(distinct, "d-", args.distinct)
        wrk(host.port, 2, host=f"app-1.{DOMAIN}")
        wrk(host.port, 2, script=same)
        wrk(host.port, 2, script=distinct)
        runs = {"one": [], "same": [], "distinct": []}
        for _ in range(args.reps):
            runs["one"].append(wrk(host.port, args.duration, host=f"app-1.{DOMAIN}"))
            runs["same"].append(wrk(host.port, args.duration, script=same))
            runs["distinct"].append(wrk(host.port, args.duration, script=distinct))
        for name, measured in runs.items():
            if any(r["errors"] for r in measured):
                raise RuntimeError(f"{name}: non-2xx responses: {measured}")
        rps = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
        p99 = {k: statistics.median(r["p99"] for r in v) for k, v in runs.items()}
        results["req/s c=32, one app"] = f"{rps['one']:.0f} (p99 {p99['one']:.0f} µs)"
        results[f"req/s c=32, spread over {args.spread} apps"] = f"{rps['same']:.0f} (p99 {p99['same']:.0f} µs)"
        results["spread / one: req/s"] = f"{rps['same'] / rps['one']:.3f}"
        results["one / spread: p99 (≥ 0.8 wanted)"] = f"{p99['one'] / p99['same']:.3f}"
        results[f"req/s c=32, spread over {args.distinct} apps, distinct Wasm"] = f"{rps['distinct']:.0f} (p99 {p99['distinct']:.0f} µs)"
        results["distinct spread / one: req/s"] = f"{rps['distinct'] / rps['one']:.3f}"
        results["one / distinct spread: p99"] = f"{p99['one'] / p99['distinct']:.3f}"
        loaded_rss = rss_kib(host.proc.pid)
        results["RSS after the load"] = f"{loaded_rss / 1024:.1f} MiB"
        host.stop()

        # Restart with every app.
        host = Host(state, cache)
        listening = host.listening
        until_200(host.port, f"app-{args.apps}.{DOMAIN}")
        results[f"restart with {args.apps + 20 + args.distinct} apps: to listening"] = f"{listening:.2f} s"
        results["restart: to a first 200"] = f"{time.perf_counter() - host.started:.2f} s"
        host.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
