#!/usr/bin/env python3
"""How much memory a `kite up` keeps after memory-hungry requests: serves the attacker guest
(tests/guests) with a 64 MiB memory limit, sends N requests that each fill 56 MiB of linear
memory, then stays idle, and prints the server's RSS before, right after and after idling.

Usage: bench/idle_rss.py [--kite BIN] [--requests 12] [--idle 3]
"""

import argparse
import tempfile
import time
import urllib.request
from pathlib import Path

from run import ROOT, free_port, server_env, stop_server, wait_ready
import subprocess

ATTACKER = ROOT / "tests" / "guests" / "target" / "wasm32-wasip2" / "release" / "attacker.wasm"


def rss_mib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(l for l in status.splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kite", default=str(ROOT / "target" / "release" / "kite"))
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--idle", type=float, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "kite.toml").write_text(
            'manifest_version = 1\n[app]\nname = "rss"\n[[route]]\npath = "/..."\n'
            f'component = "a"\n[component.a]\nsource = "{ATTACKER}"\n'
            'limits = { memory = "64MiB" }\n')
        port = free_port()
        server = subprocess.Popen(
            [args.kite, "up", "-f", str(work), "--listen", f"127.0.0.1:{port}", "--workers", "1"],
            env=server_env({"RUST_LOG": "warn"}), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, server)
            url = f"http://127.0.0.1:{port}"
            urllib.request.urlopen(f"{url}/").read()
            before = rss_mib(server.pid)
            for _ in range(args.requests):
                urllib.request.urlopen(f"{url}/fill?mb=56").read()
            after = rss_mib(server.pid)
            time.sleep(args.idle)
            idle = rss_mib(server.pid)
            print(f"RSS MiB: before {before:.0f}, after {args.requests} requests {after:.0f}, "
                  f"after {args.idle:g} s idle {idle:.0f}")
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
