"""rust_transform_event, rust_match_event and EventFilter.

Every expectation marked "original" was observed on the original wse-server 2.5.1
(`/work/orig-venv`) with the same input; the hostile-input tests pin our own bounds where the
original hung, crashed or allowed more (each says so).
"""

import datetime
import enum
import re
import time
import uuid
from collections import OrderedDict, defaultdict, namedtuple
from decimal import Decimal

import pytest

from wse_server._wse_accel import (
    _event_regex_cache_len,
    rust_match_event,
    rust_transform_event,
)

UTC = datetime.timezone.utc
UUIDV7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NOW_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
GENERATED = object()  # placeholder: a fresh UUIDv7 id / a current-time ts


def transform(event, seq=1, type_map=None):
    return rust_transform_event(event, seq, {} if type_map is None else type_map)


def envelope(out):
    """The envelope with generated id/ts replaced by GENERATED (after checking their form)."""
    out = dict(out)
    if isinstance(out.get("id"), str) and UUIDV7.match(out["id"]):
        out["id"] = GENERATED
    if isinstance(out.get("ts"), str) and NOW_TS.match(out["ts"]):
        out["ts"] = GENERATED
    return out


# ---------------------------------------------------------------------------------------------
# rust_transform_event: whole envelopes (original)
# ---------------------------------------------------------------------------------------------

ENVELOPE_CASES = [
    (
        "empty event: unknown type, empty payload",
        {}, 1, {},
        {"c": "U", "t": "unknown", "id": GENERATED, "ts": GENERATED, "seq": 1, "p": {},
         "v": 1, "event_version": 1},
    ),
    (
        "type is lower-cased, copied into the payload as event_type, original kept",
        {"type": "Foo"}, 5, {},
        {"c": "U", "t": "foo", "id": GENERATED, "ts": GENERATED, "seq": 5,
         "p": {"type": "Foo", "event_type": "Foo"}, "v": 1, "original_event_type": "Foo",
         "event_version": 1},
    ),
    (
        "event_type wins over type and goes through the map",
        {"event_type": "OrderPlaced", "type": "x", "a": 1}, 5, {"OrderPlaced": "order_placed"},
        {"c": "U", "t": "order_placed", "id": GENERATED, "ts": GENERATED, "seq": 5,
         "p": {"event_type": "OrderPlaced", "type": "x", "a": 1}, "v": 1,
         "original_event_type": "OrderPlaced", "event_version": 1},
    ),
    (
        "a dict payload is used instead of the event",
        {"type": "A", "payload": {"x": 1}, "other": 2}, 1, {},
        {"c": "U", "t": "a", "id": GENERATED, "ts": GENERATED, "seq": 1, "p": {"x": 1},
         "v": 1, "original_event_type": "A", "event_version": 1},
    ),
    (
        "metadata fills id, ts, cid, pri, trace_id; other metadata keys are ignored",
        {"type": "A", "x": 1, "_metadata": {
            "event_id": "EID", "timestamp": "TS", "correlation_id": "CORR", "priority": 8,
            "trace_id": "TR", "latency_ms": 12, "event_version": 3, "cid": "C2", "pri": 4}},
        1, {},
        {"c": "U", "t": "a", "id": "EID", "ts": "TS", "seq": 1,
         "p": {"type": "A", "x": 1, "event_type": "A"}, "v": 1, "original_event_type": "A",
         "cid": "CORR", "pri": 8, "event_version": 1, "trace_id": "TR"},
    ),
    (
        "without metadata the event's own keys are used (but not its priority) and stay in p",
        {"type": "A", "event_id": "E2", "timestamp": "T2", "correlation_id": "CORR",
         "priority": 8, "trace_id": "TR"},
        1, {},
        {"c": "U", "t": "a", "id": "E2", "ts": "T2", "seq": 1,
         "p": {"type": "A", "event_id": "E2", "timestamp": "T2", "correlation_id": "CORR",
               "priority": 8, "trace_id": "TR", "event_type": "A"},
         "v": 1, "original_event_type": "A", "cid": "CORR", "event_version": 1,
         "trace_id": "TR"},
    ),
]


@pytest.mark.parametrize("name,event,seq,type_map,expected", ENVELOPE_CASES,
                         ids=[c[0] for c in ENVELOPE_CASES])
def test_transform_builds_the_originals_envelope(name, event, seq, type_map, expected):
    out = rust_transform_event(event, seq, type_map)
    assert envelope(out) == expected
    assert list(out) == list(expected), "key order is the original's"


def test_transform_ts_now_is_utc_with_microseconds_and_close_to_the_clock():
    before = datetime.datetime.now(UTC)
    ts = transform({"type": "A"})["ts"]
    after = datetime.datetime.now(UTC)
    assert NOW_TS.match(ts)
    parsed = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - datetime.timedelta(microseconds=1) <= parsed <= after


def test_transform_generated_ids_are_distinct_uuidv7():
    ids = {transform({"type": "A"})["id"] for _ in range(200)}
    assert len(ids) == 200
    assert all(uuid.UUID(i).version == 7 for i in ids)


# ---------------------------------------------------------------------------------------------
# Events already in wire form (original: same object back, seq added only when missing)
# ---------------------------------------------------------------------------------------------

def test_wire_form_event_is_returned_as_the_same_object_with_seq_added():
    event = {"v": 1, "t": "x", "p": {}, "id": "i", "ts": "t"}
    out = rust_transform_event(event, 9, {})
    assert out is event
    assert event == {"v": 1, "t": "x", "p": {}, "id": "i", "ts": "t", "seq": 9}


def test_wire_form_event_keeps_its_own_seq_and_values_even_none():
    event = {"v": None, "t": "x", "p": {}, "id": "i", "ts": "t", "seq": 3}
    assert rust_transform_event(event, 9, {}) == {
        "v": None, "t": "x", "p": {}, "id": "i", "ts": "t", "seq": 3}


