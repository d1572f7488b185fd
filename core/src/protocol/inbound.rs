//! Classification of inbound data frames (UPSTREAM §2.4, CONTRACT D12).
//!
//! Owns the decision "what is this client frame": a `client_hello`, an application `ping`, a
//! `pong` to drop, an application message, an encrypted record, or raw text/bytes to deliver
//! as they are. Pure functions of the frame bytes; decryption and the answers (`server_hello`,
//! `PONG`) belong to the connection machine.
//!
//! Invariants: no input panics; decompression is capped by the caller's limit; msgpack nesting
//! is checked iteratively before decoding (see [`super::msgpack`]).

use serde_json::{Map, Value};

use super::category::strip_legacy_prefix;
use super::envelope::apply_aliases;
use super::msgpack::{MAX_INBOUND_DEPTH, msgpack_to_json};
use super::zlib::{DecompressError, zlib_decompress_capped};

/// What the server reads from a `client_hello` (UPSTREAM §2.5.1; everything else is ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// `p.protocol_version`; 1 when absent or not an integer.
    pub protocol_version: i64,
    /// `p.features.encryption` is `true`.
    pub wants_encryption: bool,
    /// `p.encryption_public_key`, when a string.
    pub encryption_public_key: Option<String>,
    /// `p.features.key_rotation` is `true` (our extension, CONTRACT §3).
    pub key_rotation: bool,
}

