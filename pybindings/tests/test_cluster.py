"""The cluster methods of RustWSEServer (UPSTREAM §7.8, §10.10): argument checks and return
shapes (pinned against the original wse-server 2.5.1 where it is the spec), routing between
in-process nodes, the dead-letter queue, and a three-node mTLS cluster of real processes that
survives a SIGKILL and a restart of one node."""

import asyncio
import datetime
import ipaddress
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import SECRET, accepted, free_port, published_client, recv_json, run, token
from wse_server._wse_accel import RustWSEServer

TLS_ENV = ("WSE_CLUSTER_TLS_CERT", "WSE_CLUSTER_TLS_KEY", "WSE_CLUSTER_TLS_CA")


@pytest.fixture(autouse=True)
def no_tls_env(monkeypatch):
    """connect_cluster falls back to these variables; the tests set them only on purpose."""
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)


def wait_for(predicate, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---- certificates ------------------------------------------------------------------------


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _validity(builder):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=1)
    )


class CertAuthority:
    """A CA made at test time; ``node(name)`` issues a certificate for 127.0.0.1 usable as
    both TLS server and client, written as PEM files next to the CA's."""

    def __init__(self, directory, name):
        self.dir = Path(directory)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = str(self.dir / f"{name}-ca.pem")
        Path(self.ca_path).write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def node(self, name):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return {"tls_cert": str(cert_path), "tls_key": str(key_path), "tls_ca": self.ca_path}


@pytest.fixture
def ca(tmp_path):
    return CertAuthority(tmp_path, "cluster")


# ---- before start, argument checks -------------------------------------------------------


def test_cluster_queries_before_start_are_empty_as_the_original(make_server):
    # Original: False, 0, [], [] before start; reload → "Cluster TLS not configured".
    server = make_server(start=False)
    assert server.cluster_connected() is False
    assert server.cluster_peers_count() == 0
    assert server.cluster_info() == []
    assert server.get_cluster_dlq_entries() == []
    assert server.cluster_routes("news") == 0
    with pytest.raises(RuntimeError, match=r"^Cluster TLS not configured$"):
        server.reload_cluster_tls("a.crt", "a.key", "ca.pem")
    server.broadcast("news", '{"t":"x"}')  # dropped, never raises (original too)


def test_connect_cluster_before_start_is_refused_after_the_argument_checks(make_server, tmp_path):
    # Original order: seeds, then TLS (partial, then unreadable files), then "Server not started".
    server = make_server(start=False)
    with pytest.raises(RuntimeError, match=r"^Server not started$"):
        server.connect_cluster([])
    with pytest.raises(RuntimeError, match=r"^seeds= requires cluster_addr="):
        server.connect_cluster([], tls_cert="/x", seeds=["127.0.0.1:1"])
    with pytest.raises(RuntimeError, match=r"^Partial TLS config"):
        server.connect_cluster([], tls_cert="/x")
    with pytest.raises(RuntimeError, match=r"^TLS config error: .*no-such"):
        server.connect_cluster([], tls_cert=str(tmp_path / "no-such.crt"), tls_key="/y", tls_ca="/z")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"peers": None}, TypeError),  # original: TypeError
        ({"peers": "127.0.0.1:1"}, TypeError),  # a str is not a list of peers (original too)
        ({"peers": [1]}, TypeError),
        ({"peers": [], "cluster_port": -1}, OverflowError),
        ({"peers": [], "cluster_port": 70000}, OverflowError),
        ({"peers": [], "cluster_port": "1"}, TypeError),
        ({"peers": [], "seeds": "127.0.0.1:1", "cluster_addr": "127.0.0.1:2"}, TypeError),
    ],
)
def test_connect_cluster_argument_types_raise_as_the_original(make_server, kwargs, error):
    server = make_server()
    with pytest.raises(error):
        server.connect_cluster(**kwargs)
    assert server.cluster_peers_count() == 0


