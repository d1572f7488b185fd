//! Property tests: stamped delivery under any interleaving, backoff caps, and no panic on any
//! frame.

use std::time::Duration;

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::*;

const T0: Instant = Instant::from_secs(1_000);

fn ready_client() -> Client {
    let mut c = Client::new(ClientConfig::default(), WallClock::UNIX_EPOCH, 1).unwrap();
    c.start(T0);
    c.handle_connected(T0);
    c.handle_text(T0, r#"{"t":"server_ready","p":{"connection_id":"c"}}"#);
    while c.poll_output().is_some() {}
    c
}

fn stamped(offset: u64) -> String {
    json!({"t": "tick", "tp": "t", "e": "0000abcd", "o": offset}).to_string()
}

fn strategy() -> impl Strategy<Value = ReconnectStrategy> {
    prop_oneof![
        Just(ReconnectStrategy::Exponential),
        Just(ReconnectStrategy::Linear),
        Just(ReconnectStrategy::Fibonacci),
        Just(ReconnectStrategy::Adaptive),
    ]
}

proptest! {
    /// Offsets 0..n of one epoch arrive in any order, with duplicates and holes. What is
    /// delivered is strictly increasing, contiguous (nothing skipped silently), taken from the
    /// input; a gap (an offset beyond the cursor + 1) produces exactly one recovery request
    /// (one in flight, never answered here), and so does anything left undelivered.
    #[test]
    fn stamped_delivery_is_increasing_contiguous_and_gaps_request_recovery(
        offsets in prop::collection::vec(0u64..24, 0..80),
    ) {
        let mut c = ready_client();
        for &o in &offsets {
            c.handle_text(T0, &stamped(o));
        }
        let mut delivered = vec![];
        let mut requests = 0;
        while let Some(out) = c.poll_output() {
            match out {
                Output::Event(Event::Message(d)) => {
                    delivered.push(d.envelope.stamp.map(|s| s.offset).unwrap_or(u64::MAX));
                }
                Output::SendText(text) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    prop_assert_eq!(&v["t"], "subscription_update");
                    prop_assert_eq!(&v["p"]["recover"], true);
                    requests += 1;
                }
                _ => {}
            }
        }
        for pair in delivered.windows(2) {
            prop_assert_eq!(pair[1], pair[0] + 1, "delivered {:?}", delivered);
        }
        prop_assert!(delivered.iter().all(|o| offsets.contains(o)));
        prop_assert_eq!(delivered.first(), offsets.first());
        // Anything that arrived beyond the delivered run was skipped (so far): it must have
        // been asked for.
        let skipped = match delivered.last() {
            Some(&last) => offsets.iter().any(|&o| o > last),
            None => false,
        };
        if skipped {
            prop_assert_eq!(requests, 1);
        }
        // Exactly one request iff some message arrived ahead of the cursor + 1 (a replay may
        // fill the hole later; the request was still needed). One in flight at most.
        let mut cursor: Option<u64> = None;
        let mut gap_seen = false;
        for &o in &offsets {
            match cursor {
                None => cursor = Some(o),
                Some(c) if o == c + 1 => cursor = Some(o),
                Some(c) if o > c + 1 => gap_seen = true,
                Some(_) => {}
            }
        }
        prop_assert_eq!(requests, usize::from(gap_seen));
        prop_assert_eq!(c.stats().recovery_requests, u64::from(gap_seen));
        prop_assert_eq!(delivered.last().copied(), cursor);
    }

    /// The delay never exceeds `min(max, 300 s)·(1 + jitter)`, nor 300 s.
    #[test]
    fn delay_never_exceeds_the_caps(
        strategy in strategy(),
        base_ms in 0u64..400_000,
        extra_ms in 0u64..400_000,
        factor in 1.0f64..20.0,
        jitter in 0.0f64..0.999,
        n in any::<u32>(),
        seed in any::<u64>(),
    ) {
        let policy = ReconnectPolicy {
            strategy,
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(base_ms + extra_ms),
            factor,
            jitter,
            max_attempts: None,
        };
        prop_assert!(policy.validate().is_ok());
        let d = policy.delay(n, &mut <ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(seed));
        let cap = policy.max.min(ABSOLUTE_MAX_DELAY).as_secs_f64();
        prop_assert!(d <= ABSOLUTE_MAX_DELAY);
        prop_assert!(d.as_secs_f64() <= cap * (1.0 + jitter) + 1e-9, "{:?} > cap {}", d, cap);
    }

    /// Even an unvalidated policy (NaN, infinities, negative jitter) yields a delay ≤ 300 s.
    #[test]
    fn delay_of_any_policy_is_bounded_and_does_not_panic(
        strategy in strategy(),
        base in any::<u64>(),
        max in any::<u64>(),
        factor in any::<f64>(),
        jitter in any::<f64>(),
        n in any::<u32>(),
    ) {
        let policy = ReconnectPolicy {
            strategy,
            base: Duration::from_millis(base),
            max: Duration::from_millis(max),
            factor,
            jitter,
            max_attempts: None,
        };
        let d = policy.delay(n, &mut <ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(0));
        prop_assert!(d <= ABSOLUTE_MAX_DELAY);
    }

    /// No text or binary frame makes the machine panic or leave its session.
    #[test]
    fn no_frame_panics(
        texts in prop::collection::vec(
            prop_oneof![
                any::<String>(),
                r#"(WSE|S|U)?\{("(t|p|tp|e|o|id|recovery|messages)":("[a-z_]{0,12}"|[0-9]{1,3}|\{|\[|null|"0000000[0-9]"),?){0,6}\}?"#,
            ],
            0..20,
        ),
        binaries in prop::collection::vec(
            (prop::sample::select(vec![&b""[..], b"C:", b"M:", b"E:", b"C:\x78\x01"]),
             prop::collection::vec(any::<u8>(), 0..64)),
            0..10,
        ),
    ) {
        let mut c = ready_client();
        for t in &texts {
            c.handle_text(T0, t);
        }
        for (prefix, body) in &binaries {
            c.handle_binary(T0, &[*prefix, body.as_slice()].concat());
        }
        while c.poll_output().is_some() {}
        prop_assert_eq!(c.state(), State::Ready);
    }
}
