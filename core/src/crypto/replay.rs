//! The bounded IV cache behind replay protection (CONTRACT D8).
//!
//! Every record a session accepts has a random 12-byte IV; a second record with an IV already
//! accepted is a replay. IVs are random, not counters, so there is no sliding-window bitmap:
//! the cache remembers the IVs themselves, bounded two ways:
//!
//! - **age**: an IV accepted at `t` is forgotten once `now ≥ t + max_age` (default 5 minutes);
//! - **count**: at most `capacity` IVs (default 10 000). Accepting one more when full forgets
//!   the **oldest** first (FIFO by acceptance), and counts it in `evicted`.
//!
//! So the guarantee is: an authentic record is refused if its IV was accepted within the last
//! `max_age` *and* among the last `capacity` accepted records. A replay older than either bound
//! is accepted again. Only authenticated records enter the cache (the session checks the tag
//! first), so a peer without the key cannot push entries out; a key rotation ends the exposure
//! for good once the old key's grace window closes (its records no longer authenticate).
//!
//! Ordered collections only (a `BTreeSet`, a `VecDeque`): no hashing of peer-chosen bytes, no
//! OS-seeded hasher, the same behaviour on every run. Lookups are `O(log capacity)`.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::record::Iv;
use crate::time::Instant;

/// A bounded set of recently accepted IVs.
#[derive(Clone)]
pub(crate) struct ReplayCache {
    capacity: usize,
    max_age: Duration,
    seen: BTreeSet<Iv>,
    /// Acceptance order: oldest first. Times never decrease (see [`ReplayCache::clamp`]).
    order: VecDeque<(Instant, Iv)>,
    /// The latest `now` seen, so an earlier `now` cannot break the ordering of `order`.
    latest: Instant,
    /// IVs forgotten because the cache was full (not because they aged out).
    evicted: u64,
}

impl ReplayCache {
    /// An empty cache. `capacity ≥ 1` and `max_age > 0` are checked by the session config.
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        ReplayCache {
            capacity: capacity.max(1),
            max_age,
            seen: BTreeSet::new(),
            order: VecDeque::new(),
            latest: Instant::ZERO,
            evicted: 0,
        }
    }

    /// Records `iv` as accepted at `now`; false (and nothing changes) if it is already there.
    pub(crate) fn check_and_insert(&mut self, now: Instant, iv: Iv) -> bool {
        let now = self.clamp(now);
        self.prune(now);
        if self.seen.contains(&iv) {
            return false;
        }
        while self.order.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.seen.remove(&oldest);
            self.evicted += 1;
        }
        self.seen.insert(iv);
        self.order.push_back((now, iv));
        true
    }

    /// Forgets every IV whose age has reached `max_age`.
    pub(crate) fn prune(&mut self, now: Instant) {
        let now = self.clamp(now);
        while let Some(&(at, iv)) = self.order.front() {
            if now.saturating_duration_since(at) < self.max_age {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&iv);
        }
    }

    /// IVs remembered now.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// IVs forgotten at the count bound so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Time never goes backwards inside the cache: an earlier `now` counts as the latest seen.
    fn clamp(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }
}

/// Sizes only: ten thousand IVs are no help in a log line.
impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("len", &self.order.len())
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .field("evicted", &self.evicted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(n: u32) -> Iv {
        let mut iv = [0u8; 12];
        iv[..4].copy_from_slice(&n.to_be_bytes());
        iv
    }

    #[test]
    fn a_repeated_iv_is_refused_until_it_ages_out() {
        let mut c = ReplayCache::new(10, Duration::from_secs(300));
        assert!(c.check_and_insert(Instant::from_secs(0), iv(1)));
        assert!(!c.check_and_insert(Instant::from_secs(299), iv(1)));
        assert!(
            c.check_and_insert(Instant::from_secs(300), iv(1)),
            "aged out at exactly max_age"
        );
        assert!(
            !c.check_and_insert(Instant::from_secs(301), iv(1)),
            "remembered again"
        );
    }

    #[test]
    fn when_full_the_oldest_iv_is_forgotten_first() {
        let mut c = ReplayCache::new(3, Duration::from_secs(300));
        for n in 1..=3 {
            assert!(c.check_and_insert(Instant::from_secs(1), iv(n)));
        }
        assert!(c.check_and_insert(Instant::from_secs(2), iv(4)));
        assert_eq!((c.len(), c.evicted()), (3, 1));
        assert!(
            c.check_and_insert(Instant::from_secs(3), iv(1)),
            "the oldest was forgotten"
        );
        assert!(!c.check_and_insert(Instant::from_secs(3), iv(3)));
        assert!(!c.check_and_insert(Instant::from_secs(3), iv(4)));
        assert_eq!(c.evicted(), 2, "re-inserting 1 pushed out 2");
        assert!(c.check_and_insert(Instant::from_secs(3), iv(2)));
    }

    #[test]
    fn pruning_by_age_frees_room_without_counting_evictions() {
        let mut c = ReplayCache::new(2, Duration::from_secs(10));
        assert!(c.check_and_insert(Instant::from_secs(0), iv(1)));
        assert!(c.check_and_insert(Instant::from_secs(5), iv(2)));
        c.prune(Instant::from_secs(10));
        assert_eq!(c.len(), 1);
        assert!(c.check_and_insert(Instant::from_secs(10), iv(3)));
        assert_eq!(c.evicted(), 0);
        assert!(!c.check_and_insert(Instant::from_secs(14), iv(2)));
        c.prune(Instant::from_secs(20));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn an_earlier_now_neither_panics_nor_resurrects_entries() {
        let mut c = ReplayCache::new(4, Duration::from_secs(10));
        assert!(c.check_and_insert(Instant::from_secs(100), iv(1)));
        assert!(
            c.check_and_insert(Instant::from_secs(50), iv(2)),
            "counted as t=100"
        );
        assert!(!c.check_and_insert(Instant::from_secs(0), iv(1)));
        c.prune(Instant::from_secs(110));
        assert_eq!(
            c.len(),
            0,
            "both were accepted at t=100 and aged out together"
        );
    }
}