def test_connect_cluster_with_no_peers_succeeds_once_as_the_original(make_server):
    # Original: peers=[] is accepted (a node that only waits for others); tuples are accepted too.
    server = make_server()
    assert server.connect_cluster(()) is None
    assert server.cluster_connected() is False and server.cluster_info() == []
    # Original: "already connected" comes before every other check.
    for kwargs in ({}, {"tls_cert": "/x"}, {"seeds": ["127.0.0.1:1"]}):
        with pytest.raises(RuntimeError, match=r"^Cluster already connected$"):
            server.connect_cluster([], **kwargs)
    with pytest.raises(RuntimeError, match=r"^Cluster TLS not configured$"):
        server.reload_cluster_tls("a.crt", "a.key", "ca.pem")


def test_seeds_without_cluster_addr_are_refused_even_when_empty(make_server):
    # Original: seeds=[] without cluster_addr raises too.
    server = make_server()
    for seeds in (["127.0.0.1:1"], []):
        with pytest.raises(RuntimeError, match=r"^seeds= requires cluster_addr="):
            server.connect_cluster([], seeds=seeds)
    server.connect_cluster([], seeds=[], cluster_addr="127.0.0.1:1")  # the call then works


def test_partial_tls_arguments_and_environment_are_refused(make_server, monkeypatch, tmp_path):
    server = make_server()
    with pytest.raises(RuntimeError, match=r"^Partial TLS config: .*tls_key"):
        server.connect_cluster([], tls_cert="/x", tls_ca="/z")
    monkeypatch.setenv("WSE_CLUSTER_TLS_CERT", "/x")
    with pytest.raises(RuntimeError, match=r"^Partial TLS config: .*WSE_CLUSTER_TLS_KEY"):
        server.connect_cluster([])
    monkeypatch.setenv("WSE_CLUSTER_TLS_KEY", "/y")
    monkeypatch.setenv("WSE_CLUSTER_TLS_CA", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(RuntimeError, match=r"^TLS config error: "):
        server.connect_cluster([])
    assert server.cluster_info() == []  # nothing half-connected: a later call may succeed
    for name in TLS_ENV:
        monkeypatch.delenv(name)
    server.connect_cluster([])


def test_tls_from_the_environment_is_used_when_no_arguments_are_given(make_server, monkeypatch, ca):
    files = ca.node("env-node")
    for name, key in zip(TLS_ENV, ("tls_cert", "tls_key", "tls_ca")):
        monkeypatch.setenv(name, files[key])
    server = make_server()
    server.connect_cluster([])
    # A TLS cluster: reload works (it raises "not configured" on a plain one).
    assert server.reload_cluster_tls(files["tls_cert"], files["tls_key"], files["tls_ca"]) is None


def test_an_unusable_tls_file_is_named_in_the_error(make_server, ca):
    files = ca.node("n1")
    server = make_server()
    with pytest.raises(RuntimeError, match=r"^TLS config error: .*n1\.crt"):
        server.connect_cluster([], tls_cert=files["tls_cert"], tls_key=files["tls_cert"], tls_ca=files["tls_ca"])


def test_an_address_that_is_not_host_port_is_refused(make_server):
    # Deliberate difference: the original accepts "nonsense" and then fails to dial it forever.
    server = make_server()
    with pytest.raises(RuntimeError, match=r"invalid cluster address \"nonsense\""):
        server.connect_cluster(["nonsense"])
    server.connect_cluster(["localhost:1"])  # hostnames are fine


def test_a_busy_cluster_port_raises_oserror(make_server):
    # Deliberate difference: the original returns None and only logs the failed bind.
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = make_server()
        with pytest.raises(OSError, match=f"cluster port 0.0.0.0:{port}") as err:
            server.connect_cluster([], cluster_port=port)
        assert err.value.errno is not None
    server.connect_cluster([], cluster_port=port)  # not marked connected by the failure


def test_connect_cluster_after_stop_says_not_started(make_server):
    # Deliberate difference: the original accepts it on a stopped server (and does nothing
    # useful); here the cluster lives and dies with the running server.
    server = make_server()
    server.stop()
    with pytest.raises(RuntimeError, match=r"^Server not started$"):
        server.connect_cluster([])
    assert server.cluster_info() == [] and server.get_cluster_dlq_entries() == []


def test_the_cluster_methods_have_the_original_signatures():
    sig = RustWSEServer.connect_cluster.__text_signature__
    assert sig == (
        "($self, peers, tls_cert=None, tls_key=None, tls_ca=None, cluster_port=None, seeds=None, cluster_addr=None)"
    )
    assert RustWSEServer.reload_cluster_tls.__text_signature__ == "($self, cert_path, key_path, ca_path)"
    for name in ("cluster_connected", "cluster_peers_count", "cluster_info", "get_cluster_dlq_entries"):
        assert getattr(RustWSEServer, name).__text_signature__ == "($self)"
    assert RustWSEServer.broadcast.__text_signature__ == "($self, topic, data)"
    assert "Not in the original" in RustWSEServer.cluster_routes.__doc__


# ---- in-process nodes --------------------------------------------------------------------


def link_pair(make_server, tls_a=None, tls_b=None, **server_kwargs):
    """Two started nodes; A listens, B dials A. Returns (a, b, a_addr)."""
    a, b = make_server(**server_kwargs), make_server(**server_kwargs)
    port_a = free_port()
    addr_a = f"127.0.0.1:{port_a}"
    a.connect_cluster([], cluster_port=port_a, cluster_addr=addr_a, **(tls_a or {}))
    b.connect_cluster([addr_a], **(tls_b or {}))
    return a, b, addr_a


def test_two_nodes_link_and_report_each_other(make_server):
    a, b, addr_a = link_pair(make_server)
    wait_for(lambda: a.cluster_peers_count() == 1 and b.cluster_peers_count() == 1, what="the link")
    assert a.cluster_connected() and b.cluster_connected()
    info_b = b.cluster_info()
    assert len(info_b) == 1
    (peer,) = info_b
    assert set(peer) == {"address", "instance_id", "capabilities", "connected_at"}
    assert peer["address"] == addr_a  # what A announced
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", peer["instance_id"])
    assert isinstance(peer["capabilities"], int) and peer["capabilities"] > 0
    assert abs(peer["connected_at"] - time.time() * 1000) < 60_000
    assert a.cluster_info()[0]["instance_id"] != peer["instance_id"]
    assert a.health_snapshot()["cluster_peer_count"] == 1


def test_broadcast_reaches_a_subscriber_on_another_node_and_broadcast_local_does_not(make_server):
    a, b, _ = link_pair(make_server)
    wait_for(lambda: a.cluster_peers_count() == 1, what="the link")

    async def go():
        ws, cid = await accepted(b)
        b.subscribe_connection(cid, ["news"])
        await asyncio.to_thread(wait_for, lambda: a.cluster_routes("news") == 1, 10, "B's interest on A")
        assert a.cluster_routes("other") == 0
        a.broadcast_local("news", json.dumps({"t": "local_only", "p": {}}))
        a.broadcast("news", json.dumps({"t": "headline", "p": {"n": 1}}))
        while True:
            msg = await recv_json(ws)
            assert msg.get("t") != "local_only"
            if msg.get("t") == "headline":
                assert msg["p"] == {"n": 1}
                break
        await ws.close()

    run(go())


def test_reload_cluster_tls_swaps_files_and_names_a_bad_one(make_server, ca):
    a_files, b_files = ca.node("a"), ca.node("b")
    a, b, _ = link_pair(make_server, a_files, b_files)
    wait_for(lambda: a.cluster_peers_count() == 1, what="the mTLS link")
    fresh = ca.node("a2")
    assert a.reload_cluster_tls(fresh["tls_cert"], fresh["tls_key"], fresh["tls_ca"]) is None
    # Paths may be pathlib.Path too (the original takes str only).
    assert a.reload_cluster_tls(Path(fresh["tls_cert"]), Path(fresh["tls_key"]), Path(fresh["tls_ca"])) is None
    with pytest.raises(RuntimeError, match=r"^TLS config error: .*missing\.crt"):
        a.reload_cluster_tls(str(Path(fresh["tls_cert"]).with_name("missing.crt")), fresh["tls_key"], fresh["tls_ca"])
    with pytest.raises(TypeError):
        a.reload_cluster_tls(None, fresh["tls_key"], fresh["tls_ca"])  # original: TypeError
    assert a.cluster_peers_count() == 1  # live links keep going


def test_a_node_with_a_certificate_from_another_ca_is_never_linked(make_server, tmp_path, ca):
    good = make_server()
    port = free_port()
    good.connect_cluster([], cluster_port=port, cluster_addr=f"127.0.0.1:{port}", **ca.node("good"))
    friend = make_server()
    friend.connect_cluster([f"127.0.0.1:{port}"], **ca.node("friend"))
    wait_for(lambda: good.cluster_peers_count() == 1, what="the good link")
    # The rogue trusts our CA, so only our side's client-certificate check can refuse it.
    rogue_files = CertAuthority(tmp_path, "rogue").node("rogue")
    rogue_files["tls_ca"] = ca.ca_path
    rogue = make_server()
    rogue.connect_cluster([f"127.0.0.1:{port}"], **rogue_files)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert rogue.cluster_peers_count() == 0
        assert good.cluster_peers_count() == 1
        time.sleep(0.1)
    assert rogue.cluster_info() == []
    assert friend.cluster_peers_count() == 1  # the one link good has is the friend's


# ---- a cluster of real processes ---------------------------------------------------------

NODE_SCRIPT = r'''
"""One cluster node (argv: name, port, cluster port, peers, cert, key, ca — "-" for no TLS —,
JWT secret): serves clients on 127.0.0.1, subscribes each to "news", broadcasts the
payload of a client's {"t": "shout"} message as {"t": "news"}; answers "status" on stdin."""
import json
import sys
import threading

from wse_server import RustWSEServer

name, port, cluster_port, peers, cert, key, ca, secret = sys.argv[1:9]
server = RustWSEServer("127.0.0.1", int(port), jwt_secret=secret.encode())
server.enable_drain_mode()
server.start()
tls = {} if cert == "-" else {"tls_cert": cert, "tls_key": key, "tls_ca": ca}
server.connect_cluster(
    [p for p in peers.split(",") if p],
    cluster_port=int(cluster_port), cluster_addr=f"127.0.0.1:{cluster_port}", **tls,
)
print("ready", flush=True)


def commands():
    for line in sys.stdin:
        if line.strip() == "status":
            peers_now, routes = server.cluster_peers_count(), server.cluster_routes("news")
            print(f"status peers={peers_now} routes={routes}", flush=True)


threading.Thread(target=commands, daemon=True).start()
while True:
    for kind, conn_id, value in server.drain_inbound(256, 50):
        if kind == "auth_connect":
            server.subscribe_connection(conn_id, ["news"])
            print(f"subscribed {value}", flush=True)
        elif kind == "msg" and value.get("t") == "shout":
            server.broadcast("news", json.dumps({"t": "news", "p": value["p"]}))
            print("broadcast", flush=True)
'''


class NodeProcess:
    """A node script in its own process; stdout read line by line on a thread."""

    def __init__(self, args):
        self.proc = subprocess.Popen(
            [sys.executable, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines = queue.Queue()
        self.pending = []
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern, timeout=10.0):
        """The first unread line matching ``pattern`` (other lines stay unread)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self.pending):
                m = re.search(pattern, line)
                if m:
                    del self.pending[i]
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never printed {pattern!r}; output: {self.seen}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            self.pending.append(line)

    def status(self):
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        m = self.expect(r"^status peers=(\d+) routes=(\d+)$", timeout=5)
        return int(m.group(1)), int(m.group(2))

    def wait_status(self, peers, routes=None, timeout=15.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.status()
            if got[0] == peers and (routes is None or got[1] == routes):
                return
            time.sleep(0.1)
        raise AssertionError(f"wanted peers={peers} routes={routes}, last {got}; output: {self.seen}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no goodbye to the peers
        self.proc.wait(timeout=10)


def distinct_free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def three_nodes():
    """Names and free ports of a three-node test cluster: (names, ws ports, cluster ports)."""
    names = ("a", "b", "c")
    free = distinct_free_ports(6)
    return names, dict(zip(names, free[:3])), dict(zip(names, free[3:]))


async def recv_news(client, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await client.recv(timeout=max(0.1, deadline - loop.time()))
        if event is not None and event.type == "news":
            return event.payload


def test_a_three_node_mtls_cluster_of_processes_routes_broadcasts_and_survives_a_restart(tmp_path, ca):
    script = tmp_path / "node.py"
    script.write_text(NODE_SCRIPT)
    names, ws_port, cluster_port = three_nodes()
    files = {n: ca.node(f"node-{n}") for n in names}
    started = []

    def start(n):
        peers = ",".join(f"127.0.0.1:{cluster_port[m]}" for m in names if m != n)
        f = files[n]
        node = NodeProcess([script, n, ws_port[n], cluster_port[n], peers,
                            f["tls_cert"], f["tls_key"], f["tls_ca"], SECRET.decode()])
        started.append(node)
        node.expect(r"^ready$", timeout=15)
        return node

    async def client_on(node, n, user):
        client = await published_client(ws_port[n], token(user))
        await asyncio.to_thread(node.expect, rf"^subscribed {user}$")
        return client

    async def go():
        nodes = {n: start(n) for n in names}
        for node in nodes.values():
            await asyncio.to_thread(node.wait_status, 2)
        clients = {n: await client_on(nodes[n], n, f"user-{n}") for n in names}
        # B's and C's "news" interest has reached A: a broadcast there is routed to both.
        await asyncio.to_thread(nodes["a"].wait_status, 2, 2)
        assert await clients["a"].send("shout", {"n": 1})
        await asyncio.to_thread(nodes["a"].expect, r"^broadcast$")
        for n in names:
            assert await recv_news(clients[n]) == {"n": 1}, f"client on {n}"

        nodes["c"].kill()
        await asyncio.wait_for(clients.pop("c").disconnect(), 10)
        await asyncio.to_thread(nodes["a"].wait_status, 1, 1)
        await asyncio.to_thread(nodes["b"].wait_status, 1)

        nodes["c"] = start("c")  # same ports, same certificate
        for node in nodes.values():
            await asyncio.to_thread(node.wait_status, 2)
        clients["c"] = await client_on(nodes["c"], "c", "user-c2")
        await asyncio.to_thread(nodes["a"].wait_status, 2, 2)
        assert await clients["a"].send("shout", {"n": 2})
        for n in names:
            assert await recv_news(clients[n]) == {"n": 2}, f"client on {n} after the restart"
        for client in clients.values():
            await client.disconnect()

    try:
        run(go(), timeout=120)
    finally:
        for node in started:
            node.kill()


def test_the_dead_letter_queue_holds_what_a_killed_peer_missed_and_drains(make_server, tmp_path):
    # A graceful stop() unsubscribes its clients before leaving, so the departed peer with
    # interest is a killed process.
    script = tmp_path / "node.py"
    script.write_text(NODE_SCRIPT)
    a = make_server()
    a_cluster, b_ws, b_cluster = distinct_free_ports(3)
    a.connect_cluster([], cluster_port=a_cluster, cluster_addr=f"127.0.0.1:{a_cluster}")
    b = NodeProcess([script, "b", b_ws, b_cluster, f"127.0.0.1:{a_cluster}", "-", "-", "-", SECRET.decode()])
    try:
        b.expect(r"^ready$", timeout=15)
        wait_for(lambda: a.cluster_peers_count() == 1, what="the link")

        async def go():
            client = await published_client(b_ws, token("bea"))
            await asyncio.to_thread(b.expect, r"^subscribed bea$")
            await asyncio.to_thread(wait_for, lambda: a.cluster_routes("news") == 1, 10, "B's interest on A")
            b_addr = a.cluster_info()[0]["address"]
            assert b_addr == f"127.0.0.1:{b_cluster}"
            b.kill()  # the client is still subscribed when its node dies
            await asyncio.wait_for(client.disconnect(), 10)
            return b_addr

        b_addr = run(go())
        wait_for(lambda: a.cluster_peers_count() == 0, what="A to see B go")
        a.broadcast("news", '{"t":"missed","p":{"n":7}}')
        a.broadcast("other", '{"t":"nobody_wants_it","p":{}}')
        entries = a.get_cluster_dlq_entries()
        assert len(entries) == 1, entries
        (entry,) = entries
        assert set(entry) == {"topic", "payload", "peer_addr", "error"}
        assert entry["topic"] == "news"
        assert json.loads(entry["payload"])["p"] == {"n": 7}
        assert entry["peer_addr"] == b_addr
        assert entry["error"] == "peer channel closed"  # the original's reason for a gone peer
        assert a.get_cluster_dlq_entries() == []  # drained, as the original
    finally:
        b.kill()


PRESENCE_NODE_SCRIPT = r'''
"""One presence cluster node (argv: name, port, cluster port, seed or "-", JWT secret): the
first node is the seed, the others know only it. Serves clients on 127.0.0.1 and tracks each
in the presence of "room"; answers "status" on stdin with its peers and room's users."""
import json
import sys
import threading

from wse_server import RustWSEServer

name, port, cluster_port, seed, secret = sys.argv[1:6]
server = RustWSEServer("127.0.0.1", int(port), jwt_secret=secret.encode(), presence_enabled=True)
server.enable_drain_mode()
server.start()
server.connect_cluster(
    [],
    cluster_port=int(cluster_port),
    cluster_addr=f"127.0.0.1:{cluster_port}",
    **({} if seed == "-" else {"seeds": [seed]}),
)
print("ready", flush=True)


def commands():
    for line in sys.stdin:
        if line.strip() == "status":
            users = sorted(server.presence("room"))
            print(f"status peers={server.cluster_peers_count()} users={','.join(users)}",
                  flush=True)


threading.Thread(target=commands, daemon=True).start()
while True:
    for kind, conn_id, value in server.drain_inbound(256, 50):
        if kind == "auth_connect":
            server.subscribe_connection(conn_id, ["room"], presence_data={"node": name})
            print(f"present {value}", flush=True)
'''


class PresenceNode(NodeProcess):
    def presence_status(self):
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        m = self.expect(r"^status peers=(\d+) users=(.*)$", timeout=5)
        return int(m.group(1)), [u for u in m.group(2).split(",") if u]

    def wait_presence(self, peers, users, timeout=15.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.presence_status()
            if got == (peers, users):
                return
            time.sleep(0.1)
        raise AssertionError(f"wanted peers={peers} users={users}, last {got}; output: {self.seen}")


def test_nodes_that_know_only_the_seed_form_a_mesh_and_share_presence_and_a_killed_nodes_user_leaves(
    tmp_path,
):
    # Issue 12: three processes, only the first is a seed; a user connected to C is present on
    # A; killing C (SIGKILL, no goodbye) removes the user on A within the heartbeat timeout
    # (15 s after C was last heard).
    script = tmp_path / "presence_node.py"
    script.write_text(PRESENCE_NODE_SCRIPT)
    names, ws_port, cluster_port = three_nodes()
    seed = f"127.0.0.1:{cluster_port['a']}"
    started = []

    def start(n):
        node = PresenceNode([script, n, ws_port[n], cluster_port[n],
                             "-" if n == "a" else seed, SECRET.decode()])
        started.append(node)
        node.expect(r"^ready$", timeout=15)
        return node

    async def go():
        nodes = {n: start(n) for n in names}
        for node in nodes.values():
            await asyncio.to_thread(node.wait_presence, 2, [])
        carol = await published_client(ws_port["c"], token("carol"))
        await asyncio.to_thread(nodes["c"].expect, r"^present carol$")
        dave = await published_client(ws_port["b"], token("dave"))
        await asyncio.to_thread(nodes["b"].expect, r"^present dave$")
        for node in nodes.values():
            await asyncio.to_thread(node.wait_presence, 2, ["carol", "dave"])
        nodes["c"].kill()
        await asyncio.wait_for(carol.disconnect(), 10)
        # The heartbeat timeout is 15 s after C was last heard; allow scheduling slack.
        await asyncio.to_thread(nodes["a"].wait_presence, 1, ["dave"], 25.0)
        await asyncio.to_thread(nodes["b"].wait_presence, 1, ["dave"], 10.0)
        await dave.disconnect()
        await asyncio.to_thread(nodes["a"].wait_presence, 1, [], 10.0)

    try:
        run(go(), timeout=120)
    finally:
        for node in started:
            node.kill()
