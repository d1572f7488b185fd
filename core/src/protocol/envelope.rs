//! The message envelope (UPSTREAM §2.1) as a typed value.
//!
//! Owns [`Envelope`] (the known keys `c t p id ts seq v pri cid sig` plus the recovery stamp
//! `tp e o`, every other key kept in `extra`) and its conversion from and to a JSON object.
//!
//! Parse, don't validate: [`Envelope::from_value`] rejects an envelope whose known keys carry
//! the wrong type rather than guessing, and applies the inbound aliases (`type` → `t`,
//! `payload` → `p`, each only when the short key is absent).
//!
//! Invariant kept by `from_value` (and expected of hand-built envelopes for a faithful round
//! trip): `extra` holds none of the known keys, nor `type`/`payload` while `t`/`p` is `None`.
//! With it, `from_value(e.to_value()) == Ok(e)`.

use serde_json::{Map, Value};

use super::category::Category;

/// A recovery stamp on a topic publication (UPSTREAM §8): wire keys `tp`, `e`, `o`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The topic (`tp`).
    pub topic: String,
    /// The topic's epoch (`e`), on the wire as exactly 8 lowercase hex digits.
    pub epoch: u32,
    /// The offset within the epoch (`o`).
    pub offset: u64,
}

impl Stamp {
    /// The epoch in its wire form: 8 lowercase hex digits.
    pub fn epoch_hex(&self) -> String {
        format!("{:08x}", self.epoch)
    }
}

/// Parses a wire epoch: exactly 8 hex digits (either case; the server emits lowercase).
pub fn parse_epoch(s: &str) -> Option<u32> {
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// A typed envelope. `None` means the key is absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Envelope {
    /// Category `c`.
    pub c: Option<Category>,
    /// Event type `t`.
    pub t: Option<String>,
    /// Payload `p` (any JSON, normally an object).
    pub p: Option<Value>,
    /// Message id `id`.
    pub id: Option<String>,
    /// Timestamp `ts` (RFC 3339).
    pub ts: Option<String>,
    /// Sequence number `seq`.
    pub seq: Option<i64>,
    /// Protocol version `v`.
    pub v: Option<i64>,
    /// Priority `pri`.
    pub pri: Option<i64>,
    /// Correlation id `cid`.
    pub cid: Option<String>,
    /// Signature `sig`.
    pub sig: Option<String>,
    /// Recovery stamp `tp`/`e`/`o` (all three or none).
    pub stamp: Option<Stamp>,
    /// Every other key, unchanged.
    pub extra: Map<String, Value>,
}

/// Why a JSON value is not an envelope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The value is not a JSON object.
    #[error("envelope is not a JSON object")]
    NotAnObject,
    /// A known key holds a value of the wrong type or form.
    #[error("envelope field `{field}`: {reason}")]
    InvalidField {
        /// The wire key.
        field: &'static str,
        /// What was expected.
        reason: &'static str,
    },
}

/// Keys with a typed field in [`Envelope`].
const KNOWN_KEYS: [&str; 13] = [
    "c", "t", "p", "id", "ts", "seq", "v", "pri", "cid", "sig", "tp", "e", "o",
];

