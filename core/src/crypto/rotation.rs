//! The key-rotation messages: our protocol extension (`docs/encryption.md`), negotiated only
//! with clients that announce `features.key_rotation: true` in `client_hello`.
//!
//! Two WSE system messages, always sent as `E:` records under the key in use when they are
//! sent (never in plaintext: the ack carries the key the server will encrypt to, so only a
//! holder of the current key may send it):
//!
//! ```text
//! server → client  {"c":"WSE","t":"key_rotation",    "p":{"rotation_id":N,"public_key":"<b64>"},"v":1}
//! client → server  {"c":"WSE","t":"key_rotation_ack","p":{"rotation_id":N,"public_key":"<b64>"},"v":1}
//! ```
//!
//! `rotation_id` is a JSON integer (`1`, `2`, … per connection, below 2^53 so JavaScript reads
//! it exactly); `public_key` is standard padded base64 of a fresh 65-byte uncompressed SEC1
//! P-256 point (a compressed 33-byte point is accepted, as in `client_hello`). The new session
//! key is derived exactly as the first one (ECDH, HKDF-SHA256, no salt, info
//! `wse-encryption/aes-gcm-key`). The functions here build and parse the payloads (`p`); the
//! machines that use them are in `session`.

use serde_json::{Map, Value, json};

use super::keys::{KeyExchangeError, PublicKey, parse_peer_public_key};

/// `t` of the server's rotation request.
pub const KEY_ROTATION: &str = "key_rotation";
/// `t` of the client's answer.
pub const KEY_ROTATION_ACK: &str = "key_rotation_ack";
/// The feature flag a client sets in `client_hello.p.features` (and the server echoes in
/// `server_hello.p.features`) to take part in rotation.
pub const FEATURE_KEY_ROTATION: &str = "key_rotation";
/// Payload field: the rotation id.
pub const FIELD_ROTATION_ID: &str = "rotation_id";
/// Payload field: the sender's new public key.
pub const FIELD_PUBLIC_KEY: &str = "public_key";

/// Why a rotation could not start, or a rotation message was refused. A refused message
/// changes nothing: the key in use stays in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// The client did not announce `features.key_rotation`.
    #[error("key rotation was not negotiated with this client")]
    NotNegotiated,
    /// The rotation interval is 0: rotation is off.
    #[error("key rotation is disabled (interval 0)")]
    Disabled,
    /// A rotation is already waiting for its ack, or the previous key's grace window is still
    /// open (a new switch would drop a key that frames in flight may still use).
    #[error("a key rotation is already in progress")]
    Busy,
    /// An ack arrived while no rotation was waiting for one.
    #[error("no key rotation is pending")]
    NotPending,
    /// An ack for another rotation than the pending one.
    #[error("key_rotation_ack for rotation {got}, pending is {expected}")]
    WrongRotationId {
        /// The pending rotation.
        expected: u64,
        /// The ack's.
        got: u64,
    },
    /// A `key_rotation` whose id is not above the last one this client handled.
    #[error("key_rotation {got} is not newer than the last one ({last})")]
    StaleRotationId {
        /// The last id handled.
        last: u64,
        /// The message's.
        got: u64,
    },
    /// The payload is not an object with an integer `rotation_id` and a string `public_key`.
    #[error("malformed rotation payload: {0}")]
    Malformed(&'static str),
    /// The public key is not a valid P-256 point.
    #[error("bad public key in rotation payload: {0}")]
    BadPublicKey(KeyExchangeError),
}

/// The `p` of a `key_rotation` message.
pub fn key_rotation_payload(rotation_id: u64, public_key_b64: &str) -> Value {
    payload(rotation_id, public_key_b64)
}

/// The `p` of a `key_rotation_ack` message.
pub fn key_rotation_ack_payload(rotation_id: u64, public_key_b64: &str) -> Value {
    payload(rotation_id, public_key_b64)
}

/// The minimal WSE system message around a payload: `{"c":"WSE","t":t,"p":p,"v":1}`. Senders
/// may add the usual envelope fields (`id`, `ts`); receivers read only `t` and `p`.
pub fn system_message(t: &str, p: Value) -> Value {
    let mut m = Map::new();
    m.insert("c".into(), Value::from("WSE"));
    m.insert("t".into(), Value::from(t));
    m.insert("p".into(), p);
    m.insert("v".into(), Value::from(1));
    Value::Object(m)
}

/// Reads `rotation_id` and `public_key` from either message's payload.
pub(crate) fn parse_payload(p: &Value) -> Result<(u64, PublicKey), RotationError> {
    let p = p
        .as_object()
        .ok_or(RotationError::Malformed("payload is not an object"))?;
    let id = p
        .get(FIELD_ROTATION_ID)
        .and_then(Value::as_u64)
        .ok_or(RotationError::Malformed(
            "rotation_id is not a non-negative integer",
        ))?;
    let key = p
        .get(FIELD_PUBLIC_KEY)
        .and_then(Value::as_str)
        .ok_or(RotationError::Malformed("public_key is not a string"))?;
    let key = parse_peer_public_key(key).map_err(RotationError::BadPublicKey)?;
    Ok((id, key))
}

fn payload(rotation_id: u64, public_key_b64: &str) -> Value {
    json!({ FIELD_ROTATION_ID: rotation_id, FIELD_PUBLIC_KEY: public_key_b64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::EphemeralKeyPair;
    use crate::crypto::testutil::rng;

    #[test]
    fn payloads_have_the_documented_field_names() {
        let key = EphemeralKeyPair::generate(&mut rng(1)).public_key_b64();
        let p = key_rotation_payload(7, &key);
        assert_eq!(
            serde_json::to_string(&system_message(KEY_ROTATION, p.clone())).unwrap(),
            format!(
                r#"{{"c":"WSE","p":{{"public_key":"{key}","rotation_id":7}},"t":"key_rotation","v":1}}"#
            )
        );
        assert_eq!(key_rotation_ack_payload(7, &key), p);
        let (id, parsed) = parse_payload(&p).unwrap();
        assert_eq!((id, parsed.to_b64()), (7, key));
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let key = EphemeralKeyPair::generate(&mut rng(2)).public_key_b64();
        let cases = [
            (
                json!([]),
                RotationError::Malformed("payload is not an object"),
            ),
            (
                json!({"public_key": key}),
                RotationError::Malformed("rotation_id is not a non-negative integer"),
            ),
            (
                json!({"rotation_id": -1, "public_key": key}),
                RotationError::Malformed("rotation_id is not a non-negative integer"),
            ),
            (
                json!({"rotation_id": "1", "public_key": key}),
                RotationError::Malformed("rotation_id is not a non-negative integer"),
            ),
            (
                json!({"rotation_id": 1}),
                RotationError::Malformed("public_key is not a string"),
            ),
            (
                json!({"rotation_id": 1, "public_key": "AAAA"}),
                RotationError::BadPublicKey(KeyExchangeError::BadLength { len: 3 }),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(parse_payload(&p).err(), Some(want), "{p}");
        }
    }
}
