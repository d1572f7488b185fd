//! Interest routing (UPSTREAM §10.6, issue 11): which topics a peer wants, and which topics this
//! node wants.
//!
//! - [`PeerInterest`] is what one remote peer told us over one link session: SUB adds, UNSUB
//!   removes, RESYNC replaces (its continuation frames extend, and only directly after a RESYNC
//!   of the same session). Unlike the original there is **no "send everything" state**: a peer
//!   that has said nothing yet is sent nothing, and our peers send a full RESYNC right after the
//!   HELLO, so there is no window where every message goes everywhere. A peer that did not
//!   negotiate interest routing cannot say what it wants; the link then routes everything to it.
//! - [`LocalInterest`] counts this node's subscriptions per topic key (exact topic or glob
//!   pattern, fan-out and queue-group members alike) and reports the 0→1 and 1→0 transitions
//!   that become SUB and UNSUB frames; its key list is the RESYNC payload.
//!
//! Bounds: a peer's set holds at most [`MAX_PEER_TOPICS`] keys (the original's cap); keys past it
//! are ignored and counted. Pattern matching is [`crate::glob::glob_match`], the matcher local
//! subscriptions use, so "routed to a peer" and "delivered by that peer" agree.

use std::collections::{BTreeMap, BTreeSet};

use crate::glob::{glob_match, is_glob};

/// Distinct topics and patterns one peer may register (UPSTREAM §10.6).
pub const MAX_PEER_TOPICS: usize = 1_000_000;

/// One remote peer's interest, as learned on the current link session.
#[derive(Clone, Debug, Default)]
pub struct PeerInterest {
    exact: BTreeSet<String>,
    patterns: BTreeSet<String>,
    /// True between a RESYNC and the next non-RESYNC frame: continuation frames may extend.
    resync_open: bool,
    /// True once a RESYNC arrived: the set is the peer's word, not just what SUBs added.
    synced: bool,
    ignored: u64,
}

impl PeerInterest {
    /// An empty interest: nothing is routed until the peer says what it wants.
    pub fn new() -> PeerInterest {
        PeerInterest::default()
    }

    /// True when a message on `topic` should be sent to this peer.
    pub fn matches(&self, topic: &str) -> bool {
        self.exact.contains(topic) || self.patterns.iter().any(|p| glob_match(p, topic))
    }

    /// SUB: adds a topic or pattern. Returns false when it was ignored (cap reached).
    pub fn subscribe(&mut self, key: &str) -> bool {
        self.resync_open = false;
        self.insert(key)
    }

    /// UNSUB: removes a topic or pattern (unknown keys are ignored).
    pub fn unsubscribe(&mut self, key: &str) {
        self.resync_open = false;
        if is_glob(key) {
            self.patterns.remove(key);
        } else {
            self.exact.remove(key);
        }
    }

    /// RESYNC: `continuation == false` replaces the whole set; `true` extends it, but only right
    /// after a RESYNC frame (any other frame in between closes the sequence). Returns false when
    /// the frame was refused (a continuation out of sequence) — the caller treats that as a
    /// protocol error.
    pub fn resync(&mut self, topics: &[String], continuation: bool) -> bool {
        if continuation && !self.resync_open {
            return false;
        }
        if !continuation {
            self.exact.clear();
            self.patterns.clear();
        }
        for t in topics {
            self.insert(t);
        }
        self.resync_open = true;
        self.synced = true;
        true
    }

    /// True once the peer sent its RESYNC on this session (every session starts with one, even
    /// empty): before that, an empty set means "not told yet", not "wants nothing".
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Marks the end of a RESYNC sequence (any frame other than RESYNC does it).
    pub fn close_resync(&mut self) {
        self.resync_open = false;
    }

    /// Topics and patterns registered.
    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    /// True when the peer wants nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys ignored because the set was full.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    fn insert(&mut self, key: &str) -> bool {
        let set = if is_glob(key) {
            &mut self.patterns
        } else {
            &mut self.exact
        };
        if set.contains(key) {
            return true;
        }
        if self.exact.len() + self.patterns.len() >= MAX_PEER_TOPICS {
            self.ignored += 1;
            return false;
        }
        let set = if is_glob(key) {
            &mut self.patterns
        } else {
            &mut self.exact
        };
        set.insert(key.to_owned());
        true
    }
}

/// This node's subscriptions per topic key: the source of SUB, UNSUB and RESYNC.
#[derive(Clone, Debug, Default)]
pub struct LocalInterest {
    counts: BTreeMap<String, usize>,
}

impl LocalInterest {
    /// No subscriptions.
    pub fn new() -> LocalInterest {
        LocalInterest::default()
    }

