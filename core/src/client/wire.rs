//! What the client writes (UPSTREAM §2.5.1, §2.5.3, §2.5.7, §11.1), as exact text.
//!
//! Owns the client's category rule, its envelope (`{"c","id","p","seq","t","ts","v":1}` plus
//! `pri` where the Python client sets one; keys alphabetical, as serde_json writes them), the
//! `client_hello` and `subscription_update` payloads, and the hand-ordered `ping` and `PONG`
//! texts. Pure functions: ids, sequence numbers and wall time are parameters.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::cursor::Position;
use crate::protocol::Category;
use crate::time::WallClock;

/// Event types the Python client sends with category `WSE` (UPSTREAM §11.1).
const SYSTEM_TYPES: [&str; 13] = [
    "client_hello",
    "subscription_update",
    "PING",
    "PONG",
    "health_check_response",
    "sync_response",
    "metrics_response",
    "debug_request",
    "config_request",
    "config_update_request",
    "encryption_request",
    "key_rotation_request",
    "batch",
];
/// Event types the Python client sends with category `S`.
const SNAPSHOT_TYPES: [&str; 3] = ["sync_request", "request_snapshot", "snapshot_request"];
/// `pri` of `client_hello` (CRITICAL), as the Python client sends it.
pub(super) const HELLO_PRIORITY: i64 = 10;
/// `protocol_version` announced in `client_hello`.
pub(super) const PROTOCOL_VERSION: i64 = 1;

/// The category the client puts on an outbound event type (UPSTREAM §11.1).
pub(super) fn category_of(event_type: &str) -> Category {
    if SYSTEM_TYPES.contains(&event_type) {
        Category::System
    } else if SNAPSHOT_TYPES.contains(&event_type) {
        Category::Snapshot
    } else {
        Category::Update
    }
}

/// The parts of one outbound envelope.
#[derive(Debug)]
pub(super) struct Outgoing<'a> {
    pub(super) event_type: &'a str,
    pub(super) payload: Value,
    pub(super) id: uuid::Uuid,
    pub(super) seq: i64,
    pub(super) wall: WallClock,
    pub(super) priority: Option<i64>,
}

/// The envelope text: `c` by [`category_of`], `id` (UUIDv4), `seq`, `ts` (RFC 3339 ms `Z`),
/// `v: 1`, and `pri` when given.
pub(super) fn envelope(out: Outgoing<'_>) -> String {
    let mut map = Map::new();
    map.insert(
        "c".into(),
        Value::from(category_of(out.event_type).as_str()),
    );
    map.insert("t".into(), Value::from(out.event_type));
    map.insert("p".into(), out.payload);
    map.insert("id".into(), Value::from(out.id.to_string()));
    map.insert("seq".into(), Value::from(out.seq));
    map.insert(
        "ts".into(),
        Value::from(out.wall.rfc3339_millis().to_string()),
    );
    map.insert("v".into(), Value::from(1));
    if let Some(pri) = out.priority {
        map.insert("pri".into(), Value::from(pri));
    }
    Value::Object(map).to_string()
}

/// The `client_hello` payload: the Python client's shape (UPSTREAM §2.5.1) with
/// `encryption: false` and no key. The feature flags are the Python client's verbatim: no
/// server reads any of them except `encryption`.
pub(super) fn client_hello_payload(
    client_version: &str,
    connection_id: Option<&str>,
    encryption_public_key: Option<&str>,
) -> Value {
    let mut hello = json!({
        "client_version": client_version,
        "protocol_version": PROTOCOL_VERSION,
        "features": {
            "compression": true,
            "encryption": false,
            "batching": true,
            "priority_queue": true,
            "circuit_breaker": true,
            "offline_queue": true,
            "message_signing": false,
            "rate_limiting": true,
            "health_check": true,
            "metrics": true,
        },
        "connection_id": connection_id,
    });
    if let Some(key) = encryption_public_key {
        hello["features"]["encryption"] = Value::Bool(true);
        hello["features"]["key_rotation"] = Value::Bool(true);
        hello["encryption_public_key"] = Value::from(key);
    }
    hello
}

/// A `subscription_update` subscribe payload for `topics`. When any of them has a position in
/// `recovery`, the payload carries `"recover": true` and a `recovery` object with those
/// positions (`{"epoch": "<8 hex>", "offset": n}`); topics without one ride along in `topics`.
pub(super) fn subscribe_payload<'a>(
    topics: impl IntoIterator<Item = &'a str>,
    recovery: &BTreeMap<&'a str, Position>,
) -> Value {
    let topics: Vec<&str> = topics.into_iter().collect();
    let mut p = Map::new();
    p.insert("action".into(), Value::from("subscribe"));
    p.insert("topics".into(), Value::from(topics));
    if !recovery.is_empty() {
        let positions: Map<String, Value> = recovery
            .iter()
            .map(|(topic, pos)| {
                (
                    (*topic).to_owned(),
                    json!({"epoch": pos.epoch_hex(), "offset": pos.offset}),
                )
            })
            .collect();
        p.insert("recover".into(), Value::Bool(true));
        p.insert("recovery".into(), Value::Object(positions));
    }
    Value::Object(p)
}

/// A `subscription_update` unsubscribe payload.
pub(super) fn unsubscribe_payload<'a>(topics: impl IntoIterator<Item = &'a str>) -> Value {
    let topics: Vec<&str> = topics.into_iter().collect();
    json!({"action": "unsubscribe", "topics": topics})
}

/// The client heartbeat, exact bytes: `{"c":"WSE","t":"ping","p":{"timestamp":<ms>},"v":1}`.
pub(super) fn ping(wall: WallClock) -> String {
    format!(
        r#"{{"c":"WSE","t":"ping","p":{{"timestamp":{}}},"v":1}}"#,
        wall.unix_millis()
    )
}

/// The reply to a server ping, exact bytes:
/// `{"c":"WSE","t":"PONG","p":{"server_timestamp":<as received>,"client_timestamp":<ms>},"v":1}`.
pub(super) fn pong(server_timestamp: &Value, wall: WallClock) -> String {
    format!(
        r#"{{"c":"WSE","t":"PONG","p":{{"server_timestamp":{server_timestamp},"client_timestamp":{}}},"v":1}}"#,
        wall.unix_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_categories_follow_the_python_client() {
        let cases = [
            ("client_hello", Category::System),
            ("subscription_update", Category::System),
            ("PONG", Category::System),
            ("batch", Category::System),
            ("ping", Category::Update),
            ("sync_request", Category::Snapshot),
            ("snapshot_request", Category::Snapshot),
            ("user_snapshot", Category::Update),
            ("chat", Category::Update),
        ];
        for (t, want) in cases {
            assert_eq!(category_of(t), want, "{t}");
        }
    }

    #[test]
    fn ping_and_pong_have_their_exact_byte_order() {
        let wall = WallClock::from_unix_millis(1_700_000_000_123);
        assert_eq!(
            ping(wall),
            r#"{"c":"WSE","t":"ping","p":{"timestamp":1700000000123},"v":1}"#
        );
        assert_eq!(
            pong(&Value::from("2026-01-01T00:00:00.000Z"), wall),
            r#"{"c":"WSE","t":"PONG","p":{"server_timestamp":"2026-01-01T00:00:00.000Z","client_timestamp":1700000000123},"v":1}"#
        );
        assert_eq!(
            pong(&Value::Null, wall),
            r#"{"c":"WSE","t":"PONG","p":{"server_timestamp":null,"client_timestamp":1700000000123},"v":1}"#
        );
    }
}
