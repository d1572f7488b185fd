//! The routes that act: publish to a topic, broadcast to everyone, disconnect connections.

use serde_json::{Map, Value, json};
use wse_core::ConnId;

use super::body::{optional_str, optional_u64, required_str, wrong_type};
use super::error::ApiError;
use crate::http::HttpResponse;
use crate::server::Server;

/// Longest topic accepted by `/api/publish`, in bytes: far above any real topic name, small
/// enough that per-topic bookkeeping (metrics labels, recovery rings) stays cheap.
pub(super) const MAX_TOPIC_BYTES: usize = 1024;
/// Longest close reason, in bytes: a Close frame payload is at most 125 bytes, 2 of them the code.
pub(super) const MAX_CLOSE_REASON_BYTES: usize = 123;
/// Close code of `/api/disconnect` when none is given.
pub(super) const DEFAULT_CLOSE_CODE: u16 = 1000;

/// `POST /api/publish {"topic", "data"}`: `broadcast` (this node and the cluster peers with
/// subscribers; recovery stamping, ACL checked at delivery).
pub(super) fn publish(
    server: &Server,
    body: &Map<String, Value>,
) -> Result<HttpResponse, ApiError> {
    let topic = required_str(body, "topic")?;
    check_topic(topic)?;
    let text = message_text(body)?;
    server.broadcast(topic, &text);
    Ok(ok())
}

/// `POST /api/broadcast {"data"}`: one frame to every connection.
pub(super) fn broadcast(
    server: &Server,
    body: &Map<String, Value>,
) -> Result<HttpResponse, ApiError> {
    let text = message_text(body)?;
    server.broadcast_all(&text);
    Ok(ok())
}

/// `POST /api/disconnect {"conn_id" | "user_id", "code"?, "reason"?}`: closes one connection
/// (404 if it is not registered) or every connection of a user (possibly none).
pub(super) fn disconnect(
    server: &Server,
    body: &Map<String, Value>,
) -> Result<HttpResponse, ApiError> {
    let code = match optional_u64(body, "code")? {
        None => DEFAULT_CLOSE_CODE,
        Some(code) => u16::try_from(code)
            .ok()
            .filter(|&c| is_sendable_close_code(c))
            .ok_or_else(|| {
                ApiError::invalid(
                    "code",
                    "cannot be sent in a Close frame (use 1000-1003, 1007-1014 or 3000-4999)",
                )
            })?,
    };
    let reason = optional_str(body, "reason")?.unwrap_or("");
    if reason.len() > MAX_CLOSE_REASON_BYTES {
        return Err(ApiError::invalid(
            "reason",
            &format!("longer than {MAX_CLOSE_REASON_BYTES} bytes (the Close frame limit)"),
        ));
    }
    let targets = match (
        optional_str(body, "conn_id")?,
        optional_str(body, "user_id")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "conn_id",
                "give conn_id or user_id, not both",
            ));
        }
        (None, None) => return Err(ApiError::missing("conn_id (or user_id)")),
        (Some(raw), None) => {
            let id: ConnId = raw
                .parse()
                .map_err(|_| ApiError::invalid("conn_id", "not a connection id (a UUID)"))?;
            // `topic_acl` is `None` exactly when the id is not registered.
            if server.topic_acl(id).is_none() {
                return Err(ApiError::unknown_connection(raw));
            }
            vec![id]
        }
        (None, Some(user)) => server.connections_of_user(user),
    };
    for &id in &targets {
        server.disconnect(id, code, reason);
    }
    tracing::info!(count = targets.len(), code, "HTTP API disconnect");
    Ok(HttpResponse::json(
        200,
        &json!({"disconnected": targets.len()}),
    ))
}

/// Close codes an endpoint may put on the wire (RFC 6455 §7.4; 1004-1006 and 1015 are reserved).
fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A topic to publish to: non-empty, at most [`MAX_TOPIC_BYTES`], no control characters (the
/// registry would never match one).
fn check_topic(topic: &str) -> Result<(), ApiError> {
    if topic.is_empty() {
        return Err(ApiError::invalid("topic", "must not be empty"));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(ApiError::invalid(
            "topic",
            &format!("longer than {MAX_TOPIC_BYTES} bytes"),
        ));
    }
    if topic.chars().any(char::is_control) {
        return Err(ApiError::invalid("topic", "contains a control character"));
    }
    Ok(())
}

/// `data` as the text frame to send: an object as its JSON text, a string as is.
fn message_text(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("data") {
        None | Some(Value::Null) => Err(ApiError::missing("data")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(object @ Value::Object(_)) => Ok(object.to_string()),
        Some(other) => Err(wrong_type("data", "an object or a string", other)),
    }
}

fn ok() -> HttpResponse {
    HttpResponse::json(200, &json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_close_codes_are_not_sendable() {
        for code in [1000, 1003, 1007, 1014, 3000, 4999] {
            assert!(is_sendable_close_code(code), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(!is_sendable_close_code(code), "{code}");
        }
    }

    #[test]
    fn topics_must_be_non_empty_bounded_and_printable() {
        assert!(check_topic("chat.room-1").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("a\nb").is_err());
        assert!(check_topic(&"x".repeat(MAX_TOPIC_BYTES + 1)).is_err());
    }

    #[test]
    fn data_is_an_object_as_json_or_a_string_verbatim() {
        let body = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            message_text(&body(json!({"data": {"t": "x"}}))).unwrap(),
            r#"{"t":"x"}"#
        );
        assert_eq!(message_text(&body(json!({"data": "raw"}))).unwrap(), "raw");
        assert_eq!(
            message_text(&body(json!({"data": 5})))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(message_text(&body(json!({}))).unwrap_err().status(), 400);
    }
}
