#!/usr/bin/env python3
"""The bench server side of wse-loadgen, on either ``wse_server``: ours or the original.

Both packages install the module ``wse_server``, so each lives in its own virtualenv; this one
script runs in either, and ``--impl`` states which one the caller expects (the script refuses to
run if the imported module is the other one, so a benchmark can never mislabel its numbers)::

    target/bench-ours/bin/python loadgen/bench_server.py --impl ours --port 5101
    target/bench-orig/bin/python loadgen/bench_server.py --impl orig --port 5102

A cluster node joins with ``--cluster-port P --cluster-peer host:port`` (repeat the flag; the
address other nodes reach this one at is ``--cluster-addr``, by default ``host:P``); its
publications then go through ``server.broadcast`` (this node and every peer) instead of
``broadcast_local``::

    ... bench_server.py --impl ours --port 5201 --cluster-port 6201 \
        --cluster-peer 127.0.0.1:6202 --cluster-peer 127.0.0.1:6203

The application is the bench control protocol of wse-loadgen (``loadgen/src/lib.rs``): drain
mode, connections whose JWT ``sub`` starts with ``f-`` subscribed to topic ``bench``, inbound
``in`` messages counted, and ``bench_stats`` / ``bench_reset`` / ``bench_fanout`` answered on
the connection that asked. Publications happen on a separate thread so draining never stops.
On a cluster node ``bench_stats`` also reports ``peers`` (``cluster_peers_count()``) and, on ours
only (the original has no such method), ``routes`` (``cluster_routes("bench")``: the peers a
publication on ``bench`` is routed to now), which the load generator waits on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time

DEFAULT_SECRET = "wse-bench-secret-0123456789abcdef"
TOPIC = "bench"


def which_impl(module) -> tuple[str, str]:
    """(``orig`` for the PyPI wse-server 2.x or ``ours``, the installed distribution's version).

    The original 2.5.1 still says ``__version__ = "2.4.0"``, so the distribution metadata is
    what names the version."""
    from importlib import metadata

    try:
        version = metadata.version("wse-server")
    except metadata.PackageNotFoundError:
        version = getattr(module, "__version__", "?")
    return ("orig" if version.startswith("2.") else "ours"), version


def raise_file_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (wanted, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard)))
            return limit
        except (ValueError, OSError):
            continue
    return soft


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=("ours", "orig"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5101)
    parser.add_argument("--max-connections", type=int, default=100_000)
    parser.add_argument("--secret", default=os.environ.get("WSE_BENCH_SECRET", DEFAULT_SECRET))
    parser.add_argument("--cluster-port", type=int, default=None,
                        help="join a cluster, accepting peers on this port")
    parser.add_argument("--cluster-peer", action="append", default=[], metavar="HOST:PORT",
                        help="a cluster peer to dial (repeat the flag)")
    parser.add_argument("--cluster-addr", default=None, metavar="HOST:PORT",
                        help="the address peers reach this node at (default host:cluster-port)")
    args = parser.parse_args()
    clustered = args.cluster_port is not None or bool(args.cluster_peer)

    import wse_server

    found, version = which_impl(wse_server)
    if found != args.impl:
        print(f"bench_server: --impl {args.impl} but wse_server is {found} "
              f"({wse_server.__file__})", file=sys.stderr)
        return 2
    limit = raise_file_limit(200_000)

    server = wse_server.RustWSEServer(
        args.host,
        args.port,
        max_connections=args.max_connections,
        jwt_secret=args.secret.encode(),
        # Benchmarks measure traffic, not keep-alives.
        ping_interval=300,
        idle_timeout=600,
    )
    server.enable_drain_mode()
    server.start()
    deadline = time.monotonic() + 10
    while not server.is_running():
        if time.monotonic() > deadline:
            print("bench_server: the server did not start", file=sys.stderr)
            return 1
        time.sleep(0.01)
    if clustered:
        cluster_addr = args.cluster_addr
        if cluster_addr is None and args.cluster_port is not None:
            cluster_addr = f"{args.host}:{args.cluster_port}"
        kwargs = {"cluster_port": args.cluster_port}
        if cluster_addr is not None:
            kwargs["cluster_addr"] = cluster_addr
        server.connect_cluster(args.cluster_peer, **kwargs)
        print(f"bench server: cluster port {args.cluster_port} addr {cluster_addr} "
              f"peers {args.cluster_peer}", flush=True)
    # Publications: through the cluster when joined, else this node only.
    publish_one = server.broadcast if clustered else server.broadcast_local
    routes = getattr(server, "cluster_routes", None)  # ours only
    print(f"bench server ({found}, wse-server {version}) on "
          f"ws://{args.host}:{args.port}/wse pid {os.getpid()} file limit {limit}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    counts = {"received": 0, "first_us": 0, "last_us": 0}

    def stats() -> str:
        p = {
            "pid": os.getpid(),
            "impl": found,
            "connections": server.get_connection_count(),
            "subscribers": server.get_topic_subscriber_count(TOPIC),
            "received": counts["received"],
            "dropped": server.inbound_dropped_count(),
            "first_us": counts["first_us"],
            "last_us": counts["last_us"],
        }
        if clustered:
            p["peers"] = server.cluster_peers_count()
            if routes is not None:
                p["routes"] = routes(TOPIC)
        return json.dumps({"t": "bench_stats", "p": p})

    def publish(conn_id: str, count: int, size: int, rate: int) -> None:
        pad = "x" * size
        started = time.monotonic()
        for seq in range(count):
            if rate > 0:
                delay = started + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            st = time.time_ns() // 1000
            publish_one(TOPIC, f'{{"t":"bench","p":{{"q":{seq},"st":{st},"pad":"{pad}"}}}}')
        elapsed = int((time.monotonic() - started) * 1e6)
        server.send(conn_id, json.dumps({"t": "bench_fanout_done",
                                         "p": {"sent": count, "elapsed_us": elapsed}}))

    while not stopping.is_set():
        for kind, conn_id, value in server.drain_inbound(1024, 50):
            if kind == "auth_connect":
                if value.startswith("f-"):
                    server.subscribe_connection(conn_id, [TOPIC])
            elif kind == "msg" and isinstance(value, dict):
                t = value.get("t", value.get("type"))
                if t == "in":
                    now = time.monotonic_ns() // 1000
                    if counts["received"] == 0:
                        counts["first_us"] = now
                    counts["received"] += 1
                    counts["last_us"] = now
                elif t == "bench_stats":
                    server.send(conn_id, stats())
                elif t == "bench_reset":
                    counts.update(received=0, first_us=0, last_us=0)
                    server.send(conn_id, stats())
                elif t == "bench_fanout":
                    p = value.get("p", value.get("payload")) or {}
                    threading.Thread(
                        target=publish,
                        args=(conn_id, int(p.get("count", 0)), int(p.get("size", 0)),
                              int(p.get("rate", 0))),
                        daemon=True,
                    ).start()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
