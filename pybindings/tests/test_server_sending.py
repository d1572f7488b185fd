"""Sending, broadcasts, topics, ACLs, queue groups and disconnects, seen by real clients."""

import asyncio
import datetime
import json
import uuid
import zlib

import msgpack
import pytest
import websockets

from conftest import accepted, recv_json, run


def test_send_and_send_bytes_arrive_verbatim(make_server):
    server = make_server()

    async def go():
        ws, cid = await accepted(server)
        server.send(cid, "hello text")
        server.send_bytes(cid, b"\x00raw")
        assert await ws.recv() == "hello text"
        assert await ws.recv() == b"\x00raw"
        server.send("not-a-connection-id", "ignored")  # unknown ids are ignored
        server.send("01a21c04-5bc6-79d0-a627-78745bb8c045", "ignored")
        await ws.close()

    run(go())


class Stringy:
    def __str__(self):
        return "stringy!"


def test_send_event_builds_the_envelope_and_converts_python_values(make_server):
    server = make_server()
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

    async def go():
        ws, cid = await accepted(server)
        sent = server.send_event(
            cid,
            {
                "t": "order_update",
                "p": {
                    "big": 2**70,
                    "neg": -(2**63),
                    "bytes": b"\x01\xab",
                    "nan": float("nan"),
                    "inf": float("inf"),
                    "when": when,
                    "tuple": (1, "a"),
                    "keys": {1: "one", None: "none"},
                    "obj": Stringy(),
                    "uuid": uuid.UUID(int=1),
                },
                "cid": "corr-1",
            },
        )
        frame = await ws.recv()
        assert isinstance(frame, bytes) and sent == len(frame)
        env = json.loads(frame)
        assert env["t"] == "order_update" and env["c"] == "U" and env["v"] == 1
        assert env["cid"] == "corr-1"
        assert {"id", "seq", "ts"} <= env.keys()
        assert env["p"] == {
            "big": str(2**70),
            "neg": -(2**63),
            "bytes": "01ab",
            "nan": None,
            "inf": None,
            "when": when.isoformat(),
            "tuple": [1, "a"],
            "keys": {"1": "one", "None": "none"},
            "obj": "stringy!",
            "uuid": str(uuid.UUID(int=1)),
        }
        await ws.close()

    run(go())


def test_send_event_compresses_above_the_threshold_and_uses_msgpack_when_asked(make_server):
    server = make_server()

    async def go():
        ws, cid = await accepted(server)
        server.send_event(cid, {"t": "big", "p": {"pad": "x" * 5000}}, 1024)
        frame = await ws.recv()
        assert frame[:2] == b"C:"
        assert json.loads(zlib.decompress(frame[2:]))["p"]["pad"] == "x" * 5000
        server.send_event(cid, {"t": "big", "p": {"pad": "x" * 5000}}, 100_000)
        assert json.loads(await ws.recv())["t"] == "big"  # under the threshold: plain JSON
        mp, mp_id = await accepted(server, "?format=msgpack")
        server.send_event(mp_id, {"t": "packed", "p": {"n": 1}})
        frame = await mp.recv()
        assert frame[:2] == b"M:"
        assert msgpack.unpackb(frame[2:])["p"] == {"n": 1}
        await ws.close()
        await mp.close()

    run(go())


def test_send_event_deduplicates_ids_and_returns_zero_for_unknown_connections(make_server):
    server = make_server()

    async def go():
        ws, cid = await accepted(server)
        assert server.send_event(cid, {"t": "a", "id": "same"}) > 0
        assert server.send_event(cid, {"t": "a", "id": "same"}) == 0
        assert server.send_event("01a21c04-5bc6-79d0-a627-78745bb8c045", {"t": "a"}) == 0
        await ws.close()

    run(go())


def test_send_event_refuses_unconvertible_values_with_an_error(make_server):
    server = make_server()

    class Broken:
        def __str__(self):
            raise RuntimeError("no string for you")

    loop = []
    loop.append(loop)
    with pytest.raises(RuntimeError, match="no string for you"):
        server.send_event("id", {"t": "x", "p": Broken()})
    with pytest.raises(ValueError, match="nested deeper"):
        server.send_event("id", {"t": "x", "p": loop})
    with pytest.raises(TypeError):
        server.send_event("id", ["not", "a", "dict"])


def test_send_event_rate_limit_returns_zero_when_the_bucket_is_empty(make_server):
    server = make_server(rate_limit_capacity=3.0, rate_limit_refill=0.001)

    async def go():
        ws, cid = await accepted(server)
        results = [server.send_event(cid, {"t": "x"}) for _ in range(5)]
        assert [r > 0 for r in results] == [True, True, True, False, False]
        await ws.close()

    run(go())


