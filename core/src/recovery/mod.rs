//! Message recovery: the per-topic rings that let a reconnecting client replay what it missed.
//!
//! Owns one ring per topic (created lazily by the first publish to it, whether or not anyone is
//! subscribed), the epoch of each ring, and the global memory budget. UPSTREAM §8 is the contract;
//! besides this node's own streams it stores the streams other nodes stamped (cross-node
//! recovery, D16): [`RecoveryStore::store_foreign`] keeps a forwarded message under its origin's
//! `(epoch, offset)`, so a client that fails over to this node recovers with the same position.
//!
//! Inputs: [`RecoveryStore::publish`] (topic, text, `now`, entropy, and a closure that frames the
//! stamped text), [`RecoveryStore::evict_expired`] (the driver's timer, due at
//! [`RecoveryStore::next_expiry`]). Queries: [`RecoveryStore::since`] (the §8.3 lookup),
//! [`RecoveryStore::position`]. No clock, no I/O; the only randomness is one draw per store (see
//! [`Epoch`]).
//!
//! Invariants (checked after every step of the property tests):
//!
//! - offsets of one epoch are contiguous (from 0 for our own streams); a ring keeps a contiguous
//!   range of them, and a foreign stream that arrives with a gap starts its ring again;
//! - a ring holding another node's stream is never extended with this node's offsets: a local
//!   publish on that topic starts a new epoch of our own;
//! - a [`Recovery::Recovered`] answer holds exactly offsets `after_offset+1 ..= last_offset`, in
//!   order: never a partial replay, never a silent gap — anything else is `NotRecovered`;
//! - a ring that is dropped (TTL, budget) and recreated gets a new epoch, so an old position can
//!   never match new offsets;
//! - every ring holds at least one message: rings are created by a publish that stores into them,
//!   budget trimming drops a ring instead of emptying it, and TTL drops whole rings;
//! - after every publish, [`RecoveryStore::total_bytes`] is at most the budget.
//!
//! Memory (fixing UPSTREAM §13.3 #9, CONTRACT D11): the budget counts stored payload bytes *and*
//! each ring's fixed cost — its slot array (`capacity × size_of::<Option<Bytes>>()`), the ring
//! record, the map entries and the topic name — and is enforced on every publish, not by a periodic
//! sweep. Over budget, whole rings are dropped least-recently-written first, never the one just
//! written while another exists; if that ring alone is over budget its oldest messages are dropped
//! (the tail advances); if even its newest message does not fit, the ring is dropped. A ring whose
//! fixed cost alone exceeds the budget is never allocated: the publish is stamped (epoch, offset 0)
//! and delivered but not stored, and a recovery for it answers [`Recovery::NoHistory`]. So the
//! number of rings is bounded by `budget / fixed cost`.
//!
//! Stored messages are the very [`Bytes`] the driver broadcasts (the `frame` closure's result), so
//! a live copy and a replay are byte-identical and share one allocation.
//!
//! Time: `now` values are expected non-decreasing; an earlier `now` is treated as the latest seen,
//! so "least recently written" and "expires first" are the same order.
//!
//! Cost: publish is O(log topics) (ordered maps) and O(1) in ring size, amortised over evictions;
//! [`RecoveryStore::since`] is O(log topics + k) for k replayed messages.

mod config;
mod epoch;
mod ring;
mod stamp;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::mem::size_of;
use std::sync::Arc;

use bytes::Bytes;

pub use config::RecoveryConfig;
pub use epoch::{Epoch, EpochParseError};

use crate::rand::Entropy;
use crate::time::Instant;
use epoch::EpochSource;
use ring::Ring;

/// What [`RecoveryStore::publish`] did: the stamp it gave the message and the framed bytes to
/// broadcast (the same `Bytes` the store keeps).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Published {
    /// The epoch of the topic's ring.
    pub epoch: Epoch,
    /// The message's offset in that epoch.
    pub offset: u64,
    /// What the `frame` closure returned for the stamped text.
    pub bytes: Bytes,
}

/// What [`RecoveryStore::store_foreign`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Foreign {
    /// What the `frame` closure returned for the stamped text.
    pub bytes: Bytes,
    /// True when this identity was already received (the caller need not deliver it again).
    pub duplicate: bool,
}

