//! Fuzz target: operation sequences against the recovery rings
//! (`wse_core::recovery::RecoveryStore`), checked against a log of everything published.
//!
//! Input: a configuration (ring capacity, replay limit, memory budget from "nothing fits" to
//! "plenty", TTL) and steps: publish (three topics, payloads up to a few hundred bytes), time
//! passing, TTL eviction, and `since` lookups with the right epoch, a wrong one, any offset.
//! Invariants after every step:
//!
//! - the memory budget is never exceeded (`total_bytes() <= memory_budget`);
//! - each publish is stamped `(epoch, offset)` with offsets contiguous from 0 within an epoch,
//!   and an epoch is never reused for a new incarnation of any ring;
//! - the broadcast bytes are exactly what the frame closure returned for the stamped text;
//! - `since` is contiguous-or-`NotRecovered`: `Recovered` holds exactly the published messages
//!   `after + 1 ..= last` of that epoch, in order; `NotRecovered` for the ring's own epoch only
//!   when the gap really is gone (before the oldest stored offset) or over the replay limit;
//!   `NoHistory` exactly when there is no ring;
//! - `position`, `history` and `oldest_offset` agree with the log;
//! - after `evict_expired(now)`, the next expiry is in the future.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bolero::TypeGenerator;
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use wse_core::Instant;
use wse_core::recovery::{Epoch, Recovery, RecoveryConfig, RecoveryStore};

const TOPICS: [&str; 3] = ["chat:a", "chat:b", "a-much-longer-topic-name:with:parts"];
const BUDGETS: [usize; 6] = [0, 200, 1_000, 3_000, 10_000, 1 << 20];

#[derive(Debug, TypeGenerator)]
struct Input {
    buffer_size: u8,
    max_messages: u8,
    budget: u8,
    ttl_secs: u8,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Op {
    Publish {
        topic: u8,
        len: u16,
    },
    Advance(u16),
    Evict,
    Since {
        topic: u8,
        right_epoch: bool,
        after: u16,
        far: bool,
    },
}

/// What was published to a topic in its current epoch, as far as the log knows.
#[derive(Debug)]
struct Incarnation {
    epoch: Epoch,
    messages: Vec<Bytes>,
}

#[test]
fn recovery_store() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let config = RecoveryConfig {
            buffer_size: usize::from(input.buffer_size % 33),
            ttl: Duration::from_secs(u64::from(input.ttl_secs % 10) + 1),
            max_messages: usize::from(input.max_messages % 40),
            memory_budget: BUDGETS[usize::from(input.budget) % BUDGETS.len()],
        };
        let mut store = RecoveryStore::new(config);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut log: BTreeMap<&str, Incarnation> = BTreeMap::new();
        let mut epochs_seen: BTreeSet<Epoch> = BTreeSet::new();
        let mut now = Instant::from_secs(100);
        let mut serial = 0u64;
        for op in &input.ops {
            match op {
                Op::Publish { topic, len } => {
                    let topic = TOPICS[usize::from(*topic) % TOPICS.len()];
                    serial += 1;
                    let text = format!("{serial}:{}", "x".repeat(usize::from(*len % 400)));
                    let mut framed = None;
                    let published = store.publish(topic, &text, now, &mut rng, |stamped| {
                        let bytes = Bytes::from(format!("frame[{stamped}]"));
                        framed = Some(bytes.clone());
                        bytes
                    });
                    assert_eq!(Some(&published.bytes), framed.as_ref(), "broadcast bytes");
                    let stamped = String::from_utf8_lossy(&published.bytes).into_owned();
                    assert!(
                        stamped.contains(&serial.to_string()),
                        "the text is inside the frame"
                    );
                    match log.get_mut(topic) {
                        Some(inc) if inc.epoch == published.epoch => {
                            assert_eq!(
                                published.offset,
                                inc.messages.len() as u64,
                                "offset gap in {topic}"
                            );
                            inc.messages.push(published.bytes.clone());
                        }
                        _ => {
                            assert_eq!(published.offset, 0, "a new epoch starts at offset 0");
                            assert!(
                                epochs_seen.insert(published.epoch),
                                "epoch {:?} reused",
                                published.epoch
                            );
                            log.insert(
                                topic,
                                Incarnation {
                                    epoch: published.epoch,
                                    messages: vec![published.bytes.clone()],
                                },
                            );
                        }
                    }
                }
                Op::Advance(ms) => now = now + Duration::from_millis(u64::from(*ms)),
                Op::Evict => {
                    let _ = store.evict_expired(now);
                    if let Some(expiry) = store.next_expiry() {
                        assert!(expiry > now, "an expired ring survived eviction");
                    }
                }
                Op::Since {
                    topic,
                    right_epoch,
                    after,
                    far,
                } => {
                    let topic = TOPICS[usize::from(*topic) % TOPICS.len()];
                    let after = if *far {
                        u64::MAX - u64::from(*after)
                    } else {
                        u64::from(*after % 64)
                    };
                    check_since(&store, &config, log.get(topic), topic, *right_epoch, after);
                }
            }
            assert!(
                store.total_bytes() <= config.memory_budget,
                "budget exceeded: {} > {}",
                store.total_bytes(),
                config.memory_budget
            );
            for topic in TOPICS {
                check_topic(&store, log.get(topic), topic);
            }
        }
    });
}

