//! msgpack ⇄ JSON for `M:` frames and msgpack connections (UPSTREAM §2.4, §3.1, §3.3).
//!
//! Owns the conversion of one inbound msgpack value into JSON and of an outbound JSON envelope
//! into msgpack.
//!
//! Inbound invariants (peer input):
//! - the nesting depth is checked by an iterative scan **before** any recursive decoding, so a
//!   deeply nested frame is refused without deep recursion, and the scan is linear in the input;
//! - the frame must hold exactly one value (trailing bytes are an error);
//! - conversion: bin and ext → lowercase hex string (ext type byte dropped), non-string map keys
//!   → their JSON text (`1` → `"1"`, `nil` → `"null"`; bin/ext keys → hex), NaN/±Inf → `null`,
//!   integers → i64 when they fit, else u64; strings must be valid UTF-8.
//!
//! Depth: scalars have depth 0, each enclosing array or map adds one; `[[1]]` has depth 2.

use serde_json::{Map, Number, Value as Json};

/// The deepest nesting the original accepts inbound (UPSTREAM §2.4).
pub const MAX_INBOUND_DEPTH: usize = 64;

/// `max_depth` arguments above this are treated as this, so the (recursive) decode and conversion
/// after the scan stay shallow whatever the caller passes.
const DEPTH_CEILING: usize = 256;

/// Why an inbound msgpack frame was not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    /// Truncated data, or the reserved marker `0xc1`.
    #[error("malformed or truncated msgpack")]
    Malformed,
    /// Nested deeper than allowed.
    #[error("msgpack nested deeper than {max_depth}")]
    TooDeep {
        /// The depth limit that was exceeded.
        max_depth: usize,
    },
    /// Bytes remain after the first complete value.
    #[error("trailing bytes after the msgpack value")]
    TrailingBytes,
    /// A string or string map key is not valid UTF-8.
    #[error("msgpack string is not valid UTF-8")]
    InvalidUtf8,
}

/// Decodes `data` as exactly one msgpack value nested at most `max_depth` deep and converts it to
/// JSON (rules in the module doc).
pub fn msgpack_to_json(data: &[u8], max_depth: usize) -> Result<Json, MsgpackError> {
    let max_depth = max_depth.min(DEPTH_CEILING);
    let end = scan_one_value(data, max_depth)?;
    if end != data.len() {
        return Err(MsgpackError::TrailingBytes);
    }
    // The scan proved the structure well formed and at most `max_depth` deep. rmpv spends about
    // two units of its own depth budget per nesting level plus three for a leaf string.
    let rmpv_budget = max_depth * 2 + 8;
    let value = rmpv::decode::read_value_with_max_depth(&mut &data[..], rmpv_budget)
        .map_err(|_| MsgpackError::Malformed)?;
    to_json(value)
}

/// Encodes a JSON value as msgpack: integers as the smallest int form, other numbers as f64,
/// objects as maps in the JSON object's key order (alphabetical in this crate).
pub fn json_to_msgpack(v: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &to_rmpv(v))
        .expect("invariant: encoding into a Vec<u8> cannot fail");
    out
}

/// Encodes a JSON object as a msgpack map, keys in the map's order (alphabetical in this crate).
pub fn json_map_to_msgpack(map: &Map<String, Json>) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &map_to_rmpv(map))
        .expect("invariant: encoding into a Vec<u8> cannot fail");
    out
}

/// What one msgpack header introduces.
enum Item {
    /// A complete scalar (its payload already skipped).
    Scalar,
    /// A container holding this many further items (map entries count twice).
    Container(u64),
}

