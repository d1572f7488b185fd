"""A three-node cluster in one process: node1 publishes a headline on "news" every interval
with broadcast(), and clients of any node that subscribed to "news" receive it, routed to the
other nodes over the cluster links (plain TCP on loopback here; pass tls_cert/tls_key/tls_ca
to connect_cluster for mTLS).

Run:      python standalone_cluster.py [--ports 5007,5008,5009] [--cluster-ports 9101,9102,9103]
          [--interval 1.0]
Each node subscribes its authenticated clients to "news". The JWT secret comes from
$WSE_JWT_SECRET; without it a development secret is made and a token for user "dev-user" is
printed (valid on every node). Stop with Ctrl-C.
"""

import argparse
import json
import os
import secrets
import signal
import threading
import time

from wse_server import RustWSEServer, rust_jwt_encode

HOST = "127.0.0.1"


def ports(text):
    values = [int(p) for p in text.split(",")]
    if len(values) != 3:
        raise argparse.ArgumentTypeError("give three comma-separated ports")
    return values


def serve_clients(name, server, stopping):
    """The node's event loop: subscribes every authenticated client to "news"."""
    while not stopping.is_set():
        for kind, conn_id, value in server.drain_inbound(256, 50):
            if kind == "auth_connect":
                server.subscribe_connection(conn_id, ["news"])
                print(f"{name}: {value} connected, subscribed to news", flush=True)
            elif kind == "disconnect":
                print(f"{name}: a client left", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=ports, default=[5007, 5008, 5009])
    parser.add_argument("--cluster-ports", type=ports, default=[9101, 9102, 9103])
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    secret = os.environb.get(b"WSE_JWT_SECRET") or secrets.token_hex(32).encode()
    addrs = [f"{HOST}:{p}" for p in args.cluster_ports]
    nodes = {}
    for i, (port, cluster_port) in enumerate(zip(args.ports, args.cluster_ports)):
        name = f"node{i + 1}"
        server = RustWSEServer(HOST, port, jwt_secret=secret)
        server.enable_drain_mode()
        server.start()
        # Every node lists the others; the mesh keeps exactly one link per pair.
        others = [a for a in addrs if a != addrs[i]]
        server.connect_cluster(others, cluster_port=cluster_port, cluster_addr=addrs[i])
        nodes[name] = server
        print(f"{name}: ws://{HOST}:{port}/wse, cluster {addrs[i]}", flush=True)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(s.cluster_peers_count() < 2 for s in nodes.values()):
        time.sleep(0.05)
    if any(s.cluster_peers_count() < 2 for s in nodes.values()):
        print("cluster: the nodes did not link within 15 s", flush=True)
    else:
        print("cluster: every node linked to 2 peers", flush=True)
    for name, server in nodes.items():
        peers = ", ".join(f"{p['address']} ({p['instance_id'][:8]})" for p in server.cluster_info())
        print(f"{name} peers: {peers}", flush=True)

    now = int(time.time())
    print(f"token: {rust_jwt_encode({'sub': 'dev-user', 'iat': now, 'exp': now + 3600}, secret)}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    for name, server in nodes.items():
        threading.Thread(target=serve_clients, args=(name, server, stopping), daemon=True).start()

    publisher = nodes["node1"]
    n, routes = 0, None
    while not stopping.wait(args.interval):
        n += 1
        # Local subscribers of node1 and every peer with a "news" subscriber get it.
        publisher.broadcast("news", json.dumps({"t": "headline", "p": {"n": n, "from": "node1"}}))
        now_routes = publisher.cluster_routes("news")
        if now_routes != routes:
            routes = now_routes
            print(f"node1: headline {n} goes to {routes} other node(s)", flush=True)

    for server in nodes.values():
        server.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
