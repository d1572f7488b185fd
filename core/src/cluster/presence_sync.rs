//! Presence on the wire between our nodes (issue 12, CONTRACT D15): the per-origin CRDT
//! entries of [`crate::presence`], carried in PresenceFull frames when both sides negotiated
//! [`Capabilities::PRESENCE_SYNC`](super::frame::Capabilities::PRESENCE_SYNC).
//!
//! Why not the original's PresenceUpdate layout: it carries one `u64` of milliseconds, no
//! origin and no connection count, and resolves conflicts by arrival order — which is how ghost
//! users survive there. Our entries need the hybrid logical clock `(wall_ms, counter, node)`, the
//! origin and the state (present with data and connections, or absent). A merge of CRDT entries
//! is idempotent and commutative, so one frame type serves both the full state sent on a new
//! link and the deltas of every change: "full" is just "all of them".
//!
//! A chunk is one JSON object, `{"o": origin, "e": [[topic, user, wall_ms, counter, node,
//! connections, data], …]}`, where `connections` and `data` are `null` for an absent entry
//! (tombstone). Every entry's origin is the chunk's `o` (a node ships only its own entries),
//! so a chunk cannot speak for a third node. Chunks stay under [`CHUNK_LIMIT`] bytes.

use serde_json::{Value, json};

use super::frame::MAX_FRAME_SIZE;
use crate::presence::{EntryState, Hlc, NodeId, PresenceEntry, PresenceKey};

/// Largest chunk text (a PresenceFull frame's payload), with room for the header.
pub const CHUNK_LIMIT: usize = MAX_FRAME_SIZE - 1024;

/// One decoded chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceChunk {
    /// The node whose entries these are.
    pub origin: NodeId,
    /// Its entries.
    pub entries: Vec<(PresenceKey, PresenceEntry)>,
}

/// Why a chunk was refused (the link treats it as a protocol error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PresenceSyncError {
    /// Not JSON, or not the chunk's shape.
    #[error("presence chunk: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> PresenceSyncError {
    PresenceSyncError::Malformed(what.into())
}

