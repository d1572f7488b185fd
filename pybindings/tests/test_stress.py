"""Four Python threads publishing while one drains: nothing lost, nothing reordered per
publisher, no GIL deadlock. Bounded by count (and a generous timeout), never by speed."""

import asyncio
import json
import threading

from conftest import accepted, run

PUBLISHERS = 4
PER_PUBLISHER = 10_000
INBOUND_CLIENTS = 2
PER_CLIENT = 10_000


def test_four_publishers_and_one_drainer_lose_nothing(make_server):
    server = make_server(max_outbound_queue_bytes=0)
    drained = []
    stop_draining = threading.Event()

    def drainer():
        while not stop_draining.is_set() or server.inbound_queue_depth():
            for kind, _, value in server.drain_inbound(256, 20):
                if kind == "msg":
                    drained.append((value["p"]["c"], value["p"]["n"]))

    def publisher(index, start):
        start.wait()
        for n in range(PER_PUBLISHER):
            server.broadcast_local("stress", json.dumps({"t": "s", "p": {"th": index, "n": n}}))

    async def go():
        reader, reader_id = await accepted(server)
        server.subscribe_connection(reader_id, ["stress"])
        senders = [await accepted(server) for _ in range(INBOUND_CLIENTS)]
        drain_thread = threading.Thread(target=drainer)
        drain_thread.start()
        start = threading.Event()
        threads = [threading.Thread(target=publisher, args=(i, start)) for i in range(PUBLISHERS)]
        for t in threads:
            t.start()
        start.set()

        async def send_all(ws, c):
            for n in range(PER_CLIENT):
                await ws.send(json.dumps({"t": "in", "p": {"c": c, "n": n}}))

        async def read_all():
            seen = {i: [] for i in range(PUBLISHERS)}
            for _ in range(PUBLISHERS * PER_PUBLISHER):
                msg = json.loads(await asyncio.wait_for(reader.recv(), 30))
                seen[msg["p"]["th"]].append(msg["p"]["n"])
            return seen

        results = await asyncio.gather(
            read_all(), *(send_all(ws, c) for c, (ws, _) in enumerate(senders))
        )
        for t in threads:
            await asyncio.to_thread(t.join, 60)
            assert not t.is_alive(), "a publisher thread is stuck"
        await asyncio.sleep(0.2)
        stop_draining.set()
        await asyncio.to_thread(drain_thread.join, 60)
        assert not drain_thread.is_alive(), "the drain thread is stuck"
        for ws, _ in [(reader, None), *senders]:
            await ws.close()
        return results[0]

    seen = run(go(), timeout=120)
    for index in range(PUBLISHERS):
        assert seen[index] == list(range(PER_PUBLISHER)), f"publisher {index} lost or reordered"
    for c in range(INBOUND_CLIENTS):
        assert [n for cc, n in drained if cc == c] == list(range(PER_CLIENT))
    assert server.inbound_dropped_count() == 0
