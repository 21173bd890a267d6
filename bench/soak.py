#!/usr/bin/env python3
"""Soak: `kite up` (release build) at saturation with hello traffic while a fault mix runs
beside it (traps, loops, memory bombs, host-resource bombs, stack overflows, endless SQL, log
floods, dripping bodies), for --minutes. Reports RSS and open descriptors before, during and
after, and how many hello requests failed. Not part of the test suite.

Usage: bench/soak.py [--minutes 10] [--skip-build]
Needs wrk (apt-get install -y wrk) and the test guests (built here if missing).
"""

import argparse
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from run import ROOT, free_port, server_env, stop_server, wait_ready

GUESTS = ROOT / "tests" / "guests"
GUEST_DIR = GUESTS / "target" / "wasm32-wasip2" / "release"
ENDLESS_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
)
# (method, path, body) of each fault, sent round-robin by the fault threads.
FAULTS = [
    ("GET", "/db/trap", ""),
    ("GET", "/db/loop", ""),
    ("GET", "/evil/fill?mb=64", ""),
    ("GET", "/evil/recurse", ""),
    ("GET", "/evil/fields-bomb?mb=4096", ""),
    ("GET", "/evil/body-bomb?mb=4096", ""),
    ("GET", "/evil/log-flood?lines=5000", ""),
    ("POST", "/db/sql?db=default", ENDLESS_SQL),
    ("DRIP", "/hello", ""),
]


def build(skip):
    if not skip:
        subprocess.run(["cargo", "build", "--release", "-p", "kite-cli"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2"],
                       cwd=GUESTS, check=True)


def manifest(work):
    probe, attacker = GUEST_DIR / "probe.wasm", GUEST_DIR / "attacker.wasm"
    text = f"""manifest_version = 1
[app]
name = "soak"
[[route]]
path = "/hello"
component = "hello"
[[route]]
path = "/evil/..."
component = "evil"
[[route]]
path = "/db/..."
component = "db"
[component.hello]
source = "{probe}"
[component.evil]
source = "{attacker}"
limits = {{ memory = "64MiB", timeout = "3s" }}
[component.db]
source = "{probe}"
sqlite_databases = ["default"]
limits = {{ timeout = "3s" }}
"""
    (work / "kite.toml").write_text(text)


def snapshot(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
    return {"rss_mib": round(rss_kib / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def send(port, method, path, body):
    """One request on a new connection; returns the status, or 0 on a broken connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            if method == "DRIP":
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode())
                for _ in range(3):
                    time.sleep(1)
                    s.sendall(b"x")
                method, body = None, None
            else:
                data = body.encode()
                s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
            return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1") else 0
    except OSError:
        return 0


def fault_loop(port, stop, counts, index):
    i = index
    while not stop.is_set():
        method, path, body = FAULTS[i % len(FAULTS)]
        status = send(port, method, path, body)
        counts[status] = counts.get(status, 0) + 1
        i += 1


def wrk(url, seconds):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests = int(out.split(" requests in")[0].split()[-1])
    errors = 0
    for line in out.splitlines():
        if "Non-2xx" in line or "Socket errors" in line:
            errors += sum(int(x) for x in line.replace(",", " ").split() if x.isdigit())
    return requests, errors, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    build(args.skip_build)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest(work)
        port = free_port()
        server = subprocess.Popen(
            ["taskset", "-c", "0", str(ROOT / "target" / "release" / "kite"), "up", "-f",
             str(work), "--listen", f"127.0.0.1:{port}", "--body-timeout", "2s"],
            env=server_env({"RUST_LOG": "warn"}), stdout=subprocess.DEVNULL,
            stderr=open(work / "kite.log", "w"))
        try:
            wait_ready(port, server)
            send(port, "GET", "/hello", "")
            before = snapshot(server.pid)
            stop, counts, samples = threading.Event(), {}, []
            faults = [threading.Thread(target=fault_loop, args=(port, stop, counts, i))
                      for i in range(4)]
            for t in faults:
                t.start()
            seconds = int(args.minutes * 60)
            hello = {"requests": 0, "errors": 0}
            window = 30
            for _ in range(max(1, seconds // window)):
                requests, errors, _ = wrk(f"http://127.0.0.1:{port}/hello", window)
                hello["requests"] += requests
                hello["errors"] += errors
                samples.append(snapshot(server.pid))
            stop.set()
            for t in faults:
                t.join()
            time.sleep(3)  # idle: memory dirtied by the last instances is returned
            after = snapshot(server.pid)
            report = {
                "minutes": args.minutes, "before": before, "after_idle": after,
                "peak_rss_mib": max(s["rss_mib"] for s in samples),
                "peak_fds": max(s["fds"] for s in samples),
                "hello": hello, "fault_statuses": counts,
                "log_bytes": (work / "kite.log").stat().st_size,
            }
            print(json.dumps(report, indent=2))
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
