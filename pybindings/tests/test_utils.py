"""Behaviour of the §7.11 utility classes of `wse_server._wse_accel`.

"Original:" in a docstring marks behaviour checked against the published wse-server 2.5.1
(probed in /work/orig-venv); the test pins it. "Bounded:" marks a limit this implementation
adds where the original grows without one.
"""

import datetime
import enum
import threading
import time
import uuid
import zlib

import pytest

from wse_server._wse_accel import (
    RustCompressionManager,
    RustEventSequencer,
    RustPriorityMessageQueue,
    RustPriorityQueue,
    RustSequencer,
    RustTokenBucket,
)

MIB = 1024 * 1024


# --- RustCompressionManager ------------------------------------------------------------------


def test_compression_defaults_and_signatures_match_original():
    """Original: constructor and method signatures."""
    assert RustCompressionManager.__text_signature__ == "(threshold=1024, compression_level=6)"
    assert RustCompressionManager.compress.__text_signature__ == "($self, data, level=None)"
    assert RustCompressionManager.pack_event.__text_signature__ == "($self, event, use_msgpack=True)"
    assert (
        RustCompressionManager.unpack_event.__text_signature__ == "($self, data, is_msgpack=True)"
    )
    assert RustCompressionManager.__module__ == "wse_server._wse_accel"
    assert RustCompressionManager.__doc__


def test_should_compress_is_strictly_longer_than_threshold():
    c = RustCompressionManager(threshold=10)
    assert not c.should_compress(b"x" * 10)
    assert c.should_compress(b"x" * 11)
    assert RustCompressionManager().should_compress(b"x" * 1025)
    assert not RustCompressionManager().should_compress(b"x" * 1024)


def test_should_compress_requires_bytes():
    """Original: str is a TypeError."""
    with pytest.raises(TypeError):
        RustCompressionManager().should_compress("x" * 2000)


def test_compress_round_trips_through_zlib_and_counts_bytes_saved():
    c = RustCompressionManager()
    data = b"hello" * 300
    packed = c.compress(data)
    assert zlib.decompress(packed) == data
    assert c.decompress(packed) == data
    stats = c.get_stats()
    assert stats["total_compressed"] == 1
    assert stats["total_decompressed"] == 1
    assert stats["total_bytes_saved"] == len(data) - len(packed)
    assert stats["average_bytes_saved"] == float(len(data) - len(packed))
    assert stats["compression_success_rate"] == 1.0
    assert stats["decompression_success_rate"] == 1.0


def test_compress_level_override_and_level_zero_stores():
    """Original: level 0 is accepted (stored block, header 78 01); level 9 gives 78 da."""
    c = RustCompressionManager()
    stored = c.compress(b"abc", 0)
    assert stored[:2] == b"\x78\x01" and zlib.decompress(stored) == b"abc"
    assert c.compress(b"abc", 9)[:2] == b"\x78\xda"
    assert c.compress(b"abc", level=1)[:2] == b"\x78\x01"
    assert RustCompressionManager(compression_level=6).compress(b"abc")[:2] == b"\x78\x9c"


def test_compress_never_counts_negative_savings():
    """Original: growing input (b'' becomes 8 bytes) adds 0 to total_bytes_saved."""
    c = RustCompressionManager()
    assert zlib.decompress(c.compress(b"")) == b""
    assert c.get_stats()["total_bytes_saved"] == 0
    assert c.get_stats()["total_compressed"] == 1


def test_compress_level_above_nine_is_value_error_and_a_failure():
    """The original panics (PanicException); here it is a ValueError counted as a failure."""
    c = RustCompressionManager(compression_level=10)
    with pytest.raises(ValueError):
        c.compress(b"abc")
    with pytest.raises(ValueError):
        RustCompressionManager().compress(b"abc", 10)
    assert c.get_stats()["compression_failures"] == 1
    assert c.get_stats()["compression_success_rate"] == 0.0


def test_negative_levels_and_threshold_are_overflow_errors():
    """Original: OverflowError for negative threshold, level and override."""
    with pytest.raises(OverflowError):
        RustCompressionManager(-1)
    with pytest.raises(OverflowError):
        RustCompressionManager(10, -1)
    with pytest.raises(OverflowError):
        RustCompressionManager().compress(b"x", -1)


def test_decompress_empty_input_is_empty_output():
    """Original: b'' decompresses to b'' and counts as a success."""
    c = RustCompressionManager()
    assert c.decompress(b"") == b""
    assert c.get_stats()["total_decompressed"] == 1


def test_decompress_garbage_is_runtime_error_and_counted():
    c = RustCompressionManager()
    with pytest.raises(RuntimeError, match="decompression error"):
        c.decompress(b"garbage")
    stats = c.get_stats()
    assert stats["decompression_failures"] == 1
    assert stats["decompression_success_rate"] == 0.0