impl Envelope {
    /// Parses a JSON object into an envelope, applying the inbound aliases `type` → `t` and
    /// `payload` → `p` when the short key is absent.
    pub fn from_value(v: Value) -> Result<Envelope, EnvelopeError> {
        let Value::Object(mut map) = v else {
            return Err(EnvelopeError::NotAnObject);
        };
        apply_aliases(&mut map);
        let mut env = Envelope {
            c: take(
                &mut map,
                "c",
                |v| v.as_str().and_then(Category::parse),
                "one of WSE, S, U",
            )?,
            t: take(&mut map, "t", as_string, "a string")?,
            p: map.remove("p"),
            id: take(&mut map, "id", as_string, "a string")?,
            ts: take(&mut map, "ts", as_string, "a string")?,
            seq: take(&mut map, "seq", Value::as_i64, "a 64-bit signed integer")?,
            v: take(&mut map, "v", Value::as_i64, "a 64-bit signed integer")?,
            pri: take(&mut map, "pri", Value::as_i64, "a 64-bit signed integer")?,
            cid: take(&mut map, "cid", as_string, "a string")?,
            sig: take(&mut map, "sig", as_string, "a string")?,
            stamp: None,
            extra: Map::new(),
        };
        let topic = take(&mut map, "tp", as_string, "a string")?;
        let epoch = take(
            &mut map,
            "e",
            |v| v.as_str().and_then(parse_epoch),
            "8 hex digits",
        )?;
        let offset = take(&mut map, "o", Value::as_u64, "an unsigned 64-bit integer")?;
        env.stamp = match (topic, epoch, offset) {
            (Some(topic), Some(epoch), Some(offset)) => Some(Stamp {
                topic,
                epoch,
                offset,
            }),
            (None, None, None) => None,
            _ => {
                return Err(EnvelopeError::InvalidField {
                    field: "tp",
                    reason: "tp, e and o must appear together",
                });
            }
        };
        debug_assert!(KNOWN_KEYS.iter().all(|k| !map.contains_key(*k)));
        env.extra = map;
        Ok(env)
    }

    /// The envelope as a JSON object (keys alphabetical when serialized).
    pub fn to_value(&self) -> Value {
        let mut map = self.extra.clone();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                map.insert(k.to_owned(), v);
            }
        };
        put("c", self.c.map(|c| Value::from(c.as_str())));
        put("t", self.t.clone().map(Value::from));
        put("p", self.p.clone());
        put("id", self.id.clone().map(Value::from));
        put("ts", self.ts.clone().map(Value::from));
        put("seq", self.seq.map(Value::from));
        put("v", self.v.map(Value::from));
        put("pri", self.pri.map(Value::from));
        put("cid", self.cid.clone().map(Value::from));
        put("sig", self.sig.clone().map(Value::from));
        if let Some(s) = &self.stamp {
            put("tp", Some(Value::from(s.topic.clone())));
            put("e", Some(Value::from(s.epoch_hex())));
            put("o", Some(Value::from(s.offset)));
        }
        Value::Object(map)
    }
}

/// Renames `type` → `t` and `payload` → `p` in place, each only when the short key is absent.
pub fn apply_aliases(map: &mut Map<String, Value>) {
    for (long, short) in [("type", "t"), ("payload", "p")] {
        if !map.contains_key(short) {
            if let Some(v) = map.remove(long) {
                map.insert(short.to_owned(), v);
            }
        }
    }
}

