"""Message recovery with the published client (PyPI ``wse-client`` 2.5.1, unmodified): a
subscriber is cut off, misses messages, reconnects by itself, and the application answers its
recovery ``subscription_update`` with ``subscribe_with_recovery``."""

import asyncio
import json
import threading

import pytest

from conftest import SECRET, accepted, published_client, run, token


class RecoveringApp:
    """The application side of recovery (UPSTREAM §8.5): one ``subscribe_with_recovery`` per
    topic with that topic's own position, then the acknowledgement clients expect (§2.5.7)."""

    def __init__(self, server):
        self.server = server
        self.connections = []
        self.acks = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            for kind, cid, value in self.server.drain_inbound(256, 50):
                if kind == "auth_connect":
                    self.connections.append(cid)
                elif kind == "msg" and value.get("t") == "subscription_update":
                    self.answer(cid, value.get("p") or {})

    def answer(self, cid, p):
        topics = p.get("topics") or []
        if p.get("action") == "unsubscribe":
            self.server.unsubscribe_connection(cid, topics)
            return
        recovery = {}
        for topic in topics:
            pos = (p.get("recovery") or {}).get(topic) if p.get("recover") else None
            if pos:
                result = self.server.subscribe_with_recovery(
                    cid, [topic], True, pos["epoch"], int(pos["offset"])
                )
            else:
                result = self.server.subscribe_with_recovery(cid, [topic])
            info = result["topics"][topic]
            if info["epoch"] is not None:
                recovery[topic] = {k: info[k] for k in ("epoch", "offset", "recovered", "count")}
        ack = {"success": True, "success_topics": topics, "failed_topics": [], "recovery": recovery}
        self.acks.append(ack)
        self.server.send_event(cid, {"t": "subscription_update", "p": ack})

    def close(self):
        self.stop.set()
        self.thread.join()


def publish(server, topic, first, count):
    for n in range(first, first + count):
        server.broadcast(topic, json.dumps({"t": "room_msg", "p": {"n": n}}))


async def ready_client(server):
    return await published_client(server.port, token("rita"))