/// `origin`'s entries as chunks of at most [`CHUNK_LIMIT`] bytes each. An entry that alone does
/// not fit (a topic or data near a megabyte: beyond every presence limit) is left out.
pub fn encode_chunks(origin: NodeId, entries: &[(PresenceKey, PresenceEntry)]) -> Vec<String> {
    let head = format!(r#"{{"o":{},"e":["#, origin.0);
    let mut chunks = Vec::new();
    let mut current = head.clone();
    let mut count = 0usize;
    for (key, entry) in entries {
        let (connections, data) = match &entry.state {
            EntryState::Present { data, connections } => (json!(connections), data.clone()),
            EntryState::Absent => (Value::Null, Value::Null),
        };
        let item = json!([
            key.topic,
            key.user_id,
            entry.hlc.wall_ms,
            entry.hlc.counter,
            entry.hlc.node.0,
            connections,
            data
        ])
        .to_string();
        if head.len() + item.len() + 2 > CHUNK_LIMIT {
            continue;
        }
        if current.len() + item.len() + 3 > CHUNK_LIMIT {
            current.push_str("]}");
            chunks.push(std::mem::replace(&mut current, head.clone()));
            count = 0;
        }
        if count > 0 {
            current.push(',');
        }
        current.push_str(&item);
        count += 1;
    }
    if count > 0 {
        current.push_str("]}");
        chunks.push(current);
    }
    chunks
}

/// Decodes and checks one chunk.
pub fn decode_chunk(text: &str) -> Result<PresenceChunk, PresenceSyncError> {
    let v: Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let origin = v
        .get("o")
        .and_then(Value::as_u64)
        .map(NodeId)
        .ok_or_else(|| malformed("no origin"))?;
    let items = v
        .get("e")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no entries"))?;
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let f = item
            .as_array()
            .filter(|f| f.len() == 7)
            .ok_or_else(|| malformed("an entry is not a 7-element array"))?;
        let text = |i: usize| {
            f[i].as_str()
                .map(str::to_owned)
                .ok_or_else(|| malformed("topic and user must be strings"))
        };
        let number = |i: usize| {
            f[i].as_u64()
                .ok_or_else(|| malformed("stamp fields must be unsigned integers"))
        };
        let counter =
            u32::try_from(number(3)?).map_err(|_| malformed("stamp counter over 32 bits"))?;
        let hlc = Hlc::new(number(2)?, counter, NodeId(number(4)?));
        let state = match (&f[5], &f[6]) {
            (Value::Null, Value::Null) => EntryState::Absent,
            (Value::Number(n), data) => {
                let connections = n
                    .as_u64()
                    .and_then(|c| u32::try_from(c).ok())
                    .filter(|c| *c > 0)
                    .ok_or_else(|| malformed("connections must be 1..2^32"))?;
                EntryState::Present {
                    data: data.clone(),
                    connections,
                }
            }
            _ => return Err(malformed("bad entry state")),
        };
        let key = PresenceKey::new(text(0)?, text(1)?, origin);
        entries.push((key, PresenceEntry { hlc, state }));
    }
    Ok(PresenceChunk { origin, entries })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(topic: &str, user: &str, wall: u64, present: bool) -> (PresenceKey, PresenceEntry) {
        let hlc = Hlc::new(wall, 1, NodeId(7));
        let e = if present {
            PresenceEntry::present(hlc, json!({"s": "on"}), 2)
        } else {
            PresenceEntry::absent(hlc)
        };
        (PresenceKey::new(topic, user, NodeId(7)), e)
    }

    #[test]
    fn entries_round_trip_present_and_absent() {
        let entries = vec![
            entry("room", "alice", 5, true),
            entry("room", "bob", 6, false),
        ];
        let chunks = encode_chunks(NodeId(7), &entries);
        assert_eq!(chunks.len(), 1);
        let got = decode_chunk(&chunks[0]).unwrap();
        assert_eq!(got.origin, NodeId(7));
        assert_eq!(got.entries, entries);
    }

    #[test]
    fn many_entries_split_under_the_frame_limit() {
        let big = "x".repeat(3000);
        let entries: Vec<_> = (0..1000)
            .map(|i| {
                let hlc = Hlc::new(i, 0, NodeId(1));
                let e = PresenceEntry::present(hlc, json!({ "b": big }), 1);
                (PresenceKey::new("t", format!("u{i}"), NodeId(1)), e)
            })
            .collect();
        let chunks = encode_chunks(NodeId(1), &entries);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        let mut back = Vec::new();
        for c in &chunks {
            assert!(c.len() <= CHUNK_LIMIT);
            back.extend(decode_chunk(c).unwrap().entries);
        }
        assert_eq!(back, entries);
        assert!(encode_chunks(NodeId(1), &[]).is_empty());
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            "not json",
            "{}",
            r#"{"o":1}"#,
            r#"{"o":1,"e":[[1]]}"#,
            r#"{"o":1,"e":[["t","u",1,1,1,0,{}]]}"#,
            r#"{"o":1,"e":[["t","u",1,5000000000,1,1,{}]]}"#,
            r#"{"o":1,"e":[["t",2,1,1,1,1,{}]]}"#,
            r#"{"o":1,"e":[["t","u",1,1,1,null,{}]]}"#,
            r#"{"o":-1,"e":[]}"#,
        ] {
            assert!(decode_chunk(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_entries_round_trip(
            items in proptest::collection::vec(
                ("[a-c]{1,3}", "[a-z]{1,4}", any::<u64>(), any::<u32>(), any::<u64>(),
                 proptest::option::of(1u32..5)),
                0..40)
        ) {
            let entries: Vec<_> = items
                .into_iter()
                .map(|(t, u, w, c, n, conns)| {
                    let hlc = Hlc::new(w, c, NodeId(n));
                    let e = match conns {
                        Some(k) => PresenceEntry::present(hlc, json!({"k": k}), k),
                        None => PresenceEntry::absent(hlc),
                    };
                    (PresenceKey::new(t, u, NodeId(9)), e)
                })
                .collect();
            let mut back = Vec::new();
            for c in encode_chunks(NodeId(9), &entries) {
                let chunk = decode_chunk(&c).unwrap();
                prop_assert_eq!(chunk.origin, NodeId(9));
                back.extend(chunk.entries);
            }
            prop_assert_eq!(back, entries);
        }
    }
}