def test_decompress_accepts_exactly_ten_mib():
    """Original: 10 MiB of output is accepted."""
    data = b"\0" * (10 * MIB)
    assert RustCompressionManager().decompress(zlib.compress(data)) == data


def test_decompression_bomb_is_runtime_error_not_memory():
    """Original: a bomb (11 MiB, or 1 GiB claimed from ~1 MiB) is refused at the 10 MiB cap."""
    c = RustCompressionManager()
    with pytest.raises(RuntimeError, match="10485760"):
        c.decompress(zlib.compress(b"\0" * (11 * MIB)))
    bomb = zlib.compressobj(9)
    payload = b"".join(bomb.compress(b"\0" * (64 * MIB)) for _ in range(16)) + bomb.flush()
    assert len(payload) < 2 * MIB
    with pytest.raises(RuntimeError, match="exceeds"):
        c.decompress(payload)
    assert c.get_stats()["decompression_failures"] == 2


def test_reset_stats_zeroes_every_counter():
    c = RustCompressionManager()
    c.compress(b"a" * 2000)
    with pytest.raises(RuntimeError):
        c.decompress(b"bad")
    assert c.reset_stats() is None
    assert c.get_stats() == {
        "total_compressed": 0,
        "total_decompressed": 0,
        "compression_failures": 0,
        "decompression_failures": 0,
        "total_bytes_saved": 0,
        "compression_success_rate": 0.0,
        "decompression_success_rate": 0.0,
        "average_bytes_saved": 0.0,
    }


def test_get_stats_key_order_matches_original():
    assert list(RustCompressionManager().get_stats()) == [
        "total_compressed",
        "total_decompressed",
        "compression_failures",
        "decompression_failures",
        "total_bytes_saved",
        "compression_success_rate",
        "decompression_success_rate",
        "average_bytes_saved",
    ]


class Color(enum.Enum):
    RED = "red"
    TWO = 2


def test_pack_msgpack_matches_original_bytes():
    """Original: insertion order kept, bytes as bin, int keys kept, NaN kept as a float."""
    c = RustCompressionManager()
    assert c.pack_msgpack({"b": 1, "a": 2}) == b"\x82\xa1b\x01\xa1a\x02"
    assert c.pack_msgpack({"b": b"\x01\x02"}) == b"\x81\xa1b\xc4\x02\x01\x02"
    assert c.pack_msgpack({1: 2, None: 3}) == b"\x82\x01\x02\xc0\x03"
    assert c.pack_msgpack({"nan": float("nan")}) == b"\x81\xa3nan\xcb\x7f\xf8" + b"\0" * 6
    assert c.pack_msgpack({"u": 2**64 - 1}) == b"\x81\xa1u\xcf" + b"\xff" * 8


def test_pack_msgpack_converts_uuid_datetime_enum_and_others_like_original():
    """Original: UUID str, isoformat(), Enum .value, big int and set as str, tuple as array."""
    c = RustCompressionManager()
    dt = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    packed = c.pack_msgpack(
        {
            "u": uuid.UUID(int=5),
            "d": dt,
            "e": Color.RED,
            "e2": Color.TWO,
            "big": 2**70,
            "s": {1},
            "t": (1, 2),
        }
    )
    assert c.unpack_msgpack(packed) == {
        "u": "00000000-0000-0000-0000-000000000005",
        "d": "2024-01-02T03:04:05+00:00",
        "e": "red",
        "e2": 2,
        "big": str(2**70),
        "s": "{1}",
        "t": [1, 2],
    }


def test_pack_msgpack_requires_a_dict():
    """Original: list/int/None are TypeErrors."""
    for bad in ([1], 5, None, "s"):
        with pytest.raises(TypeError):
            RustCompressionManager().pack_msgpack(bad)


def test_pack_msgpack_cycle_is_value_error_not_crash():
    """The original crashes the interpreter on a self-referencing list; here a ValueError."""
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError):
        RustCompressionManager().pack_msgpack({"l": loop})


def test_unpack_msgpack_returns_any_value_and_keeps_bytes_and_keys():
    """Original: lists and scalars are returned too; bin/ext become bytes; non-str keys kept."""
    c = RustCompressionManager()
    assert c.unpack_msgpack(b"\x92\x01\x02") == [1, 2]
    assert c.unpack_msgpack(b"\x05") == 5
    assert c.unpack_msgpack(b"\x82\x01\x02\xc0\x03") == {1: 2, None: 3}
    assert c.unpack_msgpack(b"\x81\xa1e\xd5\x05ab") == {"e": b"ab"}
    assert c.unpack_msgpack(b"\x81\xa1b\xc4\x01\x01") == {"b": b"\x01"}
    assert c.unpack_msgpack(b"\x82\xa1b\x01\xa1a\x02") == {"b": 1, "a": 2}
    assert list(c.unpack_msgpack(b"\x82\xa1b\x01\xa1a\x02")) == ["b", "a"]