/// The answer to [`RecoveryStore::since`] (UPSTREAM §8.3, local path).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Recovery {
    /// Every missed message is still stored: `messages` are offsets `after_offset+1 ..=
    /// last_offset` in order (empty when nothing was missed).
    Recovered {
        /// The ring's epoch (the one asked for).
        epoch: Epoch,
        /// The newest stored offset (head − 1).
        last_offset: u64,
        /// The missed messages, oldest first.
        messages: Vec<Bytes>,
    },
    /// The ring exists but cannot fill the gap: another epoch, messages evicted, or more than
    /// `max_messages` missed. The client must resynchronise from `(epoch, last_offset)`.
    NotRecovered {
        /// The ring's current epoch.
        epoch: Epoch,
        /// The newest stored offset (head − 1).
        last_offset: u64,
    },
    /// No ring for this topic.
    NoHistory,
}

/// Fixed bytes charged per ring besides its slot array and topic name: the ring record, its two
/// map entries (topic → ring, write sequence → topic) and the shared topic's `Arc` header. An
/// estimate of allocator reality, kept deliberately on the high side.
const RING_RECORD_BYTES: usize =
    size_of::<Ring>() + 2 * size_of::<Arc<str>>() + size_of::<u64>() + 2 * size_of::<usize>() + 64;

/// Bytes one slot of a ring's array costs, filled or not.
const SLOT_BYTES: usize = size_of::<Option<Bytes>>();

/// The recovery rings of one node, under one memory budget.
#[derive(Debug)]
pub struct RecoveryStore {
    config: RecoveryConfig,
    /// `buffer_size × SLOT_BYTES`, `None` when that overflows (no ring can ever be stored).
    slot_array_bytes: Option<usize>,
    rings: BTreeMap<Arc<str>, Ring>,
    /// Write sequence number of each ring's last publish → its topic: least recently written first.
    lru: BTreeMap<u64, Arc<str>>,
    epochs: EpochSource,
    next_write_seq: u64,
    latest_write: Instant,
    payload_bytes: usize,
    fixed_bytes: usize,
}

impl RecoveryStore {
    /// An empty store. `config.buffer_size` is rounded up to a power of two (at least 1).
    pub fn new(config: RecoveryConfig) -> Self {
        let config = RecoveryConfig {
            buffer_size: config::ring_capacity(config.buffer_size),
            ..config
        };
        RecoveryStore {
            config,
            slot_array_bytes: config.buffer_size.checked_mul(SLOT_BYTES),
            rings: BTreeMap::new(),
            lru: BTreeMap::new(),
            epochs: EpochSource::default(),
            next_write_seq: 0,
            latest_write: Instant::ZERO,
            payload_bytes: 0,
            fixed_bytes: 0,
        }
    }

    /// The settings in force (with the rounded ring capacity).
    pub fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// Stamps `text` for `topic`, frames it once with `frame`, stores the result and returns it.
    ///
    /// Creates the topic's ring (with a new epoch) when there is none. The stored and returned
    /// `Bytes` are the same, so the driver can send them to every live subscriber. Afterwards the
    /// memory budget holds (see the module doc for what is dropped to make it hold).
    pub fn publish<F: FnOnce(&str) -> Bytes>(
        &mut self,
        topic: &str,
        text: &str,
        now: Instant,
        rng: &mut (impl Entropy + ?Sized),
        frame: F,
    ) -> Published {
        // An exhausted offset counter starts a new epoch rather than overflow (2^64 publishes);
        // a ring holding another node's stream is never extended with our offsets (D16): our
        // stream starts again under a new epoch.
        if self
            .rings
            .get(topic)
            .is_some_and(|r| r.is_exhausted() || r.foreign)
        {
            self.drop_ring(topic);
        }
        let (epoch, offset) = match self.rings.get(topic) {
            Some(ring) => (ring.epoch, ring.next_offset()),
            None => (self.epochs.next(rng), 0),
        };
        // Stamp and frame before touching any state, so a panicking `frame` leaves none behind.
        let bytes = frame(&stamp::stamp(topic, epoch, offset, text));
        self.insert(topic, epoch, offset, false, &bytes, now);
        Published {
            epoch,
            offset,
            bytes,
        }
    }

