"""Presence: who is in the lobby, live.

Every authenticated client joins "lobby" with presence data {"status": "online"}; everyone in
the lobby receives presence_join / presence_leave / presence_update events. Send
{"t": "status", "p": {"status": "away"}} to change your data (presence_update to the lobby),
or {"t": "who"} to get the member list back as a "who" event.

Run:      python standalone_presence.py [--host 127.0.0.1] [--port 5007]
The JWT secret comes from $WSE_JWT_SECRET; without it a development secret is made and tokens
for users "alice" and "bob" are printed. Stop with Ctrl-C.
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
    server = RustWSEServer(args.host, args.port, jwt_secret=secret, presence_enabled=True)
    server.enable_drain_mode()
    server.start()
    now = int(time.time())
    print(f"listening on ws://{args.host}:{args.port}/wse", flush=True)
    for user in ("alice", "bob"):
        print(f"token {user}: {rust_jwt_encode({'sub': user, 'iat': now, 'exp': now + 3600}, secret)}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    while not stopping.is_set():
        for kind, conn_id, value in server.drain_inbound(256, 50):
            if kind == "auth_connect":
                server.subscribe_connection(conn_id, ["lobby"], {"status": "online"})
            elif kind == "presence_join":
                print(f"joined {value['topic']}: {value['user_id']}", flush=True)
            elif kind == "presence_leave":
                print(f"left {value['topic']}: {value['user_id']}", flush=True)
            elif kind == "msg" and value.get("t") == "status":
                try:
                    server.update_presence(conn_id, value.get("p") or {})
                except RuntimeError as exc:  # too large, or no presence
                    server.send_event(conn_id, {"t": "error", "p": {"message": str(exc)}})
            elif kind == "msg" and value.get("t") == "who":
                server.send_event(conn_id, {"t": "who", "p": {"lobby": server.presence("lobby"), **server.presence_stats("lobby")}})

    server.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