def test_unpack_msgpack_ignores_trailing_bytes():
    """Original: only the first value is read."""
    assert RustCompressionManager().unpack_msgpack(b"\x81\xa1a\x01zz") == {"a": 1}


def test_unpack_msgpack_rejects_invalid_input_with_runtime_error():
    """Original: empty, the reserved marker 0xc1 and truncation are RuntimeErrors."""
    c = RustCompressionManager()
    for bad in (b"", b"\xc1", b"\x92\x01", b"\x81\xa1a\xc1"):
        with pytest.raises(RuntimeError, match="msgpack unpacking failed"):
            c.unpack_msgpack(bad)


def test_unpack_msgpack_depth_limit_is_64_containers():
    """Original: 64 nested containers decode, 65 are refused, 100,000 do not crash."""
    c = RustCompressionManager()
    assert c.unpack_msgpack(b"\x91" * 64 + b"\x01") is not None
    assert c.unpack_msgpack(b"\x91" * 64 + b"\xa1x") is not None
    for depth in (65, 1000, 100_000):
        with pytest.raises(RuntimeError):
            c.unpack_msgpack(b"\x91" * depth + b"\x01")


def test_unpack_msgpack_invalid_utf8_string_is_refused():
    """The original returns '' for a non-UTF-8 string; here the input is refused."""
    with pytest.raises(RuntimeError):
        RustCompressionManager().unpack_msgpack(b"\x81\xa1a\xa1\xff")


def test_unpack_msgpack_unhashable_key_is_type_error():
    """Original: an array map key is a TypeError (unhashable list)."""
    with pytest.raises(TypeError):
        RustCompressionManager().unpack_msgpack(b"\x81\x91\x01\x02")


def test_pack_event_msgpack_round_trips():
    c = RustCompressionManager()
    event = {"t": "x", "p": {"b": b"\x01", "n": None, "l": [1, 2.5]}}
    assert c.unpack_event(c.pack_event(event)) == event
    assert c.pack_event({"b": 1, "a": 2}, use_msgpack=True) == b"\x82\xa1b\x01\xa1a\x02"


def test_pack_event_json_is_compact_sorted_with_original_conversions():
    """Original: sorted keys, bytes as hex, NaN null, Enum value, None key 'nil', tuple key."""
    c = RustCompressionManager()
    assert c.pack_event({"b": 1, "a": 2}, False) == b'{"a":2,"b":1}'
    event = {
        "p": {"b": b"\x01", "e": Color.RED, "f": float("nan"), "u": uuid.UUID(int=1)},
        "t": (1, 2),
    }
    assert c.pack_event(event, False) == (
        b'{"p":{"b":"01","e":"red","f":null,"u":"00000000-0000-0000-0000-000000000001"},'
        b'"t":[1,2]}'
    )
    assert c.pack_event({1: 2, None: 3}, False) == b'{"1":2,"nil":3}'
    assert c.pack_event({(1, 2): 2}, False) == b'{"[1, 2]":2}'
    assert c.pack_event({"u": "\u00e9"}, False) == '{"u":"\u00e9"}'.encode()


def test_pack_event_requires_a_dict():
    with pytest.raises(TypeError):
        RustCompressionManager().pack_event([1], False)


def test_pack_event_does_not_touch_stats():
    c = RustCompressionManager()
    c.pack_event({"a": 1})
    c.unpack_event(c.pack_event({"a": 1}))
    assert c.get_stats()["total_compressed"] == 0
    assert c.get_stats()["total_decompressed"] == 0


def test_unpack_event_msgpack_mode_reads_json_text_as_a_fixint_like_original():
    """Original: with is_msgpack=True, b'{...}' decodes as msgpack fixint 0x7b (123)."""
    assert RustCompressionManager().unpack_event(b'{"b":1}') == 123


def test_unpack_event_msgpack_mode_failure_is_runtime_error():
    """Original: undecodable as msgpack and as JSON is a RuntimeError."""
    c = RustCompressionManager()
    for bad in (b"", b"\xc1", b"\x92\x01", b"\x91" * 65 + b"\x01"):
        with pytest.raises(RuntimeError, match="Failed to unpack event"):
            c.unpack_event(bad, True)


def test_unpack_event_json_mode_parses_with_sorted_keys():
    c = RustCompressionManager()
    assert list(c.unpack_event(b'{"b":1,"a":2}', False)) == ["a", "b"]
    assert c.unpack_event(b"[1,2]", False) == [1, 2]
    assert c.unpack_event(b"null", False) is None
    assert c.unpack_event(b'  {"a":1}  ', False) == {"a": 1}
    assert c.unpack_event(b'{"a":1,"a":2}', False) == {"a": 2}
    assert c.unpack_event(b'{"a":18446744073709551615}', False) == {"a": 2**64 - 1}
    assert c.unpack_event(b'{"x":1.0,"z":1e2}', False) == {"x": 1.0, "z": 100.0}