def test_event_missing_one_wire_key_is_transformed_and_not_mutated():
    event = {"v": 1, "t": "x", "p": {}, "id": "i"}
    out = envelope(rust_transform_event(event, 9, {}))
    assert out["t"] == "unknown" and out["p"] == {"v": 1, "t": "x", "p": {}, "id": "i"}
    assert event == {"v": 1, "t": "x", "p": {}, "id": "i"}


# ---------------------------------------------------------------------------------------------
# Type, map, original_event_type, category (original)
# ---------------------------------------------------------------------------------------------

TYPE_CASES = [
    # event, type_map, t, original_event_type (None = absent), c
    ({"type": "foo"}, {}, "foo", None, "U"),
    ({"type": "foo"}, {"foo": "foo"}, "foo", None, "U"),
    ({"event_type": 5}, {}, "5", None, "U"),
    ({"event_type": 5}, {5: "int", "5": "str"}, "str", "5", "U"),  # looked up by str
    ({"type": 5}, {}, "5", None, "U"),
    ({"event_type": None, "type": "B"}, {}, "b", "B", "U"),
    ({"event_type": "", "type": "B"}, {}, "", None, "U"),
    ({"type": None}, {}, "unknown", None, "U"),
    ({}, {"unknown": "mapped"}, "mapped", "unknown", "U"),
    ({"type": "ÄB İx ẞ ΣΑΣ"}, {}, "äb i̇x ß σας", "ÄB İx ẞ ΣΑΣ", "U"),
    ({"type": "A"}, {"A": None}, "None", "A", "U"),
    ({"type": "A"}, {"A": ["x"]}, "['x']", "A", "U"),
    ({"type": "A"}, {"A": ""}, "", "A", "U"),
    ({"type": "A"}, {"a": "not used"}, "a", "A", "U"),
    ({"type": "x_snapshot"}, {}, "x_snapshot", None, "S"),
    ({"type": "snapshot_x"}, {}, "snapshot_x", None, "S"),
    ({"type": "SNAPSHOT_X"}, {}, "snapshot_x", "SNAPSHOT_X", "S"),
    ({"type": "xsnapshot_"}, {}, "xsnapshot_", None, "S"),
    ({"type": "snapshot"}, {}, "snapshot", None, "U"),
    ({"type": "snapshot_complete"}, {}, "snapshot_complete", None, "S"),
    ({"type": "server_ready"}, {}, "server_ready", None, "WSE"),
    ({"type": "client_hello_ack"}, {}, "client_hello_ack", None, "WSE"),
    ({"type": "connection_state_change"}, {}, "connection_state_change", None, "WSE"),
    ({"type": "error"}, {}, "error", None, "WSE"),
    ({"type": "Error"}, {}, "error", "Error", "WSE"),
    ({"type": "pong"}, {}, "pong", None, "WSE"),
    ({"type": "PONG"}, {}, "pong", "PONG", "WSE"),
    ({"type": "ping"}, {}, "ping", None, "U"),
    ({"type": "server_hello"}, {}, "server_hello", None, "U"),
    ({"type": "x"}, {"x": "snapshot_y"}, "snapshot_y", "x", "S"),  # category from mapped type
    ({"type": "x"}, {"x": "pong"}, "pong", "x", "WSE"),
    ({"type": "A", "c": "X"}, {}, "a", "A", "X"),
    ({"type": "A", "c": 5}, {}, "a", "A", 5),  # explicit c is passed through untouched
    ({"type": "A", "c": (1, 2)}, {}, "a", "A", (1, 2)),
    ({"type": "A", "c": ""}, {}, "a", "A", ""),
    ({"type": "A", "c": None}, {}, "a", "A", "U"),
    ({"type": "A", "_metadata": {"c": "M"}}, {}, "a", "A", "U"),
]


@pytest.mark.parametrize("event,type_map,t,original,c", TYPE_CASES)
def test_transform_type_and_category_follow_the_original(event, type_map, t, original, c):
    out = transform(event, type_map=type_map)
    assert out["t"] == t
    assert out.get("original_event_type") == original
    assert ("original_event_type" in out) == (original is not None)
    assert out["c"] == c


EVENT_TYPE_IN_PAYLOAD = [
    ({"type": "A"}, {"type": "A", "event_type": "A"}),
    ({"type": 5}, {"type": 5, "event_type": 5}),
    ({"type": None}, {"type": None}),
    ({"event_type": None}, {"event_type": None}),
    ({"event_type": None, "type": "B"}, {"event_type": None, "type": "B"}),
    ({"payload": None, "type": "q"}, {"payload": None, "type": "q", "event_type": "q"}),
    ({"type": "x", "payload": {"a": 1}}, {"a": 1}),
]


@pytest.mark.parametrize("event,payload", EVENT_TYPE_IN_PAYLOAD)
def test_payload_gains_event_type_only_when_built_from_a_typed_event(event, payload):
    assert transform(event)["p"] == payload


# ---------------------------------------------------------------------------------------------
# Payload conversion (original)
# ---------------------------------------------------------------------------------------------

class Color(enum.Enum):
    RED = "r"
    BLUE = 2
    TUP = (1, (2,))
    BYTES = {"a": b"x"}


class Level(enum.IntEnum):
    HIGH = 3


class Side(str, enum.Enum):
    BUY = "buy"


class Plain:
    def __init__(self):
        self.a = 1
        self.when = datetime.datetime(2020, 1, 1)
        self._private = (2,)


class Slotted:
    __slots__ = ("a",)

    def __init__(self):
        self.a = 1


class Empty:
    pass


class ValueAndName:
    value = 5
    name = "n"


class OnlyValue:
    value = 5


class UuidSub(uuid.UUID):
    pass


class DateTimeSub(datetime.datetime):
    pass


