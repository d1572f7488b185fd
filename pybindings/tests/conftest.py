"""Shared fixtures: free ports, servers that always stop, JWTs, and raw WebSocket clients.

The suite runs against the *installed* ``wse_server`` package (a wheel built by
``pybindings/tests/python_suite.rs`` and installed into a fresh virtualenv), never against the
source tree.
"""

import asyncio
import json
import socket
import time

import pytest
import websockets

from wse_server._wse_accel import RustWSEServer, rust_jwt_encode

SECRET = b"pytest-secret-that-is-at-least-32-bytes!"


class Server(RustWSEServer):
    """The server under test, remembering its port (the class is subclassable, as a
    convenience the original does not offer)."""

    port: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(sub="alice", secret=SECRET, **claims) -> str:
    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + 600, **claims}
    return rust_jwt_encode(body, secret)


@pytest.fixture
def make_server():
    """Factory: ``make_server(drain=True, **kwargs)`` → a started server on a free port; every
    server made is stopped at teardown."""
    made = []

    def make(drain=True, start=True, **kwargs):
        port = kwargs.pop("port", None) or free_port()
        server = Server("127.0.0.1", port, **kwargs)
        server.port = port
        if drain:
            server.enable_drain_mode()
        if start:
            server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def url(server, query="") -> str:
    return f"ws://127.0.0.1:{server.port}/wse{query}"


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def wait_events(server, count, timeout=5.0, kinds=None):
    """Drains until ``count`` events (of ``kinds`` if given) arrived; returns them in order."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for ev in server.drain_inbound(256, 50):
            if kinds is None or ev[0] in kinds:
                got.append(ev)
    assert len(got) >= count, f"expected {count} events, got {got}"
    return got


async def connect(server, query="", **kwargs):
    return await websockets.connect(url(server, query), **kwargs)


async def accepted(server, query="", **kwargs):
    """Connects and returns ``(ws, conn_id)`` once the server reported the connection."""
    ws = await connect(server, query, **kwargs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while loop.time() < deadline:
        events = await asyncio.to_thread(server.drain_inbound, 16, 50)
        for kind, conn_id, _ in events:
            if kind in ("connect", "auth_connect"):
                return ws, conn_id
    raise AssertionError("the server never reported the connection")


async def recv_json(ws, timeout=5):
    frame = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(frame)


async def published_client(port, tok, query=""):
    """The published ``wse-client`` (PyPI, unmodified), connected and fully ready
    (``server_ready`` received and ``client_hello`` answered)."""
    from wse_client import AsyncWSEClient

    client = AsyncWSEClient(f"ws://127.0.0.1:{port}/wse{query}", token=tok)
    await client.connect()
    for _ in range(200):
        if client.is_fully_ready:
            return client
        await asyncio.sleep(0.05)
    raise AssertionError("the client never became fully ready")
