"""A complete WSE server in one file: JWT authentication, an event loop, echo replies.

Run:      python standalone_basic.py [--host 127.0.0.1] [--port 5007]
Connect:  with the printed token, from the published client (pip install wse-client):
          AsyncWSEClient("ws://127.0.0.1:5007/wse", token=TOKEN) — every message you send
          comes back as an "echo" event. Stop the server with Ctrl-C.

The JWT secret comes from $WSE_JWT_SECRET; without it a random development secret is made and
a one-hour token for user "dev-user" is printed.
"""

import argparse
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
    args = parser.parse_args()

    secret = os.environb.get(b"WSE_JWT_SECRET") or secrets.token_hex(32).encode()
    server = RustWSEServer(args.host, args.port, max_connections=10_000, jwt_secret=secret)
    server.enable_drain_mode()
    server.start()  # binds before returning; raises OSError if the port is taken

    now = int(time.time())
    token = rust_jwt_encode({"sub": "dev-user", "iat": now, "exp": now + 3600}, secret)
    print(f"listening on ws://{args.host}:{args.port}/wse", flush=True)
    print(f"token: {token}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    users = {}
    while not stopping.is_set():
        for kind, conn_id, value in server.drain_inbound(256, 50):
            if kind == "auth_connect":
                users[conn_id] = value
                print(f"connected: {value} ({conn_id})", flush=True)
            elif kind == "msg":
                # Echo every application message back as an event of type "echo".
                server.send_event(conn_id, {"t": "echo", "p": {"from": users.get(conn_id), "message": value}})
            elif kind == "disconnect":
                print(f"disconnected: {users.pop(conn_id, conn_id)}", flush=True)

    server.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
