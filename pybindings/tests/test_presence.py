"""Presence on one node: joins, leaves and updates over the wire and as drain events."""

import asyncio
import json

import pytest

from conftest import SECRET, connect, run, token


def presence_server(make_server, **kwargs):
    return make_server(jwt_secret=SECRET, presence_enabled=True, ping_interval=1, idle_timeout=2, **kwargs)


async def join(server, user, topic="room", data=None):
    """Connects as ``user``, subscribes with presence; returns ``(ws, conn_id)``."""
    ws = await connect(server, additional_headers={"Authorization": f"Bearer {token(user)}"})
    assert json.loads(await ws.recv())["t"] == "server_ready"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while loop.time() < deadline:
        for kind, cid, value in await asyncio.to_thread(server.drain_inbound, 16, 50):
            if kind == "auth_connect" and value == user:
                server.subscribe_connection(cid, [topic], data if data is not None else {"name": user})
                return ws, cid
    raise AssertionError("never connected")


async def presence_frames(ws, count, timeout=5):
    got = []
    while len(got) < count:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg.get("t", "").startswith("presence_"):
            got.append((msg["t"], msg["p"]["user_id"], msg["p"]["data"]))
    return got


def drained(server, kinds=("presence_join", "presence_leave")):
    return [(k, v) for k, _, v in server.drain_inbound(256, 100) if k in kinds]


def test_join_and_leave_reach_subscribers_and_the_drain_queue(make_server):
    server = presence_server(make_server)

    async def go():
        alice, _ = await join(server, "alice", data={"status": "online"})
        assert await presence_frames(alice, 1) == [("presence_join", "alice", {"status": "online"})]
        bob, _ = await join(server, "bob")
        assert await presence_frames(alice, 1) == [("presence_join", "bob", {"name": "bob"})]
        assert server.presence("room") == {
            "alice": {"data": {"status": "online"}, "connections": 1},
            "bob": {"data": {"name": "bob"}, "connections": 1},
        }
        assert server.presence_stats("room") == {"num_users": 2, "num_connections": 2}
        await bob.close()
        assert await presence_frames(alice, 1) == [("presence_leave", "bob", {"name": "bob"})]
        assert server.presence_stats("room") == {"num_users": 1, "num_connections": 1}
        await alice.close()

    run(go())
    events = drained(server)
    # joins are reported with conn_id None, as the original
    assert ("presence_join", {"topic": "room", "user_id": "bob", "data": {"name": "bob"}}) in events
    assert ("presence_leave", {"topic": "room", "user_id": "bob", "data": {"name": "bob"}}) in events


def test_a_user_with_two_connections_leaves_only_after_the_last(make_server):
    server = presence_server(make_server)

    async def go():
        watcher, _ = await join(server, "watcher")
        await presence_frames(watcher, 1)
        first, _ = await join(server, "carol")
        second, _ = await join(server, "carol")
        assert await presence_frames(watcher, 1) == [("presence_join", "carol", {"name": "carol"})]
        assert server.presence("room")["carol"]["connections"] == 2
        await first.close()
        await asyncio.sleep(0.3)
        assert server.presence("room")["carol"]["connections"] == 1
        await second.close()
        assert await presence_frames(watcher, 1) == [("presence_leave", "carol", {"name": "carol"})]
        await watcher.close()

    run(go())


def test_update_presence_reaches_every_topic_of_the_connection(make_server):
    server = presence_server(make_server)

    async def go():
        watcher, _ = await join(server, "watcher")
        await presence_frames(watcher, 1)
        dan, dan_id = await join(server, "dan")
        await presence_frames(watcher, 1)
        server.update_presence(dan_id, {"status": "away"})
        assert await presence_frames(watcher, 1) == [("presence_update", "dan", {"status": "away"})]
        assert server.presence("room")["dan"]["data"] == {"status": "away"}
        with pytest.raises(RuntimeError, match="Failed to update presence data"):
            server.update_presence(dan_id, {"blob": "x" * 5000})
        with pytest.raises(RuntimeError, match="Failed to update presence data"):
            server.update_presence("01a21c04-5bc6-79d0-a627-78745bb8c045", {"a": 1})
        await dan.close()
        await watcher.close()

    run(go())


def test_an_idle_connection_is_removed_with_a_leave(make_server):
    server = presence_server(make_server)

    async def go():
        watcher, _ = await join(server, "watcher")
        await presence_frames(watcher, 1)
        # ping_interval=1/idle_timeout=2: the quiet client is closed with 4408 and leaves.
        quiet = await connect(
            server,
            additional_headers={"Authorization": f"Bearer {token('quiet')}"},
            ping_interval=None,
        )
        await quiet.recv()
        for kind, cid, value in await asyncio.to_thread(server.drain_inbound, 16, 500):
            if kind == "auth_connect" and value == "quiet":
                server.subscribe_connection(cid, ["room"], {"q": 1})

        async def keep_watcher_alive():
            while True:
                await watcher.send('{"t":"ping"}')
                await asyncio.sleep(0.5)

        pinger = asyncio.create_task(keep_watcher_alive())
        frames = await presence_frames(watcher, 2, timeout=10)
        pinger.cancel()
        assert frames == [("presence_join", "quiet", {"q": 1}), ("presence_leave", "quiet", {"q": 1})]
        await watcher.close()

    run(go())


def test_presence_limits_data_size_and_members(make_server):
    server = presence_server(make_server, presence_max_data_size=64, presence_max_members=1)

    async def go():
        a, _ = await join(server, "a", data={"x": "y" * 100})  # too large: silently not tracked
        await asyncio.sleep(0.2)
        assert server.presence("room") == {}
        b, _ = await join(server, "b")
        c, _ = await join(server, "c")  # room is full
        await asyncio.sleep(0.2)
        assert list(server.presence("room")) == ["b"]
        for ws in (a, b, c):
            await ws.close()

    run(go())


def test_presence_is_off_by_default_and_health_reports_it(make_server):
    off = make_server()
    assert off.presence("room") == {} and off.presence_stats("room") == {"num_users": 0, "num_connections": 0}
    off.update_presence("anything", {"a": 1})  # a no-op when presence is off
    assert "presence_topics" not in off.health_snapshot()
    on = presence_server(make_server)

    async def go():
        ws, _ = await join(on, "eve")
        await presence_frames(ws, 1)
        health = on.health_snapshot()
        assert (health["presence_topics"], health["presence_total_users"]) == (1, 1)
        assert "\nwse_presence_users 1\n" in on.prometheus_metrics()
        await ws.close()

    run(go())
