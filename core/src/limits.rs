//! Bounded rate and memory primitives: the token bucket and the dedup window.
//!
//! Both are exact and deterministic: the bucket counts micro-tokens in integers (no float drift,
//! so a simulation replays bit for bit), and the dedup window has a fixed capacity and forgets the
//! oldest id first.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

use crate::time::Instant;

const MICRO: u128 = 1_000_000;

/// A continuously refilling token bucket.
///
/// Starts full. `refill_per_sec == 0` means the bucket never refills (and [`TokenBucket::disabled`]
/// means it never limits). Time only moves forward: an earlier `now` than the last one seen adds
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Capacity in micro-tokens.
    capacity: u64,
    /// Refill in micro-tokens per second.
    refill_per_sec: u64,
    /// Current micro-tokens (≤ capacity).
    tokens: u64,
    /// Sub-micro-token remainder carried between refills, in micro-token·µs units (< 1e6).
    carry: u64,
    last: Instant,
    unlimited: bool,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilling at `refill_per_sec` tokens per second.
    /// Negative or non-finite inputs count as 0 (the config rejects them earlier).
    pub fn new(capacity: f64, refill_per_sec: f64, now: Instant) -> Self {
        let capacity = to_micro(capacity);
        TokenBucket {
            capacity,
            refill_per_sec: to_micro(refill_per_sec),
            tokens: capacity,
            carry: 0,
            last: now,
            unlimited: false,
        }
    }

    /// A bucket that allows everything.
    pub fn disabled() -> Self {
        TokenBucket {
            capacity: 0,
            refill_per_sec: 0,
            tokens: 0,
            carry: 0,
            last: Instant::ZERO,
            unlimited: true,
        }
    }

    /// True if this bucket never limits.
    pub fn is_disabled(&self) -> bool {
        self.unlimited
    }

    /// Refills up to `now`, then takes one token if a whole token is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.unlimited {
            return true;
        }
        self.refill(now);
        if self.tokens >= MICRO as u64 {
            self.tokens -= MICRO as u64;
            true
        } else {
            false
        }
    }

    /// Whole tokens available at `now` (after refilling).
    pub fn available(&mut self, now: Instant) -> u64 {
        if self.unlimited {
            return u64::MAX;
        }
        self.refill(now);
        self.tokens / MICRO as u64
    }

    /// Capacity in whole tokens (truncated).
    pub fn capacity(&self) -> u64 {
        self.capacity / MICRO as u64
    }

    /// True if fewer than `percent` % of the capacity is left (after refilling to `now`).
    pub fn below_percent(&mut self, now: Instant, percent: u64) -> bool {
        if self.unlimited {
            return false;
        }
        self.refill(now);
        u128::from(self.tokens) * 100 < u128::from(self.capacity) * u128::from(percent)
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        let elapsed_us = u128::from(now.as_micros() - self.last.as_micros());
        self.last = now;
        // micro-tokens gained = elapsed_us * refill_per_sec / 1e6, remainder carried.
        let scaled = elapsed_us * u128::from(self.refill_per_sec) + u128::from(self.carry);
        let gained = scaled / MICRO;
        let room = u128::from(self.capacity - self.tokens);
        if gained >= room {
            self.tokens = self.capacity;
            self.carry = 0;
        } else {
            // gained < room ≤ capacity ≤ u64::MAX, and the remainder is < 1e6.
            self.tokens += gained as u64;
            self.carry = (scaled % MICRO) as u64;
        }
    }
}

fn to_micro(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // Saturating float→int cast: values beyond u64 clamp to u64::MAX.
        (v * MICRO as f64).round() as u64
    } else {
        0
    }
}

/// Remembers the last `capacity` keys; inserting a new one past capacity forgets the oldest.
#[derive(Clone, Debug)]
pub struct DedupWindow<K> {
    capacity: usize,
    order: VecDeque<K>,
    seen: HashSet<K>,
}

