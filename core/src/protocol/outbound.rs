//! Outbound application events: the `send_event` envelope and its binary encoding
//! (UPSTREAM §3.1–3.2, §7.5).
//!
//! Owns [`build_event_envelope`] (category from `t`, `id`/`seq`/`ts` filled in, `v` forced to 1)
//! and [`encode_event`] (plain JSON, `C:`+zlib above the threshold, or `M:`+msgpack). The
//! result is the payload of one binary frame; `E:` encryption wraps it afterwards, outside this
//! module.
//!
//! Invariant: object keys come out alphabetically (serde_json without `preserve_order`, the
//! original's order), in JSON and msgpack alike.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::category::Category;
use super::msgpack::json_map_to_msgpack;
use super::zlib::zlib_compress;
use crate::time::WallClock;

/// The original's default `compression_threshold`, bytes (UPSTREAM §3.1).
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 1024;
/// zlib level of `C:` frames: "fast", which gives the `78 01` header (UPSTREAM §3.1).
pub const COMPRESSION_LEVEL: u32 = 1;

/// Builds the `send_event` envelope (UPSTREAM §7.5): `c` from the string `t` (absent or
/// non-string `t` counts as `""`, so `U`); `t` kept as given, or `""` when absent; every other
/// key copied except `v` and `c`; `id` (from `fresh_id`, called only then), `seq` and `ts` added
/// when absent; `v` forced to 1.
pub fn build_event_envelope(
    event: &Map<String, Value>,
    fresh_id: impl FnOnce() -> String,
    seq: u64,
    wall: WallClock,
) -> Map<String, Value> {
    let t = event.get("t").and_then(Value::as_str).unwrap_or("");
    let mut env = Map::new();
    env.insert("c".into(), Value::from(Category::of(t).as_str()));
    env.insert(
        "t".into(),
        event.get("t").cloned().unwrap_or_else(|| Value::from("")),
    );
    for (k, v) in event {
        if !matches!(k.as_str(), "t" | "v" | "c") {
            env.insert(k.clone(), v.clone());
        }
    }
    if !env.contains_key("id") {
        env.insert("id".into(), Value::from(fresh_id()));
    }
    if !env.contains_key("seq") {
        env.insert("seq".into(), Value::from(seq));
    }
    if !env.contains_key("ts") {
        env.insert("ts".into(), Value::from(wall.rfc3339_millis().to_string()));
    }
    env.insert("v".into(), Value::from(1));
    env
}

/// How a connection wants `send_event` payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventFormat {
    /// The connection asked for `format=msgpack`: `M:`+msgpack, never compressed.
    pub msgpack: bool,
    /// Compress JSON longer than this many bytes (strictly); 0 disables compression. Pass 0 for
    /// end-to-end encrypted connections: the original never compresses before encrypting.
    pub compression_threshold: usize,
}

impl Default for EventFormat {
    /// JSON with the original's default threshold.
    fn default() -> Self {
        EventFormat {
            msgpack: false,
            compression_threshold: DEFAULT_COMPRESSION_THRESHOLD,
        }
    }
}

