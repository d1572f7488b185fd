"""Type stubs for ``wse_server._wse_accel``, the native module of WSE."""

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
    ) -> None:
        """Creates a server (does not bind).

        ``jwt_secret`` None disables authentication (``connect`` events, no ``server_ready``);
        otherwise it is the HS256 secret (at least 32 bytes) or the RS256/ES256 PEM public key.
        ``ping_interval`` must be greater than 0 and less than ``idle_timeout``.
        ``recovery_enabled=True`` and ``presence_enabled=True`` raise ``NotImplementedError``:
        those features are not in this build yet.

        Keyword-only additions: ``allowed_origins`` (Origin allow-list, exact or ``*`` globs;
        default: the comma-separated ``ALLOWED_ORIGINS`` environment variable; unset = no
        check; a refused Origin gets close 4403), ``inbound_rate_capacity`` /
        ``inbound_rate_refill`` (per-connection inbound token bucket in messages and
        messages/s; refill 0 disables it; over the limit messages are dropped with a
        ``RATE_LIMITED`` error frame), ``inbound_rate_grace_ms`` (how long a connection may
        stay over the limit before close 4429) and ``send_dedup_window`` (``send_event`` ids
        remembered per connection).
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
        ``("bin", id, bytes)``, ``("disconnect", id, None)``. ``[]`` on timeout."""
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
        """Publishes to a topic; never raises when stopped (the message is dropped)."""

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
        ``max_subscriptions_per_connection`` a ``RuntimeError``. ``presence_data`` is accepted
        for compatibility and unused (presence is not in this build)."""
    def unsubscribe_connection(self, conn_id: str, topics: list[str] | None = None) -> None:
        """Unsubscribes from ``topics``, or from everything (queue groups included) with None."""
    def get_topic_subscriber_count(self, topic: str) -> int:
        """Fan-out subscribers of exactly this topic key (queue members not counted)."""
    def get_queue_group_info(self, topic: str) -> dict[str, int]:
        """``{group: member_count}`` of the topic's queue groups."""

    # health
    def health_snapshot(self) -> dict[str, Any]:
        """Health figures with the original's keys; zeros when not running."""
    def prometheus_metrics(self) -> str:
        """Prometheus text exposition of the ``wse_*`` metrics."""

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