/// Scans one msgpack value iteratively, checking depth and bounds. Returns the end offset.
fn scan_one_value(data: &[u8], max_depth: usize) -> Result<usize, MsgpackError> {
    let mut pos = 0usize;
    // Items still expected by each open container; its length is the current depth.
    let mut open: Vec<u64> = Vec::new();
    loop {
        match read_header(data, &mut pos)? {
            Item::Container(n) => {
                if open.len() + 1 > max_depth {
                    return Err(MsgpackError::TooDeep { max_depth });
                }
                if n > 0 {
                    open.push(n);
                    continue;
                }
            }
            Item::Scalar => {}
        }
        // One value completed: account for it in its parents, closing any that are now full.
        loop {
            match open.last_mut() {
                None => return Ok(pos),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

/// Reads one header at `pos` and skips any scalar payload.
fn read_header(data: &[u8], pos: &mut usize) -> Result<Item, MsgpackError> {
    let marker = take(data, pos, 1)?[0];
    let skip = |pos: &mut usize, n: usize| take(data, pos, n).map(|_| Item::Scalar);
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(Item::Scalar),
        0x80..=0x8f => Ok(Item::Container(2 * u64::from(marker & 0x0f))),
        0x90..=0x9f => Ok(Item::Container(u64::from(marker & 0x0f))),
        0xa0..=0xbf => skip(pos, usize::from(marker & 0x1f)),
        0xc1 => Err(MsgpackError::Malformed),
        0xc4 | 0xd9 => {
            let n = read_len(data, pos, 1)?;
            skip(pos, n)
        }
        0xc5 | 0xda => {
            let n = read_len(data, pos, 2)?;
            skip(pos, n)
        }
        0xc6 | 0xdb => {
            let n = read_len(data, pos, 4)?;
            skip(pos, n)
        }
        0xc7 => {
            let n = read_len(data, pos, 1)?;
            skip(pos, n.saturating_add(1))
        }
        0xc8 => {
            let n = read_len(data, pos, 2)?;
            skip(pos, n.saturating_add(1))
        }
        0xc9 => {
            let n = read_len(data, pos, 4)?;
            skip(pos, n.saturating_add(1))
        }
        0xcc | 0xd0 => skip(pos, 1),
        0xcd | 0xd1 => skip(pos, 2),
        0xca | 0xce | 0xd2 => skip(pos, 4),
        0xcb | 0xcf | 0xd3 => skip(pos, 8),
        0xd4 => skip(pos, 2),
        0xd5 => skip(pos, 3),
        0xd6 => skip(pos, 5),
        0xd7 => skip(pos, 9),
        0xd8 => skip(pos, 17),
        0xdc => Ok(Item::Container(read_count(data, pos, 2)?)),
        0xdd => Ok(Item::Container(read_count(data, pos, 4)?)),
        0xde => Ok(Item::Container(2 * read_count(data, pos, 2)?)),
        0xdf => Ok(Item::Container(2 * read_count(data, pos, 4)?)),
    }
}

/// Takes `n` bytes at `pos`, advancing it; `Malformed` if fewer remain.
fn take<'a>(data: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], MsgpackError> {
    let end = pos.checked_add(n).ok_or(MsgpackError::Malformed)?;
    let bytes = data.get(*pos..end).ok_or(MsgpackError::Malformed)?;
    *pos = end;
    Ok(bytes)
}

/// A big-endian unsigned count of `width` (1, 2 or 4) bytes.
fn read_count(data: &[u8], pos: &mut usize, width: usize) -> Result<u64, MsgpackError> {
    Ok(take(data, pos, width)?
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// A payload length; one that does not fit in `usize` cannot fit in the data either.
fn read_len(data: &[u8], pos: &mut usize, width: usize) -> Result<usize, MsgpackError> {
    usize::try_from(read_count(data, pos, width)?).map_err(|_| MsgpackError::Malformed)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Converts a decoded (depth-checked) msgpack value to JSON.
fn to_json(v: rmpv::Value) -> Result<Json, MsgpackError> {
    use rmpv::Value as M;
    Ok(match v {
        M::Nil => Json::Null,
        M::Boolean(b) => Json::Bool(b),
        M::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => Json::from(n),
            (None, Some(n)) => Json::from(n),
            (None, None) => return Err(MsgpackError::Malformed),
        },
        M::F32(f) => float(f64::from(f)),
        M::F64(f) => float(f),
        M::String(s) => Json::String(s.into_str().ok_or(MsgpackError::InvalidUtf8)?),
        M::Binary(b) => Json::String(hex_lower(&b)),
        M::Ext(_, b) => Json::String(hex_lower(&b)),
        M::Array(items) => Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        M::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(key_to_string(k)?, to_json(v)?);
            }
            Json::Object(map)
        }
    })
}

/// A finite float as a JSON number; NaN and infinities become `null`.
fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// A map key as a JSON object key: strings as they are, bin/ext as hex, others as JSON text.
fn key_to_string(k: rmpv::Value) -> Result<String, MsgpackError> {
    match k {
        rmpv::Value::String(s) => s.into_str().ok_or(MsgpackError::InvalidUtf8),
        rmpv::Value::Binary(b) | rmpv::Value::Ext(_, b) => Ok(hex_lower(&b)),
        other => Ok(to_json(other)?.to_string()),
    }
}

/// Converts JSON to an rmpv value for encoding.
fn to_rmpv(v: &Json) -> rmpv::Value {
    use rmpv::Value as M;
    match v {
        Json::Null => M::Nil,
        Json::Bool(b) => M::Boolean(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                M::from(u)
            } else if let Some(i) = n.as_i64() {
                M::from(i)
            } else {
                // Not an integer: serde_json numbers are finite f64 otherwise.
                M::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => M::from(s.as_str()),
        Json::Array(items) => M::Array(items.iter().map(to_rmpv).collect()),
        Json::Object(map) => map_to_rmpv(map),
    }
}

fn map_to_rmpv(map: &Map<String, Json>) -> rmpv::Value {
    rmpv::Value::Map(
        map.iter()
            .map(|(k, v)| (rmpv::Value::from(k.as_str()), to_rmpv(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// `depth` nested one-element arrays around `1`.
    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut v = vec![0x91; depth];
        v.push(0x01);
        v
    }

    fn encode(v: &rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn nesting_64_deep_decodes_and_65_is_refused() {
        let ok = msgpack_to_json(&nested_arrays(64), MAX_INBOUND_DEPTH).unwrap();
        let mut expect = json!(1);
        for _ in 0..64 {
            expect = json!([expect]);
        }
        assert_eq!(ok, expect);
        assert_eq!(
            msgpack_to_json(&nested_arrays(65), MAX_INBOUND_DEPTH),
            Err(MsgpackError::TooDeep { max_depth: 64 })
        );
    }

    #[test]
    fn empty_containers_count_toward_depth() {
        let mut v = vec![0x91; 64];
        v.push(0x90); // an empty array at depth 65
        assert_eq!(
            msgpack_to_json(&v, 64),
            Err(MsgpackError::TooDeep { max_depth: 64 })
        );
        let mut maps = vec![0x81, 0xa1, b'k']; // {"k": {"k": ... {} }}
        for _ in 0..62 {
            maps.extend_from_slice(&[0x81, 0xa1, b'k']);
        }
        maps.push(0x80);
        assert!(msgpack_to_json(&maps, 64).is_ok(), "64 maps deep");
    }

    #[test]
    fn a_million_levels_is_refused_without_recursing() {
        assert_eq!(
            msgpack_to_json(&nested_arrays(1_000_000), 64),
            Err(MsgpackError::TooDeep { max_depth: 64 })
        );
    }

    #[test]
    fn conversion_table() {
        use rmpv::Value as M;
        let cases = [
            (M::Nil, json!(null)),
            (M::from(-5), json!(-5)),
            (M::from(u64::MAX), json!(u64::MAX)),
            (M::from(i64::MIN), json!(i64::MIN)),
            (M::F32(1.5), json!(1.5)),
            (M::F64(f64::NAN), json!(null)),
            (M::F64(f64::INFINITY), json!(null)),
            (M::Binary(vec![0x00, 0xab, 0xff]), json!("00abff")),
            (M::Ext(5, vec![0xde, 0xad]), json!("dead")),
            (
                M::Map(vec![
                    (M::from(1), M::from("int key")),
                    (M::Nil, M::Boolean(true)),
                    (M::Binary(vec![0x0f]), M::from(2)),
                    (M::Array(vec![M::from(1), M::from("a")]), M::Nil),
                    (M::from("s"), M::Array(vec![])),
                ]),
                json!({"1": "int key", "null": true, "0f": 2, "[1,\"a\"]": null, "s": []}),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(msgpack_to_json(&encode(&input), 64), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: [(&[u8], MsgpackError); 7] = [
            (b"", MsgpackError::Malformed),
            (&[0xc1], MsgpackError::Malformed),
            (&[0x92, 0x01], MsgpackError::Malformed),
            (
                &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
                MsgpackError::Malformed,
            ),
            (&[0xdd, 0xff, 0xff, 0xff, 0xff], MsgpackError::Malformed),
            (&[0x01, 0x02], MsgpackError::TrailingBytes),
            (&[0xa2, 0xff, 0xfe], MsgpackError::InvalidUtf8),
        ];
        for (input, want) in cases {
            assert_eq!(msgpack_to_json(input, 64), Err(want), "{input:02x?}");
        }
    }

    #[test]
    fn outbound_map_keys_are_alphabetical_and_ints_compact() {
        let bytes = json_to_msgpack(&json!({"t": "x", "c": "U", "v": 1}));
        // fixmap(3) "c" "U" "t" "x" "v" 1
        assert_eq!(
            bytes,
            [
                0x83, 0xa1, b'c', 0xa1, b'U', 0xa1, b't', 0xa1, b'x', 0xa1, b'v', 0x01
            ]
        );
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>().prop_map(float),
            ".{0,12}".prop_map(Json::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Json::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..8)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_round_trips_through_msgpack(v in arb_json()) {
            prop_assert_eq!(msgpack_to_json(&json_to_msgpack(&v), 64), Ok(v));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = msgpack_to_json(&data, 64);
        }
    }
}
