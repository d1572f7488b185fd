//! System messages the server writes itself (UPSTREAM §1.5–1.6, §2.5).
//!
//! Owns the exact text of `server_ready`, `server_hello`, `PONG`, the server `ping`, `error`
//! frames, `rate_limit_warning` and presence events. Inputs are plain values (ids, flags, the
//! wall clock); outputs are strings whose bytes the published clients depend on:
//!
//! - messages the original built through `serde_json::Value` have **alphabetical** keys and are
//!   built the same way here (`server_ready`, `server_hello`, `error`, presence);
//! - hand-formatted ones keep their **written order** (`PONG`, `ping`, `RATE_LIMITED`,
//!   `KEY_EXCHANGE_FAILED`, `rate_limit_warning`); the Python client finds `"t":"PONG"` /
//!   `"t":"ping"` in the first 25 characters, so `c` and `t` must lead.
//!
//! Every string that comes from outside (user ids, messages, details) is JSON-escaped with
//! serde_json; nothing is spliced in raw.

use serde_json::{Value, json};

use crate::time::WallClock;

/// The `server_version` the original reports in `server_hello` (UPSTREAM header).
pub const SERVER_VERSION: &str = "2.4.1";
/// Highest protocol version the server agrees to in `server_hello` (UPSTREAM §2.5.2).
pub const MAX_PROTOCOL_VERSION: i64 = 2;
/// `AUTH_REQUIRED` message when no token was found (UPSTREAM §1.5).
pub const AUTH_REQUIRED_MESSAGE: &str = "No JWT cookie or Authorization header";
/// `AUTH_FAILED` message for an invalid token (UPSTREAM §1.5).
pub const AUTH_FAILED_MESSAGE: &str = "Authentication failed";
/// `AUTH_FAILED` message for a token without a subject (UPSTREAM §1.5).
pub const TOKEN_MISSING_USER_ID_MESSAGE: &str = "Token missing user ID";

/// Inputs of `server_ready` (UPSTREAM §1.6).
#[derive(Clone, Copy, Debug)]
pub struct ServerReady<'a> {
    /// The connection id (`p.details.connection_id`).
    pub conn_id: &'a str,
    /// The JWT subject (`p.details.user_id`).
    pub user_id: &'a str,
    /// Whether message recovery is enabled (`p.details.features.recovery`).
    pub recovery: bool,
    /// The message `id` (a UUIDv7).
    pub message_id: uuid::Uuid,
    /// Now: `ts` and `p.details.server_time`.
    pub wall: WallClock,
}

/// The `server_ready` text, keys alphabetical, `seq` always 1 (UPSTREAM §1.6).
pub fn server_ready(r: &ServerReady<'_>) -> String {
    let now = r.wall.rfc3339_millis().to_string();
    json!({
        "c": "WSE",
        "id": r.message_id.to_string(),
        "p": {
            "details": {
                "connection_id": r.conn_id,
                "features": {
                    "batching": true,
                    "circuit_breaker": true,
                    "compression": true,
                    "encryption": false,
                    "priority_queue": true,
                    "recovery": r.recovery,
                    "rust_jwt": true,
                    "rust_transport": true,
                },
                "server_time": now,
                "user_id": r.user_id,
                "version": 1,
            },
            "message": "Connection established (Rust transport)",
        },
        "seq": 1,
        "t": "server_ready",
        "ts": now,
        "v": 1,
    })
    .to_string()
}