def test_unpack_event_json_mode_falls_back_to_latin1():
    """Original: non-UTF-8 JSON is read as Latin-1."""
    c = RustCompressionManager()
    assert c.unpack_event(b'{"b":"\xe9"}', False) == {"b": "\u00e9"}
    assert c.unpack_event(b'{"b":"\x80"}', False) == {"b": "\x80"}


def test_unpack_event_json_mode_undecodable_gives_raw_hex_marker():
    """Original: bad JSON (garbage, trailing text, BOM, too deep, 1e400) is not an error."""
    c = RustCompressionManager()
    for bad in (b"garbage", b'{"a":1} x', b"\xef\xbb\xbf{}", b"", b'{"a":1.5e400}'):
        assert c.unpack_event(bad, False) == {"_raw_hex": bad.hex(), "_decode_error": True}
    deep = b'{"a":' * 128 + b"1" + b"}" * 128
    assert c.unpack_event(deep, False)["_decode_error"] is True
    ok = b'{"a":' * 127 + b"1" + b"}" * 127
    assert "_decode_error" not in c.unpack_event(ok, False)


def test_compression_manager_is_usable_from_several_threads():
    c = RustCompressionManager()
    data = b"abc" * 1000

    def work():
        for _ in range(50):
            assert c.decompress(c.compress(data)) == data

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get_stats()["total_compressed"] == 200
    assert c.get_stats()["total_decompressed"] == 200


# --- RustTokenBucket --------------------------------------------------------------------------


def test_token_bucket_signature_and_required_acquire_argument():
    """Original: acquire(tokens) has no default (the .pyi's 1.0 default is not real)."""
    assert RustTokenBucket.__text_signature__ == "(capacity, refill_rate, initial_tokens=None)"
    with pytest.raises(TypeError):
        RustTokenBucket(10, 1.0).acquire()


def test_token_bucket_starts_full_and_acquires_fractional_tokens():
    b = RustTokenBucket(10, 0.0)
    assert b.tokens == 10.0 and isinstance(b.tokens, float)
    assert b.acquire(1)
    assert b.acquire(2.5)
    assert b.tokens == pytest.approx(6.5)
    assert not b.acquire(100)
    assert b.tokens == pytest.approx(6.5)


def test_token_bucket_refills_over_time_up_to_capacity():
    b = RustTokenBucket(10, 100.0, 0)
    assert b.tokens < 1
    time.sleep(0.05)
    assert 3 < b.tokens < 10
    time.sleep(0.15)
    assert b.tokens == 10.0


def test_token_bucket_initial_tokens_and_reset():
    b = RustTokenBucket(10, 0.0, 3)
    assert b.tokens == 3.0
    assert not b.acquire(4)
    assert b.reset() is None
    assert b.tokens == 10.0


def test_token_bucket_initial_above_capacity_is_capped_on_refill():
    """Original: tokens read as capacity and acquire(15) fails."""
    b = RustTokenBucket(10, 1.0, 30)
    assert b.tokens == 10.0
    assert not b.acquire(15)


def test_token_bucket_edge_arguments_behave_like_original():
    """Original: zero/negative capacity, negative and NaN acquire, negative rate."""
    zero = RustTokenBucket(0, 1.0)
    assert zero.acquire(0) and not zero.acquire(0.1)
    neg = RustTokenBucket(-1, 1.0)
    assert not neg.acquire(0) and neg.acquire(-2)
    assert neg.tokens == -1.0
    b = RustTokenBucket(10, 0.0, 5)
    assert b.acquire(-3)
    assert b.tokens == 8.0
    assert not b.acquire(float("nan"))
    assert not b.acquire(float("inf"))
    draining = RustTokenBucket(10, -10.0, 5)
    time.sleep(0.05)
    assert draining.tokens < 5
    with pytest.raises(TypeError):
        b.acquire("1")


def test_token_bucket_tokens_is_read_only():
    with pytest.raises(AttributeError):
        RustTokenBucket(1, 1).tokens = 5


