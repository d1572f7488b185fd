"""The published client (PyPI ``wse-client`` 2.5.1, unmodified) against the Python-embedded
server: authentication, subscriptions and every framing of server → client traffic."""

import asyncio
import threading

import pytest

from conftest import SECRET, published_client, run, token


class EventLoop:
    """A drain-mode application loop like the README's: subscribes authenticated clients to
    ``updates`` and answers ``ping_me`` with a ``send_event``."""

    def __init__(self, server):
        self.server = server
        self.users = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for kind, cid, value in self.server.drain_inbound(256, 50):
                if kind == "auth_connect":
                    self.users[cid] = value
                    self.server.subscribe_connection(cid, ["updates"])
                elif kind == "msg" and value.get("t") == "ping_me":
                    self.server.send_event(cid, {"t": "pong_you", "p": value["p"]})

    def close(self):
        self.stop.set()
        self.thread.join()


@pytest.fixture
def app(make_server):
    server = make_server(jwt_secret=SECRET, ping_interval=1, idle_timeout=3)
    loop = EventLoop(server)
    yield server
    loop.close()


async def ready_client(server, query=""):
    return await published_client(server.port, token("dana"), query)


async def wait_subscribed(server, topic="updates"):
    for _ in range(100):
        if server.get_topic_subscriber_count(topic):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never subscribed")


@pytest.mark.parametrize("query", ["", "?format=msgpack"])
def test_the_published_client_gets_events_broadcasts_and_replies(app, query):
    async def go():
        client = await ready_client(app, query)
        await wait_subscribed(app)
        assert await client.send("ping_me", {"n": 41})
        app.broadcast("updates", '{"t":"news","p":{"headline":"hi"}}')
        app.broadcast_all('{"t":"everyone","p":{}}')
        got = {}
        while not {"pong_you", "news", "everyone"} <= got.keys():
            event = await client.recv(timeout=5)
            got[event.type] = event.payload
        assert got["pong_you"] == {"n": 41}
        assert got["news"] == {"headline": "hi"}
        await client.disconnect()

    run(go())


def test_the_published_client_receives_a_large_compressed_event(app):
    async def go():
        client = await ready_client(app)
        await wait_subscribed(app)
        for cid in app.get_connections():
            app.send_event(cid, {"t": "bulk", "p": {"pad": "y" * 20_000}})
        event = await client.recv(timeout=5)
        assert event.type == "bulk" and event.payload["pad"] == "y" * 20_000
        await client.disconnect()

    run(go())
