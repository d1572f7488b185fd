#!/usr/bin/env python3
"""Regenerates the side-by-side table of docs/BENCHMARKS.md.

Runs every scenario of wse-loadgen against three servers, interleaved, for several
repetitions, each run on a freshly started server process:

- ``ours``: this repository's ``wse_server`` (``pip install ./pybindings``) under
  ``loadgen/bench_server.py``;
- ``orig``: the original ``wse-server`` 2.5.1 from PyPI under the same script;
- ``rust``: the runtime directly (``wse-loadgen serve``), no Python.

The ``cluster-fanout`` scenario runs on three fresh server processes of the same kind joined in
a cluster (each node dials the other two): the control connection and publisher on node A,
which has no subscribers, and the subscribers round-robin on nodes B and C (``--sub-url``);
publications go through ``broadcast`` (local + cluster) and the CPU per delivery is summed
over the three processes.

Both Python servers run on the same interpreter (pyenv's 3.12: the original needs >= 3.12).
Setup, once::

    ~/.pyenv/versions/3.12.1/bin/python -m venv target/bench-ours
    target/bench-ours/bin/pip install ./pybindings
    ~/.pyenv/versions/3.12.1/bin/python -m venv target/bench-orig
    target/bench-orig/bin/pip install wse-server==2.5.1
    cargo build --release -p wse-loadgen

Paths: the virtualenvs and the load generator are looked up in ``$CARGO_TARGET_DIR`` (default
``target/``): ``bench-ours/``, ``bench-orig/`` and ``release/wse-loadgen`` (``WSE_LOADGEN``
overrides the last).

Then ``python3 loadgen/benchmarks.py --reps 5`` appends every result to
``target/bench/results.jsonl`` and rewrites the table between the markers in
docs/BENCHMARKS.md with medians per server and the ratio ours/original.
``--render-only`` rebuilds the table from existing results files. ``--results`` takes several
files: a run appends to the last; the table is built from all of them, and a scenario's runs
come from the **last** file that has that scenario (so a partial re-run, e.g.
``--scenarios fanout-1k,cluster-fanout``, replaces those rows and keeps the others). The runs
behind the published table are kept in ``loadgen/results/``::

    python3 loadgen/benchmarks.py --render-only --results loadgen/results/2026-11-27.jsonl \
        loadgen/results/2026-11-27-cluster.jsonl
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
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
LOADGEN = Path(os.environ.get("WSE_LOADGEN", TARGET / "release" / "wse-loadgen"))
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
    # Three nodes (CLUSTER below): publisher node A without subscribers, the subscribers on B
    # and C; run_one adds the --sub-url flags.
    "cluster-fanout": (
        ["--users", "50", "fanout", "--subscribers", "1000", "--messages", "1000", "--size", "100"],
        {
            "deliveries_per_s": ("cluster fan-out (3 nodes, 1,000 subscribers on 2): deliveries/s",
                                 "/s", "higher"),
            "cluster_cpu_us_per_delivery": (
                "cluster fan-out: CPU per delivery, summed over the 3 nodes", "µs", "lower"),
            "e2e_p50_ms": ("cluster fan-out: e2e p50 (publish on A → subscriber on B/C)", "ms",
                           "lower"),
            "e2e_p99_ms": ("cluster fan-out: e2e p99", "ms", "lower"),
            "lost": ("cluster fan-out: lost deliveries", "", "lower"),
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
    "cluster-fanout-paced": (
        ["--users", "50", "fanout", "--subscribers", "1000", "--messages", "250", "--size", "100",
         "--rate", "50"],
        {
            "e2e_p50_ms": ("paced cluster fan-out (50 msg/s, 1,000 subs on 2 of 3 nodes): e2e p50",
                           "ms", "lower"),
            "e2e_p99_ms": ("paced cluster fan-out (50 msg/s, 1,000 subs on 2 of 3 nodes): e2e p99",
                           "ms", "lower"),
            "lost": ("paced cluster fan-out: lost deliveries", "", "lower"),
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
# Scenarios run on several server processes joined in a cluster: name -> nodes.
CLUSTER = {"cluster-fanout": 3, "cluster-fanout-paced": 3}


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all bound at once, so the kernel cannot hand one out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def server_command(impl: str, port: int, cluster_port: int | None = None,
                   peers: list[int] = ()) -> list[str]:
    cluster = []
    if cluster_port is not None:
        cluster = ["--cluster-port", str(cluster_port)]
        for peer in peers:
            cluster += ["--cluster-peer", f"127.0.0.1:{peer}"]
    if impl == "rust":
        return [str(LOADGEN), "serve", "--port", str(port), *cluster]
    python = TARGET / f"bench-{impl}" / "bin" / "python"
    return [str(python), str(ROOT / "loadgen" / "bench_server.py"), "--impl", impl,
            "--port", str(port), *cluster]


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
    nodes = CLUSTER.get(scenario, 1)
    args, _ = SCENARIOS[scenario]
    if nodes > 1:
        # WebSocket ports, then cluster ports; node 0 publishes, the others hold the
        # subscribers; every node dials every other one.
        ports = free_ports(2 * nodes)
        ws_ports, cluster_ports = ports[:nodes], ports[nodes:]
        commands = [server_command(impl, ws_ports[i], cluster_ports[i],
                                   [p for j, p in enumerate(cluster_ports) if j != i])
                    for i in range(nodes)]
        args = [*args, *(a for p in ws_ports[1:] for a in ("--sub-url", f"ws://127.0.0.1:{p}/wse"))]
    else:
        ws_ports = [free_port()]
        commands = [server_command(impl, ws_ports[0])]
    port = ws_ports[0]
    with open(log, "a") as logf:
        logf.write(f"\n===== {impl} {scenario} ports {ws_ports}\n")
        for command in commands:
            logf.write("$ " + " ".join(command) + "\n")
        logf.flush()
        procs = [subprocess.Popen(command, stdout=logf, stderr=subprocess.STDOUT,
                                  start_new_session=True) for command in commands]
        try:
            for p, proc in zip(ws_ports, procs):
                wait_port(p, proc)
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
            for proc in procs:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    logf.write(f"server pid {proc.pid} did not stop on SIGTERM: SIGKILL\n")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
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


def load(files: list[Path]) -> list[dict]:
    """The runs of every file; a scenario's runs come from the last file that has it."""
    by_scenario: dict[str, list[dict]] = {}
    for path in files:
        runs: dict[str, list[dict]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs.setdefault(r["bench"], []).append(r)
        by_scenario.update(runs)
    return [r for runs in by_scenario.values() for r in runs]


def render(files: list[Path]) -> str:
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in load(files):
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

            def cell(v: float | None) -> str:
                return fmt(v, unit) + (u if v is not None else "")

            out.append(f"| {label} ({better} is better) | {cell(ours)} | {cell(orig)}"
                       f" | {ratio} | {cell(rust)} | {runs} |")
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
    parser.add_argument("--results", type=Path, nargs="+",
                        default=[TARGET / "bench" / "results.jsonl"],
                        help="results files: a run appends to the last; the table is built "
                             "from all (a scenario from the last file that has it)")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md",
                        help="the document whose table is rewritten; - prints the table only")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    out = args.results[-1]
    if not args.render_only:
        out.parent.mkdir(parents=True, exist_ok=True)
        log = out.with_suffix(".log")
        servers = args.servers.split(",")
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", flush=True)
            for scenario in args.scenarios.split(","):
                # Interleaved, and the order rotates so no server always runs first.
                order = servers[rep % len(servers):] + servers[:rep % len(servers)]
                for impl in order:
                    run_one(impl, scenario, out, log)
    table = render(args.results)
    print(table)
    if str(args.doc) != "-":
        write_table(table, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