    /// One more local subscription to `key`; true on 0→1 (send SUB).
    pub fn add(&mut self, key: &str) -> bool {
        match self.counts.get_mut(key) {
            Some(n) => {
                *n += 1;
                false
            }
            None => {
                self.counts.insert(key.to_owned(), 1);
                true
            }
        }
    }

    /// One local subscription to `key` fewer; true on 1→0 (send UNSUB). A key that is not
    /// counted is ignored (false).
    pub fn remove(&mut self, key: &str) -> bool {
        match self.counts.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(key);
                true
            }
            None => false,
        }
    }

    /// Every key with at least one subscription, sorted: the RESYNC payload.
    pub fn keys(&self) -> Vec<String> {
        self.counts.keys().cloned().collect()
    }

    /// Subscriptions counted for `key`.
    pub fn count(&self, key: &str) -> usize {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// Distinct keys.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_peer_that_said_nothing_is_sent_nothing() {
        let p = PeerInterest::new();
        assert!(!p.matches("news"));
        assert!(p.is_empty());
    }

    #[test]
    fn sub_unsub_and_patterns_decide_routing() {
        let mut p = PeerInterest::new();
        assert!(p.subscribe("news"));
        assert!(p.subscribe("prices.*"));
        assert!(p.matches("news"));
        assert!(p.matches("prices.eur"));
        assert!(!p.matches("prices"));
        assert!(!p.matches("sports"));
        p.unsubscribe("prices.*");
        assert!(!p.matches("prices.eur"));
        p.unsubscribe("never-subscribed");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn resync_replaces_and_its_continuations_extend() {
        let mut p = PeerInterest::new();
        p.subscribe("old");
        assert!(p.resync(&strings(&["a", "b.*"]), false));
        assert!(!p.matches("old"));
        assert!(p.resync(&strings(&["c"]), true));
        assert!(p.matches("a") && p.matches("b.x") && p.matches("c"));
        // An empty RESYNC is "no interest".
        assert!(p.resync(&[], false));
        assert!(p.is_empty());
    }

    #[test]
    fn a_continuation_out_of_sequence_is_refused() {
        let mut p = PeerInterest::new();
        assert!(!p.resync(&strings(&["a"]), true));
        assert!(p.resync(&strings(&["a"]), false));
        p.subscribe("b");
        assert!(!p.resync(&strings(&["c"]), true));
        assert!(!p.matches("c"));
        assert!(p.resync(&strings(&["x"]), false));
        p.close_resync();
        assert!(!p.resync(&strings(&["y"]), true));
    }

    #[test]
    fn local_interest_reports_first_and_last_subscription() {
        let mut l = LocalInterest::new();
        assert!(l.add("t"));
        assert!(!l.add("t"));
        assert!(l.add("p.*"));
        assert_eq!(l.keys(), strings(&["p.*", "t"]));
        assert!(!l.remove("t"));
        assert!(l.remove("t"));
        assert!(!l.remove("t"), "an uncounted key is ignored");
        assert_eq!(l.count("t"), 0);
        assert_eq!(l.keys(), strings(&["p.*"]));
    }

    proptest! {
        /// LocalInterest against a model: the transitions it reports are exactly the model's
        /// 0→1 and 1→0, and its keys are the model's keys with a count above zero.
        #[test]
        fn local_interest_matches_a_counting_model(
            ops in proptest::collection::vec((any::<bool>(), 0u8..4), 0..200)
        ) {
            let mut l = LocalInterest::new();
            let mut model = [0usize; 4];
            for (add, k) in ops {
                let key = format!("k{k}");
                let i = usize::from(k);
                if add {
                    prop_assert_eq!(l.add(&key), model[i] == 0);
                    model[i] += 1;
                } else {
                    prop_assert_eq!(l.remove(&key), model[i] == 1);
                    model[i] = model[i].saturating_sub(1);
                }
            }
            let expected: Vec<String> = (0..4)
                .filter(|i| model[*i] > 0)
                .map(|i| format!("k{i}"))
                .collect();
            prop_assert_eq!(l.keys(), expected);
        }

        /// A peer table fed SUB/UNSUB agrees with a set model on every topic.
        #[test]
        fn peer_interest_matches_a_set_model(
            ops in proptest::collection::vec((any::<bool>(), 0u8..6), 0..100)
        ) {
            let keys = ["a", "b", "a.*", "*", "b?", "c"];
            let mut p = PeerInterest::new();
            let mut model = BTreeSet::new();
            for (sub, k) in ops {
                let key = keys[usize::from(k)];
                if sub {
                    p.subscribe(key);
                    model.insert(key);
                } else {
                    p.unsubscribe(key);
                    model.remove(key);
                }
            }
            for topic in ["a", "b", "a.x", "bz", "c", "d"] {
                let expected = model.iter().any(|k| glob_match(k, topic));
                prop_assert_eq!(p.matches(topic), expected, "topic {}", topic);
            }
        }
    }
}
