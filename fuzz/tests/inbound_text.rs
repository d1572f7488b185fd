//! Fuzz target: classification of inbound text frames and envelope parsing
//! (`wse_core::protocol::classify_text`, `Envelope::from_value`).
//!
//! Input: arbitrary bytes, read as UTF-8 (lossily: the WebSocket layer only ever hands the
//! machine valid UTF-8). Invariants, checked against `serde_json` directly rather than by
//! re-running the engine's own logic:
//!
//! - `Raw` exactly when the text minus its legacy prefix does not start with `{` or is not one
//!   JSON object; otherwise the fast path is taken exactly for `t` = `client_hello`, `ping`,
//!   `pong`, `PONG` and every other object is a `Msg`;
//! - a `Msg` has the aliases applied (no `type` without `t`, no `payload` without `p`);
//! - a `Ping`'s timestamp is `p.timestamp` when that is an `i64`, else 0;
//! - `Envelope::from_value` on a `Msg` never panics and, when it accepts, round-trips:
//!   `from_value(e.to_value()) == Ok(e)`.

use serde_json::Value;
use wse_core::protocol::{Envelope, TextInbound, classify_text, strip_legacy_prefix};

#[test]
fn inbound_text() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        check_text(&text);
    });
}

fn check_text(text: &str) {
    let got = classify_text(text);
    let body = strip_legacy_prefix(text);
    let parsed = if body.starts_with('{') {
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    } else {
        None
    };
    let Some(original) = parsed else {
        assert_eq!(got, TextInbound::Raw, "not one JSON object: {text:?}");
        return;
    };
    let t = original.get("t").and_then(Value::as_str);
    match (&got, t) {
        (TextInbound::ClientHello(_), Some("client_hello")) => {}
        (TextInbound::Pong, Some("pong" | "PONG")) => {}
        (TextInbound::Ping { client_timestamp }, Some("ping")) => {
            let want = original
                .get("p")
                .and_then(|p| p.get("timestamp"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            assert_eq!(*client_timestamp, want, "ping timestamp of {text:?}");
        }
        (TextInbound::Msg(value), t) => {
            assert!(
                !matches!(t, Some("client_hello" | "ping" | "pong" | "PONG")),
                "fast-path type delivered as a message: {text:?}"
            );
            check_message(value, text);
        }
        (got, t) => panic!("{text:?} (t = {t:?}) classified as {got:?}"),
    }
}

fn check_message(value: &Value, text: &str) {
    let Value::Object(map) = value else {
        panic!("a Msg must be an object: {text:?}");
    };
    assert!(
        map.contains_key("t") || !map.contains_key("type"),
        "alias type→t not applied: {text:?}"
    );
    assert!(
        map.contains_key("p") || !map.contains_key("payload"),
        "alias payload→p not applied: {text:?}"
    );
    if let Ok(envelope) = Envelope::from_value(value.clone()) {
        let again = Envelope::from_value(envelope.to_value());
        assert_eq!(
            again.as_ref(),
            Ok(&envelope),
            "envelope round trip of {text:?}"
        );
    }
}
