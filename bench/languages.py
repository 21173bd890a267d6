#!/usr/bin/env python3
"""Hello world in Rust, Python and JavaScript, served by `kite up` in one run: process start
to first 200 with the compile cache warm, and per-request cost (req/s at c=32, CPU per
request, p50 at c=1), each against the Rust hello (WASI 0.2) measured in the same run.

Usage: bench/languages.py [--reps 3] [--starts 5] [--duration 5] [--warmup 2] [--skip-build]
Builds: kite (release), examples/hello-rust and hello-p3, and the Python and JavaScript
hellos in tests/guests (componentize-py, componentize-js and componentize-qjs from
scripts/guest-tools.sh).
Server pinned to core 0, wrk to core 1, as in bench/run.py.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from run import (ROOT, SERVER_CORE, TARGET, free_port, measure, run, server_env,
                 stop_server)

TOOLS = ROOT / "tests" / "guests" / ".tools"
WIT = TOOLS / "python" / "spin_sdk" / "wit"
OUT = ROOT / "tests" / "guests" / "target" / "bench-languages"


def build_guests():
    run(["cargo", "build", "--release", "-p", "kite-cli"], cwd=ROOT)
    for example in ["hello-rust", "hello-p3"]:
        run(["cargo", "build", "--release", "--target", "wasm32-wasip2"],
            cwd=ROOT / "examples" / example)
    run(["bash", str(ROOT / "scripts" / "guest-tools.sh")])
    OUT.mkdir(parents=True, exist_ok=True)
    python = TOOLS / "python"
    for name, world in [("hello", "wasi:http/proxy@0.2.6"), ("service", "wasi:http/service@0.3.0")]:
        run([str(python / "bin" / "componentize-py"), "-d", str(WIT), "-w", world,
             "componentize", "app", "-o", str(OUT / f"python-{name}.wasm")],
            cwd=ROOT / "tests" / "guests" / "python" / name,
            env=server_env({"PYTHONPATH": str(python)}))
    work = OUT / "js-hello"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(WIT, work / "wit")
    shutil.copy(ROOT / "tests" / "guests" / "js" / "hello" / "app.js", work / "app.js")
    run([str(TOOLS / "js" / "node_modules" / ".bin" / "componentize-js"), "app.js", "--wit", "wit",
         "-n", "wasi:http/proxy@0.2.6", "-o", str(OUT / "js-hello.wasm")], cwd=work)
    work = OUT / "js-service"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(WIT / "deps", work / "wit" / "deps")
    source = ROOT / "tests" / "guests" / "js" / "service"
    shutil.copy(source / "world.wit", work / "wit" / "world.wit")
    run([str(TOOLS / "js" / "node_modules" / ".bin" / "componentize-qjs"), "--wit", "wit",
         "--js", str(source / "app.js"), "-n", "service", "-o", str(OUT / "js-service.wasm")],
        cwd=work)


GUESTS = {
    "Rust, WASI 0.2 (baseline)": ROOT / "examples/hello-rust/target/wasm32-wasip2/release/hello_rust.wasm",
    "Rust, WASI 0.3": ROOT / "examples/hello-p3/target/wasm32-wasip2/release/hello_p3.wasm",
    "Python, WASI 0.2": OUT / "python-hello.wasm",
    "Python, WASI 0.3": OUT / "python-service.wasm",
    "JavaScript, WASI 0.2": OUT / "js-hello.wasm",
    "JavaScript, WASI 0.3 (QuickJS)": OUT / "js-service.wasm",
}


def app_dir(work, name, wasm):
    directory = work / name.replace(" ", "").replace(",", "-").replace(".", "")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kite.toml").write_text(
        'manifest_version = 1\n[app]\nname = "hello"\n[[route]]\npath = "/..."\n'
        'component = "hello"\n[component.hello]\n'
        f'source = "{wasm}"\nenvironment = {{ GREETING = "Hello" }}\n')
    return directory


def kite_cmd(app, port, cache):
    return [str(TARGET / "release" / "kite"), "up", "-f", str(app),
            "--listen", f"127.0.0.1:{port}", "--cache-dir", str(cache)]


def first_200(url, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kite exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.001)
    raise RuntimeError("no 200 in time")


def start_to_first_200(app, cache, starts):
    """Milliseconds from spawning kite to its first 200, the compile cache already warm."""
    times = []
    for _ in range(starts + 1):
        port = free_port()
        started = time.monotonic()
        proc = subprocess.Popen(["taskset", "-c", SERVER_CORE] + kite_cmd(app, port, cache),
                                env=server_env({"RUST_LOG": "warn"}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first_200(f"http://127.0.0.1:{port}/", proc)
            times.append((time.monotonic() - started) * 1e3)
        finally:
            stop_server(proc)
    return statistics.median(times[1:])  # the first start warms the cache


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    if not args.skip_build:
        build_guests()
    work = Path(tempfile.mkdtemp(prefix="kite-languages-"))
    cache = work / "cache"
    apps = {name: app_dir(work, name, wasm) for name, wasm in GUESTS.items()}
    results = {name: [] for name in GUESTS}
    for rep in range(args.reps):
        for name, app in apps.items():
            print(f"rep {rep + 1}/{args.reps}: {name}", file=sys.stderr)
            port = free_port()
            measured = measure(name, kite_cmd(app, port, cache), {"RUST_LOG": "info"}, port, args)
            measured["start_ms"] = start_to_first_200(app, cache, args.starts)
            results[name].append(measured)
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for name, runs in results.items()}
    base = med["Rust, WASI 0.2 (baseline)"]
    print(f"\nreps={args.reps} starts={args.starts} duration={args.duration}s, server core "
          f"{SERVER_CORE}; compile cache warm for every start\n")
    print("| guest | size | start to first 200, ms | req/s c=32 | CPU µs/req | p50 µs c=1 | CPU vs Rust 0.2 |")
    print("|---|---|---|---|---|---|---|")
    for name, m in med.items():
        size = GUESTS[name].stat().st_size / 1e6
        print(f"| {name} | {size:.1f} MB | {m['start_ms']:.1f} | {m['rps32']:,.0f} | "
              f"{m['cpu_us']:.1f} | {m['p50']:.0f} | {m['cpu_us'] / base['cpu_us']:.2f}x |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