fn as_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Removes `key` and converts it; a present key that does not convert is an error.
fn take<T>(
    map: &mut Map<String, Value>,
    key: &'static str,
    convert: impl FnOnce(&Value) -> Option<T>,
    reason: &'static str,
) -> Result<Option<T>, EnvelopeError> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) => convert(&v)
            .map(Some)
            .ok_or(EnvelopeError::InvalidField { field: key, reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn aliases_apply_only_when_the_short_key_is_absent() {
        let e = Envelope::from_value(json!({"type": "chat", "payload": {"a": 1}})).unwrap();
        assert_eq!(e.t.as_deref(), Some("chat"));
        assert_eq!(e.p, Some(json!({"a": 1})));
        assert!(e.extra.is_empty());

        let e = Envelope::from_value(json!({"t": "x", "type": "y", "p": 1, "payload": 2})).unwrap();
        assert_eq!(e.t.as_deref(), Some("x"));
        assert_eq!(e.p, Some(json!(1)));
        assert_eq!(
            e.extra,
            json!({"type": "y", "payload": 2})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn full_envelope_parses_every_known_key() {
        let v = json!({"c": "U", "t": "tick", "p": {"px": 1.5}, "id": "i", "ts": "2026-01-01T00:00:00.000Z",
            "seq": 7, "v": 1, "pri": 10, "cid": "corr", "sig": "s", "tp": "chat:1", "e": "00ab12cd", "o": 42,
            "trace_id": "t1"});
        let e = Envelope::from_value(v.clone()).unwrap();
        assert_eq!(e.c, Some(Category::Update));
        assert_eq!(e.seq, Some(7));
        assert_eq!(
            e.stamp,
            Some(Stamp {
                topic: "chat:1".into(),
                epoch: 0x00ab_12cd,
                offset: 42
            })
        );
        assert_eq!(e.extra.get("trace_id"), Some(&json!("t1")));
        assert_eq!(e.to_value(), v);
    }

    #[test]
    fn wrong_types_are_rejected_with_the_field_named() {
        let cases = [
            (json!([1]), None),
            (json!("s"), None),
            (json!({"c": "X"}), Some("c")),
            (json!({"t": 5}), Some("t")),
            (json!({"seq": 1.5}), Some("seq")),
            (json!({"v": u64::MAX}), Some("v")),
            (json!({"e": "abc"}), Some("e")),
            (json!({"tp": "a", "e": "0000000g", "o": 1}), Some("e")),
            (json!({"tp": "a", "o": -1, "e": "00000000"}), Some("o")),
            (json!({"tp": "a"}), Some("tp")),
        ];
        for (input, field) in cases {
            let err = Envelope::from_value(input.clone()).unwrap_err();
            match (err, field) {
                (EnvelopeError::NotAnObject, None) => {}
                (EnvelopeError::InvalidField { field: f, .. }, Some(want)) => {
                    assert_eq!(f, want, "{input}")
                }
                (other, _) => panic!("{input}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn epoch_is_written_as_eight_lowercase_hex_digits() {
        let s = Stamp {
            topic: "t".into(),
            epoch: 0xAB,
            offset: 0,
        };
        assert_eq!(s.epoch_hex(), "000000ab");
        assert_eq!(parse_epoch("DEADBEEF"), Some(0xdead_beef));
        assert_eq!(parse_epoch("+0000001"), None);
        assert_eq!(parse_epoch("123456789"), None);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    prop_compose! {
        fn arb_envelope()(
            c in prop::option::of(prop_oneof![Just(Category::System), Just(Category::Snapshot), Just(Category::Update)]),
            t in prop::option::of(".{0,8}"),
            p in prop::option::of(arb_json()),
            id in prop::option::of(".{0,8}"),
            ts in prop::option::of(".{0,8}"),
            seq in prop::option::of(any::<i64>()),
            v in prop::option::of(any::<i64>()),
            pri in prop::option::of(any::<i64>()),
            cid in prop::option::of(".{0,8}"),
            sig in prop::option::of(".{0,8}"),
            stamp in prop::option::of((".{0,8}", any::<u32>(), any::<u64>())),
            extra in prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..4),
        ) -> Envelope {
            let extra = extra
                .into_iter()
                .filter(|(k, _)| {
                    let known = KNOWN_KEYS.contains(&k.as_str());
                    let alias_of_absent = (k == "type" && t.is_none()) || (k == "payload" && p.is_none());
                    !known && !alias_of_absent
                })
                .collect();
            Envelope {
                c, t, p, id, ts, seq, v, pri, cid, sig,
                stamp: stamp.map(|(topic, epoch, offset)| Stamp { topic, epoch, offset }),
                extra,
            }
        }
    }

    proptest! {
        #[test]
        fn envelope_round_trips_through_json(e in arb_envelope()) {
            prop_assert_eq!(Envelope::from_value(e.to_value()), Ok(e.clone()));
            // And through the wire text.
            let text = serde_json::to_string(&e.to_value()).unwrap();
            prop_assert_eq!(Envelope::from_value(serde_json::from_str(&text).unwrap()), Ok(e));
        }
    }
}