/// Inputs of `server_hello` (UPSTREAM §2.5.2).
#[derive(Clone, Copy, Debug)]
pub struct ServerHello<'a> {
    /// The connection id.
    pub conn_id: &'a str,
    /// The server's public key (base64 SEC1), present only when this hello did the key exchange.
    pub encryption_public_key: Option<&'a str>,
    /// Whether this hello performed the key exchange (`features.encryption`).
    pub encryption: bool,
    /// `features.key_rotation`, sent only when true (our extension; key rotation was
    /// negotiated in this hello).
    pub key_rotation: bool,
    /// Whether the server joined a cluster (`features.cluster`).
    pub cluster: bool,
    /// Whether recovery is enabled (`features.recovery`).
    pub recovery: bool,
    /// `limits.max_message_size`, bytes.
    pub max_message_size: u64,
    /// `limits.rate_limit_capacity` (the original truncates its float to an integer).
    pub rate_limit_capacity: i64,
    /// `limits.rate_limit_refill`, tokens per second (truncated likewise).
    pub rate_limit_refill: i64,
    /// `ping_interval`, milliseconds.
    pub ping_interval_ms: u64,
    /// The client's `protocol_version`; the reply carries `min(this, 2)`.
    pub client_protocol_version: i64,
    /// `server_version` (the original sends [`SERVER_VERSION`]).
    pub server_version: &'a str,
    /// Now: `server_time`.
    pub wall: WallClock,
}

/// The `server_hello` text, keys alphabetical; `encryption_public_key` only when given.
pub fn server_hello(h: &ServerHello<'_>) -> String {
    let mut p = json!({
        "connection_id": h.conn_id,
        "features": {
            "batching": true,
            "cluster": h.cluster,
            "compression": true,
            "encryption": h.encryption,
            "msgpack": true,
            "priority_queue": true,
            "recovery": h.recovery,
        },
        "limits": {
            "max_message_size": h.max_message_size,
            "rate_limit_capacity": h.rate_limit_capacity,
            "rate_limit_refill": h.rate_limit_refill,
        },
        "ping_interval": h.ping_interval_ms,
        "protocol_version": h.client_protocol_version.min(MAX_PROTOCOL_VERSION),
        "server_time": h.wall.rfc3339_millis().to_string(),
        "server_version": h.server_version,
    });
    if let (Some(key), Value::Object(map)) = (h.encryption_public_key, &mut p) {
        map.insert("encryption_public_key".to_owned(), Value::from(key));
    }
    if h.key_rotation
        && let Some(Value::Object(features)) = p.get_mut("features")
    {
        features.insert("key_rotation".to_owned(), Value::Bool(true));
    }
    json!({"c": "WSE", "p": p, "t": "server_hello", "v": 1}).to_string()
}

/// The `PONG` reply to a client `ping`, exact compact order `c,t,p{client_timestamp,
/// server_timestamp,latency},v` (UPSTREAM §2.5.3). `latency = max(0, server - client)`,
/// saturating instead of overflowing.
pub fn pong(client_timestamp: i64, server_timestamp_ms: i64) -> String {
    let latency = server_timestamp_ms.saturating_sub(client_timestamp).max(0);
    format!(
        r#"{{"c":"WSE","t":"PONG","p":{{"client_timestamp":{client_timestamp},"server_timestamp":{server_timestamp_ms},"latency":{latency}}},"v":1}}"#
    )
}

/// The server heartbeat `ping` (UPSTREAM §2.5.3): no `v` field.
pub fn server_ping(wall: WallClock) -> String {
    format!(
        r#"{{"c":"WSE","t":"ping","p":{{"server_time":"{}"}}}}"#,
        wall.rfc3339_millis()
    )
}

/// Error codes the server itself emits (UPSTREAM §2.5.4, CONTRACT D2/D3/D5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token (before close 4401).
    AuthRequired,
    /// Invalid token (before close 4401).
    AuthFailed,
    /// Origin not in the allow-list (before close 4403, CONTRACT D3).
    OriginForbidden,
    /// Rate limit exceeded.
    RateLimited,
    /// The client's ECDH key was unusable.
    KeyExchangeFailed,
    /// A message exceeded the size limit.
    MessageTooLarge,
    /// The client broke the protocol.
    ProtocolError,
    /// A message could not be understood.
    InvalidMessage,
    /// An internal failure.
    ServerError,
}

impl ErrorCode {
    /// The wire code, e.g. `"AUTH_REQUIRED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthRequired => "AUTH_REQUIRED",
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::OriginForbidden => "ORIGIN_FORBIDDEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::KeyExchangeFailed => "KEY_EXCHANGE_FAILED",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::ServerError => "SERVER_ERROR",
        }
    }
}