impl<K: Clone + Eq + Hash> DedupWindow<K> {
    /// An empty window holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        DedupWindow {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Records `key`; returns `false` if it was already in the window (a duplicate).
    pub fn insert(&mut self, key: K) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// True if `key` is in the window.
    pub fn contains(&self, key: &K) -> bool {
        self.seen.contains(key)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_starts_full_and_empties() {
        let mut b = TokenBucket::new(3.0, 0.0, Instant::ZERO);
        assert!(b.try_take(Instant::ZERO));
        assert!(b.try_take(Instant::ZERO));
        assert!(b.try_take(Instant::ZERO));
        assert!(!b.try_take(Instant::from_secs(100)), "no refill configured");
    }

    #[test]
    fn bucket_refills_continuously_and_caps_at_capacity() {
        let mut b = TokenBucket::new(10.0, 2.0, Instant::ZERO);
        for _ in 0..10 {
            assert!(b.try_take(Instant::ZERO));
        }
        assert!(
            !b.try_take(Instant::from_millis(499)),
            "0.998 tokens is not a token"
        );
        assert!(b.try_take(Instant::from_millis(500)));
        assert_eq!(b.available(Instant::from_secs(1_000)), 10);
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let mut b = TokenBucket::new(1.0, 1.0, Instant::from_secs(10));
        assert!(b.try_take(Instant::from_secs(10)));
        assert!(!b.try_take(Instant::from_secs(5)));
        assert!(b.try_take(Instant::from_secs(11)));
    }

    #[test]
    fn below_percent_reports_the_warning_zone() {
        let mut b = TokenBucket::new(10.0, 0.0, Instant::ZERO);
        for _ in 0..8 {
            assert!(!b.below_percent(Instant::ZERO, 20));
            b.try_take(Instant::ZERO);
        }
        assert!(!b.below_percent(Instant::ZERO, 20), "exactly 20 % left");
        b.try_take(Instant::ZERO);
        assert!(b.below_percent(Instant::ZERO, 20));
    }

    #[test]
    fn disabled_bucket_allows_everything() {
        let mut b = TokenBucket::disabled();
        assert!((0..10_000).all(|_| b.try_take(Instant::ZERO)));
        assert!(!b.below_percent(Instant::ZERO, 20));
    }

    #[test]
    fn dedup_window_forgets_the_oldest_first() {
        let mut w = DedupWindow::new(2);
        assert!(w.insert("a"));
        assert!(!w.insert("a"));
        assert!(w.insert("b"));
        assert!(w.insert("c"), "evicts a");
        assert!(w.insert("a"), "a was forgotten");
        assert!(!w.insert("c"));
        assert_eq!(w.len(), 2);
    }

    proptest! {
        /// The integer bucket agrees with an exact rational model: tokens(t) =
        /// min(cap, tokens + refill * dt), with all arithmetic in micro-token·µs.
        #[test]
        fn bucket_matches_exact_model(
            cap in 1u32..50,
            refill in 0u32..20,
            steps in proptest::collection::vec((0u64..400_000, any::<bool>()), 1..60),
        ) {
            let mut b = TokenBucket::new(f64::from(cap), f64::from(refill), Instant::ZERO);
            // Model state: micro-token·µs (scaled by 1e6 twice), so it is exact.
            let cap_s = u128::from(cap) * MICRO * MICRO;
            let mut tokens_s = cap_s;
            let mut now = 0u64;
            for (dt, take) in steps {
                now += dt;
                tokens_s = (tokens_s + u128::from(dt) * u128::from(refill) * MICRO).min(cap_s);
                if take {
                    let model_ok = tokens_s >= MICRO * MICRO;
                    if model_ok { tokens_s -= MICRO * MICRO; }
                    prop_assert_eq!(b.try_take(Instant::from_micros(now)), model_ok);
                } else {
                    let whole = (tokens_s / (MICRO * MICRO)) as u64;
                    prop_assert_eq!(b.available(Instant::from_micros(now)), whole);
                }
            }
        }

        #[test]
        fn dedup_window_never_exceeds_capacity(cap in 1usize..20, keys in proptest::collection::vec(0u8..40, 0..200)) {
            let mut w = DedupWindow::new(cap);
            let mut recent: VecDeque<u8> = VecDeque::new();
            for k in keys {
                let fresh = !recent.contains(&k);
                prop_assert_eq!(w.insert(k), fresh);
                if fresh {
                    if recent.len() == cap { recent.pop_front(); }
                    recent.push_back(k);
                }
                prop_assert!(w.len() <= cap);
            }
        }
    }
}