def _same(x):
    return ("same", x)


_time = datetime.time(1, 2, 3)
_delta = datetime.timedelta(seconds=3)
_bytearray = bytearray(b"xy")
_set = {1}
_decimal = Decimal("1.5")
_slotted = Slotted()
_complex = 1j

CONVERSION_CASES = [
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("uuid subclass", UuidSub(int=2), "00000000-0000-0000-0000-000000000002"),
    ("naive datetime", datetime.datetime(2020, 1, 2, 3, 4, 5, 6), "2020-01-02T03:04:05.000006"),
    ("aware datetime", datetime.datetime(2020, 1, 1, tzinfo=UTC), "2020-01-01T00:00:00+00:00"),
    ("datetime subclass", DateTimeSub(2020, 1, 1), "2020-01-01T00:00:00"),
    ("date", datetime.date(2020, 1, 2), "2020-01-02"),
    ("enum", Color.RED, "r"),
    ("enum int value", Color.BLUE, 2),
    ("enum value converted", Color.TUP, [1, [2]]),
    ("enum dict value converted", Color.BYTES, {"a": "x"}),
    ("object with value and name", ValueAndName(), 5),
    ("object with value only uses __dict__", OnlyValue(), {}),
    ("utf-8 bytes", b"abc", "abc"),
    ("non-utf-8 bytes as latin-1", b"\xff\xfe", "ÿþ"),
    ("bytes in a list", [b"\xc3\xa9"], ["é"]),
    ("tuple", (1, (2, 3)), [1, [2, 3]]),
    ("namedtuple", namedtuple("NT", "a b")(1, 2), [1, 2]),
    ("list of tuples", [(1,)], [[1]]),
    ("object __dict__", Plain(), {"a": 1, "when": "2020-01-01T00:00:00", "_private": [2]}),
    ("empty object", Empty(), {}),
    ("exception", Exception("x"), {}),
    ("nested", {"x": [uuid.UUID(int=2), {"y": Color.RED}]},
     {"x": ["00000000-0000-0000-0000-000000000002", {"y": "r"}]}),
    ("dict subclass needing change", defaultdict(int, a=(1,)), {"a": [1]}),
    ("float", 1.5, 1.5),
    ("big int", 2**70, 2**70),
    ("none", None, None),
    ("bool", True, True),
    # unchanged objects (the same object comes back)
    ("IntEnum stays a member", Level.HIGH, _same(Level.HIGH)),
    ("str enum stays a member", Side.BUY, _same(Side.BUY)),
    ("time", _time, _same(_time)),
    ("timedelta", _delta, _same(_delta)),
    ("bytearray", _bytearray, _same(_bytearray)),
    ("set", _set, _same(_set)),
    ("decimal", _decimal, _same(_decimal)),
    ("slotted object", _slotted, _same(_slotted)),
    ("complex", _complex, _same(_complex)),
    ("class", int, _same(int)),
]


@pytest.mark.parametrize("name,value,expected", CONVERSION_CASES,
                         ids=[c[0] for c in CONVERSION_CASES])
def test_payload_values_are_converted_like_the_original(name, value, expected):
    got = transform({"type": "A", "payload": {"k": value}})["p"]["k"]
    if isinstance(expected, tuple) and expected[:1] == ("same",):
        assert got is expected[1]
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_payload_dict_keys_are_kept_as_is():
    out = transform({"type": "A", "payload": {1: "i", (1, 2): "t", None: "n", "s": "s"}})
    assert out["p"] == {1: "i", (1, 2): "t", None: "n", "s": "s"}


def test_nan_and_infinity_pass_through():
    p = transform({"type": "A", "payload": {"nan": float("nan"), "inf": float("inf")}})["p"]
    assert p["nan"] != p["nan"] and p["inf"] == float("inf")


def test_nested_dict_needing_no_change_is_the_same_object_but_top_payload_is_a_copy():
    inner = {"b": 1}
    payload = {"a": inner}
    p = transform({"type": "A", "payload": payload})["p"]
    assert p is not payload and p["a"] is inner  # original: identical nested dict
    assert type(transform({"type": "A", "payload": OrderedDict(a=1)})["p"]) is dict


def test_metadata_key_is_dropped_from_the_payload_top_level_only():
    out = transform({"type": "A", "_metadata": {"event_id": "M"}, "x": 1})
    assert out["p"] == {"type": "A", "x": 1, "event_type": "A"}
    out = transform({"type": "A", "payload": {"_metadata": 1, "a": {"_metadata": 2}}})
    assert out["p"] == {"a": {"_metadata": 2}}


def test_conversion_reaches_every_depth():
    # Deliberate difference: the original leaves values nested more than three dicts deep
    # unconverted (a UUID object stays a UUID there).
    value = uuid.UUID(int=1)
    for _ in range(10):
        value = {"x": value}
    p = transform({"type": "A", "payload": value})["p"]
    for _ in range(9):
        p = p["x"]
    assert p["x"] == "00000000-0000-0000-0000-000000000001"


def test_errors_raised_by_attribute_lookups_propagate():
    class RaisingValue:
        @property
        def value(self):
            raise KeyError("boom")

    with pytest.raises(KeyError):  # original: KeyError
        transform({"type": "A", "payload": {"k": RaisingValue()}})


# ---------------------------------------------------------------------------------------------
# id, ts and the other envelope fields (original)
# ---------------------------------------------------------------------------------------------

