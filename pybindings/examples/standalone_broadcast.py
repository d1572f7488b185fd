"""Topics and broadcasts: every client joins "ticker" and "chat"; the server publishes a tick
each second, and a client's {"t": "chat", "p": {...}} message is relayed to the whole room.

Run:      python standalone_broadcast.py [--host 127.0.0.1] [--port 5007] [--interval 1.0]
The JWT secret comes from $WSE_JWT_SECRET; without it a development secret is made and a token
for user "dev-user" is printed. Stop with Ctrl-C.
"""

import argparse
import json
import os
import secrets
import signal
import threading
import time

from wse_server import RustWSEServer, rust_jwt_encode


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5007)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    secret = os.environb.get(b"WSE_JWT_SECRET") or secrets.token_hex(32).encode()
    server = RustWSEServer(args.host, args.port, jwt_secret=secret)
    server.enable_drain_mode()
    server.start()
    now = int(time.time())
    print(f"listening on ws://{args.host}:{args.port}/wse", flush=True)
    print(f"token: {rust_jwt_encode({'sub': 'dev-user', 'iat': now, 'exp': now + 3600}, secret)}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def ticker():
        n = 0
        while not stopping.wait(args.interval):
            n += 1
            server.broadcast("ticker", json.dumps({"t": "tick", "p": {"n": n, "at": time.time()}}))

    threading.Thread(target=ticker, daemon=True).start()

    users = {}
    while not stopping.is_set():
        for kind, conn_id, value in server.drain_inbound(256, 50):
            if kind == "auth_connect":
                users[conn_id] = value
                server.subscribe_connection(conn_id, ["ticker", "chat"])
                server.broadcast("chat", json.dumps({"t": "joined", "p": {"user": value}}))
            elif kind == "msg" and value.get("t") == "chat":
                text = {"t": "chat", "p": {"user": users.get(conn_id), **value.get("p", {})}}
                server.broadcast("chat", json.dumps(text))
            elif kind == "disconnect":
                user = users.pop(conn_id, None)
                if user is not None:
                    server.broadcast("chat", json.dumps({"t": "left", "p": {"user": user}}))

    server.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