async def wait_for(predicate, timeout=15.0, what="condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def numbers(client, count, timeout=15.0):
    got = []
    while len(got) < count:
        event = await client.recv(timeout=timeout)
        if event.type == "room_msg":
            got.append(event.payload["n"])
    return got


@pytest.fixture
def recovering(make_server):
    made = []

    def make(**kwargs):
        server = make_server(jwt_secret=SECRET, recovery_enabled=True, **kwargs)
        app = RecoveringApp(server)
        made.append(app)
        return server, app

    yield make
    for app in made:
        app.close()


def test_a_reconnecting_client_gets_every_missed_message_exactly_once_in_order(recovering):
    server, app = recovering()

    async def go():
        client = await ready_client(server)
        await client.subscribe(["room"])
        await wait_for(lambda: server.get_topic_subscriber_count("room") == 1, what="subscribe")
        publish(server, "room", 0, 5)
        assert await numbers(client, 5) == [0, 1, 2, 3, 4]
        first = app.connections[-1]
        server.disconnect(first, 4300, "go away for a moment")  # a reconnectable code
        await wait_for(lambda: server.get_topic_subscriber_count("room") == 0, what="the cut")
        publish(server, "room", 5, 20)  # missed while away
        # The client reconnects on its own and asks for recovery from (epoch, 4).
        await wait_for(lambda: len(app.connections) == 2, timeout=20, what="the reconnect")
        await wait_for(lambda: len(app.acks) == 2, what="the recovery request")
        publish(server, "room", 25, 3)  # live again
        assert await numbers(client, 23) == list(range(5, 28))
        last = app.acks[-1]["recovery"]["room"]
        assert last["recovered"] is True and last["count"] == 20
        with pytest.raises(Exception):
            await numbers(client, 1, timeout=0.5)  # nothing more: no duplicates
        await client.disconnect()

    run(go(), timeout=90)


def test_a_gap_larger_than_the_buffer_reports_not_recovered_and_the_client_continues(recovering):
    server, app = recovering(recovery_buffer_size=16)

    async def go():
        client = await ready_client(server)
        await client.subscribe(["room"])
        await wait_for(lambda: server.get_topic_subscriber_count("room") == 1, what="subscribe")
        publish(server, "room", 0, 2)
        assert await numbers(client, 2) == [0, 1]
        server.disconnect(app.connections[-1], 4300, "away")
        await wait_for(lambda: server.get_topic_subscriber_count("room") == 0, what="the cut")
        publish(server, "room", 2, 40)  # more than the 16-slot ring keeps
        await wait_for(lambda: len(app.acks) == 2, timeout=20, what="the recovery request")
        ack = app.acks[-1]["recovery"]["room"]
        assert ack == {"epoch": ack["epoch"], "offset": 41, "recovered": False, "count": 0}
        publish(server, "room", 42, 3)
        assert await numbers(client, 3) == [42, 43, 44]  # continues from the reported position
        await client.disconnect()

    run(go(), timeout=90)


def test_subscribe_with_recovery_result_shapes(make_server):
    server = make_server(recovery_enabled=True)

    async def go():
        ws, cid = await accepted(server)
        server.subscribe_connection(cid, ["t"])
        server.broadcast_local("t", '{"t":"x","p":{}}')
        server.broadcast_local("t", '{"t":"x","p":{}}')
        live = [json.loads(await ws.recv()) for _ in range(2)]
        assert [(m["tp"], m["o"]) for m in live] == [("t", 0), ("t", 1)]
        epoch = live[0]["e"]
        assert len(epoch) == 8 and live[1]["e"] == epoch
        # not requested: the current position, nothing replayed
        res = server.subscribe_with_recovery(cid, ["t", "empty"])
        assert res == {
            "recovered": False,
            "topics": {
                "t": {"epoch": epoch, "offset": 1, "recoverable": True, "recovered": False, "count": 0},
                "empty": {"epoch": None, "offset": 0, "recoverable": False, "recovered": False, "count": 0},
            },
        }
        # recovered from offset 0: offset 1 is replayed, byte-identical to its live copy
        res = server.subscribe_with_recovery(cid, ["t"], True, epoch, 0)
        assert res["recovered"] is True and res["topics"]["t"]["count"] == 1
        assert json.loads(await ws.recv()) == live[1]
        # wrong epoch: not recovered
        other = format((int(epoch, 16) + 1) % 2**32, "08x")
        res = server.subscribe_with_recovery(cid, ["t"], True, other, 0)
        assert res["topics"]["t"] == {"epoch": epoch, "offset": 1, "recoverable": True, "recovered": False, "count": 0}
        assert res["recovered"] is False
        # u64::MAX: nothing to replay, recovered
        res = server.subscribe_with_recovery(cid, ["t"], True, epoch, 2**64 - 1)
        assert res["topics"]["t"]["recovered"] is True and res["topics"]["t"]["count"] == 0
        with pytest.raises(RuntimeError, match="Invalid epoch hex string: zz"):
            server.subscribe_with_recovery(cid, ["t"], True, "zz", 0)
        await ws.close()

    run(go())


def test_recovery_replay_respects_the_topic_acl(make_server):
    server = make_server(recovery_enabled=True)

    async def go():
        ws, cid = await accepted(server)
        server.broadcast_local("secret", '{"t":"x","p":{}}')
        server.set_topic_acl(cid, deny=["secret"])
        res = server.subscribe_with_recovery(cid, ["secret"], True, "00000000", 0)
        assert res["topics"]["secret"] == {
            "epoch": None, "offset": 0, "recoverable": False, "recovered": False, "count": 0,
        }
        server.send(cid, "marker")
        assert await ws.recv() == "marker"  # nothing was replayed before it
        await ws.close()

    run(go())


def test_recovery_health_and_metrics(make_server):
    server = make_server(recovery_enabled=True)
    server.broadcast_local("a", '{"t":"x"}')
    server.broadcast_local("b", '{"t":"x"}')
    health = server.health_snapshot()
    assert health["recovery_enabled"] is True
    assert health["recovery_topic_count"] == 2
    assert health["recovery_total_bytes"] > 0
    metrics = server.prometheus_metrics()
    assert "\nwse_recovery_topics 2\n" in metrics
    assert "# TYPE wse_recovery_bytes gauge" in metrics