/// `position`, `oldest_offset` and `history` against the log.
fn check_topic(store: &RecoveryStore, inc: Option<&Incarnation>, topic: &str) {
    let Some((epoch, last)) = store.position(topic) else {
        assert_eq!(store.oldest_offset(topic), None);
        assert!(store.history(topic, 10).is_none());
        return;
    };
    let inc = inc.expect("a ring exists only for a published topic");
    assert_eq!(
        (epoch, last),
        (inc.epoch, inc.messages.len() as u64 - 1),
        "position of {topic}"
    );
    let oldest = store
        .oldest_offset(topic)
        .expect("a ring has an oldest offset");
    assert!(oldest <= last, "an empty ring is kept for {topic}");
    let (h_epoch, first, messages) = store.history(topic, usize::MAX).expect("ring");
    assert_eq!((h_epoch, first), (epoch, oldest));
    assert_eq!(
        messages,
        inc.messages[oldest as usize..],
        "stored messages of {topic}"
    );
}

fn check_since(
    store: &RecoveryStore,
    config: &RecoveryConfig,
    inc: Option<&Incarnation>,
    topic: &str,
    right_epoch: bool,
    after: u64,
) {
    let position = store.position(topic);
    let asked = match (inc, right_epoch) {
        (Some(inc), true) => inc.epoch,
        (Some(inc), false) => Epoch(inc.epoch.0.wrapping_add(1)),
        (None, _) => Epoch(0),
    };
    match store.since(topic, asked, after) {
        Recovery::NoHistory => assert_eq!(position, None, "NoHistory for {topic} with a ring"),
        Recovery::Recovered {
            epoch,
            last_offset,
            messages,
        } => {
            let inc = inc.expect("recovered from a topic never published");
            assert_eq!((epoch, Some((epoch, last_offset))), (asked, position));
            let from = after.saturating_add(1).min(last_offset + 1) as usize;
            let want = if after >= last_offset {
                &[][..]
            } else {
                &inc.messages[from..=last_offset as usize]
            };
            assert_eq!(messages, want, "replay of {topic} after {after}");
        }
        Recovery::NotRecovered { epoch, last_offset } => {
            assert_eq!(
                Some((epoch, last_offset)),
                position,
                "NotRecovered must name the ring's position"
            );
            if epoch == asked {
                let first = after + 1; // after < last_offset here, or the answer would be Recovered
                let oldest = store.oldest_offset(topic).expect("ring");
                let missed = last_offset - first + 1;
                assert!(
                    first < oldest || missed > config.max_messages as u64,
                    "NotRecovered although offsets {first}..={last_offset} are stored (oldest {oldest})"
                );
            }
        }
    }
}
