"""Message recovery: a client that drops and reconnects gets back what it missed.

Every client joins "news"; the server publishes a headline every --interval seconds. Topic
messages are stamped (tp, e, o). When a client reconnects it asks for what it missed with a
`subscription_update` carrying its last (epoch, offset) per topic; this server answers with
`subscribe_with_recovery` (one call per topic, each with that topic's own position) and the
acknowledgement clients expect. Send {"t": "reconnect_me"} to be disconnected with 4300 and
watch the client recover the headlines published meanwhile.

Run:      python standalone_recovery.py [--host 127.0.0.1] [--port 5007] [--interval 1.0]
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


def answer_subscription(server, conn_id, p):
    """Subscribe (with recovery when asked) and acknowledge, as the clients expect."""
    topics = [t for t in p.get("topics", []) if isinstance(t, str)]
    if p.get("action") == "unsubscribe":
        server.unsubscribe_connection(conn_id, topics)
        return
    positions = (p.get("recovery") or {}) if p.get("recover") else {}
    recovery = {}
    for topic in topics:
        pos = positions.get(topic)
        if isinstance(pos, dict) and "epoch" in pos and "offset" in pos:
            result = server.subscribe_with_recovery(conn_id, [topic], True, str(pos["epoch"]), int(pos["offset"]))
        else:
            result = server.subscribe_with_recovery(conn_id, [topic])
        info = result["topics"][topic]
        if info["epoch"] is not None:
            recovery[topic] = {k: info[k] for k in ("epoch", "offset", "recovered", "count")}
            if pos:
                print(f"recovery for {topic}: recovered={info['recovered']} count={info['count']}", flush=True)
    server.send_event(
        conn_id,
        {"t": "subscription_update", "p": {"success": True, "success_topics": topics, "failed_topics": [], "recovery": recovery}},
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5007)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    secret = os.environb.get(b"WSE_JWT_SECRET") or secrets.token_hex(32).encode()
    server = RustWSEServer(args.host, args.port, jwt_secret=secret, recovery_enabled=True, recovery_buffer_size=256)
    server.enable_drain_mode()
    server.start()
    now = int(time.time())
    print(f"listening on ws://{args.host}:{args.port}/wse", flush=True)
    print(f"token: {rust_jwt_encode({'sub': 'dev-user', 'iat': now, 'exp': now + 3600}, secret)}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def headlines():
        n = 0
        while not stopping.wait(args.interval):
            n += 1
            server.broadcast("news", json.dumps({"t": "headline", "p": {"n": n, "text": f"headline #{n}"}}))

    threading.Thread(target=headlines, daemon=True).start()

    while not stopping.is_set():
        for kind, conn_id, value in server.drain_inbound(256, 50):
            if kind == "auth_connect":
                print(f"connected: {value}", flush=True)
            elif kind == "msg" and value.get("t") == "subscription_update":
                answer_subscription(server, conn_id, value.get("p") or {})
            elif kind == "msg" and value.get("t") == "reconnect_me":
                server.disconnect(conn_id, 4300, "reconnect and recover")
            elif kind == "disconnect":
                print("disconnected", flush=True)

    server.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
