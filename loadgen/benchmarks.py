#!/usr/bin/env python3
"""Regenerates the side-by-side table of docs/BENCHMARKS.md.

Runs every scenario of wse-loadgen against three servers, interleaved, for several
repetitions, each run on a freshly started server process:

- ``ours``: this repository's ``wse_server`` (``pip install ./pybindings``) under
  ``loadgen/bench_server.py``;
- ``orig``: the original ``wse-server`` 2.5.1 from PyPI under the same script;
- ``rust``: the runtime directly (``wse-loadgen serve``), no Python.

Both Python servers run on the same interpreter (pyenv's 3.12: the original needs >= 3.12).
Setup, once::

    ~/.pyenv/versions/3.12.1/bin/python -m venv target/bench-ours
    target/bench-ours/bin/pip install ./pybindings
    ~/.pyenv/versions/3.12.1/bin/python -m venv target/bench-orig
    target/bench-orig/bin/pip install wse-server==2.5.1
    cargo build --release -p wse-loadgen

Then ``python3 loadgen/benchmarks.py --reps 5`` appends every result to
``target/bench/results.jsonl`` and rewrites the table between the markers in
docs/BENCHMARKS.md with medians per server and the ratio ours/original.
``--render-only`` rebuilds the table from an existing results file (the run behind the
published table is kept in ``loadgen/results/``: ``--results loadgen/results/2026-11-27.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = Path(os.environ.get("WSE_LOADGEN", ROOT / "target" / "release" / "wse-loadgen"))
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"

# name -> (loadgen arguments, {metric key: (label, unit, better)})
SCENARIOS: dict[str, tuple[list[str], dict[str, tuple[str, str, str]]]] = {
    "fanout-1k": (
        ["--users", "50", "fanout", "--subscribers", "1000", "--messages", "1000", "--size", "100"],
        {
            "deliveries_per_s": ("fan-out 1,000 subscribers: deliveries/s", "/s", "higher"),
            "server_cpu_us_per_delivery": ("fan-out 1,000: server CPU per delivery", "µs", "lower"),
            "lost": ("fan-out 1,000: lost deliveries", "", "lower"),
        },
    ),
    "fanout-10k": (
        ["--users", "100", "fanout", "--subscribers", "9900", "--messages", "100", "--size", "100"],
        {
            "deliveries_per_s": ("fan-out 9,900 subscribers: deliveries/s", "/s", "higher"),
            "server_cpu_us_per_delivery": ("fan-out 9,900: server CPU per delivery", "µs", "lower"),
            "lost": ("fan-out 9,900: lost deliveries", "", "lower"),
        },
    ),
    "fanout-paced": (
        ["--users", "50", "fanout", "--subscribers", "1000", "--messages", "250", "--size", "100",
         "--rate", "50"],
        {
            "e2e_p50_ms": ("paced fan-out (50 msg/s, 1,000 subs): e2e p50", "ms", "lower"),
            "e2e_p99_ms": ("paced fan-out (50 msg/s, 1,000 subs): e2e p99", "ms", "lower"),
        },
    ),
    "inbound": (
        ["--users", "50", "inbound", "--connections", "100", "--messages", "2000"],
        {
            "drained_per_s": ("inbound: messages/s drained into Python", "/s", "higher"),
            "server_cpu_s": ("inbound: server CPU for 200,000 messages", "s", "lower"),
            "lost": ("inbound: messages lost (of 200,000)", "", "lower"),
        },
    ),
    "handshake": (
        ["handshake", "--connections", "5000", "--concurrency", "50"],
        {
            "handshakes_per_s": ("handshakes/s (JWT, concurrency 50)", "/s", "higher"),
            "server_cpu_us_per_handshake": ("server CPU per handshake", "µs", "lower"),
            "handshake_p50_ms": ("handshake p50", "ms", "lower"),
            "handshake_p99_ms": ("handshake p99", "ms", "lower"),
        },
    ),
    "rtt": (
        ["rtt", "--connections", "10", "--pings", "1000"],
        {
            "rtt_p50_ms": ("RTT ping/PONG p50", "ms", "lower"),
            "rtt_p99_ms": ("RTT ping/PONG p99", "ms", "lower"),
        },
    ),
    "idle": (
        ["--users", "100", "idle", "--connections", "9900"],
        {
            "rss_per_connection_kb": ("RSS per idle connection (9,900 held)", "KB", "lower"),
            "fds_per_connection": ("file descriptors per connection", "", "lower"),
        },
    ),
}
SERVERS = ("ours", "orig", "rust")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(impl: str, port: int) -> list[str]:
    if impl == "rust":
        return [str(LOADGEN), "serve", "--port", str(port)]
    python = ROOT / "target" / f"bench-{impl}" / "bin" / "python"
    return [str(python), str(ROOT / "loadgen" / "bench_server.py"), "--impl", impl,
            "--port", str(port)]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def run_one(impl: str, scenario: str, results: Path, log: Path) -> dict | None:
    port = free_port()
    args, _ = SCENARIOS[scenario]
    with open(log, "a") as logf:
        logf.write(f"\n===== {impl} {scenario} port {port}\n")
        logf.flush()
        server = subprocess.Popen(server_command(impl, port), stdout=logf, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            wait_port(port, server)
            time.sleep(0.5)
            cmd = [str(LOADGEN), "--url", f"ws://127.0.0.1:{port}/wse", "--timeout", "120", *args]
            logf.write("+ " + " ".join(cmd) + "\n")
            logf.flush()
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            logf.write(done.stdout[-4000:] + done.stderr[-4000:])
            line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                print(f"  {impl:4} {scenario}: FAILED (see {log})", flush=True)
                return None
            result = json.loads(line[len("RESULT "):])
            result.update(server=impl, bench=scenario, at=time.strftime("%Y-%m-%dT%H:%M:%S"))
            with open(results, "a") as f:
                f.write(json.dumps(result) + "\n")
            keys = SCENARIOS[scenario][1]
            shown = ", ".join(f"{k}={result.get(k)!r:.10}" for k in keys)
            print(f"  {impl:4} {scenario}: {shown}", flush=True)
            return result
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"  {impl:4} {scenario}: FAILED ({e})", flush=True)
            logf.write(f"FAILED: {e}\n")
            return None
        finally:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            # Let TIME_WAIT sockets and the kernel's accounting settle between runs.
            time.sleep(1)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "/s" or float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(results: Path) -> str:
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for line in results.read_text().splitlines():
        r = json.loads(line)
        for key in SCENARIOS.get(r["bench"], ([], {}))[1]:
            if isinstance(r.get(key), (int, float)):
                rows.setdefault((r["bench"], key), {}).setdefault(r["server"], []).append(r[key])
    out = ["| measure | ours (`wse_server`, Python) | original 2.5.1 | ratio ours/original | "
           "Rust runtime (no Python) | runs |", "|---|---|---|---|---|---|"]
    for scenario, (_, keys) in SCENARIOS.items():
        for key, (label, unit, better) in keys.items():
            values = rows.get((scenario, key), {})
            med = {s: statistics.median(v) if v else None for s, v in values.items()}
            ours, orig, rust = med.get("ours"), med.get("orig"), med.get("rust")
            if ours is not None and orig not in (None, 0):
                ratio = f"{ours / orig:.2f}×"
            elif ours is not None and orig == 0:
                ratio = "=" if ours == 0 else "—"
            else:
                ratio = "n/a"
            runs = "/".join(str(len(values.get(s, []))) for s in SERVERS)
            u = f" {unit}" if unit and unit != "/s" else ""
            out.append(f"| {label} ({better} is better) | {fmt(ours, unit)}{u} | {fmt(orig, unit)}{u}"
                       f" | {ratio} | {fmt(rust, unit)}{u} | {runs} |")
    return "\n".join(out)


def write_table(table: str, doc: Path) -> None:
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description="Regenerate docs/BENCHMARKS.md's table.")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--results", type=Path, default=ROOT / "target" / "bench" / "results.jsonl")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        log = args.results.with_suffix(".log")
        servers = args.servers.split(",")
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", flush=True)
            for scenario in args.scenarios.split(","):
                # Interleaved, and the order rotates so no server always runs first.
                order = servers[rep % len(servers):] + servers[:rep % len(servers)]
                for impl in order:
                    run_one(impl, scenario, args.results, log)
    table = render(args.results)
    print(table)
    write_table(table, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
