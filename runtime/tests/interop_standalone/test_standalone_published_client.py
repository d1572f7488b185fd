"""The published client (PyPI ``wse-client`` 2.5.1, unmodified) against the standalone server:
it subscribes itself (the server answers ``subscription_update``), receives HTTP-published
messages, and recovers what it missed after a reconnect.

Started by ``runtime/tests/interop_standalone.rs`` with ``WSE_URL``, ``WSE_HTTP``,
``WSE_API_KEY`` and ``WSE_TOKEN`` (user ``standalone-user``, ACL allow ``news``, ``room.*``,
deny ``room.secret``).
"""

import asyncio
import json
import os
import time
import urllib.request

import websockets
from wse_client import AsyncWSEClient

URL = os.environ["WSE_URL"]
HTTP = os.environ["WSE_HTTP"]
KEY = os.environ["WSE_API_KEY"]
TOKEN = os.environ["WSE_TOKEN"]


def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(HTTP + path, data=data, method=method)
    req.add_header("Authorization", f"apikey {KEY}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def publish(topic, t, p):
    assert api("POST", "/api/publish", {"topic": topic, "data": {"t": t, "p": p}}) == {"ok": True}


def subscribers(topic):
    return {row["topic"]: row["subscribers"] for row in api("GET", "/api/info")["topics"]}.get(topic, 0)


def wait_until(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def ready_client():
    client = AsyncWSEClient(URL, token=TOKEN)
    await client.connect()
    for _ in range(200):
        if client.is_fully_ready:
            return client
        await asyncio.sleep(0.05)
    raise AssertionError("the client never became fully ready")


async def received(client, event_type, count, timeout=15.0):
    got = []
    while len(got) < count:
        event = await client.recv(timeout=timeout)
        if event.type == event_type:
            got.append(event.payload)
    return got


def test_an_http_publish_reaches_a_client_that_subscribed_itself():
    async def go():
        client = await ready_client()
        await client.subscribe(["news"])
        await asyncio.to_thread(wait_until, lambda: subscribers("news") == 1, "the subscription")
        await asyncio.to_thread(publish, "news", "headline", {"n": 1})
        assert await received(client, "headline", 1) == [{"n": 1}]
        await client.disconnect()
        await asyncio.to_thread(wait_until, lambda: subscribers("news") == 0, "the unsubscription")

    run(go())


def test_a_topic_outside_the_token_acl_is_refused_in_the_ack():
    async def go():
        async with websockets.connect(URL, additional_headers={"Cookie": f"access_token={TOKEN}"}) as ws:
            assert json.loads(await ws.recv())["t"] == "server_ready"
            await ws.send(json.dumps({"t": "subscription_update", "p": {
                "action": "subscribe", "topics": ["news", "room.secret", "elsewhere"]}}))
            while True:
                frame = await asyncio.wait_for(ws.recv(), 10)
                msg = json.loads(frame)
                if msg.get("t") == "subscription_update":
                    break
            assert msg["p"]["success"] is True
            assert msg["p"]["success_topics"] == ["news"]
            assert sorted(msg["p"]["failed_topics"]) == ["elsewhere", "room.secret"]
            assert subscribers("room.secret") == 0

    run(go())


def test_missed_messages_are_recovered_through_the_builtin_handler():
    async def go():
        client = await ready_client()
        await client.subscribe(["room.a"])
        await asyncio.to_thread(wait_until, lambda: subscribers("room.a") == 1, "the subscription")
        for n in range(3):
            await asyncio.to_thread(publish, "room.a", "line", {"n": n})
        assert [p["n"] for p in await received(client, "line", 3)] == [0, 1, 2]
        cut = await asyncio.to_thread(
            api, "POST", "/api/disconnect", {"user_id": "standalone-user", "code": 4300, "reason": "move"}
        )
        assert cut == {"disconnected": 1}
        await asyncio.to_thread(wait_until, lambda: subscribers("room.a") == 0, "the cut")
        for n in range(3, 13):  # missed while away
            await asyncio.to_thread(publish, "room.a", "line", {"n": n})
        # The client reconnects by itself and resubscribes with its (epoch, offset).
        assert [p["n"] for p in await received(client, "line", 10, timeout=30)] == list(range(3, 13))
        await asyncio.to_thread(publish, "room.a", "line", {"n": 13})
        assert [p["n"] for p in await received(client, "line", 1)] == [13]
        await client.disconnect()

    run(go(), timeout=90)
