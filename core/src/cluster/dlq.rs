//! The cluster dead-letter queue (UPSTREAM §10.7, issue 11): every message a peer could not
//! take, with why.
//!
//! A FIFO of [`DeadLetter`]s bounded at 1,000 entries (and, our addition, 16 MiB of topic,
//! payload and peer bytes, so 1,000 maximal payloads cannot pin a gigabyte): when a new entry
//! does not fit, the oldest ones are evicted and counted. An entry larger than the whole byte
//! budget is still recorded, alone. Unlike the original, which records only sends to a closed
//! peer channel, the link and the runtime record every loss, a full queue included
//! ([`DlqReason`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

/// Default entry bound (the original's).
pub const DLQ_MAX_ENTRIES: usize = 1_000;
/// Default byte bound over topic + payload + peer of all entries.
pub const DLQ_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Why a message did not reach a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DlqReason {
    /// The peer's bounded outbound queue was full.
    QueueFull,
    /// The peer's link was closed (its queue gone) when the message was routed.
    PeerGone,
    /// The peer's circuit breaker is open: the node is not trying to reach it.
    BreakerOpen,
    /// Queued while the link was down and discarded before the next connection attempt
    /// (stale data is not replayed, UPSTREAM §10.7).
    Stale,
    /// Still queued when the node stopped or the link was shut down.
    Shutdown,
    /// The frame could not be encoded (oversized topic or payload).
    Unencodable,
}

impl DlqReason {
    /// A short stable text for logs and the Python API's `error` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            DlqReason::QueueFull => "peer queue full",
            DlqReason::PeerGone => "peer channel closed",
            DlqReason::BreakerOpen => "circuit breaker open",
            DlqReason::Stale => "discarded before reconnect",
            DlqReason::Shutdown => "shutdown",
            DlqReason::Unencodable => "frame too large",
        }
    }
}

impl fmt::Display for DlqReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message a peer could not take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The topic.
    pub topic: String,
    /// The payload text (shared with the fan-out that produced it: one allocation per message,
    /// however many peers lost it).
    pub payload: Arc<str>,
    /// The peer's address.
    pub peer: String,
    /// Why.
    pub reason: DlqReason,
}

impl DeadLetter {
    /// The bytes this entry counts against the byte budget.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len() + self.peer.len()
    }
}

/// The bounded FIFO of [`DeadLetter`]s.
#[derive(Clone, Debug)]
pub struct DeadLetterQueue {
    entries: VecDeque<DeadLetter>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    recorded: u64,
    evicted: u64,
}

impl Default for DeadLetterQueue {
    fn default() -> Self {
        DeadLetterQueue::new(DLQ_MAX_ENTRIES, DLQ_MAX_BYTES)
    }
}

impl DeadLetterQueue {
    /// A queue of at most `max_entries` entries (at least 1) and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        DeadLetterQueue {
            entries: VecDeque::new(),
            max_entries: max_entries.max(1),
            max_bytes,
            bytes: 0,
            recorded: 0,
            evicted: 0,
        }
    }

    /// Records `entry`, evicting the oldest entries it needs room from; returns how many were
    /// evicted.
    pub fn push(&mut self, entry: DeadLetter) -> usize {
        let size = entry.size();
        let mut evicted = 0;
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries
                || self.bytes.saturating_add(size) > self.max_bytes)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.size();
                evicted += 1;
            }
        }
        self.bytes += size;
        self.entries.push_back(entry);
        self.recorded += 1;
        self.evicted += evicted as u64;
        evicted
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held now ([`DeadLetter::size`] summed).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries ever recorded.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Entries evicted to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &DeadLetter> {
        self.entries.iter()
    }

    /// Removes and returns every entry, oldest first (`get_cluster_dlq_entries`).
    pub fn drain(&mut self) -> Vec<DeadLetter> {
        self.bytes = 0;
        self.entries.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn letter(i: usize, payload_len: usize) -> DeadLetter {
        DeadLetter {
            topic: format!("t{i}"),
            payload: Arc::from("x".repeat(payload_len)),
            peer: "10.0.0.2:9000".to_owned(),
            reason: DlqReason::QueueFull,
        }
    }

    #[test]
    fn holds_the_newest_thousand_and_counts_the_evicted() {
        let mut q = DeadLetterQueue::default();
        for i in 0..1_500 {
            q.push(letter(i, 10));
        }
        assert_eq!(q.len(), 1_000);
        assert_eq!((q.recorded(), q.evicted()), (1_500, 500));
        assert_eq!(q.iter().next().map(|e| e.topic.as_str()), Some("t500"));
        let all = q.drain();
        assert_eq!(all.len(), 1_000);
        assert_eq!(all.last().map(|e| e.topic.as_str()), Some("t1499"));
        assert!(q.is_empty() && q.bytes() == 0);
    }

    #[test]
    fn the_byte_budget_evicts_oldest_and_keeps_an_oversized_entry_alone() {
        let mut q = DeadLetterQueue::new(10, 130);
        q.push(letter(0, 30));
        q.push(letter(1, 30));
        assert_eq!(q.len(), 2);
        assert_eq!(q.push(letter(2, 60)), 1, "t0 makes room");
        assert_eq!(q.push(letter(3, 500)), 2);
        assert_eq!(q.len(), 1);
        assert_eq!(q.iter().next().map(|e| e.topic.as_str()), Some("t3"));
    }

    #[test]
    fn reasons_read_as_the_python_api_shows_them() {
        assert_eq!(DlqReason::PeerGone.to_string(), "peer channel closed");
        assert_eq!(DlqReason::QueueFull.as_str(), "peer queue full");
    }

    proptest! {
        #[test]
        fn bounds_hold_and_order_is_fifo(
            max_entries in 1usize..20,
            max_bytes in 0usize..400,
            sizes in proptest::collection::vec(0usize..120, 0..100),
        ) {
            let mut q = DeadLetterQueue::new(max_entries, max_bytes);
            for (i, s) in sizes.iter().enumerate() {
                q.push(letter(i, *s));
                prop_assert!(q.len() <= max_entries);
                prop_assert!(q.len() == 1 || q.bytes() <= max_bytes);
                prop_assert_eq!(q.bytes(), q.iter().map(DeadLetter::size).sum::<usize>());
                prop_assert_eq!(q.recorded(), i as u64 + 1);
                prop_assert_eq!(q.evicted() + q.len() as u64, q.recorded());
                // The newest entry is always kept; the held ones are the newest, in order.
                let held: Vec<String> = q.iter().map(|e| e.topic.clone()).collect();
                let want: Vec<String> = (i + 1 - q.len()..=i).map(|k| format!("t{k}")).collect();
                prop_assert_eq!(held, want);
            }
        }
    }
}
