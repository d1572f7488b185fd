//! Dedup of unstamped messages by `id`, bounded by count and by age (UPSTREAM §11.1: window
//! 10 000, entries older than 300 s pruned).
//!
//! Owns [`IdWindow`]. Input: `(now, id)`; output: fresh or duplicate. Invariants: at most
//! `capacity` ids are held (the oldest is forgotten first); an id seen at `t` is forgotten at
//! `t + max_age` at the latest; memory per id is bounded whatever the peer sends, because ids
//! longer than [`MAX_VERBATIM_ID_BYTES`] are kept as their SHA-256 digest. Collections are a
//! `VecDeque` (insertion order) and a `BTreeSet` (lookup), both deterministic.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use sha2::Digest as _;

use crate::time::Instant;

/// Ids up to this many bytes are remembered as they are; longer ones by their SHA-256 digest,
/// so a peer sending megabyte ids cannot make the window hold gigabytes.
pub(super) const MAX_VERBATIM_ID_BYTES: usize = 64;

/// How an id is remembered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum IdKey {
    Verbatim(String),
    Digest([u8; 32]),
}

impl IdKey {
    fn of(id: &str) -> IdKey {
        if id.len() <= MAX_VERBATIM_ID_BYTES {
            IdKey::Verbatim(id.to_owned())
        } else {
            IdKey::Digest(sha2::Sha256::digest(id.as_bytes()).into())
        }
    }
}

/// The last `capacity` ids seen within `max_age`.
#[derive(Clone, Debug)]
pub(super) struct IdWindow {
    capacity: usize,
    max_age: Duration,
    /// Ids in the order they were first seen, with when.
    order: VecDeque<(Instant, IdKey)>,
    seen: BTreeSet<IdKey>,
}

impl IdWindow {
    /// An empty window (`capacity` at least 1).
    pub(super) fn new(capacity: usize, max_age: Duration) -> IdWindow {
        IdWindow {
            capacity: capacity.max(1),
            max_age,
            order: VecDeque::new(),
            seen: BTreeSet::new(),
        }
    }

    /// Forgets ids seen `max_age` or longer before `now`, then records `id`; returns `false`
    /// if it is still remembered (a duplicate).
    pub(super) fn insert(&mut self, now: Instant, id: &str) -> bool {
        self.prune(now);
        let key = IdKey::of(id);
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity {
            self.pop_oldest();
        }
        self.seen.insert(key.clone());
        self.order.push_back((now, key));
        true
    }

    /// Ids held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    fn prune(&mut self, now: Instant) {
        while let Some((seen_at, _)) = self.order.front() {
            if now.saturating_duration_since(*seen_at) < self.max_age {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.seen.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_age_are_refused_and_expire_after_it() {
        let mut w = IdWindow::new(10, Duration::from_secs(300));
        assert!(w.insert(Instant::from_secs(0), "a"));
        assert!(!w.insert(Instant::from_secs(299), "a"));
        assert!(w.insert(Instant::from_secs(300), "a"), "forgotten at 300 s");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn the_oldest_id_is_forgotten_when_full() {
        let mut w = IdWindow::new(2, Duration::from_secs(300));
        let t = Instant::ZERO;
        assert!(w.insert(t, "a"));
        assert!(w.insert(t, "b"));
        assert!(w.insert(t, "c"));
        assert!(w.insert(t, "a"), "a was evicted by c");
        assert!(!w.insert(t, "c"));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn long_ids_are_remembered_by_digest() {
        let mut w = IdWindow::new(4, Duration::from_secs(300));
        let long = "x".repeat(10_000);
        let other = format!("{}y", "x".repeat(9_999));
        assert!(w.insert(Instant::ZERO, &long));
        assert!(!w.insert(Instant::ZERO, &long));
        assert!(w.insert(Instant::ZERO, &other));
        assert!(w.seen.iter().all(|k| matches!(k, IdKey::Digest(_))));
    }
}
