"""Construction, start/stop/restart, drain, health and metrics of ``RustWSEServer``."""

import asyncio
import errno
import inspect
import math
import re

import pytest
import websockets

from conftest import SECRET, accepted, connect, free_port, run, token, url
from wse_server._wse_accel import RustWSEServer

# ---- construction -----------------------------------------------------------------------

ORIGINAL_PARAMETERS = [
    ("max_connections", 1000),
    ("jwt_secret", None),
    ("jwt_issuer", None),
    ("jwt_audience", None),
    ("jwt_cookie_name", None),
    ("jwt_previous_secret", None),
    ("jwt_key_id", None),
    ("jwt_algorithm", None),
    ("jwt_private_key", None),
    ("max_inbound_queue_size", 131072),
    ("recovery_enabled", False),
    ("recovery_buffer_size", 128),
    ("recovery_ttl", 300),
    ("recovery_max_messages", 500),
    ("recovery_memory_budget", 268435456),
    ("presence_enabled", False),
    ("presence_max_data_size", 4096),
    ("presence_max_members", 0),
    ("rate_limit_capacity", 100000.0),
    ("rate_limit_refill", 10000.0),
    ("max_message_size", 1048576),
    ("ping_interval", 25),
    ("idle_timeout", 60),
    ("max_outbound_queue_bytes", 16777216),
    ("max_subscriptions_per_connection", 0),
]


def test_constructor_signature_keeps_the_original_order_and_defaults():
    params = list(inspect.signature(RustWSEServer).parameters.values())
    assert [p.name for p in params[:2]] == ["host", "port"]
    positional = [(p.name, p.default) for p in params[2 : 2 + len(ORIGINAL_PARAMETERS)]]
    assert positional == ORIGINAL_PARAMETERS
    keyword_only = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    assert keyword_only == {
        "allowed_origins": None,
        "inbound_rate_capacity": 100000.0,
        "inbound_rate_refill": 10000.0,
        "inbound_rate_grace_ms": 5000,
        "send_dedup_window": 4096,
        "key_rotation_interval": 3600,
        "signed_event_types": None,
        "signing_secret": None,
    }


def test_every_original_parameter_may_be_passed_positionally():
    values = [v for _, v in ORIGINAL_PARAMETERS]
    values[0] = 10  # max_connections, as upstream examples pass it
    server = RustWSEServer("127.0.0.1", free_port(), *values)
    assert not server.is_running()


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"ping_interval": 60, "idle_timeout": 60}, ValueError, "ping_interval"),
        ({"ping_interval": 0}, ValueError, "ping_interval"),
        ({"jwt_secret": SECRET, "jwt_algorithm": "HS512"}, ValueError, "HS512"),
        ({"jwt_secret": b"short"}, ValueError, "jwt_secret"),
        ({"jwt_secret": SECRET, "jwt_previous_secret": b"short"}, ValueError, "jwt_previous_secret"),
        ({"jwt_secret": b"not a pem", "jwt_algorithm": "RS256"}, ValueError, "jwt_secret"),
        ({"jwt_secret": b"not a pem", "jwt_algorithm": "ES256"}, ValueError, "jwt_secret"),
        ({"allowed_origins": ["not an origin"]}, ValueError, "allowed_origins"),
        ({"max_connections": -1}, OverflowError, ""),
        ({"port_override": 70000}, OverflowError, ""),
        ({"jwt_secret": "a str, not bytes, of more than 32 chars"}, TypeError, ""),
    ],
)
def test_constructor_rejects_bad_configuration(kwargs, exc, words):
    port = kwargs.pop("port_override", 5007)
    with pytest.raises(exc) as info:
        RustWSEServer("127.0.0.1", port, **kwargs)
    assert words in str(info.value)


def test_jwt_checks_are_skipped_without_a_secret():
    # The original validates algorithm and keys only when jwt_secret is given.
    RustWSEServer("127.0.0.1", 1, jwt_previous_secret=b"short", jwt_private_key=b"junk")


def test_construction_does_not_bind(make_server):
    port = free_port()
    make_server(port=port, start=False)
    make_server(port=port, start=False)  # two unstarted servers share a port happily


# ---- lifecycle --------------------------------------------------------------------------


def test_start_binds_before_returning(make_server):
    server = make_server()
    assert server.is_running()

    async def go():
        ws, _ = await accepted(server)  # no sleep after start()
        await ws.close()

    run(go())


def test_start_on_a_busy_port_raises_oserror(make_server):
    first = make_server()
    second = make_server(port=first.port, start=False)
    with pytest.raises(OSError) as info:
        second.start()
    assert info.value.errno == errno.EADDRINUSE
    assert not second.is_running()
    assert first.is_running()


def test_double_start_raises_already_running(make_server):
    server = make_server()
    with pytest.raises(RuntimeError, match="Server is already running"):
        server.start()


def test_stop_then_start_serves_again_on_the_same_port(make_server):
    server = make_server()
    server.stop()
    assert not server.is_running()
    server.stop()  # a no-op when not running
    server.start()
    assert server.is_running()

    async def go():
        ws, _ = await accepted(server)
        await ws.close()

    run(go())


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.send("id", "x"),
        lambda s: s.send_bytes("id", b"x"),
        lambda s: s.send_event("id", {"t": "x"}),
        lambda s: s.broadcast_all("x"),
        lambda s: s.broadcast_all_bytes(b"x"),
        lambda s: s.broadcast_local("t", "x"),
        lambda s: s.get_connections(),
        lambda s: s.disconnect("id"),
        lambda s: s.drain(),
    ],
)
def test_send_type_methods_raise_not_running_before_start_and_after_stop(make_server, call):
    server = make_server(start=False)
    with pytest.raises(RuntimeError, match="Not running"):
        call(server)
    server.start()
    server.stop()
    with pytest.raises(RuntimeError, match="Not running"):
        call(server)


