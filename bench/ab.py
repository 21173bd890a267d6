#!/usr/bin/env python3
"""Paired A/B comparison of two `kite up` variants: both serve the same app at the same time,
pinned to the same core, each loaded by its own wrk (c=16) on the other core; CPU per request
is read for each from /proc. Whatever else the machine does at that moment slows both alike,
so the B/A ratio is stable to about 1 % where back-to-back runs on this VM drift by 20-40 %.

Usage: bench/ab.py --a BIN [--a-env K=V ...] --b BIN [--b-env K=V ...]
                   [--app DIR] [--b-app DIR] [--reps 5] [--duration 4] [--warmup 2]
Example: measure what the access log costs
    bench/ab.py --a target/release/kite --b target/release/kite --b-env RUST_LOG=warn
Absolute figures are not comparable with bench/run.py's (two servers share the core); the
ratio is the result.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from run import (ROOT, SERVER_CORE, cpu_seconds, free_port, server_env, stop_server,
                 wait_ready, wrk)


def start(binary, app, env, work):
    port = free_port()
    cmd = ["taskset", "-c", SERVER_CORE, binary, "up", "-f", str(app),
           "--listen", f"127.0.0.1:{port}", "--state-dir", str(work)]
    proc = subprocess.Popen(cmd, env=server_env({"RUST_LOG": "info", **env}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, f"http://127.0.0.1:{port}/"


def load_both(urls, duration):
    """Runs one wrk per URL at the same time; returns their results in order."""
    results = [None] * len(urls)

    def one(i):
        results[i] = wrk(urls[i], 16, 1, duration)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def pair(args, work):
    variants = [(args.a, args.app, args.a_env), (args.b, args.b_app or args.app, args.b_env)]
    procs = []
    try:
        for i, (binary, app, env) in enumerate(variants):
            state = work / f"state-{i}"
            shutil.rmtree(state, ignore_errors=True)
            procs.append(start(binary, app, dict(e.split("=", 1) for e in env), state))
        urls = [url for _, url in procs]
        load_both(urls, args.warmup)
        before = [cpu_seconds(p.pid) for p, _ in procs]
        loads = load_both(urls, args.duration)
        used = [cpu_seconds(p.pid) - b for (p, _), b in zip(procs, before)]
        if any(load["errors"] for load in loads):
            raise RuntimeError("non-2xx responses during the run")
        return [u / max(load["requests"], 1) * 1e6 for u, load in zip(used, loads)]
    finally:
        for p, _ in procs:
            stop_server(p)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="kite binary A (the reference)")
    parser.add_argument("--b", required=True, help="kite binary B")
    parser.add_argument("--a-env", action="append", default=[], metavar="K=V")
    parser.add_argument("--b-env", action="append", default=[], metavar="K=V")
    parser.add_argument("--app", default=str(ROOT / "examples" / "kv-counter-rust"))
    parser.add_argument("--b-app", help="a different app for B (default: --app)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    ratios = []
    work = Path(tempfile.mkdtemp(prefix="kite-ab-"))
    try:
        for rep in range(args.reps):
            a, b = pair(args, work)
            ratios.append(b / a)
            print(f"rep {rep + 1}/{args.reps}: A {a:.1f} µs/req, B {b:.1f} µs/req, B/A {b / a:.3f}",
                  file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"B/A CPU per request: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {args.reps} reps)")


if __name__ == "__main__":
    main()
