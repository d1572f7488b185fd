//! Behaviour of the recovery store, one rule per test.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;

const TTL: Duration = Duration::from_secs(300);

fn store(buffer_size: usize, max_messages: usize, memory_budget: usize) -> RecoveryStore {
    RecoveryStore::new(RecoveryConfig {
        buffer_size,
        ttl: TTL,
        max_messages,
        memory_budget,
    })
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(42)
}

fn text_frame(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Publishes `{"n":<n>}` to `topic` at `secs`.
fn put(s: &mut RecoveryStore, topic: &str, n: usize, secs: u64) -> Published {
    let text = format!(r#"{{"n":{n}}}"#);
    s.publish(
        topic,
        &text,
        Instant::from_secs(secs),
        &mut rng(),
        text_frame,
    )
}

/// [`put`] for its side effect only.
fn add(s: &mut RecoveryStore, topic: &str, n: usize, secs: u64) {
    let _ = put(s, topic, n, secs);
}

/// The fixed cost of one ring of `capacity` slots for `topic`.
fn fixed(capacity: usize, topic: &str) -> usize {
    capacity * SLOT_BYTES + RING_RECORD_BYTES + topic.len()
}

#[test]
fn offsets_count_from_zero_within_one_epoch_and_the_stamp_is_in_the_bytes() {
    let mut s = store(16, 500, 1 << 20);
    let a = put(&mut s, "prices", 0, 0);
    let b = put(&mut s, "prices", 1, 0);
    assert_eq!((a.offset, b.offset), (0, 1));
    assert_eq!(a.epoch, b.epoch);
    let want = format!(r#"{{"tp":"prices","e":"{}","o":1,"n":1}}"#, b.epoch);
    assert_eq!(b.bytes, want.as_bytes());
    assert_eq!(s.position("prices"), Some((a.epoch, 1)));
    s.check_invariants();
}

#[test]
fn frame_is_called_once_and_its_bytes_are_what_the_store_replays() {
    let mut s = store(16, 500, 1 << 20);
    let mut calls = Vec::new();
    add(&mut s, "t", 0, 0);
    let p = s.publish("t", "plain text", Instant::ZERO, &mut rng(), |stamped| {
        calls.push(stamped.to_owned());
        Bytes::from(format!("<frame {stamped}>"))
    });
    assert_eq!(calls, ["plain text"], "non-objects are stored unchanged");
    assert_eq!(p.bytes, "<frame plain text>");
    let Recovery::Recovered { messages, .. } = s.since("t", p.epoch, 0) else {
        panic!("expected a replay");
    };
    // Not only equal: the very same allocation the driver broadcast.
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].as_ptr(), p.bytes.as_ptr());
}

#[test]
fn since_follows_the_lookup_rules() {
    // Capacity 4, offsets 0..=5 published: 0 and 1 are overwritten, 2..=5 are stored.
    let build = |max_messages| {
        let mut s = store(4, max_messages, 1 << 20);
        let epoch = (0..6).map(|n| put(&mut s, "t", n, 0).epoch).last().unwrap();
        (s, epoch)
    };
    let other = |e: Epoch| Epoch(e.as_u32().wrapping_add(1));
    // (name, max_messages, same epoch?, after_offset, Some(replayed offsets) or NotRecovered)
    type Case = (&'static str, usize, bool, u64, Option<Vec<usize>>);
    let cases: [Case; 9] = [
        ("nothing missed", 10, true, 5, Some(vec![])),
        (
            "u64::MAX means nothing to replay",
            10,
            true,
            u64::MAX,
            Some(vec![]),
        ),
        ("a position ahead of the head", 10, true, 100, Some(vec![])),
        ("one missed", 10, true, 4, Some(vec![5])),
        (
            "exactly max_messages missed",
            3,
            true,
            2,
            Some(vec![3, 4, 5]),
        ),
        ("more than max_messages missed", 3, true, 1, None),
        (
            "oldest missed still stored",
            10,
            true,
            1,
            Some(vec![2, 3, 4, 5]),
        ),
        ("a missed message was overwritten", 10, true, 0, None),
        ("another epoch", 10, false, 4, None),
    ];
    for (name, max_messages, same_epoch, after, want) in cases {
        let (s, epoch) = build(max_messages);
        let asked = if same_epoch { epoch } else { other(epoch) };
        let got = s.since("t", asked, after);
        let want = match want {
            Some(ns) => Recovery::Recovered {
                epoch,
                last_offset: 5,
                messages: ns
                    .into_iter()
                    .map(|n| {
                        let t = format!(r#"{{"tp":"t","e":"{epoch}","o":{n},"n":{n}}}"#);
                        Bytes::from(t)
                    })
                    .collect(),
            },
            None => Recovery::NotRecovered {
                epoch,
                last_offset: 5,
            },
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn unknown_topic_has_no_history() {
    let mut s = store(16, 500, 1 << 20);
    add(&mut s, "a", 0, 0);
    assert_eq!(s.since("b", Epoch(0), 0), Recovery::NoHistory);
    assert_eq!(s.position("b"), None);
}

#[test]
fn rings_with_no_write_for_the_ttl_expire_and_writes_postpone_expiry() {
    let mut s = store(16, 500, 1 << 20);
    assert_eq!(s.next_expiry(), None);
    add(&mut s, "a", 0, 0);
    add(&mut s, "b", 0, 10);
    add(&mut s, "a", 1, 20);
    assert_eq!(
        s.next_expiry(),
        Some(Instant::from_secs(310)),
        "b, written at 10 s"
    );
    assert_eq!(s.evict_expired(Instant::from_secs(309)), 0);
    assert_eq!(s.evict_expired(Instant::from_secs(310)), 1);
    assert_eq!((s.position("b"), s.topic_count()), (None, 1));
    assert_eq!(s.next_expiry(), Some(Instant::from_secs(320)));
    assert_eq!(s.evict_expired(Instant::from_secs(10_000)), 1);
    assert_eq!((s.topic_count(), s.total_bytes()), (0, 0));
    s.check_invariants();
}

#[test]
fn a_recreated_ring_has_a_new_epoch_and_old_positions_are_not_recovered() {
    let mut s = store(16, 500, 1 << 20);
    let old = put(&mut s, "t", 0, 0);
    add(&mut s, "t", 1, 0);
    assert_eq!(s.evict_expired(Instant::from_secs(1_000)), 1);
    let new = put(&mut s, "t", 2, 1_000);
    assert_ne!(new.epoch, old.epoch);
    assert_eq!(new.offset, 0);
    assert_eq!(
        s.since("t", old.epoch, 1),
        Recovery::NotRecovered {
            epoch: new.epoch,
            last_offset: 0
        }
    );
}

#[test]
fn over_budget_drops_the_least_recently_written_ring_first() {
    let ring = fixed(16, "a");
    // Room for three rings and four small (~37 byte) messages, not four rings.
    let mut s = store(16, 500, 3 * ring + 200);
    for (topic, secs) in [("a", 0), ("b", 1), ("c", 2), ("a", 3)] {
        add(&mut s, topic, 0, secs);
    }
    assert_eq!(s.topic_count(), 3);
    add(&mut s, "d", 0, 4);
    let alive: Vec<bool> = ["a", "b", "c", "d"]
        .iter()
        .map(|t| s.position(t).is_some())
        .collect();
    assert_eq!(
        alive,
        [true, false, true, true],
        "b was written least recently"
    );
    s.check_invariants();
}

#[test]
fn a_ring_alone_over_budget_drops_its_oldest_messages() {
    let msg_len = put(&mut store(16, 500, 1 << 20), "t", 0, 0).bytes.len();
    let mut s = store(16, 500, fixed(16, "t") + 3 * msg_len);
    let epoch = (0..5).map(|n| put(&mut s, "t", n, 0).epoch).last().unwrap();
    assert_eq!(s.oldest_offset("t"), Some(2), "three messages fit");
    assert_eq!(s.position("t"), Some((epoch, 4)));
    assert!(
        matches!(s.since("t", epoch, 1), Recovery::Recovered { ref messages, .. } if messages.len() == 3)
    );
    assert!(matches!(
        s.since("t", epoch, 0),
        Recovery::NotRecovered { .. }
    ));
    s.check_invariants();
}

#[test]
fn a_message_too_big_for_the_budget_drops_its_ring_and_starts_a_new_epoch() {
    let mut s = store(16, 500, fixed(16, "t") + 100);
    let first = put(&mut s, "t", 0, 0);
    let big = s.publish("t", &"x".repeat(200), Instant::ZERO, &mut rng(), text_frame);
    assert_eq!(
        (big.epoch, big.offset),
        (first.epoch, 1),
        "stamped before the drop"
    );
    assert_eq!((s.topic_count(), s.total_bytes()), (0, 0));
    assert_eq!(s.since("t", first.epoch, 0), Recovery::NoHistory);
    let next = put(&mut s, "t", 2, 0);
    assert_ne!(next.epoch, first.epoch);
    assert_eq!(next.offset, 0);
    s.check_invariants();
}

#[test]
fn a_ring_whose_slots_alone_exceed_the_budget_is_never_allocated() {
    let mut s = store(1 << 20, 500, 1 << 20);
    let a = put(&mut s, "t", 0, 0);
    let b = put(&mut s, "t", 1, 0);
    assert_eq!((a.offset, b.offset), (0, 0));
    assert_ne!(
        a.epoch, b.epoch,
        "each unstored message gets its own identity"
    );
    assert_eq!((s.topic_count(), s.total_bytes()), (0, 0));
    assert_eq!(s.since("t", b.epoch, 0), Recovery::NoHistory);
}

#[test]
fn total_bytes_counts_slot_arrays_and_topic_names_as_well_as_payload() {
    let mut s = store(16, 500, 1 << 20);
    let p = put(&mut s, "topic", 0, 0);
    assert_eq!(s.payload_bytes(), p.bytes.len());
    assert_eq!(s.total_bytes(), p.bytes.len() + fixed(16, "topic"));
    assert!(fixed(16, "topic") >= 16 * 32, "the slot array is counted");
}

#[test]
fn a_full_ring_overwrites_without_growing_its_payload_count() {
    let mut s = store(2, 500, 1 << 20);
    let lens: Vec<usize> = (0..4).map(|n| put(&mut s, "t", n, 0).bytes.len()).collect();
    assert_eq!(s.payload_bytes(), lens[2] + lens[3]);
    assert_eq!(s.oldest_offset("t"), Some(2));
    s.check_invariants();
}

#[test]
fn an_earlier_now_counts_as_the_latest_write_seen() {
    let mut s = store(16, 500, 1 << 20);
    add(&mut s, "a", 0, 100);
    add(&mut s, "b", 0, 50);
    assert_eq!(s.next_expiry(), Some(Instant::from_secs(400)));
    assert_eq!(s.evict_expired(Instant::from_secs(400)), 2);
}

#[test]
fn from_server_config_store_rounds_capacity_and_tiny_sizes_still_work() {
    let mut s = store(3, 500, 1 << 20);
    assert_eq!(s.config().buffer_size, 4);
    for n in 0..10 {
        add(&mut s, "t", n, 0);
    }
    assert_eq!(s.oldest_offset("t"), Some(6));
    let mut one = store(0, 500, 1 << 20);
    add(&mut one, "t", 0, 0);
    add(&mut one, "t", 1, 0);
    assert_eq!(one.oldest_offset("t"), Some(1));
    one.check_invariants();
}

#[test]
fn history_returns_the_newest_stored_messages_oldest_first_with_their_first_offset() {
    let mut s = store(4, 500, 1 << 20);
    assert_eq!(s.history("t", 10), None);
    let mut last = None;
    for n in 0..6 {
        last = Some(put(&mut s, "t", n, 0)); // a 4-slot ring keeps offsets 2..=5
    }
    let last = last.unwrap();
    let (epoch, first, msgs) = s.history("t", 10).unwrap();
    assert_eq!((epoch, first, msgs.len()), (last.epoch, 2, 4));
    assert_eq!(msgs[3], last.bytes);
    let (_, first, msgs) = s.history("t", 2).unwrap();
    assert_eq!((first, msgs.len()), (4, 2));
    let (_, first, msgs) = s.history("t", 0).unwrap();
    assert_eq!((first, msgs.len()), (6, 0));
}

/// Stores `{"n":<n>}` as another node's `(epoch, offset)` at `secs`.
fn foreign(s: &mut RecoveryStore, topic: &str, epoch: u32, offset: u64, secs: u64) -> Foreign {
    let text = format!(r#"{{"n":{offset}}}"#);
    s.store_foreign(
        topic,
        &text,
        Epoch(epoch),
        offset,
        Instant::from_secs(secs),
        text_frame,
    )
}

#[test]
fn a_forwarded_stream_keeps_its_origin_identity_and_is_recoverable() {
    let mut s = store(16, 500, 1 << 20);
    for o in 40..45 {
        let f = foreign(&mut s, "t", 7, o, 0);
        assert!(!f.duplicate);
        let want = format!(r#"{{"tp":"t","e":"00000007","o":{o},"n":{o}}}"#);
        assert_eq!(f.bytes, want.as_bytes());
    }
    assert_eq!(s.position("t"), Some((Epoch(7), 44)));
    match s.since("t", Epoch(7), 41) {
        Recovery::Recovered { messages, .. } => assert_eq!(messages.len(), 3),
        other => panic!("expected Recovered, got {other:?}"),
    }
    // Before the first offset this node received: explicit NotRecovered.
    assert!(matches!(
        s.since("t", Epoch(7), 38),
        Recovery::NotRecovered { .. }
    ));
    s.check_invariants();
}

#[test]
fn a_forwarded_duplicate_is_reported_and_not_stored_again() {
    let mut s = store(16, 500, 1 << 20);
    let _ = foreign(&mut s, "t", 7, 0, 0);
    let _ = foreign(&mut s, "t", 7, 1, 0);
    assert!(foreign(&mut s, "t", 7, 0, 0).duplicate);
    assert_eq!(s.position("t"), Some((Epoch(7), 1)));
    s.check_invariants();
}

#[test]
fn a_gap_in_a_forwarded_stream_restarts_the_ring_so_recovery_across_it_fails_loudly() {
    let mut s = store(16, 500, 1 << 20);
    for o in 0..3 {
        let _ = foreign(&mut s, "t", 7, o, 0);
    }
    // Offsets 3..=5 were lost on the way (a partition).
    let _ = foreign(&mut s, "t", 7, 6, 1);
    assert!(matches!(
        s.since("t", Epoch(7), 2),
        Recovery::NotRecovered { .. }
    ));
    assert!(matches!(
        s.since("t", Epoch(7), 5),
        Recovery::Recovered { ref messages, .. } if messages.len() == 1
    ));
    // Another origin's epoch replaces the ring as well.
    let _ = foreign(&mut s, "t", 9, 100, 2);
    assert!(matches!(
        s.since("t", Epoch(7), 6),
        Recovery::NotRecovered { .. }
    ));
    s.check_invariants();
}

#[test]
fn a_local_publish_never_extends_another_nodes_stream() {
    let mut s = store(16, 500, 1 << 20);
    let _ = foreign(&mut s, "t", 7, 10, 0);
    let p = put(&mut s, "t", 0, 1);
    assert_ne!(p.epoch, Epoch(7), "our own stream gets its own epoch");
    assert_eq!(p.offset, 0);
    assert!(matches!(
        s.since("t", Epoch(7), 10),
        Recovery::NotRecovered { .. }
    ));
    // And the next local publish continues our stream.
    assert_eq!(put(&mut s, "t", 1, 1).offset, 1);
    s.check_invariants();
}

#[test]
fn a_forwarded_stream_at_the_end_of_the_offset_space_is_delivered_not_stored() {
    let mut s = store(16, 500, 1 << 20);
    let f = foreign(&mut s, "t", 7, u64::MAX, 0);
    assert!(!f.duplicate);
    assert_eq!(s.since("t", Epoch(7), 0), Recovery::NoHistory);
    s.check_invariants();
}