def test_lenient_methods_do_nothing_when_not_running(make_server):
    server = make_server(start=False)
    server.broadcast("t", "x")  # broadcast() never raises, as the original
    server.subscribe_connection("id", ["a"])
    server.unsubscribe_connection("id")
    server.set_topic_acl("id", ["a"], ["b"])
    assert server.get_connection_count() == 0
    assert server.get_topic_subscriber_count("a") == 0
    assert server.get_queue_group_info("a") == {}
    assert server.inbound_queue_depth() == 0
    assert server.inbound_dropped_count() == 0
    assert server.drain_inbound(10, 10) == []


def test_stop_closes_clients_with_1001(make_server):
    server = make_server()

    async def go():
        ws, _ = await accepted(server)
        await asyncio.to_thread(server.stop)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001

    run(go())


def test_drain_closes_with_4300_refuses_new_sockets_and_keeps_running(make_server):
    server = make_server(jwt_secret=SECRET)

    async def go():
        ws, _ = await accepted(server, additional_headers={"Authorization": f"Bearer {token()}"})
        server.drain(4300, "rolling restart", 5)
        assert server.is_running()  # running until stop(), as the original
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)  # server_ready first, then the close
        assert (ws.close_code, ws.close_reason) == (4300, "rolling restart")
        with pytest.raises((OSError, websockets.InvalidHandshake, asyncio.TimeoutError)):
            await asyncio.wait_for(connect(server), 2)

    run(go())


# ---- health and metrics -----------------------------------------------------------------

HEALTH_KEYS = {
    "connections",
    "inbound_queue_depth",
    "inbound_dropped",
    "cluster_connected",
    "cluster_peer_count",
    "cluster_messages_sent",
    "cluster_messages_delivered",
    "cluster_messages_dropped",
    "cluster_bytes_sent",
    "cluster_bytes_received",
    "cluster_reconnect_count",
    "cluster_unknown_message_types",
    "cluster_dlq_size",
    "uptime_secs",
    "recovery_enabled",
    "recovery_topic_count",
    "recovery_total_bytes",
    "presence_enabled",
}
# Our additions (docs/pybindings.md): E2E records refused as replays, and undecryptable ones;
# cluster membership (nodes linked, suspected, declared dead).
OUR_HEALTH_KEYS = {
    "e2e_replayed",
    "e2e_undecryptable",
    "cluster_members",
    "cluster_suspects",
    "cluster_dead_peers",
}


def test_health_snapshot_has_the_original_keys_before_and_while_running(make_server):
    server = make_server(start=False)
    idle = server.health_snapshot()
    assert set(idle) == HEALTH_KEYS | OUR_HEALTH_KEYS
    assert idle["uptime_secs"] == 0.0 and idle["connections"] == 0
    server.start()

    async def go():
        ws, _ = await accepted(server)
        health = server.health_snapshot()
        assert set(health) == HEALTH_KEYS | OUR_HEALTH_KEYS
        assert health["connections"] == 1
        assert isinstance(health["uptime_secs"], float) and health["uptime_secs"] >= 0
        assert health["cluster_connected"] is False
        await ws.close()

    run(go())


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse_prometheus(text):
    """A strict reader of the text exposition format: every sample has a TYPE line before it
    and a float value; returns ``{name: value}``."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) in types, f"sample before its TYPE: {line!r}"
        value = float(m.group(3))
        assert not math.isnan(value)
        samples[m.group(1) + (m.group(2) or "")] = value
    return types, samples


def test_prometheus_metrics_parse_and_count_traffic(make_server):
    server = make_server()
    types, samples = parse_prometheus(server.prometheus_metrics())
    assert types["wse_connections"] == "gauge"
    assert types["wse_messages_received_total"] == "counter"

    async def go():
        ws, _ = await accepted(server)
        await ws.send('{"t":"hello"}')
        await asyncio.sleep(0.2)
        _, samples = parse_prometheus(server.prometheus_metrics())
        assert samples["wse_connections"] == 1
        assert samples["wse_connections_accepted_total"] == 1
        assert samples["wse_messages_received_total"] == 1
        for _ in range(3):
            server.broadcast_local('odd"topic', '{"t":"x"}')
        server.broadcast_local("plain", '{"t":"x"}')
        _, samples = parse_prometheus(server.prometheus_metrics())
        assert samples['wse_topic_messages_total{topic="odd\\"topic"}'] == 3
        assert samples['wse_topic_messages_total{topic="plain"}'] == 1
        await ws.close()

    run(go())
    for name in [
        "wse_inbound_queue_depth",
        "wse_uptime_seconds",
        "wse_topics",
        "wse_messages_sent_total",
        "wse_connections_rejected_total",
        "wse_bytes_received_total",
        "wse_bytes_sent_total",
        "wse_auth_failures_total",
        "wse_rate_limited_total",
        "wse_inbound_dropped_total",
        "wse_slow_consumer_drops_total",
        "wse_cluster_peers",
    ]:
        assert name in samples