ID_TEXT_CASES = [
    ("str", "x", "x"),
    ("int", 5, "5"),
    ("float", 1.5, "1.5"),
    ("bool", True, "True"),
    ("zero", 0, "0"),
    ("empty string is kept", "", ""),
    ("big int", 2**70, str(2**70)),
    ("bytes decoded", b"ab", "ab"),
    ("latin-1 bytes", b"\xff", "ÿ"),
    ("uuid", uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"),
    ("datetime isoformat", datetime.datetime(2020, 1, 2, 3, 4, 5), "2020-01-02T03:04:05"),
    ("enum value", Color.RED, "r"),
    ("enum value not converted", Color.TUP, "(1, (2,))"),
    ("int enum", Level.HIGH, "3"),
    ("str enum", Side.BUY, "buy"),
    ("dict is str()", {"a": 1}, "{'a': 1}"),
    ("dict contents not converted", {"u": uuid.UUID(int=1)},
     "{'u': UUID('00000000-0000-0000-0000-000000000001')}"),
    ("list", [1, 2], "[1, 2]"),
    ("tuple", (1, 2), "(1, 2)"),
    ("time is str()", datetime.time(1, 2), "01:02:00"),
]


@pytest.mark.parametrize("name,value,text", ID_TEXT_CASES, ids=[c[0] for c in ID_TEXT_CASES])
def test_id_and_ts_from_metadata_become_text(name, value, text):
    out = transform({"type": "A", "_metadata": {"event_id": value, "timestamp": value}})
    assert out["id"] == text
    assert out["ts"] == text


SOURCE_CASES = [
    # event, key, expected (None = generated or absent)
    ({"_metadata": {"event_id": None}, "event_id": "X"}, "id", "X"),
    ({"_metadata": {"event_id": ""}, "event_id": "X"}, "id", ""),
    ({"_metadata": {}, "event_id": None}, "id", None),
    ({"_metadata": "not a dict", "event_id": "E"}, "id", "E"),
    ({"_metadata": {"timestamp": None}, "timestamp": "T"}, "ts", "T"),
    ({"_metadata": {"correlation_id": "M"}, "correlation_id": "E"}, "cid", "M"),
    ({"_metadata": {"correlation_id": None}, "correlation_id": "E"}, "cid", "E"),
    ({"_metadata": {"correlation_id": ""}, "correlation_id": "E"}, "cid", ""),
    ({"_metadata": {"correlation_id": 5}}, "cid", "5"),
    ({"correlation_id": b"x"}, "cid", "b'x'"),  # str(), not decoded
    ({"_metadata": {"correlation_id": datetime.datetime(2020, 1, 1)}}, "cid", "2020-01-01 00:00:00"),
    ({"cid": "top"}, "cid", None),
    ({"_metadata": {"priority": 3}, "pri": 9}, "pri", 3),
    ({"_metadata": {"priority": None}, "pri": 9}, "pri", 9),
    ({"_metadata": {"priority": "high"}}, "pri", "high"),
    ({"_metadata": {"priority": (1, 2)}}, "pri", (1, 2)),  # passed through untouched
    ({"_metadata": {"priority": 0}}, "pri", 0),
    ({"priority": 3}, "pri", None),
    ({"pri": None}, "pri", None),
    ({"_metadata": {"pri": 1}}, "pri", None),
    ({"_metadata": {"trace_id": "MT"}, "trace_id": "ET"}, "trace_id", "MT"),
    ({"trace_id": 5}, "trace_id", "5"),
    ({"_metadata": {"trace_id": (1, 2)}}, "trace_id", "(1, 2)"),
    ({"trace_id": None}, "trace_id", None),
    ({"version": 6, "_metadata": {"version": 4}}, "event_version", 6),
    ({"_metadata": {"version": 4}}, "event_version", 4),
    ({"version": None, "_metadata": {"version": 4}}, "event_version", 4),
    ({"version": "x", "_metadata": {"version": 4}}, "event_version", 1),
    ({"version": 2.5}, "event_version", 1),
    ({"version": 2**63}, "event_version", 1),
    ({"version": -1}, "event_version", -1),
    ({"version": 0}, "event_version", 0),
    ({"event_version": 7, "_metadata": {"event_version": 5}}, "event_version", 1),
]


@pytest.mark.parametrize("event,key,expected", SOURCE_CASES)
def test_envelope_fields_come_from_metadata_then_event(event, key, expected):
    out = envelope(transform(dict(event, type="A")))
    if key in ("id", "ts") and expected is None:
        assert out[key] is GENERATED
    elif expected is None:
        assert key not in out
    else:
        assert out[key] == expected
        assert type(out[key]) is type(expected)


NOW = datetime.datetime.now(UTC)

LATENCY_CASES = [
    # timestamp value, its instant (None = no latency_ms)
    ("2020-01-01T00:00:00Z", datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    ("2020-01-01t00:00:00z", datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    ("2020-01-01 00:00:00Z", datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    ("2020-01-01T00:00:00.5Z", datetime.datetime(2020, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("2020-01-01T00:00:00.123456789Z", datetime.datetime(2020, 1, 1, 0, 0, 0, 123457, tzinfo=UTC)),
    ("2020-01-01T01:00:00+01:00", datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    ("2020-01-01T00:00:00-00:00", datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    ("2020-01-01T00:00:00+23:59", datetime.datetime(2019, 12, 31, 0, 1, tzinfo=UTC)),
    ("2020-01-01T00:00:60Z", datetime.datetime(2020, 1, 1, 0, 0, 59, tzinfo=UTC)),
    ("2020-02-29T00:00:00Z", datetime.datetime(2020, 2, 29, tzinfo=UTC)),
    ("1969-12-31T23:59:59Z", datetime.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", datetime.datetime(1, 1, 1, tzinfo=UTC)),
    ("9999-12-31T23:59:59Z", datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("2020-01-01T00:00:00", datetime.datetime(2020, 1, 1, tzinfo=UTC)),  # naive str = UTC
    ("2020-01-01T00:00:00.1234567891", datetime.datetime(2020, 1, 1, 0, 0, 0, 123457, tzinfo=UTC)),
    ((NOW - datetime.timedelta(minutes=5)).isoformat(), NOW - datetime.timedelta(minutes=5)),
    (NOW - datetime.timedelta(minutes=5), NOW - datetime.timedelta(minutes=5)),
    (NOW + datetime.timedelta(minutes=5), NOW + datetime.timedelta(minutes=5)),
    (DateTimeSub(2020, 1, 1, tzinfo=UTC), datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    ("2020-01-01 00:00:00", None),
    ("2020-01-01T00:00", None),
    ("2020-01-01T00:00:00+0100", None),
    ("2020-01-01T24:00:00Z", None),
    ("2020-02-30T00:00:00Z", None),
    ("2021-02-29T00:00:00Z", None),
    ("2020-13-01T00:00:00Z", None),
    ("2020-01-01T00:00:00.Z", None),
    ("2020-01-01T00:00:00+24:00", None),
    ("2020-01-01T00:00:00Zx", None),
    ("  2020-01-01T00:00:00Z", None),
    (b"2020-01-01T00:00:00Z", None),
    (datetime.datetime(2020, 1, 1), None),  # naive datetime object: no latency
    (datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(seconds=30))), None),
    (datetime.date(2020, 1, 1), None),
    (1700000000, None),
]


@pytest.mark.parametrize("ts,instant", LATENCY_CASES)
def test_latency_ms_is_reported_for_readable_event_timestamps(ts, instant):
    before = datetime.datetime.now(UTC)
    for source in ({"_metadata": {"timestamp": ts}}, {"timestamp": ts}):
        out = transform(dict(source, type="A"))
        after = datetime.datetime.now(UTC)
        if instant is None:
            assert "latency_ms" not in out
            continue
        low = int((before - instant) / datetime.timedelta(milliseconds=1)) - 1
        high = int((after - instant) / datetime.timedelta(milliseconds=1)) + 1
        assert low <= out["latency_ms"] <= high
        assert list(out).index("latency_ms") == list(out).index("v") + 2


def test_generated_ts_gives_no_latency():
    assert "latency_ms" not in transform({"type": "A"})


# ---------------------------------------------------------------------------------------------
# Argument errors (original: TypeError / OverflowError)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,exc", [
    (({"type": "A"}, 2**63, {}), OverflowError),
    (({"type": "A"}, 1.5, {}), TypeError),
    (({"type": "A"}, 1, None), TypeError),
    (({"type": "A"}, 1, []), TypeError),
    (([("type", "A")], 1, {}), TypeError),
])
def test_transform_rejects_bad_arguments(args, exc):
    with pytest.raises(exc):
        rust_transform_event(*args)


def test_transform_accepts_negative_and_bool_sequences_and_mapping_subclasses():
    assert transform({"type": "A"}, seq=-5)["seq"] == -5
    assert transform({"type": "A"}, seq=True)["seq"] == 1
    assert transform(OrderedDict(type="A"), type_map=OrderedDict(A="b"))["t"] == "b"


def test_signatures_match_the_original():
    assert rust_transform_event.__text_signature__ == "(event, sequence, event_type_map)"
    assert rust_match_event.__text_signature__ == "(event, criteria)"
    assert rust_transform_event.__doc__ and rust_match_event.__doc__


# ---------------------------------------------------------------------------------------------
# rust_match_event (original)
# ---------------------------------------------------------------------------------------------

NAN = float("nan")
EVENT = {
    "a": 5, "s": "Hello World", "f": 2.5, "b": True, "n": None, "l": [1, 2, "x"],
    "d": {"x": {"y": 3}, "e": {"f": 1}}, "big": 2**70, "bs": b"abc", "t": (1, 2),
    "a.b": 7, "nan": NAN, "": 1, "o": OrderedDict(k=9),
}

MATCH_CASES = [
    # --- plain equality
    ({}, True),
    ({"a": 5}, True), ({"a": 6}, False), ({"a": 5.0}, True), ({"a": "5"}, False),
    ({"b": 1}, True), ({"a": True}, False), ({"n": None}, True), ({"missing": None}, True),
    ({"missing": 0}, False), ({"l": [1, 2, "x"]}, True), ({"l": (1, 2, "x")}, False),
    ({"big": 2**70}, True), ({"nan": NAN}, False),
    ({"d": {"x": {"y": 3}}}, False),  # a dict value is an operator dict, never equality
    # --- dotted paths through dicts only
    ({"d.x.y": 3}, True), ({"d.x": {"y": 3}}, False), ({"d.e.f": 1}, True),
    ({"d.e.g": {"$exists": False}}, True), ({"d.e.f.g": {"$exists": False}}, True),
    ({"l.0": {"$exists": True}}, False), ({"a.b": 7}, False), ({"": 1}, True),
    ({"o.k": 9}, True), ({"d..e": {"$exists": False}}, True),
    # --- $eq / $ne (a missing field is None)
    ({"a": {"$eq": 5}}, True), ({"a": {"$eq": 5.0}}, True), ({"a": {"$eq": "5"}}, False),
    ({"a": {"$eq": True}}, False), ({"b": {"$eq": 1}}, True), ({"a": {"$eq": [5]}}, False),
    ({"zz": {"$eq": None}}, True), ({"zz": {"$eq": 5}}, False), ({"n": {"$eq": None}}, True),
    ({"nan": {"$eq": NAN}}, False),
    ({"a": {"$ne": 5}}, False), ({"a": {"$ne": 4}}, True), ({"a": {"$ne": "5"}}, True),
    ({"zz": {"$ne": None}}, False), ({"zz": {"$ne": 5}}, True), ({"nan": {"$ne": NAN}}, True),
    # --- ordering (a missing field never compares)
    ({"a": {"$gt": 4}}, True), ({"a": {"$gt": 5}}, False), ({"a": {"$gt": 4.5}}, True),
    ({"a": {"$gt": True}}, True), ({"a": {"$gt": 2**70}}, False),
    ({"a": {"$lt": 6}}, True), ({"a": {"$lt": 5.0}}, False), ({"a": {"$lt": 2**70}}, True),
    ({"a": {"$gte": 5}}, True), ({"a": {"$gte": 6}}, False), ({"a": {"$gte": 5.0}}, True),
    ({"a": {"$lte": 5}}, True), ({"a": {"$lte": 4.5}}, False), ({"f": {"$lte": 2.5}}, True),
    ({"s": {"$gt": "Apple"}}, True), ({"s": {"$lt": "Apple"}}, False),
    ({"l": {"$gt": [1, 2]}}, True),
    ({"zz": {"$gt": 5}}, False), ({"zz": {"$lt": 5}}, False), ({"zz": {"$gte": None}}, False),
    ({"zz": {"$gt": "x"}}, False),
    ({"a": {"$gt": 4, "$lt": 6}}, True), ({"a": {"$eq": 5, "$gt": 6}}, False),
    # --- $in / $nin: Python `in` on a list only
    ({"a": {"$in": [5]}}, True), ({"a": {"$in": [4, 5.0]}}, True), ({"a": {"$in": [True]}}, False),
    ({"b": {"$in": [1]}}, True), ({"a": {"$in": (5,)}}, False), ({"a": {"$in": {5}}}, False),
    ({"a": {"$in": {5: 1}}}, False), ({"a": {"$in": "5"}}, False), ({"a": {"$in": 5}}, False),
    ({"a": {"$in": None}}, False), ({"a": {"$in": []}}, False),
    ({"l": {"$in": [1]}}, False), ({"l": {"$in": [[1, 2, "x"]]}}, True),
    ({"d": {"$in": [{"x": {"y": 3}, "e": {"f": 1}}]}}, True), ({"t": {"$in": [[1, 2]]}}, False),
    ({"nan": {"$in": [NAN]}}, True),  # identity counts in `in`
    ({"n": {"$in": [None]}}, True), ({"zz": {"$in": [None]}}, False), ({"zz": {"$in": 5}}, False),
    ({"a": {"$nin": [5]}}, False), ({"a": {"$nin": [4]}}, True), ({"a": {"$nin": (5,)}}, True),
    ({"a": {"$nin": 5}}, True), ({"a": {"$nin": None}}, True), ({"a": {"$nin": []}}, True),
    ({"zz": {"$nin": [None]}}, True), ({"zz": {"$nin": []}}, True),
    # --- $exists
    ({"a": {"$exists": True}}, True), ({"a": {"$exists": False}}, False),
    ({"zz": {"$exists": True}}, False), ({"zz": {"$exists": False}}, True),
    ({"n": {"$exists": True}}, True), ({"d.e": {"$exists": True}}, True),
    # --- $regex: anchored at the start, on str(field)
    ({"s": {"$regex": "^Hello"}}, True), ({"s": {"$regex": "Hello"}}, True),
    ({"s": {"$regex": "hello"}}, False), ({"s": {"$regex": "(?i)hello"}}, True),
    ({"s": {"$regex": "World$"}}, False), ({"s": {"$regex": "o W"}}, False),
    ({"s": {"$regex": ".*World$"}}, True), ({"s": {"$regex": ""}}, True),
    ({"s": {"$regex": r"\d"}}, False), ({"s": {"$regex": r"\p{L}"}}, True),
    ({"s": {"$regex": "é"}}, False),
    ({"a": {"$regex": "5"}}, True), ({"a": {"$regex": "^5$"}}, True), ({"f": {"$regex": "2.5"}}, True),
    ({"b": {"$regex": "True"}}, True), ({"b": {"$regex": "true"}}, False),
    ({"l": {"$regex": "x"}}, False), ({"l": {"$regex": r"\[1"}}, True),
    ({"bs": {"$regex": "abc"}}, False), ({"bs": {"$regex": "b'"}}, True),
    ({"d": {"$regex": "x"}}, False), ({"n": {"$regex": ".*"}}, True),
    ({"zz": {"$regex": "x"}}, False), ({"zz": {"$regex": "("}}, False),  # missing: not compiled
    # --- $contains / $startswith / $endswith on str(field)
    ({"s": {"$contains": "World"}}, True), ({"s": {"$contains": "world"}}, False),
    ({"s": {"$contains": ""}}, True), ({"a": {"$contains": "5"}}, True),
    ({"l": {"$contains": "x"}}, True), ({"l": {"$contains": "'x']"}}, True),
    ({"bs": {"$contains": "ab"}}, True), ({"d": {"$contains": "{'x'"}}, True),
    ({"n": {"$contains": "No"}}, True), ({"zz": {"$contains": ""}}, False),
    ({"s": {"$startswith": "Hello"}}, True), ({"s": {"$startswith": "World"}}, False),
    ({"s": {"$startswith": ""}}, True), ({"b": {"$startswith": "Tr"}}, True),
    ({"bs": {"$startswith": "ab"}}, False), ({"bs": {"$startswith": "b'"}}, True),
    ({"l": {"$startswith": "[1"}}, True), ({"zz": {"$startswith": ""}}, False),
    ({"s": {"$endswith": "World"}}, True), ({"s": {"$endswith": "Hello"}}, False),
    ({"f": {"$endswith": ".5"}}, True), ({"l": {"$endswith": "'x']"}}, True),
    ({"n": {"$endswith": "No"}}, False), ({"zz": {"$endswith": ""}}, False),
    # --- operator dicts
    ({"a": {}}, True), ({"a": {"$foo": 1}}, False), ({"a": {"bar": 1}}, False),
    ({"zz": {"$foo": 1}}, False), ({"a": {"$eq": 5, "$foo": 1}}, False),
    ({"a": {"$and": [{"$eq": 5}]}}, False), ({"a": {"$not": {"$eq": 4}}}, False),
    # --- $and / $or
    ({"$and": [{"a": 5}, {"s": "Hello World"}]}, True), ({"$and": [{"a": 5}, {"s": "y"}]}, False),
    ({"$and": []}, True), ({"$or": []}, False),
    ({"$or": [{"a": 4}, {"a": 5}]}, True), ({"$or": [{"a": 4}, {"s": "y"}]}, False),
    ({"$and": [{"$or": [{"a": 4}, {"a": 5}]}, {"s": "Hello World"}]}, True),
    ({"$and": [{}]}, True), ({"$or": [{}]}, True),
    ({"$or": [{"a": 5}], "s": "other keys ignored"}, True),
    ({"$and": [{"a": 5}], "zz": "other keys ignored"}, True),
    ({"$and": [{"a": 4}], "$or": [{"a": 5}]}, False),  # $and decides first
    ({"$and": [{"a": 5}], "$or": [{"a": 4}]}, True),
    ({"$and": "x", "$or": [{"a": 4}]}, False),
    ({"$or": [{"a": 5}, 5]}, True),  # stops before the bad entry
    # non-list $and/$or are skipped
    ({"$and": {"a": 4}}, True), ({"$or": None}, True), ({"$and": ({"a": 4},)}, True),
    ({"$and": "x", "a": 4}, False), ({"$and": 1, "a": 5}, True),
    # unknown top-level operators are field names
    ({"$nor": [{"a": 4}]}, False), ({"$not": {"a": 4}}, False), ({"$foo": 1}, False),
    # --- start_from_latest
    ({"start_from_latest": True, "a": 4}, True), ({"start_from_latest": False, "a": 4}, True),
    ({"start_from_latest": None, "a": {"$gt": "x"}}, True),
    ({"a": {"$gt": "x"}, "start_from_latest": 1}, True),
    ({"$or": [{"start_from_latest": 1}]}, True), ({"x": {"start_from_latest": 1}}, False),
    # --- evaluation stops at the first failing key
    ({"a": 4, "s": {"$gt": 1}}, False), ({"a": {"$eq": 4, "$gt": "6"}}, False),
    ({"$or": [{"a": 5}, {"s": {"$gt": 1}}]}, True),
]


@pytest.mark.parametrize("criteria,expected", MATCH_CASES, ids=[repr(c[0])[:60] for c in MATCH_CASES])
def test_match_follows_the_original(criteria, expected):
    assert rust_match_event(EVENT, criteria) is expected


MATCH_ERRORS = [
    # criteria, exception, message fragment (None = any)
    ({"a": {"$gt": "5"}}, TypeError, "'>' not supported between instances of 'int' and 'str'"),
    ({"a": {"$lt": None}}, TypeError, "'<' not supported"),
    ({"a": {"$gte": [5]}}, TypeError, "'>=' not supported"),
    ({"n": {"$lte": 5}}, TypeError, "'<=' not supported between instances of 'NoneType' and 'int'"),
    ({"s": {"$gt": 1}, "a": 4}, TypeError, None),
    ({"a": {"$gt": "6", "$eq": 4}}, TypeError, None),
    ({"$or": [{"s": {"$gt": 1}}, {"a": 5}]}, TypeError, None),
    ({"a": {"$exists": 1}}, TypeError, None),
    ({"zz": {"$exists": None}}, TypeError, None),
    ({"a": {"$exists": "yes"}}, TypeError, None),
    ({"s": {"$regex": 5}}, TypeError, None),
    ({"zz": {"$regex": None}}, TypeError, None),
    ({"s": {"$regex": re.compile("H")}}, TypeError, None),
    ({"s": {"$contains": 5}}, TypeError, None),
    ({"zz": {"$startswith": None}}, TypeError, None),
    ({"s": {"$endswith": ["H"]}}, TypeError, None),
    ({"$and": [5]}, TypeError, None),
    ({"$or": [5, {"a": 5}]}, TypeError, None),
    ({1: 5}, TypeError, None),
    ({"a": {5: 1}}, TypeError, None),
    ({"a": {"$eq": 5, 5: 1}}, TypeError, None),
    ({"s": {"$regex": "("}}, ValueError, "Invalid regex '(': regex parse error:"),
    ({"s": {"$regex": "[z-a]"}}, ValueError, "Invalid regex '[z-a]'"),
    ({"s": {"$regex": "(?<=H)e"}}, ValueError, "look-around"),
    ({"s": {"$regex": r"(\w)\1"}}, ValueError, "backreferences are not supported"),
]


@pytest.mark.parametrize("criteria,exc,fragment", MATCH_ERRORS,
                         ids=[repr(c[0])[:60] for c in MATCH_ERRORS])
def test_match_raises_like_the_original(criteria, exc, fragment):
    with pytest.raises(exc) as info:
        rust_match_event(EVENT, criteria)
    if fragment is not None:
        assert fragment in str(info.value)


@pytest.mark.parametrize("event,criteria", [([1], {}), (EVENT, [1]), (None, {})])
def test_match_requires_dicts(event, criteria):
    with pytest.raises(TypeError):
        rust_match_event(event, criteria)


def test_match_accepts_dict_subclasses():
    assert rust_match_event(OrderedDict(a=1), OrderedDict(a=1)) is True
    assert rust_match_event({"a": {"b": 1}}, {"a": OrderedDict(b={"$eq": 1})}) is False


def test_match_uses_python_comparison_of_custom_objects():
    class Price:
        def __init__(self, v):
            self.v = v

        def __gt__(self, other):
            return self.v > other

        def __eq__(self, other):
            return isinstance(other, Price) and self.v == other.v

    event = {"price": Price(10)}
    assert rust_match_event(event, {"price": {"$gt": 5}}) is True
    assert rust_match_event(event, {"price": Price(10)}) is True
    assert rust_match_event(event, {"price": {"$in": [Price(10)]}}) is True


# ---------------------------------------------------------------------------------------------
# Hostile input (our bounds; the original hung, crashed or allowed more)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,text", [
    ("(a+)+$", "a" * 100_000 + "!"),
    ("(a|aa)*b", "a" * 100_000),
    ("(.*a){20}$", "a" * 10_000 + "!"),
    ("(x+x+)+y", "x" * 50_000),
])
def test_catastrophic_backtracking_patterns_run_in_linear_time(pattern, text):
    start = time.perf_counter()
    assert rust_match_event({"s": text}, {"s": {"$regex": pattern}}) is False
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("pattern", [
    "(a{999}){999}",   # original: also refused (10 MiB limit)
    "a{99999}",        # original: compiled (under 10 MiB); ours: over the 1 MiB limit
    r"\w{1000}",
    "x" * 2_000_000,
])
def test_oversized_patterns_are_a_value_error(pattern):
    with pytest.raises(ValueError, match="exceeds size limit"):
        rust_match_event({"s": "b"}, {"s": {"$regex": pattern}})


@pytest.mark.parametrize("pattern", [
    r"[\w.-]+@[\w-]+\.\w{2,10}", r"\w{20}", "[a-z]{1000}", ".{1000}",
    r"(?i)order_(placed|filled|cancelled)_\d{1,10}",
])
def test_realistic_patterns_compile(pattern):
    rust_match_event({"s": "x"}, {"s": {"$regex": pattern}})


def test_deeply_nested_regex_groups_are_a_value_error_not_a_crash():
    with pytest.raises(ValueError):
        rust_match_event({"s": "b"}, {"s": {"$regex": "(" * 10_000 + ")" * 10_000}})


def test_regex_cache_stays_bounded():
    for i in range(2_000):
        assert rust_match_event({"s": f"p{i}"}, {"s": {"$regex": f"p{i}$"}}) is True
    # 1024 ordinary patterns plus at most 16 large ones.
    assert 1024 <= _event_regex_cache_len() <= 1040
    # evicted patterns still work (recompiled)
    assert rust_match_event({"s": "p0"}, {"s": {"$regex": "p0$"}}) is True


def _nested_and(depth):
    criteria = {"a": 5}
    for _ in range(depth):
        criteria = {"$and": [criteria]}
    return criteria


def test_criteria_nesting_up_to_the_limit_is_evaluated():
    assert rust_match_event({"a": 5}, _nested_and(128)) is True


@pytest.mark.parametrize("depth", [129, 100_000])
def test_too_deeply_nested_criteria_are_a_value_error(depth):
    # The original overflowed the stack (segfault) at 100 000 levels.
    with pytest.raises(ValueError, match="nested deeper than 128"):
        rust_match_event({"a": 5}, _nested_and(depth))


def test_deeply_nested_equal_values_compare_without_crashing():
    value = 1
    for _ in range(100_000):
        value = [value]
    assert rust_match_event({"a": value}, {"a": value}) is True


def _self_referencing_list():
    cycle = []
    cycle.append(cycle)
    return cycle


def _self_referencing_dict():
    cycle = {}
    cycle["self"] = cycle
    return cycle


def _deep_list(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    _self_referencing_list(), _self_referencing_dict(), _deep_list(100_000),
], ids=["list cycle", "dict cycle", "100k-deep list"])
def test_self_referencing_or_too_deep_payloads_are_a_value_error(value):
    # The original crashed (segfault) on the list cases.
    with pytest.raises(ValueError, match="nested deeper than 128"):
        transform({"type": "A", "payload": {"x": value}})
    with pytest.raises(ValueError):
        transform({"type": "A", "x": value})


def test_payload_nesting_within_the_limit_is_converted():
    value = (1,)
    for _ in range(120):
        value = [value]
    out = transform({"type": "A", "payload": {"x": value}})["p"]["x"]
    for _ in range(120):
        out = out[0]
    assert out == [1]


def test_huge_lists_are_handled():
    big = list(range(1_000_000))
    assert rust_match_event({"a": 999_999}, {"a": {"$in": big}}) is True
    assert rust_match_event({"a": -1}, {"a": {"$nin": big}}) is True
    assert rust_match_event({"a": big}, {"a": {"$regex": r"\[0, 1, 2"}}) is True
    out = transform({"type": "A", "payload": {"x": big, "t": tuple(big)}})["p"]
    assert out["x"] == big and out["t"] == big


# ---------------------------------------------------------------------------------------------
# wse_server.core.filters (original surface: EventFilter, log, rust_match_event)
# ---------------------------------------------------------------------------------------------

def test_event_filter_delegates_to_rust_match_event():
    from wse_server.core.filters import EventFilter

    assert isinstance(EventFilter.__dict__["matches"], staticmethod)
    event = {"event_type": "OrderPlaced", "symbol": "AAPL.O", "payload": {"quantity": 150}}
    assert EventFilter.matches(event, {
        "event_type": {"$in": ["OrderPlaced", "OrderFilled"]},
        "symbol": {"$regex": "^AAPL"},
        "payload.quantity": {"$gte": 100},
    }) is True
    assert EventFilter().matches(event, {"payload.quantity": {"$lt": 100}}) is False
    with pytest.raises(ValueError):
        EventFilter.matches(event, {"symbol": {"$regex": "("}})


def test_filters_module_exposes_the_originals_names():
    import logging

    from wse_server.core import filters

    assert filters.rust_match_event is rust_match_event
    assert isinstance(filters.log, logging.Logger) and filters.log.name == "wse.filters"
    public = {n for n in dir(filters) if not n.startswith("_")}
    assert {"EventFilter", "log", "rust_match_event", "Any", "logging"} <= public
    assert filters.__doc__ and filters.EventFilter.__doc__ and filters.EventFilter.matches.__doc__