    /// Stores a publication another node stamped `(epoch, offset)` (cross-node recovery, D16):
    /// stamps `text` with that identity, frames it with `frame`, and keeps it so a client that
    /// fails over to this node can recover it.
    ///
    /// The next offset of the same stream is appended; an offset already passed is a duplicate
    /// (not stored again, [`Foreign::duplicate`]); another epoch, or a gap (messages lost on the
    /// way), starts the ring again at this message — so a recovery across the gap answers
    /// `NotRecovered`, never a silent hole.
    pub fn store_foreign<F: FnOnce(&str) -> Bytes>(
        &mut self,
        topic: &str,
        text: &str,
        epoch: Epoch,
        offset: u64,
        now: Instant,
        frame: F,
    ) -> Foreign {
        let bytes = frame(&stamp::stamp(topic, epoch, offset, text));
        if let Some(ring) = self.rings.get(topic) {
            if ring.epoch == epoch && offset < ring.next_offset() {
                return Foreign {
                    bytes,
                    duplicate: true,
                };
            }
            if ring.epoch != epoch || offset != ring.next_offset() || ring.is_exhausted() {
                self.drop_ring(topic);
            }
        }
        // A stream at the very end of the offset space cannot be extended: deliver, keep nothing.
        if offset != u64::MAX {
            self.insert(topic, epoch, offset, true, &bytes, now);
        }
        Foreign {
            bytes,
            duplicate: false,
        }
    }

    /// Pushes `bytes` at `offset` into `topic`'s ring, creating it (starting at `offset`) when
    /// there is none and its fixed cost fits; then enforces the budget.
    fn insert(
        &mut self,
        topic: &str,
        epoch: Epoch,
        offset: u64,
        foreign: bool,
        bytes: &Bytes,
        now: Instant,
    ) {
        let now = now.max(self.latest_write);
        self.latest_write = now;
        let write_seq = self.next_write_seq;
        self.next_write_seq = write_seq
            .checked_add(1)
            .expect("invariant: fewer than 2^64 publishes per store");
        let key: Arc<str> = match self.rings.get_key_value(topic) {
            Some((key, ring)) => {
                debug_assert_eq!((ring.epoch, ring.next_offset()), (epoch, offset));
                Arc::clone(key)
            }
            None => {
                // Not even an empty ring fits the budget: deliver, keep nothing.
                let Some(cost) = self.ring_fixed_bytes(topic) else {
                    return;
                };
                let key: Arc<str> = Arc::from(topic);
                let ring = Ring::starting_at(
                    epoch,
                    offset,
                    foreign,
                    self.config.buffer_size,
                    now,
                    write_seq,
                );
                self.rings.insert(Arc::clone(&key), ring);
                self.lru.insert(write_seq, Arc::clone(&key));
                self.fixed_bytes += cost;
                key
            }
        };

        let ring = self
            .rings
            .get_mut(topic)
            .expect("invariant: the ring was found or created above");
        self.payload_bytes -= ring.push(bytes.clone());
        self.payload_bytes += bytes.len();
        self.lru.remove(&ring.write_seq);
        ring.write_seq = write_seq;
        ring.last_write = now;
        self.lru.insert(write_seq, key);

        self.enforce_budget(topic);
    }

    /// The §8.3 lookup: what a client that has `(epoch, after_offset)` of `topic` missed.
    ///
    /// `after_offset` is the last offset the client has; `u64::MAX` means "nothing to replay".
    pub fn since(&self, topic: &str, epoch: Epoch, after_offset: u64) -> Recovery {
        let Some(ring) = self.rings.get(topic) else {
            return Recovery::NoHistory;
        };
        let Some(last_offset) = ring.last_offset() else {
            // Unreachable by the module invariant; answering NoHistory never hides a gap.
            debug_assert!(false, "invariant: every ring holds a message");
            return Recovery::NoHistory;
        };
        let not_recovered = Recovery::NotRecovered {
            epoch: ring.epoch,
            last_offset,
        };
        if ring.epoch != epoch {
            return not_recovered;
        }
        let first = match after_offset.checked_add(1) {
            Some(first) if first <= last_offset => first,
            // Nothing missed (or a position from the future, as the original answers it).
            _ => {
                return Recovery::Recovered {
                    epoch,
                    last_offset,
                    messages: Vec::new(),
                };
            }
        };
        let missed = last_offset - first + 1;
        if first < ring.tail() || missed > self.config.max_messages as u64 {
            return not_recovered;
        }
        Recovery::Recovered {
            epoch,
            last_offset,
            messages: ring.messages_from(first),
        }
    }

    /// The topic's current epoch and newest offset, `None` when it has no ring.
    pub fn position(&self, topic: &str) -> Option<(Epoch, u64)> {
        let ring = self.rings.get(topic)?;
        Some((ring.epoch, ring.last_offset()?))
    }

