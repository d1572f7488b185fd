"""Inbound events: drain mode (order, tuple shapes, conversions) and callback mode."""

import asyncio
import json
import threading
import time

import msgpack
import pytest

from conftest import SECRET, accepted, connect, run, token, wait_events


def test_drain_mode_delivers_connect_msg_raw_bin_disconnect_in_order(make_server):
    server = make_server()

    async def go():
        ws = await connect(server, additional_headers={"Cookie": "theme=dark; a=b"})
        await ws.send(json.dumps({"type": "chat", "payload": {"z": 1, "a": [1, 2.5, None]}}))
        await ws.send("not json at all")
        await ws.send("[1, 2]")
        await ws.send(b"\x00\x01binary")
        await ws.close()

    run(go())
    events = wait_events(server, 6)
    conn_id = events[0][1]
    assert events[0] == ("connect", conn_id, "theme=dark; a=b")
    kind, cid, value = events[1]
    assert (kind, cid) == ("msg", conn_id)
    # type/payload are normalised to t/p; keys come sorted
    assert value == {"t": "chat", "p": {"z": 1, "a": [1, 2.5, None]}}
    assert list(value["p"]) == ["a", "z"]
    assert isinstance(value["p"]["a"][0], int) and isinstance(value["p"]["a"][1], float)
    assert events[2] == ("raw", conn_id, "not json at all")
    assert events[3] == ("raw", conn_id, "[1, 2]")
    assert events[4] == ("bin", conn_id, b"\x00\x01binary")
    assert events[5] == ("disconnect", conn_id, None)


def test_jwt_connections_report_auth_connect_with_the_subject(make_server):
    server = make_server(jwt_secret=SECRET)

    async def go():
        ws = await connect(server, additional_headers={"Cookie": f"access_token={token('bob')}"})
        ready = json.loads(await ws.recv())
        assert ready["t"] == "server_ready"
        await ws.close()

    run(go())
    (kind, conn_id, user), last = wait_events(server, 2)
    assert (kind, user) == ("auth_connect", "bob")
    assert last == ("disconnect", conn_id, None)


def test_a_bad_token_is_refused_with_4401_and_no_event(make_server):
    server = make_server(jwt_secret=SECRET)

    async def go():
        ws = await connect(server, additional_headers={"Authorization": "Bearer nope"})
        with pytest.raises(Exception):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4401

    run(go())
    assert server.drain_inbound(16, 200) == []


def test_msgpack_connections_decode_binary_frames_to_dicts(make_server):
    server = make_server()

    async def go():
        ws, conn_id = await accepted(server, "?format=msgpack")
        await ws.send(msgpack.packb({"t": "m", "p": {"k": [1, "two"], "blob": b"\x01\xff"}}))
        await asyncio.sleep(0.1)
        await ws.close()
        return conn_id

    conn_id = run(go())
    kind, cid, value = wait_events(server, 1)[0]
    assert (kind, cid) == ("msg", conn_id)
    assert value == {"t": "m", "p": {"k": [1, "two"], "blob": "01ff"}}


def test_drain_inbound_respects_max_count_and_returns_empty_on_timeout(make_server):
    server = make_server()

    async def go():
        ws, _ = await accepted(server)
        for i in range(10):
            await ws.send(json.dumps({"t": "n", "p": {"i": i}}))
        await asyncio.sleep(0.3)
        first = server.drain_inbound(4, 100)
        rest = server.drain_inbound(100, 100)
        assert [e[2]["p"]["i"] for e in first] == [0, 1, 2, 3]
        assert [e[2]["p"]["i"] for e in rest] == [4, 5, 6, 7, 8, 9]
        assert server.drain_inbound(100, 20) == []
        await ws.close()

    run(go())


def test_inbound_queue_depth_counts_waiting_events(make_server):
    server = make_server()

    async def go():
        ws, _ = await accepted(server)
        for _ in range(5):
            await ws.send('{"t":"x"}')
        await asyncio.sleep(0.3)
        assert server.inbound_queue_depth() == 5
        assert len(server.drain_inbound(100, 10)) == 5
        assert server.inbound_queue_depth() == 0
        await ws.close()

    run(go())


