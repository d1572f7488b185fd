//! Model-based property test: random publish/since/evict_expired sequences over a few topics,
//! small capacities and small budgets, checked against a record of everything ever published.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;

const TOPICS: [&str; 4] = ["a", "bb", "c\"q", "ü"];

#[derive(Debug, Clone)]
enum Op {
    /// Publish to a topic a text of some padding length (or a non-object).
    Publish {
        topic: usize,
        pad: usize,
        object: bool,
    },
    /// Ask for what was missed after `back` messages before the last (or `u64::MAX`, or a
    /// foreign epoch).
    Since {
        topic: usize,
        back: u64,
        foreign: bool,
        max: bool,
    },
    /// Advance time.
    Tick { secs: u64 },
    /// Run the TTL sweep.
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..TOPICS.len(), 0..200usize, any::<bool>())
            .prop_map(|(topic, pad, object)| Op::Publish { topic, pad, object }),
        4 => (0..TOPICS.len(), 0..12u64, prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(topic, back, foreign, max)| Op::Since { topic, back, foreign, max }),
        2 => (0..20u64).prop_map(|secs| Op::Tick { secs }),
        1 => Just(Op::Expire),
    ]
}

/// What the store must agree with: per topic, the current epoch's messages (all of them,
/// nothing evicted), the last write time and sequence, and every epoch the topic ever had.
#[derive(Debug, Default)]
struct Model {
    current: BTreeMap<usize, (Epoch, Vec<Bytes>)>,
    last_write: BTreeMap<usize, (Instant, u64)>,
    epochs_seen: BTreeSet<Epoch>,
}

fn alive(s: &RecoveryStore) -> BTreeSet<usize> {
    (0..TOPICS.len())
        .filter(|&t| s.position(TOPICS[t]).is_some())
        .collect()
}

fn check_stamp(p: &Published, topic: &str, object: bool, text: &str) {
    let out = std::str::from_utf8(&p.bytes).expect("utf-8");
    if !object {
        assert_eq!(out, text, "non-objects are stored unchanged");
        return;
    }
    let v: serde_json::Value = serde_json::from_str(out).expect("stamped JSON parses");
    assert_eq!(v["tp"], topic);
    assert_eq!(v["e"], p.epoch.to_string());
    assert_eq!(v["o"], p.offset);
    let orig: serde_json::Value = serde_json::from_str(text).expect("test text parses");
    assert_eq!(v["pad"], orig["pad"], "original fields kept");
}

fn run(capacity: usize, max_messages: usize, budget: usize, seed: u64, ops: Vec<Op>) {
    let ttl = Duration::from_secs(30);
    let mut s = RecoveryStore::new(RecoveryConfig {
        buffer_size: capacity,
        ttl,
        max_messages,
        memory_budget: budget,
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Model::default();
    let mut now = Instant::ZERO;
    let mut seq = 0u64;

    for op in ops {
        match op {
            Op::Publish { topic, pad, object } => {
                let name = TOPICS[topic];
                let text = if object {
                    format!(r#" {{"pad":"{}"}}"#, "p".repeat(pad))
                } else {
                    "q".repeat(pad)
                };
                let before = alive(&s);
                let prev = s.position(name);
                let p = s.publish(name, &text, now, &mut rng, |t| Bytes::from(t.to_owned()));
                check_stamp(&p, name, object, &text);
                match prev {
                    // An existing ring keeps its epoch and the next offset.
                    Some((e, last)) => assert_eq!((p.epoch, p.offset), (e, last + 1)),
                    // A new ring: offset 0 and an epoch never seen before.
                    None => {
                        assert_eq!(p.offset, 0);
                        assert!(m.epochs_seen.insert(p.epoch), "epoch {} reused", p.epoch);
                        m.current.insert(topic, (p.epoch, Vec::new()));
                    }
                }
                let entry = m.current.get_mut(&topic).expect("model ring");
                assert_eq!(entry.1.len() as u64, p.offset, "offsets contiguous");
                entry.1.push(p.bytes.clone());
                m.last_write.insert(topic, (now, seq));
                seq += 1;

                // Budget-dropped rings are exactly the least recently written ones.
                let after = alive(&s);
                let dropped: Vec<usize> = before.difference(&after).copied().collect();
                for d in &dropped {
                    for kept in after.iter().filter(|&&k| k != topic) {
                        assert!(
                            m.last_write[d].1 < m.last_write[kept].1,
                            "dropped {d} although {kept} was written less recently"
                        );
                    }
                }
                if !after.contains(&topic) {
                    assert!(after.is_empty(), "the written ring is dropped last");
                }
                assert!(s.total_bytes() <= budget, "budget after publish");
            }
            Op::Since {
                topic,
                back,
                foreign,
                max,
            } => {
                let name = TOPICS[topic];
                let got_pos = s.position(name);
                let Some((epoch, last)) = got_pos else {
                    assert_eq!(s.since(name, Epoch(0), 0), Recovery::NoHistory);
                    continue;
                };
                let (model_epoch, msgs) = &m.current[&topic];
                assert_eq!((epoch, last), (*model_epoch, msgs.len() as u64 - 1));
                let asked = if foreign {
                    Epoch(epoch.as_u32() ^ 1)
                } else {
                    epoch
                };
                let after = if max {
                    u64::MAX
                } else {
                    last.wrapping_sub(back)
                };
                let tail = s.oldest_offset(name).expect("ring exists");
                assert!(tail <= last && last - tail < s.config().buffer_size as u64);
                // `after + 1` overflows only for u64::MAX, which means "nothing to replay".
                let first = after.saturating_add(1);
                let missed = if first > last { 0 } else { last - first + 1 };
                let recoverable =
                    !foreign && (missed == 0 || (first >= tail && missed <= max_messages as u64));
                match s.since(name, asked, after) {
                    Recovery::Recovered {
                        epoch: e,
                        last_offset,
                        messages,
                    } => {
                        assert!(recoverable, "recovered what should not be");
                        assert_eq!((e, last_offset), (epoch, last));
                        let want: &[Bytes] = if missed == 0 {
                            &[]
                        } else {
                            &msgs[first as usize..]
                        };
                        assert_eq!(messages, want, "exactly the missed offsets, in order");
                    }
                    Recovery::NotRecovered {
                        epoch: e,
                        last_offset,
                    } => {
                        assert!(!recoverable, "refused a recoverable gap");
                        assert_eq!((e, last_offset), (epoch, last));
                    }
                    Recovery::NoHistory => panic!("a ring exists"),
                }
            }
            Op::Tick { secs } => now = now + Duration::from_secs(secs),
            Op::Expire => {
                let before = alive(&s);
                let n = s.evict_expired(now);
                let after = alive(&s);
                assert_eq!(before.len() - after.len(), n);
                for t in &before {
                    let expired = m.last_write[t].0 + ttl <= now;
                    assert_eq!(after.contains(t), !expired, "topic {t}");
                }
                if let Some(next) = s.next_expiry() {
                    assert!(next > now);
                }
            }
        }
        s.check_invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_agrees_with_the_model(
        capacity in 1usize..9,
        max_messages in 0usize..10,
        budget_slack in 0usize..2_000,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        // From "one small ring barely fits" to "several rings with a few messages".
        let ring = capacity.next_power_of_two() * SLOT_BYTES + RING_RECORD_BYTES + 2;
        run(capacity, max_messages, ring + budget_slack, seed, ops);
    }
}
