"""Type stubs for ``wse_server._wse_accel``, the native module of WSE."""

import os
from collections.abc import Sequence
from typing import Any, Callable, Literal

__version__: str

Event = tuple[str, str | None, Any]

class RustWSEServer:
    """The WSE WebSocket server, embedded in this Python process.

    Construction validates every option (``ValueError`` names the parameter; negative numbers
    raise ``OverflowError``) and does not bind. ``start()`` binds before returning. Events reach
    Python through ``drain_inbound()`` (after ``enable_drain_mode()``) or the ``set_callbacks()``
    callables. The class may be subclassed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        max_connections: int = 1000,
        jwt_secret: bytes | None = None,
        jwt_issuer: str | None = None,
        jwt_audience: str | None = None,
        jwt_cookie_name: str | None = None,
        jwt_previous_secret: bytes | None = None,
        jwt_key_id: str | None = None,
        jwt_algorithm: Literal["HS256", "RS256", "ES256"] | None = None,
        jwt_private_key: bytes | None = None,
        max_inbound_queue_size: int = 131072,
        recovery_enabled: bool = False,
        recovery_buffer_size: int = 128,
        recovery_ttl: int = 300,
        recovery_max_messages: int = 500,
        recovery_memory_budget: int = 268435456,
        presence_enabled: bool = False,
        presence_max_data_size: int = 4096,
        presence_max_members: int = 0,
        rate_limit_capacity: float = 100000.0,
        rate_limit_refill: float = 10000.0,
        max_message_size: int = 1048576,
        ping_interval: int = 25,
        idle_timeout: int = 60,
        max_outbound_queue_bytes: int = 16777216,
        max_subscriptions_per_connection: int = 0,
        *,
        allowed_origins: list[str] | None = None,
        inbound_rate_capacity: float = 100000.0,
        inbound_rate_refill: float = 10000.0,
        inbound_rate_grace_ms: int = 5000,
        send_dedup_window: int = 4096,
        key_rotation_interval: int = 3600,
        signed_event_types: list[str] | None = None,
        signing_secret: bytes | None = None,
    ) -> None:
        """Creates a server (does not bind).

        ``jwt_secret`` None disables authentication (``connect`` events, no ``server_ready``);
        otherwise it is the HS256 secret (at least 32 bytes) or the RS256/ES256 PEM public key.
        ``ping_interval`` must be greater than 0 and less than ``idle_timeout``.
        ``recovery_*`` configure per-topic message recovery (ring of ``recovery_buffer_size``
        rounded up to a power of two, at least 16; rings idle for ``recovery_ttl`` seconds are
        dropped; at most ``recovery_max_messages`` replayed; ``recovery_memory_budget`` bytes in
        all, slot memory included). ``presence_*`` configure presence (data up to
        ``presence_max_data_size`` bytes of JSON, ``presence_max_members`` users per topic, 0 =
        unlimited).

        Keyword-only additions: ``allowed_origins`` (Origin allow-list, exact or ``*`` globs;
        default: the comma-separated ``ALLOWED_ORIGINS`` environment variable; unset = no
        check; a refused Origin gets close 4403), ``inbound_rate_capacity`` /
        ``inbound_rate_refill`` (per-connection inbound token bucket in messages and
        messages/s; refill 0 disables it; over the limit messages are dropped with a
        ``RATE_LIMITED`` error frame), ``inbound_rate_grace_ms`` (how long a connection may
        stay over the limit before close 4429), ``send_dedup_window`` (``send_event`` ids
        remembered per connection) and ``key_rotation_interval`` (seconds between E2E key
        rotations with clients that negotiate them; 0 disables), ``signed_event_types`` and
        ``signing_secret`` (``send_event`` messages of those types carry ``sig``, HMAC-SHA256
        with the secret of at least 32 bytes; without a secret only encrypted connections sign,
        with a key derived from their session key).
        """

    # lifecycle
    def start(self) -> None:
        """Binds and serves; ``is_running()`` is True when this returns.

        Raises ``RuntimeError("Server is already running")`` if started and ``OSError`` if the
        address cannot be bound. A stopped server can be started again.
        """
    def stop(self) -> None:
        """Closes every client with 1001 "server shutting down", flushes for up to 2 s and
        ends every task. A no-op when not running."""
    def drain(self, close_code: int = 4300, close_reason: str = "", timeout: int = 30) -> None:
        """Rolling-restart drain: refuses new sockets, sends every client
        Close(close_code, close_reason), and drops those still open after ``timeout`` seconds.
        Returns at once; call ``stop()`` afterwards. ``RuntimeError("Not running")`` if not
        started."""
    def is_running(self) -> bool:
        """True from a successful ``start()`` until ``stop()`` (also while draining)."""
    def enable_drain_mode(self) -> None:
        """Queue events for ``drain_inbound()`` instead of calling callbacks; call it before
        ``start()``."""
    def set_callbacks(
        self,
        on_connect: Callable[[str, str], Any],
        on_message: Callable[[str, dict[str, Any] | str | bytes], Any],
        on_disconnect: Callable[[str], Any],
    ) -> None:
        """Callback mode: ``on_connect(conn_id, cookies)``, ``on_message(conn_id, value)``
        (dict for JSON/msgpack, str for other text, bytes for binary), ``on_disconnect(conn_id)``,
        called in event order on one dedicated thread; exceptions are printed and delivery goes
        on. ``RuntimeError("All callbacks must be callable")`` otherwise."""

    # events
    def drain_inbound(self, max_count: int = 256, timeout_ms: int = 50) -> list[Event]:
        """Waits up to ``timeout_ms`` (GIL released) for the first event, then takes up to
        ``max_count`` without waiting. Tuples: ``("connect", id, cookies)``,
        ``("auth_connect", id, user_id)``, ``("msg", id, dict)``, ``("raw", id, str)``,
        ``("bin", id, bytes)``, ``("presence_join", None, {"topic", "user_id", "data"})``,
        ``("presence_leave", None, {...})``, ``("disconnect", id, None)``. ``[]`` on timeout."""
    def inbound_dropped_count(self) -> int:
        """Events dropped because the inbound queue was full."""
    def inbound_queue_depth(self) -> int:
        """Events waiting in the inbound queue."""

    # sending
    def send(self, conn_id: str, data: str) -> None:
        """Sends a text frame verbatim; unknown ids are ignored. ``RuntimeError("Not
        running")`` when stopped."""
    def send_bytes(self, conn_id: str, data: bytes) -> None:
        """Sends a binary frame verbatim; unknown ids are ignored."""
    def send_event(
        self, conn_id: str, event: dict[str, Any], compression_threshold: int = 1024
    ) -> int:
        """Frames an application event (dedup by ``id``, outbound rate limit, envelope with
        ``c``/``v``/``id``/``seq``/``ts``; JSON, ``C:`` zlib above the threshold, ``M:`` msgpack
        on msgpack connections). Returns the payload bytes queued; 0 when deduplicated,
        rate-limited or the connection is unknown. Values are converted: ints beyond 64 bits
        to str, bytes to hex, NaN/Inf to null, objects with ``isoformat()`` to that string,
        anything else ``str(obj)``."""
    def broadcast_all(self, data: str) -> None:
        """Sends one text frame (category injected) to every connection."""
    def broadcast_all_bytes(self, data: bytes) -> None:
        """Sends one binary frame to every connection."""
    def broadcast_local(self, topic: str, data: str) -> None:
        """Publishes to a topic on this node: exact and glob subscribers (ACL checked) and one
        member of each queue group."""
    def broadcast(self, topic: str, data: str) -> None:
        """Publishes to a topic on this node (as ``broadcast_local``) and, after
        ``connect_cluster``, on every peer node with a subscriber for it. Never raises when
        stopped (the message is dropped)."""

    # cluster
    def connect_cluster(
        self,
        peers: Sequence[str],
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        cluster_port: int | None = None,
        seeds: Sequence[str] | None = None,
        cluster_addr: str | None = None,
    ) -> None:
        """Joins the cluster: dials ``peers`` (``host:port``, redialled forever) or, with
        ``seeds``, the seeds instead (``cluster_addr``, the ``host:port`` others reach this
        node at, is then required). With ``cluster_port`` the node also accepts peers on that
        port (bound on 0.0.0.0). mTLS with all three of ``tls_cert``/``tls_key``/``tls_ca``
        (PEM paths) or, without them, ``WSE_CLUSTER_TLS_CERT``/``_KEY``/``_CA``. Once, after
        ``start()``.

        ``RuntimeError``: "Cluster already connected", seeds without ``cluster_addr``,
        "Partial TLS config: ...", "TLS config error: ..." (naming the file), an address that
        is not ``host:port``, "Server not started". ``OSError`` if the cluster port cannot be
        bound.
        """
    def cluster_connected(self) -> bool:
        """True while at least one peer link is up."""
    def cluster_peers_count(self) -> int:
        """Live peer links (0 without a cluster)."""
    def cluster_info(self) -> list[dict[str, Any]]:
        """One dict per live link: ``{"address": str, "instance_id": str, "capabilities": int,
        "connected_at": int}`` (Unix milliseconds)."""
    def reload_cluster_tls(
        self,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        ca_path: str | os.PathLike[str],
    ) -> None:
        """New mTLS files for links made from now on. ``RuntimeError("Cluster TLS not
        configured")`` without a TLS cluster; ``RuntimeError("TLS config error: ...")`` for an
        unusable file (the current files stay in use)."""
    def get_cluster_dlq_entries(self) -> list[dict[str, str]]:
        """Takes the dead letters (publications a subscribed peer never got):
        ``{"topic", "payload", "peer_addr", "error"}``; the queue is empty afterwards."""
    def cluster_routes(self, topic: str) -> int:
        """Not in the original: live peers a ``broadcast`` on ``topic`` is routed to now (those
        with a subscriber for it). Useful to wait for a remote subscription to arrive."""

    # connections, topics, ACL, queue groups
    def get_connection_count(self) -> int:
        """Registered connections."""
    def get_connections(self) -> list[str]:
        """Ids of the registered connections."""
    def disconnect(self, conn_id: str, code: int = 1000, reason: str = "") -> None:
        """Closes a connection with ``code`` and ``reason`` (a ``ValueError`` for a code that
        cannot be sent or a reason over 123 bytes)."""
    def set_topic_acl(
        self, conn_id: str, allow: list[str] | None = None, deny: list[str] | None = None
    ) -> None:
        """Replaces the connection's topic ACL: deny wins, empty allow allows all; ``*`` and
        ``?`` globs. Checked at subscribe time and, for glob subscriptions, at delivery."""
    def subscribe_connection(
        self,
        conn_id: str,
        topics: list[str],
        presence_data: dict[str, Any] | None = None,
        queue_group: str | None = None,
    ) -> None:
        """Subscribes to topics (``*``/``?`` make glob subscriptions) or, with ``queue_group``,
        joins round-robin groups instead. Refused topics are dropped silently; at
        ``max_subscriptions_per_connection`` a ``RuntimeError``. With ``presence_data`` (presence
        enabled, JWT-authenticated connection) the user is tracked as present in each topic
        added; a user's first connection makes a ``presence_join``."""
    def subscribe_with_recovery(
        self,
        conn_id: str,
        topics: list[str],
        recover: bool = False,
        epoch: str | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """Subscribes and, with ``recover=True`` and the client's last ``epoch`` (8 hex digits)
        and ``offset``, replays what the connection missed (one position for all topics: call
        once per topic for per-topic positions). Returns ``{"recovered": bool, "topics":
        {topic: {"epoch": str | None, "offset": int, "recoverable": bool, "recovered": bool,
        "count": int}}}``. Topics the ACL refuses report nothing. ``RuntimeError`` for a bad
        epoch, at the subscription limit, or for ``recover=True`` when not running."""
    def unsubscribe_connection(self, conn_id: str, topics: list[str] | None = None) -> None:
        """Unsubscribes from ``topics``, or from everything (queue groups included) with None."""
    def get_topic_subscriber_count(self, topic: str) -> int:
        """Fan-out subscribers of exactly this topic key (queue members not counted)."""
    def get_queue_group_info(self, topic: str) -> dict[str, int]:
        """``{group: member_count}`` of the topic's queue groups."""

    # presence
    def presence(self, topic: str) -> dict[str, dict[str, Any]]:
        """Users present in ``topic``: ``{user_id: {"data": ..., "connections": int}}``."""
    def presence_stats(self, topic: str) -> dict[str, int]:
        """``{"num_users": int, "num_connections": int}`` of ``topic``."""
    def update_presence(self, conn_id: str, data: dict[str, Any]) -> None:
        """Replaces the connection's presence data in its topics and sends ``presence_update``;
        ``RuntimeError`` when too large or the connection has no presence (no-op when presence
        is off)."""

    # health
    def health_snapshot(self) -> dict[str, Any]:
        """Health figures with the original's keys; zeros when not running."""
    def prometheus_metrics(self) -> str:
        """Prometheus text exposition of the ``wse_*`` metrics."""

# ---- helper classes (none of them touches the wire) ------------------------------------

class RustCompressionManager:
    """zlib compression with statistics, and msgpack/JSON packing of events.

    `compress` uses `compression_level` (0 = stored … 9 = smallest) unless given a level;
    `decompress` refuses output over 10 MiB with a `RuntimeError`. `pack_event`/`unpack_event`
    turn event dicts into msgpack or JSON bytes and back. Safe to share between threads.
    """
    def __init__(self, threshold=1024, compression_level=6) -> None:
        """Creates the CompressionManager."""
    def should_compress(self, data) -> bool:
        """Whether `data` is longer than the threshold."""
    def compress(self, data, level=None) -> bytes:
        """zlib-compresses `data` at `level` (default: the manager's level). A level above 9 is a
        `ValueError` (counted as a compression failure).
        """
    def decompress(self, data) -> bytes:
        """Inflates zlib `data` (empty input gives empty output). A corrupt stream, bytes after
        the stream, or output over 10 MiB is a `RuntimeError` (counted as a failure).
        """
    def pack_msgpack(self, data) -> bytes:
        """Packs a dict as msgpack: insertion order and non-string keys kept, `bytes` as bin,
        an `Enum` member as its value, datetimes as `isoformat()`, other objects (UUID, set, an
        int beyond 64 bits) as `str(obj)`. Nesting deeper than 128 is a `ValueError`.
        """
    def unpack_msgpack(self, data) -> Any:
        """Unpacks one msgpack value (nested at most 64 deep; bytes after it are ignored). Invalid
        input is a `RuntimeError`.
        """
    def pack_event(self, event, use_msgpack=True) -> bytes:
        """Packs an event dict as msgpack, or with `use_msgpack=False` as compact JSON with sorted
        keys (bytes as hex, NaN as null, non-string keys as text).
        """
    def unpack_event(self, data, is_msgpack=True) -> Any:
        """Unpacks an event. With `is_msgpack=True`: msgpack, else JSON, else `RuntimeError`.
        With `is_msgpack=False`: JSON (UTF-8, or Latin-1 when not UTF-8); undecodable input
        gives `{"_raw_hex": <hex of data>, "_decode_error": True}` instead of an error.
        """
    def get_stats(self) -> dict[str, Any]:
        """Counters: `total_compressed`, `total_decompressed`, `compression_failures`,
        `decompression_failures`, `total_bytes_saved` (input minus output, never negative per
        call), `compression_success_rate`, `decompression_success_rate`, `average_bytes_saved`.
        """
    def reset_stats(self) -> None:
        """Sets every counter back to zero."""

class RustTokenBucket:
    """Token bucket rate limiter.

    Holds up to `capacity` tokens and regains `refill_rate` tokens per second. Every `acquire`
    (and every read of `tokens`) first adds the tokens earned since the previous refill, then
    `acquire(n)` takes `n` tokens if that many are there. Safe to share between threads.
    """
    def __init__(self, capacity, refill_rate, initial_tokens=None) -> None:
        """Creates the TokenBucket."""
    def acquire(self, tokens) -> bool:
        """Refills, then takes `tokens` tokens and returns `True` if at least that many are
        available; otherwise returns `False` and takes nothing.
        """
    def reset(self) -> None:
        """Fills the bucket to `capacity` and restarts the refill clock."""
    @property
    def tokens(self) -> float:
        """The tokens available now (refills first)."""

class RustSequencer:
    """Event sequencer with duplicate detection.

    `next_seq()` hands out 1, 2, 3, ...; `is_duplicate(event_id)` remembers the last
    `window_size` ids it was asked about and reports repeats. `cleanup(max_age_secs)` forgets
    ids older than that. Safe to share between threads.
    """
    def __init__(self, window_size) -> None:
        """Creates the Sequencer."""
    def next_seq(self) -> int:
        """Advances the sequence and returns the new value (the first call returns 1)."""
    def get_current_seq(self) -> int:
        """The last value `next_seq` returned (0 before the first call)."""
    def is_duplicate(self, event_id) -> bool:
        """`True` if `event_id` is among the remembered ids; otherwise remembers it and returns
        `False`.
        """
    def cleanup(self, max_age_secs) -> Any:
        """Forgets ids first seen more than `max_age_secs` seconds ago."""
    def seen_count(self) -> int:
        """How many ids are remembered."""

class RustEventSequencer:
    """Full event sequencer: sequence numbers, duplicate detection, and per-topic in-order
    delivery with a bounded out-of-order buffer and gap statistics.

    `process_sequenced_event(topic, sequence, event)` returns the events that can be delivered
    now, in order, or `None` when the event was buffered (it arrived early) or dropped (it is
    older than expected). The first event of a topic is always delivered. An event more than
    `max_out_of_order` ahead resets the topic: buffered events are discarded and the event is
    delivered. At most 10,000 topics are tracked; the least recently active one is forgotten
    to make room. Safe to share between threads.
    """
    def __init__(self, window_size=10000, max_out_of_order=100) -> None:
        """Creates the EventSequencer."""
    def next_seq(self) -> int:
        """Advances the sequence and returns the new value (the first call returns 1)."""
    def get_current_sequence(self) -> int:
        """The last value `next_seq` returned (0 before the first call)."""
    def is_duplicate(self, event_id) -> bool:
        """`True` (and counts a duplicate) if `event_id` is among the last `window_size` ids;
        otherwise remembers it and returns `False`.
        """
    def process_sequenced_event(self, topic, sequence, event) -> list[Any] | None:
        """Orders `event` (sequence number `sequence`) within `topic`. Returns the list of events
        now deliverable in order (this one first, then any buffered successors), or `None` if
        the event was buffered or dropped as old.
        """
    def cleanup(self) -> Any:
        """Drops buffered events older than five minutes (they count as dropped); a topic whose
        last buffered events expired this way is forgotten, so its next event starts it over.
        The duplicate window needs no trimming: it never exceeds `window_size`.
        """
    def get_buffer_stats(self) -> dict[str, Any]:
        """Buffer statistics: `total_topics`, `total_buffered`, and for each topic with buffered
        events `expected_sequence`, `buffered_count`, `buffered_sequences`, `gap_size` (first
        buffered minus expected) and `oldest_buffered_age` (seconds).
        """
    def get_sequence_stats(self) -> dict[str, Any]:
        """Sequence statistics: `current_sequence`, `duplicate_count`, `out_of_order_count`,
        `dropped_count`, `topics` (per topic `expected`, `buffered`, `gaps`,
        `buffered_sequences`), `total_topics`, `total_buffered`, `seen_ids_count`.

        `gaps` lists the runs of missing numbers between consecutive entries of
        `[expected] + buffered_sequences`, each as `{"start", "end", "size"}` — the expected
        number itself is not reported as missing, as in the original.
        """
    def reset_sequence(self, topic=None) -> None:
        """Forgets the ordering state (expected number and buffered events) of `topic`, or of
        every topic when `topic` is `None`. Counters and the duplicate window are kept.
        """

class RustPriorityQueue:
    """Priority queue: higher numbers come out first; equal priorities come out in push order.
    Holds at most `max_size` messages. Safe to share between threads.
    """
    def __init__(self, max_size) -> None:
        """Creates the PriorityQueue."""
    def push(self, priority, message) -> bool:
        """Adds `message` with `priority`; returns `False` (and keeps nothing) if the queue is full."""
    def pop(self) -> Any:
        """Removes and returns the highest-priority message, or `None` if the queue is empty."""
    def drain(self, max_count) -> list[Any]:
        """Removes and returns up to `max_count` messages, highest priority first."""
    def len(self) -> int:
        """How many messages are queued."""
    def is_full(self) -> bool:
        """Whether the queue holds `max_size` messages (always true for `max_size == 0`)."""
    def clear(self) -> None:
        """Removes every message."""

class RustPriorityMessageQueue:
    """Priority message queue with five levels and batching.

    Priorities are mapped to CRITICAL(10), HIGH(8), NORMAL(5), LOW(3) or BACKGROUND(1) (nearest
    level, ties upward). When the queue is full, `enqueue` drops the oldest BACKGROUND, else LOW,
    else NORMAL message to make room; if only HIGH and CRITICAL messages are queued the new
    message is refused (`False`). Every drop is counted under the dropped message's level.
    `dequeue_batch()` returns up to `batch_size` `(level, message)` tuples, highest level first,
    oldest first within a level. Safe to share between threads.
    """
    def __init__(self, max_size=1000, batch_size=10) -> None:
        """Creates the PriorityMessageQueue."""
    def enqueue(self, message, priority=5) -> bool:
        """Queues `message` at `priority` (default NORMAL). Returns `False` if it was refused
        because the queue is full of HIGH and CRITICAL messages (or `max_size` is 0).
        """
    def dequeue_batch(self) -> list[tuple[int, Any]]:
        """Removes and returns up to `batch_size` `(level, message)` tuples, highest level first."""
    def get_stats(self) -> dict[str, Any]:
        """Queue statistics: `size`, `capacity`, `utilization_percent`, `priority_distribution`
        and `dropped_by_priority` (keyed by level), `priority_queue_depths`
        (`"priority_<level>_depth"`), `total_dropped`, `backpressure` (above 80 % full),
        `oldest_message_age` (seconds, `None` when empty) and `processing_rate` (always 0.0:
        the original reports no rate, the key is kept for shape).
        """
    def clear(self) -> None:
        """Removes every queued message (drop counters are kept)."""
    @property
    def size(self) -> int:
        """How many messages are queued."""

def rust_jwt_encode(
    claims: dict[str, Any],
    secret: bytes,
    algorithm: Literal["HS256", "RS256", "ES256"] = "HS256",
    key_id: str | None = None,
) -> str:
    """Mints a JWT (no ``exp``/``iat`` added). ``ValueError`` for another algorithm,
    ``RuntimeError("JWT encode error: …")`` for a short HS256 secret or an unusable PEM key."""

def rust_jwt_decode(
    token: str,
    secret: bytes,
    algorithm: str = "HS256",
    issuer: str | None = None,
    audience: str | None = None,
    previous_secret: bytes | None = None,
    key_id: str | None = None,
) -> dict[str, Any] | None:
    """Validates a token with the server's rules and returns its claims, or None for any
    failure (an unsupported algorithm included)."""

def rust_ecdh_generate_keypair() -> tuple[bytes, bytes]:
    """A new ECDH P-256 key pair from the OS random generator: ``(private_key, public_key)``,
    the 32-byte big-endian private scalar and the 65-byte uncompressed SEC1 public key
    (``04 || X || Y``)."""

def rust_ecdh_derive_shared_secret(private_key: bytes, peer_public_key: bytes) -> bytes:
    """The 32-byte AES-256 key agreed with a peer: ECDH on P-256, then HKDF-SHA256 (no salt,
    info ``wse-encryption/aes-gcm-key``), as the server and the clients derive it.

    ``private_key`` is a big-endian scalar (32 bytes; 24 to 31 mean leading zero bytes left
    out); ``peer_public_key`` is SEC1, uncompressed (65 bytes) or compressed (33).
    ``ValueError`` if either is not a valid P-256 key. Only ``bytes`` is accepted
    (``TypeError`` otherwise)."""

def rust_aes_gcm_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM with a fresh random 12-byte IV and no associated data; returns
    ``IV || ciphertext || 16-byte tag`` (the body of an ``E:`` frame). ``ValueError`` if
    ``key`` is not 32 bytes."""

def rust_aes_gcm_decrypt(key: bytes, data: bytes) -> bytes:
    """The plaintext of an ``IV || ciphertext || tag`` record. ``ValueError`` if ``data`` is
    shorter than 28 bytes (checked first) or ``key`` is not 32 bytes; ``RuntimeError`` if
    authentication fails (wrong key or altered data)."""

def rust_compress(data: bytes, level: int = 6) -> bytes:
    """zlib at level 1..9 (``ValueError`` otherwise)."""

def rust_decompress(data: bytes) -> bytes:
    """Inflates zlib; ``RuntimeError`` for corrupt input or output over 10 MiB."""

def rust_should_compress(data: bytes, threshold: int = 1024) -> bool:
    """Whether ``len(data) > threshold``."""

def rust_sha256(data: bytes) -> str:
    """Lower-case hex SHA-256."""

def rust_hmac_sha256(key: bytes, data: bytes) -> bytes:
    """The 32 raw bytes of HMAC-SHA256."""

def rust_sign_message(payload_json: str, secret: bytes) -> str:
    """``hex(HMAC-SHA256(secret, hex(SHA-256(payload_json))))``."""

def rust_transform_event(
    event: dict[str, Any], sequence: int, event_type_map: dict[str, str]
) -> dict[str, Any]:
    """Turns an application event into a WSE wire envelope dict.

    An event that already has ``v``, ``t``, ``p``, ``id`` and ``ts`` is returned as is (given
    ``seq`` if missing). Otherwise the type (``event_type`` / ``type``, default "unknown") is
    mapped through ``event_type_map`` or lower-cased, the payload is made JSON-safe (UUID, datetime,
    Enum, bytes, tuples, objects), and ``c``, ``t``, ``id``, ``ts``, ``seq``, ``p``, ``v`` and the
    optional metadata fields are filled in. Nesting deeper than 128 levels is a ``ValueError``.
    """

def rust_match_event(event: dict[str, Any], criteria: dict[str, Any]) -> bool:
    """Whether ``event`` matches MongoDB-style ``criteria``: ``$eq $ne $gt $lt $gte $lte $in $nin
    $regex $exists $contains $startswith $endswith``, top-level ``$and``/``$or``, dotted paths; a
    ``start_from_latest`` key always matches. Regexes are linear-time with a size limit (an
    oversized or invalid pattern is a ``ValueError``)."""