def test_broadcast_all_reaches_every_client_with_the_category_injected(make_server):
    server = make_server()

    async def go():
        clients = [await accepted(server) for _ in range(3)]
        server.broadcast_all('{"t":"notice","p":{"n":1}}')
        server.broadcast_all_bytes(b"\x01\x02")
        for ws, _ in clients:
            assert await recv_json(ws) == {"c": "U", "t": "notice", "p": {"n": 1}}
            assert await ws.recv() == b"\x01\x02"
            await ws.close()

    run(go())


def test_topics_exact_and_glob_subscriptions_and_unsubscribe(make_server):
    server = make_server()

    async def go():
        exact, a = await accepted(server)
        glob, b = await accepted(server)
        server.subscribe_connection(a, ["prices.eur"])
        server.subscribe_connection(b, ["prices.*"])
        assert server.get_topic_subscriber_count("prices.eur") == 1
        assert server.get_topic_subscriber_count("prices.*") == 1
        server.broadcast_local("prices.eur", '{"t":"tick","p":{"v":1}}')
        server.broadcast("prices.usd", '{"t":"tick","p":{"v":2}}')
        assert (await recv_json(exact))["p"] == {"v": 1}
        assert (await recv_json(glob))["p"] == {"v": 1}
        assert (await recv_json(glob))["p"] == {"v": 2}
        server.unsubscribe_connection(a, ["prices.eur"])
        server.unsubscribe_connection(b)  # all topics
        assert server.get_topic_subscriber_count("prices.eur") == 0
        server.broadcast_local("prices.eur", '{"t":"tick","p":{"v":3}}')
        server.send(a, "marker")
        server.send(b, "marker")
        assert await exact.recv() == "marker"
        assert await glob.recv() == "marker"
        await exact.close()
        await glob.close()

    run(go())


def test_topic_acl_blocks_subscriptions_and_glob_deliveries_of_denied_topics(make_server):
    server = make_server()

    async def go():
        ws, cid = await accepted(server)
        server.set_topic_acl(cid, allow=["chat.*"], deny=["chat.secret"])
        server.subscribe_connection(cid, ["chat.secret", "news", "chat.*"])
        assert server.get_topic_subscriber_count("chat.secret") == 0
        assert server.get_topic_subscriber_count("news") == 0
        assert server.get_topic_subscriber_count("chat.*") == 1
        server.broadcast_local("chat.secret", '{"t":"leak"}')  # glob matches, ACL denies
        server.broadcast_local("chat.public", '{"t":"ok"}')
        assert (await recv_json(ws))["t"] == "ok"
        await ws.close()

    run(go())


def test_queue_groups_deliver_round_robin_to_one_member_each(make_server):
    server = make_server()

    async def go():
        members = [await accepted(server) for _ in range(3)]
        for _, cid in members:
            server.subscribe_connection(cid, ["jobs"], queue_group="workers")
        assert server.get_queue_group_info("jobs") == {"workers": 3}
        assert server.get_topic_subscriber_count("jobs") == 0  # queue members not counted
        for i in range(6):
            server.broadcast_local("jobs", json.dumps({"t": "job", "p": {"i": i}}))
        got = []
        for ws, _ in members:
            for _ in range(2):
                got.append((await recv_json(ws))["p"]["i"])
        assert sorted(got) == list(range(6))
        for ws, _ in members:
            await ws.close()

    run(go())


def test_max_subscriptions_per_connection_raises_at_the_limit(make_server):
    server = make_server(max_subscriptions_per_connection=2)

    async def go():
        ws, cid = await accepted(server)
        server.subscribe_connection(cid, ["a", "b", "c"])  # cut to the budget
        assert [server.get_topic_subscriber_count(t) for t in "abc"] == [1, 1, 0]
        with pytest.raises(RuntimeError, match=rf"Connection {cid} reached max subscriptions \(2\)"):
            server.subscribe_connection(cid, ["d"])
        await ws.close()

    run(go())


def test_disconnect_sends_the_given_close_code_and_reason(make_server):
    server = make_server()

    async def go():
        ws, cid = await accepted(server)
        assert server.get_connections() == [cid]
        assert server.get_connection_count() == 1
        server.disconnect(cid, 4001, "kicked")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert (ws.close_code, ws.close_reason) == (4001, "kicked")
        other, cid2 = await accepted(server)
        server.disconnect(cid2)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(other.recv(), 5)
        assert other.close_code == 1000
        with pytest.raises(ValueError):
            server.disconnect(cid2, 1005)
        with pytest.raises(ValueError):
            server.disconnect(cid2, 4000, "x" * 124)

    run(go())