    /// Everything stored for `topic`: its epoch, the offset of the first message returned, and
    /// the newest `limit` messages, oldest first. `None` when it has no ring.
    pub fn history(&self, topic: &str, limit: usize) -> Option<(Epoch, u64, Vec<Bytes>)> {
        let ring = self.rings.get(topic)?;
        let last = ring.last_offset()?;
        let available = last - ring.tail() + 1;
        let take = available.min(limit as u64);
        if take == 0 {
            return Some((ring.epoch, last + 1, Vec::new()));
        }
        let first = last + 1 - take;
        Some((ring.epoch, first, ring.messages_from(first)))
    }

    /// The oldest offset still stored for the topic, `None` when it has no ring.
    pub fn oldest_offset(&self, topic: &str) -> Option<u64> {
        self.rings.get(topic).map(Ring::tail)
    }

    /// Drops every ring with no write for `ttl` as of `now`; returns how many.
    pub fn evict_expired(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while let Some(expiry) = self.next_expiry() {
            if now < expiry {
                break;
            }
            let (_, topic) = self
                .lru
                .pop_first()
                .expect("invariant: next_expiry came from the first LRU entry");
            self.drop_ring(&topic);
            dropped += 1;
        }
        dropped
    }

    /// When the least recently written ring expires: the next instant
    /// [`RecoveryStore::evict_expired`] has work to do. `None` when there are no rings.
    pub fn next_expiry(&self) -> Option<Instant> {
        let (_, topic) = self.lru.first_key_value()?;
        let ring = self
            .rings
            .get(topic)
            .expect("invariant: every LRU entry names a live ring");
        Some(ring.last_write.saturating_add(self.config.ttl))
    }

    /// Topics with a ring.
    pub fn topic_count(&self) -> usize {
        self.rings.len()
    }

    /// What the budget counts: [`RecoveryStore::payload_bytes`] plus every ring's fixed cost
    /// (slot array, record, map entries, topic name).
    pub fn total_bytes(&self) -> usize {
        self.payload_bytes + self.fixed_bytes
    }

    /// Sum of the stored messages' lengths.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// The fixed cost of a ring for `topic`, `None` when it alone would exceed the budget.
    fn ring_fixed_bytes(&self, topic: &str) -> Option<usize> {
        self.slot_array_bytes?
            .checked_add(RING_RECORD_BYTES)?
            .checked_add(topic.len())
            .filter(|&cost| cost <= self.config.memory_budget)
    }

    /// Drops whole rings, least recently written first and `hot` last, then trims `hot`, until
    /// the budget holds.
    fn enforce_budget(&mut self, hot: &str) {
        while self.total_bytes() > self.config.memory_budget {
            let (_, oldest) = self
                .lru
                .first_key_value()
                .expect("invariant: a non-zero total means a ring exists");
            if &**oldest != hot {
                let oldest = Arc::clone(oldest);
                self.drop_ring(&oldest);
                continue;
            }
            // `hot` has the newest write, so it is the only ring left.
            let ring = self
                .rings
                .get_mut(hot)
                .expect("invariant: every LRU entry names a live ring");
            if ring.len() > 1 {
                self.payload_bytes -= ring.pop_oldest();
            } else {
                self.drop_ring(hot);
            }
        }
    }

    /// Removes `topic`'s ring and its accounting; false when it had none.
    fn drop_ring(&mut self, topic: &str) -> bool {
        let Some((key, ring)) = self.rings.remove_entry(topic) else {
            return false;
        };
        self.lru.remove(&ring.write_seq);
        self.payload_bytes -= ring.payload_bytes();
        self.fixed_bytes -= self
            .ring_fixed_bytes(&key)
            .expect("invariant: a stored ring's fixed cost fit the budget when it was created");
        true
    }

    /// Panics when the accounting or the indexes disagree with the rings (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        let payload: usize = self.rings.values().map(Ring::payload_bytes).sum();
        let fixed: usize = self
            .rings
            .keys()
            .map(|t| self.ring_fixed_bytes(t).expect("stored ring fits"))
            .sum();
        assert_eq!(self.payload_bytes, payload, "payload accounting");
        assert_eq!(self.fixed_bytes, fixed, "fixed-cost accounting");
        assert!(self.total_bytes() <= self.config.memory_budget, "budget");
        assert_eq!(self.lru.len(), self.rings.len(), "one LRU entry per ring");
        for (seq, topic) in &self.lru {
            assert_eq!(self.rings[topic].write_seq, *seq, "LRU entry of {topic}");
        }
        for (topic, ring) in &self.rings {
            assert!(ring.len() > 0, "ring {topic} is empty");
            assert!(
                ring.len() <= self.config.buffer_size as u64,
                "ring {topic} over capacity"
            );
        }
    }
}