def test_a_full_inbound_queue_stops_reading_and_loses_nothing(make_server):
    """Back-pressure: with the queue full the server stops reading the socket (TCP holds the
    rest), nothing is dropped, and every message arrives once the application drains."""
    server = make_server(max_inbound_queue_size=4)

    async def go():
        ws = await connect(server)  # connect event takes one slot
        for i in range(10):
            await ws.send(f'{{"t":"x","p":{{"i":{i}}}}}')
        await asyncio.sleep(0.3)
        assert server.inbound_queue_depth() == 4
        assert server.inbound_dropped_count() == 0
        seen = []
        for _ in range(50):
            for kind, _, value in server.drain_inbound(100, 20):
                if kind == "msg":
                    seen.append(value["p"]["i"])
            if len(seen) == 10:
                break
            await asyncio.sleep(0.02)
        assert seen == list(range(10))
        assert server.inbound_dropped_count() == 0
        assert server.health_snapshot()["inbound_dropped"] == 0
        await ws.close()

    run(go())


class Recorder:
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def record(self, *event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, count, timeout=5.0):
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= count, timeout)
            assert len(self.events) >= count, self.events
            return list(self.events)


def test_callback_mode_calls_connect_message_and_disconnect_in_order(make_server):
    server = make_server(drain=False, start=False, jwt_secret=SECRET)
    rec = Recorder()
    server.set_callbacks(
        lambda cid, cookies: rec.record("connect", cid, cookies),
        lambda cid, msg: rec.record("message", cid, msg),
        lambda cid: rec.record("disconnect", cid),
    )
    server.start()
    tok = token("carol")

    async def go():
        ws = await connect(server, additional_headers={"Cookie": f"access_token={tok}"})
        await ws.recv()  # server_ready
        await ws.send('{"t":"hi","p":{"n":1}}')
        await ws.send("plain text")
        await ws.send(b"\x07")
        await ws.close()

    run(go())
    events = rec.wait(5)
    cid = events[0][1]
    # on_connect gets the cookies even for an authenticated connection, as the original
    assert events == [
        ("connect", cid, f"access_token={tok}"),
        ("message", cid, {"t": "hi", "p": {"n": 1}}),
        ("message", cid, "plain text"),
        ("message", cid, b"\x07"),
        ("disconnect", cid),
    ]
    assert server.drain_inbound(10, 10) == []  # nothing is queued in callback mode


def test_a_raising_callback_is_reported_and_later_events_still_arrive(make_server, capfd):
    server = make_server(drain=False)
    rec = Recorder()

    def on_message(cid, msg):
        if msg == "boom":
            raise ValueError("callback failure under test")
        rec.record("message", msg)

    server.set_callbacks(lambda *a: None, on_message, lambda cid: rec.record("disconnect"))

    async def go():
        ws = await connect(server)
        await ws.send("boom")
        await ws.send("after")
        await ws.close()

    run(go())
    assert rec.wait(2) == [("message", "after"), ("disconnect",)]
    assert "callback failure under test" in capfd.readouterr().err


def test_set_callbacks_requires_three_callables(make_server):
    server = make_server(start=False)
    with pytest.raises(RuntimeError, match="All callbacks must be callable"):
        server.set_callbacks(print, print, 3)


def test_without_drain_mode_or_callbacks_events_are_discarded(make_server):
    server = make_server(drain=False)

    async def go():
        ws = await connect(server)
        for _ in range(50):
            await ws.send('{"t":"x"}')
        await asyncio.sleep(0.3)
        await ws.close()

    run(go())
    # The event thread keeps taking events and drops them: the queue drains to empty (bounded
    # wait: the disconnect event may still be in flight) and nothing was dropped for lack of room.
    deadline = time.monotonic() + 5
    while server.inbound_queue_depth() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.inbound_queue_depth() == 0
    assert server.inbound_dropped_count() == 0