/// The general `error` frame (UPSTREAM §1.5): keys alphabetical,
/// `{"c":"WSE","p":{"code","message","timestamp"},"t":"error","v":1}`.
pub fn error_frame(code: ErrorCode, message: &str, wall: WallClock) -> String {
    json!({
        "c": "WSE",
        "p": {
            "code": code.as_str(),
            "message": message,
            "timestamp": wall.rfc3339_millis().to_string(),
        },
        "t": "error",
        "v": 1,
    })
    .to_string()
}

/// The exact `RATE_LIMITED` error (UPSTREAM §2.5.4), written order.
pub fn rate_limited_error() -> &'static str {
    r#"{"c":"WSE","t":"error","p":{"code":"RATE_LIMITED","message":"Rate limit exceeded","retry_after":1.0},"v":1}"#
}

/// The `rate_limit_warning` (UPSTREAM §2.5.5), written order.
pub fn rate_limit_warning(current_rate: u64, limit: u64, remaining: u64) -> String {
    format!(
        r#"{{"c":"WSE","t":"rate_limit_warning","p":{{"current_rate":{current_rate},"limit":{limit},"remaining":{remaining},"retry_after":1.0}},"v":1}}"#
    )
}

/// The `KEY_EXCHANGE_FAILED` error (UPSTREAM §2.5.4), written order, no `v`. The message is
/// `"ECDH key exchange failed: <detail>"`, fully JSON-escaped (the original escaped only quotes).
pub fn key_exchange_failed(detail: &str) -> String {
    let message = json_string(&format!("ECDH key exchange failed: {detail}"));
    format!(
        r#"{{"c":"WSE","t":"error","p":{{"code":"KEY_EXCHANGE_FAILED","message":{message},"recoverable":true}}}}"#
    )
}

/// Which presence event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceKind {
    /// `presence_join`.
    Join,
    /// `presence_leave`.
    Leave,
    /// `presence_update`.
    Update,
}

impl PresenceKind {
    /// The event type, e.g. `"presence_join"`.
    pub fn event_type(self) -> &'static str {
        match self {
            PresenceKind::Join => "presence_join",
            PresenceKind::Leave => "presence_leave",
            PresenceKind::Update => "presence_update",
        }
    }
}

/// A presence event (UPSTREAM §2.5.6): keys alphabetical, no `v`, `id` or `ts`.
pub fn presence_event(kind: PresenceKind, user_id: &str, data: &Value) -> String {
    json!({
        "c": "WSE",
        "p": {"data": data, "user_id": user_id},
        "t": kind.event_type(),
    })
    .to_string()
}