/// Encodes an envelope as one binary frame payload (UPSTREAM §3.1): `M:`+msgpack on msgpack
/// connections; else the JSON, as `C:`+zlib(level 1) when longer than a non-zero threshold.
pub fn encode_event(envelope: &Map<String, Value>, format: EventFormat) -> Bytes {
    if format.msgpack {
        let mut out = b"M:".to_vec();
        out.extend_from_slice(&json_map_to_msgpack(envelope));
        return Bytes::from(out);
    }
    let json =
        serde_json::to_vec(envelope).expect("invariant: a JSON map with string keys serializes");
    if format.compression_threshold != 0 && json.len() > format.compression_threshold {
        let mut out = b"C:".to_vec();
        out.extend_from_slice(&zlib_compress(&json, COMPRESSION_LEVEL));
        Bytes::from(out)
    } else {
        Bytes::from(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::msgpack::msgpack_to_json;
    use crate::protocol::zlib::zlib_decompress_capped;
    use serde_json::json;

    const WALL: WallClock = WallClock::from_unix_millis(1_700_000_000_123);

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("test input is not an object: {other}"),
        }
    }

    #[test]
    fn envelope_gets_category_defaults_and_forced_version() {
        let env = build_event_envelope(
            &obj(json!({"t": "user_snapshot", "p": {"a": 1}, "v": 9, "c": "WSE", "pri": 5})),
            || "id-1".into(),
            41,
            WALL,
        );
        assert_eq!(
            Value::Object(env.clone()),
            json!({"c": "S", "t": "user_snapshot", "p": {"a": 1}, "pri": 5, "id": "id-1",
                   "seq": 41, "ts": "2023-11-14T22:13:20.123Z", "v": 1})
        );
        assert_eq!(
            serde_json::to_string(&env).unwrap(),
            r#"{"c":"S","id":"id-1","p":{"a":1},"pri":5,"seq":41,"t":"user_snapshot","ts":"2023-11-14T22:13:20.123Z","v":1}"#,
            "keys alphabetical on the wire"
        );
    }

    #[test]
    fn existing_id_seq_ts_are_kept_and_no_id_is_drawn() {
        let env = build_event_envelope(
            &obj(json!({"t": "x", "id": "mine", "seq": "s", "ts": "then"})),
            || panic!("fresh_id must not be called when id is present"),
            1,
            WALL,
        );
        assert_eq!(env["id"], "mine");
        assert_eq!(env["seq"], "s");
        assert_eq!(env["ts"], "then");
    }

    #[test]
    fn absent_or_non_string_type_is_update() {
        let cases = [
            (json!({}), json!("")),
            (json!({"t": 5}), json!(5)),
            (json!({"t": "error"}), json!("error")),
        ];
        let wants = ["U", "U", "WSE"];
        for ((event, t), want) in cases.into_iter().zip(wants) {
            let env = build_event_envelope(&obj(event), || "i".into(), 0, WALL);
            assert_eq!(env["c"], want);
            assert_eq!(env["t"], t);
        }
    }

    /// An envelope whose JSON is exactly `len` bytes.
    fn envelope_of_len(len: usize) -> Map<String, Value> {
        let base = serde_json::to_vec(&json!({"p": ""})).unwrap().len();
        obj(json!({"p": "x".repeat(len - base)}))
    }

    #[test]
    fn compression_threshold_is_strict_and_zero_disables() {
        let json = |f: EventFormat, len| encode_event(&envelope_of_len(len), f);
        let fmt = |t| EventFormat {
            msgpack: false,
            compression_threshold: t,
        };

        let at = json(fmt(1024), 1024);
        assert_eq!(at.len(), 1024);
        assert_eq!(at[0], b'{', "1024 bytes is not compressed");

        let over = json(fmt(1024), 1025);
        assert_eq!(
            &over[..4],
            b"C:\x78\x01",
            "1025 bytes is compressed at level 1"
        );
        let plain = zlib_decompress_capped(&over[2..], 1 << 20).unwrap();
        assert_eq!(plain, serde_json::to_vec(&envelope_of_len(1025)).unwrap());

        let off = json(fmt(0), 100_000);
        assert_eq!(off[0], b'{', "threshold 0 disables compression");
        assert_eq!(EventFormat::default(), fmt(1024));
    }

    #[test]
    fn msgpack_connections_get_an_uncompressed_m_frame() {
        let env = envelope_of_len(5000);
        let out = encode_event(
            &env,
            EventFormat {
                msgpack: true,
                compression_threshold: 1024,
            },
        );
        assert_eq!(&out[..2], b"M:");
        assert_eq!(msgpack_to_json(&out[2..], 64), Ok(Value::Object(env)));
    }
}
