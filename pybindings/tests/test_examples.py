"""The examples and the README's Quick Start run as written, and the published client talks
to them. Each runs as its own process, as a user would start it."""

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, published_client, run

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
README = HERE.parents[1] / "README.md"


class Script:
    """A Python program under test, its stdout read line by line on a thread."""

    def __init__(self, args):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("WSE_JWT_SECRET", None)
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"never printed {pattern!r}; output so far: {self.seen}")

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=20)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def script():
    started = []

    def start(*args):
        s = Script(args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


async def recv_type(client, wanted, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await client.recv(timeout=max(0.1, deadline - loop.time()))
        if event.type == wanted:
            return event


def test_standalone_basic_echoes_to_the_published_client(script):
    port = free_port()
    app = script(str(EXAMPLES / "standalone_basic.py"), "--port", str(port))
    tok = app.expect(r"^token: (\S+)$").group(1)

    async def go():
        client = await published_client(port, tok)
        await client.send("hello", {"x": 1})
        echo = await recv_type(client, "echo")
        assert echo.payload["from"] == "dev-user"
        assert echo.payload["message"]["p"] == {"x": 1}
        await client.disconnect()

    run(go())
    app.expect(r"^connected: dev-user")
    assert app.interrupt() == 0
    app.expect(r"^stopped$")


def test_standalone_broadcast_ticks_and_relays_chat(script):
    port = free_port()
    app = script(str(EXAMPLES / "standalone_broadcast.py"), "--port", str(port), "--interval", "0.2")
    tok = app.expect(r"^token: (\S+)$").group(1)

    async def go():
        client = await published_client(port, tok)
        assert (await recv_type(client, "joined")).payload == {"user": "dev-user"}
        assert (await recv_type(client, "tick")).payload["n"] >= 1
        await client.send("chat", {"text": "hi all"})
        chat = await recv_type(client, "chat")
        assert chat.payload["user"] == "dev-user" and chat.payload["text"] == "hi all"
        await client.disconnect()

    run(go())
    assert app.interrupt() == 0
    app.expect(r"^stopped$")


def readme_block(marker):
    text = README.read_text()
    m = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no python block after <!-- {marker} -->"
    return m.group(1)


def test_the_readme_quick_start_runs_and_the_published_client_connects(script):
    server_code = readme_block("quickstart")
    token_code = readme_block("quickstart-token")
    assert '"0.0.0.0", 5007' in server_code  # the original's Quick Start, unchanged
    app = script("-c", server_code)
    namespace = {}
    exec("import time\nfrom wse_server import rust_jwt_encode\n" + token_code, namespace)
    tok = namespace["token"]

    async def go():
        for _ in range(100):  # the script has started when its port answers
            try:
                _, w = await asyncio.open_connection("127.0.0.1", 5007)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        client = await published_client(5007, tok)
        await client.send("greeting", {"text": "hello quick start"})
        await asyncio.sleep(0.5)
        await client.disconnect()

    run(go())
    app.expect(r"^Message from \S+: .*hello quick start")
    app.expect(r"^Disconnected: ")


def test_standalone_recovery_replays_headlines_missed_across_a_reconnect(script):
    port = free_port()
    app = script(str(EXAMPLES / "standalone_recovery.py"), "--port", str(port), "--interval", "0.1")
    tok = app.expect(r"^token: (\S+)$").group(1)

    async def go():
        client = await published_client(port, tok)
        await client.subscribe(["news"])
        first = (await recv_type(client, "headline")).payload["n"]
        await client.send("reconnect_me", {})
        seen = [first]
        while len(seen) < 40:  # about 4 s of headlines, across the drop and the recovery
            seen.append((await recv_type(client, "headline")).payload["n"])
        assert seen == list(range(first, first + 40)), "a headline was lost or repeated"
        await client.disconnect()

    run(go(), timeout=60)
    app.expect(r"^recovery for news: recovered=True count=\d+$")


def test_standalone_presence_announces_joins_updates_and_who(script):
    port = free_port()
    app = script(str(EXAMPLES / "standalone_presence.py"), "--port", str(port))
    alice_tok = app.expect(r"^token alice: (\S+)$").group(1)
    bob_tok = app.expect(r"^token bob: (\S+)$").group(1)

    async def go():
        alice = await published_client(port, alice_tok)
        assert (await recv_type(alice, "presence_join")).payload["user_id"] == "alice"
        bob = await published_client(port, bob_tok)
        assert (await recv_type(alice, "presence_join")).payload == {"user_id": "bob", "data": {"status": "online"}}
        await bob.send("status", {"status": "away"})
        update = await recv_type(alice, "presence_update")
        assert update.payload == {"user_id": "bob", "data": {"status": "away"}}
        await alice.send("who", {})
        who = (await recv_type(alice, "who")).payload
        assert who["num_users"] == 2 and who["lobby"]["bob"]["data"] == {"status": "away"}
        await bob.disconnect()
        assert (await recv_type(alice, "presence_leave")).payload["user_id"] == "bob"
        await alice.disconnect()

    run(go(), timeout=60)
    app.expect(r"^left lobby: bob$")
    assert app.interrupt() == 0


def test_standalone_cluster_routes_node1_headlines_to_clients_of_the_other_nodes(script):
    ports = [free_port() for _ in range(6)]
    app = script(
        str(EXAMPLES / "standalone_cluster.py"),
        "--ports", ",".join(map(str, ports[:3])),
        "--cluster-ports", ",".join(map(str, ports[3:])),
        "--interval", "0.2",
    )
    app.expect(r"^cluster: every node linked to 2 peers$")
    tok = app.expect(r"^token: (\S+)$").group(1)

    async def go():
        on_node3 = await published_client(ports[2], tok)
        on_node2 = await published_client(ports[1], tok)
        for client in (on_node3, on_node2):
            headline = (await recv_type(client, "headline")).payload
            assert headline["from"] == "node1" and headline["n"] >= 1
            await client.disconnect()

    run(go(), timeout=60)
    app.expect(r"^node1: headline \d+ goes to 2 other node\(s\)$")
    assert app.interrupt() == 0
    app.expect(r"^stopped$")
