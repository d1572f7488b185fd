//! Fuzz target: the presence sync chunk codec (`wse_core::cluster::presence_sync`): what a peer
//! sends in a PresenceFull frame with `PRESENCE_SYNC`.
//!
//! Input (see `wse_fuzz::split_mode`): **raw**, the rest is the chunk text (any bytes, lossily
//! UTF-8); or **structured**: entries built from small descriptions, encoded, optionally with
//! one byte flipped.
//!
//! Invariants: decoding never panics; every accepted chunk's entries all carry the chunk's
//! origin, and re-encoding them gives chunks that decode back to exactly those entries (in
//! order, each chunk under the frame limit); built entries round-trip.

use bolero::TypeGenerator;
use serde_json::json;
use wse_core::cluster::presence_sync::{CHUNK_LIMIT, decode_chunk, encode_chunks};
use wse_core::presence::{Hlc, NodeId, PresenceEntry, PresenceKey};
use wse_fuzz::{Mode, name_from, split_mode, structured};

#[derive(Debug, TypeGenerator)]
struct Built {
    origin: u64,
    entries: Vec<Spec>,
    flip: Option<(u16, u8)>,
}

/// One entry: topic and user bytes, stamp (wall, counter, node), connections (`None`: absent).
#[derive(Debug, TypeGenerator)]
struct Spec {
    topic: Vec<u8>,
    user: Vec<u8>,
    wall: u64,
    counter: u32,
    node: u64,
    connections: Option<u8>,
}

fn round_trip(origin: NodeId, entries: &[(PresenceKey, PresenceEntry)]) {
    let mut back = Vec::new();
    for chunk in encode_chunks(origin, entries) {
        assert!(chunk.len() <= CHUNK_LIMIT);
        let decoded = decode_chunk(&chunk).expect("our own chunk decodes");
        assert_eq!(decoded.origin, origin);
        back.extend(decoded.entries);
    }
    assert_eq!(back, entries);
}

#[test]
fn presence_chunk() {
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        Some((Mode::Raw, rest)) => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(chunk) = decode_chunk(&text) {
                assert!(chunk.entries.iter().all(|(k, _)| k.origin == chunk.origin));
                round_trip(chunk.origin, &chunk.entries);
            }
        }
        Some((Mode::Structured, rest)) => {
            let Some(built) = structured::<Built>(rest) else {
                return;
            };
            let origin = NodeId(built.origin);
            let entries: Vec<_> = built
                .entries
                .iter()
                .take(64)
                .map(|e| {
                    let hlc = Hlc::new(e.wall, e.counter, NodeId(e.node));
                    let key = PresenceKey::new(
                        name_from(&e.topic, b"ab:*"),
                        name_from(&e.user, b"xyz"),
                        origin,
                    );
                    let entry = match e.connections {
                        Some(c) => {
                            let n = u32::from(c) + 1;
                            PresenceEntry::present(hlc, json!({ "n": n }), n)
                        }
                        None => PresenceEntry::absent(hlc),
                    };
                    (key, entry)
                })
                .collect();
            round_trip(origin, &entries);
            if let Some((at, bit)) = built.flip {
                for chunk in encode_chunks(origin, &entries) {
                    let mut b = chunk.into_bytes();
                    let i = usize::from(at) % b.len();
                    b[i] ^= 1 << (bit % 8);
                    // A damaged chunk is refused or decodes to something consistent.
                    if let Ok(c) = decode_chunk(&String::from_utf8_lossy(&b)) {
                        assert!(c.entries.iter().all(|(k, _)| k.origin == c.origin));
                    }
                }
            }
        }
        None => {}
    });
}