def test_token_bucket_never_over_grants_across_threads():
    b = RustTokenBucket(1000, 0.0)
    granted = []

    def work():
        granted.append(sum(b.acquire(1) for _ in range(500)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 1000


# --- RustSequencer ----------------------------------------------------------------------------


def test_sequencer_counts_from_one():
    s = RustSequencer(3)
    assert s.get_current_seq() == 0
    assert s.next_seq() == 1
    assert s.next_seq() == 2
    assert s.get_current_seq() == 2


def test_sequencer_window_size_is_required_and_unsigned():
    with pytest.raises(TypeError):
        RustSequencer()
    with pytest.raises(OverflowError):
        RustSequencer(-1)


def test_sequencer_detects_duplicates_within_window_and_evicts_oldest():
    """Original: window 3 keeps the 3 newest ids; a repeat does not refresh an id."""
    s = RustSequencer(3)
    assert not s.is_duplicate("a")
    assert s.is_duplicate("a")
    assert not s.is_duplicate("b")
    assert not s.is_duplicate("c")
    assert s.seen_count() == 3
    assert not s.is_duplicate("d")  # evicts "a"
    assert s.seen_count() == 3
    assert not s.is_duplicate("a")  # forgotten, so new again (evicts "b")
    assert not s.is_duplicate("b")
    s2 = RustSequencer(2)
    for event_id in ("x", "y", "x", "z"):
        s2.is_duplicate(event_id)
    assert not s2.is_duplicate("x")


def test_sequencer_window_zero_acts_as_one():
    """Original: a window of 0 still remembers the latest id."""
    s = RustSequencer(0)
    assert not s.is_duplicate("a")
    assert s.is_duplicate("a")
    assert not s.is_duplicate("b")
    assert not s.is_duplicate("a")
    assert s.seen_count() == 1


def test_sequencer_is_duplicate_requires_str():
    with pytest.raises(TypeError):
        RustSequencer(3).is_duplicate(5)


def test_sequencer_cleanup_forgets_old_ids_only():
    s = RustSequencer(10)
    s.is_duplicate("old")
    time.sleep(0.2)
    s.is_duplicate("new")
    assert s.cleanup(0.1) is None
    assert s.seen_count() == 1
    assert not s.is_duplicate("old")
    assert s.is_duplicate("new")


def test_sequencer_cleanup_edge_ages():
    """Original: negative age forgets everything; NaN and inf forget nothing."""
    for age, left in ((float("nan"), 1), (float("inf"), 1), (1e30, 1), (-1, 0)):
        s = RustSequencer(5)
        s.is_duplicate("a")
        s.cleanup(age)
        assert s.seen_count() == left


def test_sequencer_stays_bounded_by_window():
    s = RustSequencer(100)
    for i in range(10_000):
        s.is_duplicate(f"id-{i}")
    assert s.seen_count() == 100


# --- RustEventSequencer -----------------------------------------------------------------------


def test_event_sequencer_defaults_and_counter():
    assert RustEventSequencer.__text_signature__ == "(window_size=10000, max_out_of_order=100)"
    s = RustEventSequencer()
    assert s.get_current_sequence() == 0
    assert s.next_seq() == 1
    assert s.get_current_sequence() == 1


def test_event_sequencer_duplicates_are_counted():
    s = RustEventSequencer(3, 5)
    assert not s.is_duplicate("a")
    assert s.is_duplicate("a")
    for event_id in "bcd":
        assert not s.is_duplicate(event_id)
    assert not s.is_duplicate("a")  # evicted by "d"
    stats = s.get_sequence_stats()
    assert stats["duplicate_count"] == 1
    assert stats["seen_ids_count"] == 3


def test_event_sequencer_orders_delivers_buffers_and_drops_like_original():
    """Original: the full trace of a topic (first, old, early, replace, flush)."""
    s = RustEventSequencer(10, 5)
    assert s.process_sequenced_event("t", 5, {"n": 5}) == [{"n": 5}]
    assert s.process_sequenced_event("t", 5, {"n": 5}) is None  # old: dropped
    assert s.process_sequenced_event("t", 4, {"n": 4}) is None
    assert s.process_sequenced_event("t", 6, {"n": 6}) == [{"n": 6}]
    assert s.process_sequenced_event("t", 8, {"n": 8}) is None  # early: buffered
    assert s.process_sequenced_event("t", 9, {"n": 9}) is None
    assert s.process_sequenced_event("t", 8, {"n": "8b"}) is None  # replaces 8
    buffers = s.get_buffer_stats()
    assert buffers["total_topics"] == 1 and buffers["total_buffered"] == 2
    topic = buffers["topics"]["t"]
    assert topic["expected_sequence"] == 7
    assert topic["buffered_count"] == 2
    assert topic["buffered_sequences"] == [8, 9]
    assert topic["gap_size"] == 1
    assert 0 <= topic["oldest_buffered_age"] < 5
    stats = s.get_sequence_stats()
    assert (stats["out_of_order_count"], stats["dropped_count"]) == (3, 2)
    assert s.process_sequenced_event("t", 7, {"n": 7}) == [{"n": 7}, {"n": "8b"}, {"n": 9}]
    assert s.get_sequence_stats()["topics"]["t"] == {
        "expected": 10,
        "buffered": 0,
        "gaps": [],
        "buffered_sequences": [],
    }


def test_event_sequencer_too_far_ahead_resets_topic_and_counts_skipped_as_dropped():
    """Original: beyond max_out_of_order the buffer is discarded, the event delivered, and
    dropped_count grows by sequence - expected - 1."""
    s = RustEventSequencer(10, 5)
    s.process_sequenced_event("t", 10, "e10")  # expected 11
    assert s.process_sequenced_event("t", 16, "e16") is None  # 5 ahead: buffered
    assert s.process_sequenced_event("t", 17, "e17") == ["e17"]  # 6 ahead: reset
    stats = s.get_sequence_stats()
    assert (stats["out_of_order_count"], stats["dropped_count"]) == (2, 5)
    assert stats["topics"]["t"]["expected"] == 18
    assert stats["total_buffered"] == 0


def test_event_sequencer_gaps_match_original_report():
    """Original: gaps run between consecutive [expected] + buffered numbers."""
    s = RustEventSequencer(10, 10)
    for seq in (1, 4, 6, 7, 10):
        s.process_sequenced_event("g", seq, "x")
    topic = s.get_sequence_stats()["topics"]["g"]
    assert topic["expected"] == 2
    assert topic["buffered_sequences"] == [4, 6, 7, 10]
    assert topic["gaps"] == [
        {"start": 3, "end": 3, "size": 1},
        {"start": 5, "end": 5, "size": 1},
        {"start": 8, "end": 9, "size": 2},
    ]
    assert s.get_buffer_stats()["topics"]["g"]["gap_size"] == 2


def test_event_sequencer_returns_the_same_event_objects():
    marker = object()
    assert RustEventSequencer().process_sequenced_event("i", 0, marker)[0] is marker


def test_event_sequencer_argument_types():
    """Original: negative or >u64 sequence is OverflowError, float/int misuse TypeError."""
    s = RustEventSequencer()
    with pytest.raises(OverflowError):
        s.process_sequenced_event("i", -1, "x")
    with pytest.raises(OverflowError):
        s.process_sequenced_event("i", 2**64, "x")
    with pytest.raises(TypeError):
        s.process_sequenced_event("i", 1.5, "x")
    with pytest.raises(TypeError):
        s.process_sequenced_event(5, 1, "x")
    with pytest.raises(OverflowError):
        RustEventSequencer(-1)


def test_event_sequencer_expected_wraps_after_u64_max():
    """Original: after u64::MAX the next expected number is 0."""
    s = RustEventSequencer()
    s.process_sequenced_event("w", 2**64 - 1, "x")
    assert s.get_sequence_stats()["topics"]["w"]["expected"] == 0
    assert s.process_sequenced_event("w", 0, "y") == ["y"]


def test_event_sequencer_buffer_stats_list_only_topics_with_buffered_events():
    s = RustEventSequencer(10, 10)
    s.process_sequenced_event("a", 1, "x")
    s.process_sequenced_event("b", 1, "x")
    s.process_sequenced_event("b", 5, "x")
    stats = s.get_buffer_stats()
    assert stats["total_topics"] == 2
    assert list(stats["topics"]) == ["b"]


def test_event_sequencer_cleanup_keeps_recent_buffered_events():
    s = RustEventSequencer(10, 10)
    s.process_sequenced_event("a", 1, "x")
    s.process_sequenced_event("a", 3, "x3")
    assert s.cleanup() is None
    assert s.get_buffer_stats()["total_buffered"] == 1
    assert s.get_sequence_stats()["total_topics"] == 1


def test_event_sequencer_reset_sequence_one_topic_or_all():
    """Original: reset keeps counters, duplicate window and the sequence counter."""
    s = RustEventSequencer(10, 10)
    s.next_seq()
    s.is_duplicate("id")
    for topic in "ab":
        s.process_sequenced_event(topic, 1, "x")
        s.process_sequenced_event(topic, 3, "x")
    assert s.reset_sequence("a") is None
    assert list(s.get_sequence_stats()["topics"]) == ["b"]
    s.reset_sequence("unknown")
    assert s.process_sequenced_event("a", 100, "again") == ["again"]  # starts over
    s.reset_sequence()
    stats = s.get_sequence_stats()
    assert stats["topics"] == {} and stats["total_topics"] == 0
    assert stats["out_of_order_count"] == 2
    assert stats["current_sequence"] == 1 and stats["seen_ids_count"] == 1
    assert s.is_duplicate("id")
    s.reset_sequence(topic=None)
    with pytest.raises(TypeError):
        s.reset_sequence(5)


def test_event_sequencer_per_topic_buffer_is_bounded_by_max_out_of_order():
    s = RustEventSequencer(10, 50)
    s.process_sequenced_event("t", 0, "x")
    for seq in range(2, 10_000):
        s.process_sequenced_event("t", seq, seq)
    assert s.get_buffer_stats()["total_buffered"] <= 50


def test_event_sequencer_topic_count_is_bounded():
    """Bounded: the original tracks every topic forever; here at most 10,000, least recently
    active forgotten first (its buffered events count as dropped)."""
    s = RustEventSequencer(10, 10)
    s.process_sequenced_event("keep", 1, "x")
    s.process_sequenced_event("old", 1, "x")
    s.process_sequenced_event("old", 3, "buffered")
    for i in range(10_000):
        if i % 1000 == 0:
            s.process_sequenced_event("keep", 2 + i // 1000, "x")  # stays recently active
        s.process_sequenced_event(f"topic-{i}", 1, "x")
    stats = s.get_sequence_stats()
    assert stats["total_topics"] == 10_000
    assert "old" not in stats["topics"]
    assert "keep" in stats["topics"]
    assert stats["dropped_count"] == 1
    assert s.process_sequenced_event("old", 2, "fresh start") == ["fresh start"]


def test_event_sequencer_is_usable_from_several_threads():
    s = RustEventSequencer(1000, 10)
    delivered = []
    lock = threading.Lock()

    def work(topic):
        for seq in range(200):
            out = s.process_sequenced_event(topic, seq, seq)
            with lock:
                delivered.extend(out or [])

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(delivered) == 800


# --- RustPriorityQueue ------------------------------------------------------------------------


def test_priority_queue_pops_highest_first_fifo_within_priority():
    q = RustPriorityQueue(10)
    for i in range(6):
        assert q.push(i % 3, f"m{i}")
    assert q.drain(10) == ["m2", "m5", "m1", "m4", "m0", "m3"]


def test_priority_queue_refuses_when_full():
    q = RustPriorityQueue(3)
    assert q.pop() is None
    assert q.drain(5) == []
    assert q.push(1, "a") and q.push(5, "b") and q.push(1, "c")
    assert q.is_full()
    assert not q.push(9, "d")
    assert q.len() == 3
    assert [q.pop(), q.pop(), q.pop(), q.pop()] == ["b", "a", "c", None]


def test_priority_queue_drain_takes_at_most_max_count():
    q = RustPriorityQueue(3)
    for i, p in enumerate([1, 5, 1]):
        q.push(p, f"m{i}")
    assert q.drain(2) == ["m1", "m0"]
    assert q.drain(0) == []
    assert q.drain(10) == ["m2"]
    with pytest.raises(OverflowError):
        q.drain(-1)


def test_priority_queue_priority_is_i32_and_messages_any_object():
    """Original: negative priorities allowed, 2**31 is OverflowError, floats TypeError."""
    q = RustPriorityQueue(10)
    assert q.push(-5, "neg") and q.push(2**31 - 1, "max")
    with pytest.raises(OverflowError):
        q.push(2**31, "big")
    with pytest.raises(TypeError):
        q.push(1.5, "f")
    assert q.drain(10) == ["max", "neg"]
    marker = object()
    q.push(1, marker)
    assert q.pop() is marker


def test_priority_queue_zero_capacity_and_clear():
    q0 = RustPriorityQueue(0)
    assert not q0.push(1, "a")
    assert q0.is_full() and q0.len() == 0
    q = RustPriorityQueue(5)
    q.push(1, "x")
    assert q.clear() is None
    assert q.len() == 0 and q.pop() is None
    with pytest.raises(OverflowError):
        RustPriorityQueue(-1)
    with pytest.raises(TypeError):
        RustPriorityQueue()


# --- RustPriorityMessageQueue -----------------------------------------------------------------


def test_priority_message_queue_maps_priorities_to_five_levels():
    """Original: >=9 -> 10, 7-8 -> 8, 4-6 -> 5, 2-3 -> 3, <=1 -> 1."""
    assert RustPriorityMessageQueue.__text_signature__ == "(max_size=1000, batch_size=10)"
    q = RustPriorityMessageQueue(100, 100)
    for p in range(-3, 14):
        assert q.enqueue(p, p)
    assert q.dequeue_batch() == [
        (10, 9), (10, 10), (10, 11), (10, 12), (10, 13),
        (8, 7), (8, 8),
        (5, 4), (5, 5), (5, 6),
        (3, 2), (3, 3),
        (1, -3), (1, -2), (1, -1), (1, 0), (1, 1),
    ]  # fmt: skip


def test_priority_message_queue_default_priority_and_batching():
    q = RustPriorityMessageQueue(10, 2)
    q.enqueue("a")
    q.enqueue("b", 10)
    q.enqueue("c", 1)
    assert q.size == 3
    assert q.dequeue_batch() == [(10, "b"), (5, "a")]
    assert q.dequeue_batch() == [(1, "c")]
    assert q.dequeue_batch() == []
    with pytest.raises(OverflowError):
        q.enqueue("x", 2**31)
    with pytest.raises(TypeError):
        q.enqueue("x", 1.5)


def test_priority_message_queue_drop_policy_matches_original_trace():
    """Original: full queue drops oldest BACKGROUND, then LOW, then NORMAL; with only
    HIGH/CRITICAL left the new message is refused. Drops count under the dropped level."""
    q = RustPriorityMessageQueue(5, 2)
    for i, p in enumerate([1, 3, 5, 8, 10]):
        q.enqueue(f"m{i}", p)
    steps = [("n1", 5), ("n2", 5), ("n3", 5), ("n4", 5), ("b1", 1), ("h1", 8), ("h2", 10), ("h3", 8)]
    for message, priority in steps:
        assert q.enqueue(message, priority)
        assert q.size == 5
    assert not q.enqueue("h4", 10)
    stats = q.get_stats()
    assert stats["dropped_by_priority"] == {10: 1, 8: 0, 5: 5, 3: 1, 1: 2}
    assert stats["total_dropped"] == 9
    assert stats["priority_distribution"] == {10: 2, 8: 3, 5: 0, 3: 0, 1: 0}
    assert q.dequeue_batch() == [(10, "m4"), (10, "h2")]
    assert q.dequeue_batch() == [(8, "m3"), (8, "h1")]
    assert q.dequeue_batch() == [(8, "h3")]


def test_priority_message_queue_drops_the_oldest_of_a_level():
    q = RustPriorityMessageQueue(3, 10)
    for m in "abc":
        q.enqueue(m, 5)
    assert q.enqueue("d", 10)
    assert q.dequeue_batch() == [(10, "d"), (5, "b"), (5, "c")]


def test_priority_message_queue_stats_shape_and_backpressure():
    """Original: backpressure above 80 % full; oldest_message_age None when empty."""
    q = RustPriorityMessageQueue(10, 1)
    empty = q.get_stats()
    assert empty == {
        "size": 0,
        "capacity": 10,
        "utilization_percent": 0.0,
        "priority_distribution": {10: 0, 8: 0, 5: 0, 3: 0, 1: 0},
        "priority_queue_depths": {
            "priority_10_depth": 0,
            "priority_8_depth": 0,
            "priority_5_depth": 0,
            "priority_3_depth": 0,
            "priority_1_depth": 0,
        },
        "dropped_by_priority": {10: 0, 8: 0, 5: 0, 3: 0, 1: 0},
        "total_dropped": 0,
        "backpressure": False,
        "oldest_message_age": None,
        "processing_rate": 0.0,
    }
    for i in range(8):
        q.enqueue(i)
    assert q.get_stats()["utilization_percent"] == 80.0
    assert not q.get_stats()["backpressure"]
    q.enqueue(8)
    assert q.get_stats()["backpressure"]
    assert q.get_stats()["priority_queue_depths"]["priority_5_depth"] == 9


def test_priority_message_queue_oldest_age_spans_levels():
    q = RustPriorityMessageQueue(10, 1)
    q.enqueue("old", 1)
    time.sleep(0.2)
    q.enqueue("new", 10)
    assert q.get_stats()["oldest_message_age"] >= 0.2
    q.dequeue_batch()  # takes "new"
    assert q.get_stats()["oldest_message_age"] >= 0.2


def test_priority_message_queue_zero_capacity_and_zero_batch():
    """Original: capacity 0 refuses everything (counted as dropped); batch 0 returns []."""
    q = RustPriorityMessageQueue(0, 1)
    assert not q.enqueue("a", 5)
    stats = q.get_stats()
    assert stats["total_dropped"] == 1 and stats["utilization_percent"] == 0.0
    assert not stats["backpressure"]
    q2 = RustPriorityMessageQueue(2, 0)
    q2.enqueue("a")
    assert q2.dequeue_batch() == [] and q2.size == 1
    with pytest.raises(OverflowError):
        RustPriorityMessageQueue(-1)


def test_priority_message_queue_clear_keeps_drop_counters():
    q = RustPriorityMessageQueue(1, 1)
    q.enqueue("a", 10)
    q.enqueue("b", 10)  # refused
    assert q.clear() is None
    stats = q.get_stats()
    assert stats["size"] == 0 and q.size == 0
    assert stats["total_dropped"] == 1


def test_priority_message_queue_never_exceeds_max_size_across_threads():
    q = RustPriorityMessageQueue(100, 10)

    def work(priority):
        for i in range(1000):
            q.enqueue(i, priority)

    threads = [threading.Thread(target=work, args=(p,)) for p in (1, 3, 5, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q.size == 100
    stats = q.get_stats()
    assert stats["total_dropped"] == 4000 - 100


# --- shared -----------------------------------------------------------------------------------


def test_objects_released_by_a_call_may_call_back_into_the_same_instance():
    """A removed message's __del__ runs after the instance's lock is released (no deadlock)."""
    pq = RustPriorityQueue(5)
    mq = RustPriorityMessageQueue(1, 1)
    es = RustEventSequencer(10, 10)
    calls = []

    class CallsBack:
        def __init__(self, fn):
            self.fn = fn

        def __del__(self):
            calls.append(self.fn())

    def scenario():
        pq.push(1, CallsBack(pq.len))
        pq.clear()
        mq.enqueue(CallsBack(lambda: mq.size), 1)
        mq.enqueue("newer", 1)  # evicts the first message
        es.process_sequenced_event("t", 1, "x")
        es.process_sequenced_event("t", 3, CallsBack(es.get_buffer_stats))
        es.process_sequenced_event("t", 3, "replacement")
        es.reset_sequence()

    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "deadlock: a __del__ ran while the lock was held"
    assert len(calls) == 3
