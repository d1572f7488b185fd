//! One topic's ring: a fixed array of slots holding the newest messages of one epoch.
//!
//! Offsets are contiguous: from 0 for this node's own stream, from the first offset received
//! for a stream another node stamped (cross-node recovery, D16). The ring holds offsets `tail..head`; offset `o` lives in slot
//! `o & (capacity − 1)`. Pushing into a full ring overwrites the oldest message and advances the
//! tail; [`Ring::pop_oldest`] advances it early (memory budget). Slot memory is allocated once,
//! at creation, so a ring's fixed cost is known before it exists.

use bytes::Bytes;

use super::Epoch;
use crate::time::Instant;

/// A topic's stored messages and their bookkeeping.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) epoch: Epoch,
    /// True when another node stamped this stream (this node stores it, never extends it).
    pub(crate) foreign: bool,
    /// `capacity` slots, a power of two; `Some` exactly for offsets `tail..head`.
    slots: Box<[Option<Bytes>]>,
    /// Oldest stored offset.
    tail: u64,
    /// Next offset to assign.
    head: u64,
    /// Sum of the stored messages' lengths.
    payload_bytes: usize,
    /// When the last message was pushed (the store keeps these non-decreasing).
    pub(crate) last_write: Instant,
    /// The store's write sequence number of the last push: the LRU key.
    pub(crate) write_seq: u64,
}

impl Ring {
    /// An empty ring of this node's own stream, `capacity` slots (a power of two).
    #[cfg(test)]
    pub(crate) fn new(epoch: Epoch, capacity: usize, now: Instant, write_seq: u64) -> Self {
        Ring::starting_at(epoch, 0, false, capacity, now, write_seq)
    }

    /// An empty ring whose first push gets offset `first`.
    pub(crate) fn starting_at(
        epoch: Epoch,
        first: u64,
        foreign: bool,
        capacity: usize,
        now: Instant,
        write_seq: u64,
    ) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Ring {
            epoch,
            foreign,
            slots: std::iter::repeat_with(|| None).take(capacity).collect(),
            tail: first,
            head: first,
            payload_bytes: 0,
            last_write: now,
            write_seq,
        }
    }

    /// Whether another push would overflow the offset counter (never in practice: 2^64 pushes).
    pub(crate) fn is_exhausted(&self) -> bool {
        self.head == u64::MAX
    }

    /// The offset the next push gets.
    pub(crate) fn next_offset(&self) -> u64 {
        self.head
    }

    /// Oldest stored offset (equal to `head` when empty).
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// Stored messages.
    pub(crate) fn len(&self) -> u64 {
        self.head - self.tail
    }

    /// Sum of the stored messages' lengths.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// The offset of the newest message, `None` when empty.
    pub(crate) fn last_offset(&self) -> Option<u64> {
        self.head.checked_sub(1).filter(|_| self.len() > 0)
    }

    /// Stores `msg` at the next offset, overwriting the oldest message when full.
    /// Returns the payload bytes freed by the overwrite. The caller checks [`Ring::is_exhausted`].
    pub(crate) fn push(&mut self, msg: Bytes) -> usize {
        let freed = if self.len() == self.capacity() {
            self.pop_oldest()
        } else {
            0
        };
        self.payload_bytes += msg.len();
        let i = self.index(self.head);
        self.slots[i] = Some(msg);
        self.head += 1;
        freed
    }

    /// Drops the oldest message and returns its length (0 when empty).
    pub(crate) fn pop_oldest(&mut self) -> usize {
        if self.len() == 0 {
            return 0;
        }
        let i = self.index(self.tail);
        let freed = self.slots[i].take().map_or(0, |b| b.len());
        self.tail += 1;
        self.payload_bytes -= freed;
        freed
    }

    /// Messages at offsets `first..head`, oldest first; `first` must be within `tail..=head`.
    pub(crate) fn messages_from(&self, first: u64) -> Vec<Bytes> {
        debug_assert!(self.tail <= first && first <= self.head);
        (first..self.head)
            .map(|o| {
                self.slots[self.index(o)]
                    .clone()
                    .expect("invariant: slots of offsets tail..head are filled")
            })
            .collect()
    }

    fn capacity(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, offset: u64) -> usize {
        // The mask is below the slot count, so the cast to usize is lossless.
        (offset & (self.capacity() - 1)) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn full_ring_overwrites_the_oldest_and_advances_the_tail() {
        let mut r = Ring::new(Epoch(1), 4, Instant::ZERO, 0);
        for i in 0..6 {
            r.push(msg(&format!("m{i}")));
        }
        assert_eq!((r.tail(), r.next_offset(), r.len()), (2, 6, 4));
        assert_eq!(
            r.messages_from(2),
            vec![msg("m2"), msg("m3"), msg("m4"), msg("m5")]
        );
        assert_eq!(r.payload_bytes(), 8);
        assert_eq!(r.last_offset(), Some(5));
    }

    #[test]
    fn pop_oldest_frees_payload_until_empty() {
        let mut r = Ring::new(Epoch(1), 2, Instant::ZERO, 0);
        r.push(msg("abc"));
        r.push(msg("de"));
        assert_eq!(r.pop_oldest(), 3);
        assert_eq!(r.pop_oldest(), 2);
        assert_eq!(r.pop_oldest(), 0);
        assert_eq!((r.len(), r.payload_bytes(), r.last_offset()), (0, 0, None));
        assert_eq!(r.messages_from(2), Vec::<Bytes>::new());
    }
}