impl ClientHello {
    /// Reads the hello fields from a parsed `client_hello` object (lenient: wrong types fall back
    /// to the defaults, as the original does).
    pub fn from_message(msg: &Map<String, Value>) -> ClientHello {
        let p = msg.get("p");
        let field = |k: &str| p.and_then(|p| p.get(k));
        let feature = |k: &str| {
            field("features")
                .and_then(|f| f.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        ClientHello {
            protocol_version: field("protocol_version")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            wants_encryption: feature("encryption"),
            encryption_public_key: field("encryption_public_key")
                .and_then(Value::as_str)
                .map(str::to_owned),
            key_rotation: feature("key_rotation"),
        }
    }
}

/// What an inbound text frame is.
#[derive(Clone, Debug, PartialEq)]
pub enum TextInbound {
    /// `t` is exactly `client_hello`: answer with `server_hello`, do not forward.
    ClientHello(ClientHello),
    /// `t` is exactly `ping`: answer with `PONG`, do not forward.
    Ping {
        /// `p.timestamp` when it is an integer, else 0.
        client_timestamp: i64,
    },
    /// `t` is `pong` or `PONG`: drop (it only counted as activity).
    Pong,
    /// An application message (an object, aliases applied), to forward as a `msg` event.
    Msg(Value),
    /// Not a JSON object: deliver the ORIGINAL text as a `raw` event.
    Raw,
}

/// Classifies an inbound text frame (UPSTREAM §2.4 text steps 2–5).
///
/// The legacy prefix is stripped; the rest must start with `{` exactly (leading whitespace or an
/// array → [`TextInbound::Raw`]) and parse as JSON (else `Raw`). The fast path looks at `t`
/// only, before the aliases, exactly and case-sensitively.
pub fn classify_text(text: &str) -> TextInbound {
    let body = strip_legacy_prefix(text);
    if !body.starts_with('{') {
        return TextInbound::Raw;
    }
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(body) else {
        return TextInbound::Raw;
    };
    match map.get("t").and_then(Value::as_str) {
        Some("client_hello") => TextInbound::ClientHello(ClientHello::from_message(&map)),
        Some("ping") => TextInbound::Ping {
            client_timestamp: map
                .get("p")
                .and_then(|p| p.get("timestamp"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
        },
        Some("pong" | "PONG") => TextInbound::Pong,
        _ => {
            apply_aliases(&mut map);
            TextInbound::Msg(Value::Object(map))
        }
    }
}

/// What an inbound binary frame is.
#[derive(Clone, Debug, PartialEq)]
pub enum BinaryInbound<'a> {
    /// `E:` record: the bytes after the prefix, for the connection's cipher.
    Encrypted(&'a [u8]),
    /// `C:` frame decompressed to valid UTF-8: run [`classify_text`] on it.
    Text(String),
    /// A decoded msgpack value (`M:` frame, or an unprefixed frame on a msgpack connection).
    Msg(Value),
    /// Nothing recognised: deliver the ORIGINAL bytes as a `bin` event.
    Bin,
}

/// Why an inbound binary frame is refused outright (the connection machine decides the close).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// A `C:` frame decompresses to more than the allowed size.
    #[error("decompressed frame exceeds {limit} bytes")]
    DecompressedTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Classifies an inbound binary frame (UPSTREAM §2.4 binary steps, as fixed by CONTRACT D12).
///
/// In order: `E:` → [`BinaryInbound::Encrypted`]; `C:` → zlib, capped at `max_decompressed`
/// (over the cap → [`InboundError::DecompressedTooLarge`]; corrupt stream or non-UTF-8 result →
/// `Bin`); `M:` → msgpack on any connection; unprefixed → raw msgpack on msgpack connections,
/// `Bin` on JSON connections. msgpack that fails to decode (too deep, trailing bytes, ...) → `Bin`.
pub fn classify_binary(
    data: &[u8],
    msgpack_conn: bool,
    max_decompressed: usize,
) -> Result<BinaryInbound<'_>, InboundError> {
    if let Some(record) = data.strip_prefix(b"E:") {
        return Ok(BinaryInbound::Encrypted(record));
    }
    if let Some(compressed) = data.strip_prefix(b"C:") {
        return match zlib_decompress_capped(compressed, max_decompressed) {
            Ok(plain) => {
                Ok(String::from_utf8(plain).map_or(BinaryInbound::Bin, BinaryInbound::Text))
            }
            Err(DecompressError::TooLarge { limit }) => {
                Err(InboundError::DecompressedTooLarge { limit })
            }
            Err(DecompressError::Corrupt) => Ok(BinaryInbound::Bin),
        };
    }
    let msgpack = match data.strip_prefix(b"M:") {
        Some(rest) => rest,
        None if msgpack_conn => data,
        None => return Ok(BinaryInbound::Bin),
    };
    Ok(msgpack_to_json(msgpack, MAX_INBOUND_DEPTH).map_or(BinaryInbound::Bin, BinaryInbound::Msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::msgpack::json_to_msgpack;
    use crate::protocol::zlib::zlib_compress;
    use proptest::prelude::*;
    use serde_json::json;

    fn msg(v: Value) -> TextInbound {
        TextInbound::Msg(v)
    }

    #[test]
    fn classify_text_table() {
        let hello = |v, enc, key: Option<&str>, rot| {
            TextInbound::ClientHello(ClientHello {
                protocol_version: v,
                wants_encryption: enc,
                encryption_public_key: key.map(str::to_owned),
                key_rotation: rot,
            })
        };
        let cases: Vec<(&str, &str, TextInbound)> = vec![
            (
                "plain object",
                r#"{"t":"chat","p":{"a":1}}"#,
                msg(json!({"t":"chat","p":{"a":1}})),
            ),
            ("WSE prefix", r#"WSE{"t":"chat"}"#, msg(json!({"t":"chat"}))),
            ("S prefix", r#"S{"t":"chat"}"#, msg(json!({"t":"chat"}))),
            ("U prefix", r#"U{"t":"chat"}"#, msg(json!({"t":"chat"}))),
            (
                "aliases",
                r#"{"type":"chat","payload":[1]}"#,
                msg(json!({"t":"chat","p":[1]})),
            ),
            (
                "alias kept when t present",
                r#"{"t":"a","type":"b"}"#,
                msg(json!({"t":"a","type":"b"})),
            ),
            ("no type at all", r#"{"x":1}"#, msg(json!({"x":1}))),
            ("leading whitespace", r#" {"t":"chat"}"#, TextInbound::Raw),
            ("leading newline", "\n{}", TextInbound::Raw),
            ("array", r#"[{"t":"chat"}]"#, TextInbound::Raw),
            ("prefixed array", r#"WSE[1]"#, TextInbound::Raw),
            ("plain text", "hello", TextInbound::Raw),
            ("empty", "", TextInbound::Raw),
            ("broken json", r#"{"t":"chat""#, TextInbound::Raw),
            ("trailing garbage", r#"{"t":"chat"} x"#, TextInbound::Raw),
            (
                "ping",
                r#"{"c":"WSE","t":"ping","p":{"timestamp":1700000000123},"v":1}"#,
                TextInbound::Ping {
                    client_timestamp: 1_700_000_000_123,
                },
            ),
            (
                "prefixed ping",
                r#"WSE{"t":"ping","p":{"timestamp":5}}"#,
                TextInbound::Ping {
                    client_timestamp: 5,
                },
            ),
            (
                "ping float timestamp",
                r#"{"t":"ping","p":{"timestamp":1.5}}"#,
                TextInbound::Ping {
                    client_timestamp: 0,
                },
            ),
            (
                "ping string timestamp",
                r#"{"t":"ping","p":{"timestamp":"5"}}"#,
                TextInbound::Ping {
                    client_timestamp: 0,
                },
            ),
            (
                "ping huge timestamp",
                r#"{"t":"ping","p":{"timestamp":18446744073709551615}}"#,
                TextInbound::Ping {
                    client_timestamp: 0,
                },
            ),
            (
                "ping without payload",
                r#"{"t":"ping"}"#,
                TextInbound::Ping {
                    client_timestamp: 0,
                },
            ),
            (
                "PING is not ping",
                r#"{"t":"PING"}"#,
                msg(json!({"t":"PING"})),
            ),
            (
                "ping via alias is not the fast path",
                r#"{"type":"ping"}"#,
                msg(json!({"t":"ping"})),
            ),
            ("pong", r#"{"t":"pong"}"#, TextInbound::Pong),
            (
                "PONG",
                r#"{"c":"WSE","t":"PONG","p":{"server_timestamp":"x","client_timestamp":1},"v":1}"#,
                TextInbound::Pong,
            ),
            (
                "Pong is a message",
                r#"{"t":"Pong"}"#,
                msg(json!({"t":"Pong"})),
            ),
            (
                "hello defaults",
                r#"{"t":"client_hello"}"#,
                hello(1, false, None, false),
            ),
            (
                "hello full",
                r#"{"t":"client_hello","p":{"protocol_version":2,"features":{"encryption":true,"key_rotation":true},"encryption_public_key":"QkFTRTY0"}}"#,
                hello(2, true, Some("QkFTRTY0"), true),
            ),
            (
                "hello non-integer version",
                r#"{"t":"client_hello","p":{"protocol_version":"2","features":{"encryption":"yes"}}}"#,
                hello(1, false, None, false),
            ),
            (
                "hello float version",
                r#"{"t":"client_hello","p":{"protocol_version":2.0}}"#,
                hello(1, false, None, false),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(classify_text(input), want, "{name}: {input}");
        }
    }

    #[test]
    fn deeply_nested_text_is_raw_not_a_stack_overflow() {
        let deep = format!(
            "{{\"t\":\"x\",\"p\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(classify_text(&deep), TextInbound::Raw);
    }

    #[test]
    fn classify_binary_table() {
        let doc = json!({"t": "chat", "p": {"n": 1}});
        let mp = json_to_msgpack(&doc);
        let prefixed = |p: &[u8], body: &[u8]| [p, body].concat();
        let compressed = prefixed(b"C:", &zlib_compress(br#"{"t":"chat"}"#, 1));
        let compressed_binary = prefixed(b"C:", &zlib_compress(&[0xff, 0xfe], 1));
        let mut too_deep = vec![0x91; 65];
        too_deep.push(0x01);
        let mut deep_ok = vec![0x91; 64];
        deep_ok.push(0x01);
        let mut deep_json = json!(1);
        for _ in 0..64 {
            deep_json = json!([deep_json]);
        }
        let cases: Vec<(&str, Vec<u8>, bool, BinaryInbound<'_>)> = vec![
            (
                "E: on json conn",
                b"E:\x01\x02".to_vec(),
                false,
                BinaryInbound::Encrypted(&[1, 2]),
            ),
            (
                "E: on msgpack conn",
                b"E:".to_vec(),
                true,
                BinaryInbound::Encrypted(&[]),
            ),
            (
                "C: text",
                compressed.clone(),
                false,
                BinaryInbound::Text(r#"{"t":"chat"}"#.into()),
            ),
            (
                "C: on msgpack conn",
                compressed,
                true,
                BinaryInbound::Text(r#"{"t":"chat"}"#.into()),
            ),
            (
                "C: corrupt",
                b"C:\x78\x01garbage".to_vec(),
                false,
                BinaryInbound::Bin,
            ),
            ("C: non-utf8", compressed_binary, false, BinaryInbound::Bin),
            (
                "M: on json conn is msgpack, not 77",
                prefixed(b"M:", &mp),
                false,
                BinaryInbound::Msg(doc.clone()),
            ),
            (
                "M: on msgpack conn",
                prefixed(b"M:", &mp),
                true,
                BinaryInbound::Msg(doc.clone()),
            ),
            (
                "raw msgpack on msgpack conn",
                mp.clone(),
                true,
                BinaryInbound::Msg(doc.clone()),
            ),
            ("raw msgpack on json conn", mp, false, BinaryInbound::Bin),
            ("M: garbage", b"M:\xc1".to_vec(), false, BinaryInbound::Bin),
            ("trailing bytes", vec![0x01, 0x02], true, BinaryInbound::Bin),
            ("65 deep", too_deep, true, BinaryInbound::Bin),
            ("64 deep", deep_ok, true, BinaryInbound::Msg(deep_json)),
            (
                "plain json bytes on json conn",
                br#"{"t":"x"}"#.to_vec(),
                false,
                BinaryInbound::Bin,
            ),
            ("empty on json conn", vec![], false, BinaryInbound::Bin),
            ("empty on msgpack conn", vec![], true, BinaryInbound::Bin),
        ];
        for (name, input, msgpack_conn, want) in &cases {
            assert_eq!(
                classify_binary(input, *msgpack_conn, 1 << 20).as_ref(),
                Ok(want),
                "{name}"
            );
        }
    }

    #[test]
    fn compressed_frame_over_the_limit_is_an_error() {
        let frame = [b"C:".as_slice(), &zlib_compress(&vec![b' '; 2048], 1)].concat();
        assert_eq!(
            classify_binary(&frame, false, 2047),
            Err(InboundError::DecompressedTooLarge { limit: 2047 })
        );
        assert!(matches!(
            classify_binary(&frame, false, 2048),
            Ok(BinaryInbound::Text(_))
        ));
    }

    proptest! {
        #[test]
        fn classify_text_never_panics(s in any::<String>()) {
            let _ = classify_text(&s);
        }

        #[test]
        fn classify_text_of_json_like_input_never_panics(s in r#"(WSE|S|U)?\{("[a-z]{0,3}":("[a-z]{0,5}"|[0-9.e-]{1,6}|\{|\[|null),?){0,4}\}?"#) {
            let _ = classify_text(&s);
        }

        #[test]
        fn classify_binary_never_panics(
            prefix in prop::sample::select(vec![&b""[..], b"E:", b"C:", b"M:", b"C:\x78\x01"]),
            body in prop::collection::vec(any::<u8>(), 0..256),
            msgpack_conn in any::<bool>(),
        ) {
            let data = [prefix, &body].concat();
            let _ = classify_binary(&data, msgpack_conn, 4096);
        }
    }
}