/// `s` as a JSON string literal, quotes included.
fn json_string(s: &str) -> String {
    Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27T05:31:54.123Z
    const WALL: WallClock = WallClock::from_unix_micros(1_795_757_514_123_456);
    const NOW: &str = "2026-11-27T05:31:54.123Z";

    #[test]
    fn wall_fixture_formats_as_expected() {
        assert_eq!(WALL.rfc3339_millis().to_string(), NOW);
    }

    #[test]
    fn pong_is_byte_exact_and_python_client_finds_it() {
        let s = pong(1_700_000_000_000, 1_700_000_000_042);
        assert_eq!(
            s,
            r#"{"c":"WSE","t":"PONG","p":{"client_timestamp":1700000000000,"server_timestamp":1700000000042,"latency":42},"v":1}"#
        );
        assert!(
            s.chars()
                .take(25)
                .collect::<String>()
                .contains(r#""t":"PONG""#)
        );
        assert!(serde_json::from_str::<Value>(&s).is_ok());
    }

    #[test]
    fn pong_latency_is_never_negative_and_never_overflows() {
        let cases = [
            (0, 10, 10),
            (10, 0, 0),
            (i64::MIN, i64::MAX, i64::MAX),
            (i64::MAX, i64::MIN, 0),
            (-5, 5, 10),
        ];
        for (client, server, latency) in cases {
            let v: Value = serde_json::from_str(&pong(client, server)).unwrap();
            assert_eq!(
                v["p"]["latency"], latency,
                "client {client} server {server}"
            );
            assert_eq!(v["p"]["client_timestamp"], client);
        }
    }

    #[test]
    fn server_ready_is_byte_exact() {
        let id = uuid::Uuid::parse_str("0190b1c2-d3e4-7f00-8a1b-2c3d4e5f6a7b").unwrap();
        let s = server_ready(&ServerReady {
            conn_id: "0190b1c2-0000-7000-8000-000000000001",
            user_id: "al\"ice\\\n",
            recovery: true,
            message_id: id,
            wall: WALL,
        });
        assert_eq!(
            s,
            concat!(
                r#"{"c":"WSE","id":"0190b1c2-d3e4-7f00-8a1b-2c3d4e5f6a7b","p":{"details":{"connection_id":"0190b1c2-0000-7000-8000-000000000001","#,
                r#""features":{"batching":true,"circuit_breaker":true,"compression":true,"encryption":false,"priority_queue":true,"recovery":true,"rust_jwt":true,"rust_transport":true},"#,
                r#""server_time":"2026-11-27T05:31:54.123Z","user_id":"al\"ice\\\n","version":1},"message":"Connection established (Rust transport)"},"#,
                r#""seq":1,"t":"server_ready","ts":"2026-11-27T05:31:54.123Z","v":1}"#
            )
        );
    }

    fn hello(key: Option<&str>) -> ServerHello<'_> {
        ServerHello {
            conn_id: "conn-1",
            encryption_public_key: key,
            encryption: key.is_some(),
            key_rotation: false,
            cluster: false,
            recovery: true,
            max_message_size: 1_048_576,
            rate_limit_capacity: 100_000,
            rate_limit_refill: 10_000,
            ping_interval_ms: 25_000,
            client_protocol_version: 1,
            server_version: SERVER_VERSION,
            wall: WALL,
        }
    }

    #[test]
    fn server_hello_without_key_is_byte_exact() {
        assert_eq!(
            server_hello(&hello(None)),
            concat!(
                r#"{"c":"WSE","p":{"connection_id":"conn-1","features":{"batching":true,"cluster":false,"compression":true,"encryption":false,"msgpack":true,"priority_queue":true,"recovery":true},"#,
                r#""limits":{"max_message_size":1048576,"rate_limit_capacity":100000,"rate_limit_refill":10000},"ping_interval":25000,"protocol_version":1,"#,
                r#""server_time":"2026-11-27T05:31:54.123Z","server_version":"2.4.1"},"t":"server_hello","v":1}"#
            )
        );
    }

    #[test]
    fn server_hello_with_key_is_byte_exact_and_caps_the_version_at_two() {
        let mut h = hello(Some("BASE64KEY=="));
        h.client_protocol_version = 7;
        h.cluster = true;
        assert_eq!(
            server_hello(&h),
            concat!(
                r#"{"c":"WSE","p":{"connection_id":"conn-1","encryption_public_key":"BASE64KEY==","features":{"batching":true,"cluster":true,"compression":true,"encryption":true,"msgpack":true,"priority_queue":true,"recovery":true},"#,
                r#""limits":{"max_message_size":1048576,"rate_limit_capacity":100000,"rate_limit_refill":10000},"ping_interval":25000,"protocol_version":2,"#,
                r#""server_time":"2026-11-27T05:31:54.123Z","server_version":"2.4.1"},"t":"server_hello","v":1}"#
            )
        );
    }

    #[test]
    fn server_ping_is_byte_exact_without_version() {
        let s = server_ping(WALL);
        assert_eq!(
            s,
            r#"{"c":"WSE","t":"ping","p":{"server_time":"2026-11-27T05:31:54.123Z"}}"#
        );
        assert!(
            s.chars()
                .take(25)
                .collect::<String>()
                .contains(r#""t":"ping""#)
        );
    }

    #[test]
    fn error_frames_are_byte_exact_and_escape_the_message() {
        let cases = [
            (
                ErrorCode::AuthRequired,
                AUTH_REQUIRED_MESSAGE,
                r#"{"c":"WSE","p":{"code":"AUTH_REQUIRED","message":"No JWT cookie or Authorization header","timestamp":"2026-11-27T05:31:54.123Z"},"t":"error","v":1}"#,
            ),
            (
                ErrorCode::AuthFailed,
                "bad \"token\" \\ here\n\t\u{1}",
                r#"{"c":"WSE","p":{"code":"AUTH_FAILED","message":"bad \"token\" \\ here\n\t\u0001","timestamp":"2026-11-27T05:31:54.123Z"},"t":"error","v":1}"#,
            ),
            (
                ErrorCode::OriginForbidden,
                "Origin not allowed",
                r#"{"c":"WSE","p":{"code":"ORIGIN_FORBIDDEN","message":"Origin not allowed","timestamp":"2026-11-27T05:31:54.123Z"},"t":"error","v":1}"#,
            ),
        ];
        for (code, message, want) in cases {
            let s = error_frame(code, message, WALL);
            assert_eq!(s, want);
            let v: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["p"]["message"], message, "message survives a parse");
        }
    }

    #[test]
    fn error_codes_have_their_wire_names() {
        let cases = [
            (ErrorCode::AuthRequired, "AUTH_REQUIRED"),
            (ErrorCode::AuthFailed, "AUTH_FAILED"),
            (ErrorCode::OriginForbidden, "ORIGIN_FORBIDDEN"),
            (ErrorCode::RateLimited, "RATE_LIMITED"),
            (ErrorCode::KeyExchangeFailed, "KEY_EXCHANGE_FAILED"),
            (ErrorCode::MessageTooLarge, "MESSAGE_TOO_LARGE"),
            (ErrorCode::ProtocolError, "PROTOCOL_ERROR"),
            (ErrorCode::InvalidMessage, "INVALID_MESSAGE"),
            (ErrorCode::ServerError, "SERVER_ERROR"),
        ];
        for (code, name) in cases {
            assert_eq!(code.as_str(), name);
        }
    }

    #[test]
    fn rate_limited_error_is_byte_exact() {
        assert_eq!(
            rate_limited_error(),
            r#"{"c":"WSE","t":"error","p":{"code":"RATE_LIMITED","message":"Rate limit exceeded","retry_after":1.0},"v":1}"#
        );
        assert!(serde_json::from_str::<Value>(rate_limited_error()).is_ok());
    }

    #[test]
    fn rate_limit_warning_is_byte_exact() {
        assert_eq!(
            rate_limit_warning(80_001, 100_000, 19_999),
            r#"{"c":"WSE","t":"rate_limit_warning","p":{"current_rate":80001,"limit":100000,"remaining":19999,"retry_after":1.0},"v":1}"#
        );
    }

    #[test]
    fn key_exchange_failed_is_byte_exact_and_fully_escaped() {
        assert_eq!(
            key_exchange_failed("invalid point"),
            r#"{"c":"WSE","t":"error","p":{"code":"KEY_EXCHANGE_FAILED","message":"ECDH key exchange failed: invalid point","recoverable":true}}"#
        );
        let nasty = "a\"b\\c\nd\u{0}";
        let s = key_exchange_failed(nasty);
        assert_eq!(
            s,
            r#"{"c":"WSE","t":"error","p":{"code":"KEY_EXCHANGE_FAILED","message":"ECDH key exchange failed: a\"b\\c\nd\u0000","recoverable":true}}"#
        );
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v["p"]["message"],
            format!("ECDH key exchange failed: {nasty}")
        );
    }

    #[test]
    fn presence_events_are_byte_exact() {
        let data = json!({"status": "online", "name": "A\"l"});
        let cases = [
            (
                PresenceKind::Join,
                r#"{"c":"WSE","p":{"data":{"name":"A\"l","status":"online"},"user_id":"u\"1"},"t":"presence_join"}"#,
            ),
            (
                PresenceKind::Leave,
                r#"{"c":"WSE","p":{"data":{"name":"A\"l","status":"online"},"user_id":"u\"1"},"t":"presence_leave"}"#,
            ),
            (
                PresenceKind::Update,
                r#"{"c":"WSE","p":{"data":{"name":"A\"l","status":"online"},"user_id":"u\"1"},"t":"presence_update"}"#,
            ),
        ];
        for (kind, want) in cases {
            assert_eq!(presence_event(kind, "u\"1", &data), want);
        }
    }
}
