"""The published Python client (PyPI ``wse-client`` 2.5.1, unmodified) against our server.

Started by ``runtime/tests/interop.rs``, which runs the server in-process and passes
``WSE_URL`` and ``WSE_TOKEN``. The server answers an ``interop_request`` message with a small
``send_event`` (binary JSON), a large one (``C:`` zlib) and a ``broadcast_all`` (text); on a
``format=msgpack`` connection ``send_event`` arrives as ``M:`` msgpack.
"""

import asyncio
import os

from wse_client import AsyncWSEClient

URL = os.environ["WSE_URL"]
TOKEN = os.environ["WSE_TOKEN"]
WANTED = {"evt_json", "evt_big", "evt_broadcast"}


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connected(url=URL, **options):
    client = AsyncWSEClient(url, token=TOKEN, **options)
    await client.connect()
    for _ in range(200):
        if client.is_fully_ready:
            return client
        await asyncio.sleep(0.05)
    raise AssertionError("client never became fully ready (server_ready + client_hello)")


async def collect(client, wanted, timeout=10.0):
    got = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not wanted <= got.keys():
        event = await client.recv(timeout=max(0.1, deadline - loop.time()))
        got[event.type] = event
    return got


def test_server_ready_and_hello_make_the_client_fully_ready():
    async def go():
        client = await connected()
        assert client.is_connected
        await client.disconnect()

    run(go())


def test_send_event_in_json_and_zlib_and_broadcast_text_are_received():
    async def go():
        client = await connected()
        assert await client.send("interop_request", {"n": 1})
        got = await collect(client, WANTED)
        assert got["evt_json"].payload == {"n": 1}
        assert got["evt_big"].payload["pad"] == "x" * 3000
        assert got["evt_broadcast"].payload == {"n": 2}
        await client.disconnect()

    run(go())


def test_send_event_arrives_as_msgpack_on_a_msgpack_connection():
    async def go():
        client = await connected(URL + "?format=msgpack")
        assert await client.send("interop_request", {"n": 7})
        got = await collect(client, WANTED)
        assert got["evt_json"].payload == {"n": 7}
        await client.disconnect()

    run(go())


def test_heartbeat_keeps_a_quiet_connection_alive_past_both_idle_timeouts():
    # The server pings every second and closes after 3 s without inbound traffic; the client
    # reconnects when nothing refreshed its heartbeat for 40 s. 42 s of application silence
    # must survive both: same connection, no reconnect.
    async def go():
        client = await connected()
        before = client.get_stats()["connection_id"]
        assert before, "server_ready carried the connection id"
        await asyncio.sleep(42)
        stats = client.get_stats()
        assert client.is_connected
        assert stats["reconnect_count"] == 0
        assert stats["connection_id"] == before
        assert await client.send("interop_request", {"n": 3})
        got = await collect(client, WANTED)
        assert got["evt_json"].payload == {"n": 3}
        await client.disconnect()

    run(go(), timeout=90)


def test_an_encrypted_client_exchanges_keys_and_gets_everything_sealed():
    async def go():
        client = await connected(encryption=True)
        security = client._security  # the published client's own E2E state
        for _ in range(100):
            if security.is_enabled:
                break
            await asyncio.sleep(0.05)
        assert security.is_enabled, "the server answered the key exchange"
        # Sent as E: (the client encrypts once its key exists); our answers come back as E:
        # records (send_event small and large, broadcast_all) and decrypt to the payloads.
        assert await client.send("interop_request", {"n": 9, "presence": True})
        got = await collect(client, WANTED | {"presence_join"})
        assert got["evt_json"].payload == {"n": 9}
        assert got["evt_big"].payload["pad"] == "x" * 3000
        assert got["evt_broadcast"].payload == {"n": 2}
        assert got["presence_join"].payload["user_id"] == "interop-user"
        # Quiet past both idle timeouts (server 3 s, pings every 1 s): the heartbeat keeps the
        # encrypted connection alive, and it still works afterwards.
        await asyncio.sleep(4.5)
        assert client.is_connected
        assert await client.send("interop_request", {"n": 10})
        got = await collect(client, WANTED)
        assert got["evt_json"].payload == {"n": 10}
        await client.disconnect()

    run(go())
