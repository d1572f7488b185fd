//! One presence entry: what one origin node says about one user in one topic, and when.
//!
//! Owns [`PresenceKey`], [`PresenceEntry`], [`EntryState`] and the last-writer-wins rule
//! [`PresenceEntry::supersedes`]. That rule is a strict total order on entries, which is what
//! makes merging commutative, associative and idempotent:
//!
//! 1. the greater [`Hlc`] wins;
//! 2. on equal stamps (only possible when a node reuses a stamp, a bug) `Absent` beats
//!    `Present` (remove wins), then more connections win, then the greater canonical JSON text of
//!    the data (object keys sorted, so the text is canonical).

use serde_json::Value;

use super::hlc::{Hlc, NodeId};

/// The key of one entry: one origin node's view of one user in one topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PresenceKey {
    /// The topic.
    pub topic: String,
    /// The user (the JWT `sub`).
    pub user_id: String,
    /// The node whose connections this entry counts.
    pub origin: NodeId,
}

impl PresenceKey {
    /// A key from its parts.
    pub fn new(topic: impl Into<String>, user_id: impl Into<String>, origin: NodeId) -> Self {
        PresenceKey {
            topic: topic.into(),
            user_id: user_id.into(),
            origin,
        }
    }
}

/// What the origin says about the user.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryState {
    /// The user has `connections` connections on the origin, with this presence data.
    Present {
        /// The presence data (JSON).
        data: Value,
        /// How many of the origin's connections track this user in this topic.
        connections: u32,
    },
    /// The user has no connection on the origin any more (a tombstone).
    Absent,
}

/// One last-writer-wins register.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceEntry {
    /// When the origin wrote it.
    pub hlc: Hlc,
    /// What it says.
    pub state: EntryState,
}

impl PresenceEntry {
    /// A `Present` entry.
    pub fn present(hlc: Hlc, data: Value, connections: u32) -> Self {
        PresenceEntry {
            hlc,
            state: EntryState::Present { data, connections },
        }
    }

    /// An `Absent` entry (tombstone).
    pub const fn absent(hlc: Hlc) -> Self {
        PresenceEntry {
            hlc,
            state: EntryState::Absent,
        }
    }

    /// Whether this entry is a tombstone.
    pub const fn is_absent(&self) -> bool {
        matches!(self.state, EntryState::Absent)
    }

    /// Whether `self` wins over `other` under last-writer-wins (see the module documentation).
    /// For any two different entries exactly one supersedes the other; no entry supersedes itself.
    pub fn supersedes(&self, other: &PresenceEntry) -> bool {
        if self.hlc != other.hlc {
            return self.hlc > other.hlc;
        }
        match (&self.state, &other.state) {
            (EntryState::Absent, EntryState::Absent) => false,
            (EntryState::Absent, EntryState::Present { .. }) => true,
            (EntryState::Present { .. }, EntryState::Absent) => false,
            (
                EntryState::Present {
                    data: d1,
                    connections: c1,
                },
                EntryState::Present {
                    data: d2,
                    connections: c2,
                },
            ) => {
                if c1 != c2 {
                    return c1 > c2;
                }
                if d1 == d2 {
                    return false;
                }
                canonical_json(d1) > canonical_json(d2)
            }
        }
    }
}

/// The JSON text of `value`; canonical because objects are `BTreeMap`s (keys sorted).
fn canonical_json(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_writer_wins_with_remove_winning_ties() {
        let n = NodeId(1);
        let early = Hlc::new(10, 0, n);
        let late = Hlc::new(10, 1, n);
        let cases = [
            // (a, b, a supersedes b)
            (
                PresenceEntry::present(late, json!(1), 1),
                PresenceEntry::absent(early),
                true,
            ),
            (
                PresenceEntry::present(early, json!(1), 1),
                PresenceEntry::absent(late),
                false,
            ),
            (
                PresenceEntry::absent(early),
                PresenceEntry::present(early, json!(1), 1),
                true,
            ),
            (
                PresenceEntry::present(early, json!(1), 2),
                PresenceEntry::present(early, json!(9), 1),
                true,
            ),
            (
                PresenceEntry::present(early, json!({"b": 1}), 1),
                PresenceEntry::present(early, json!({"a": 1}), 1),
                true,
            ),
            (
                PresenceEntry::absent(early),
                PresenceEntry::absent(early),
                false,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.supersedes(&b), want, "{a:?} vs {b:?}");
            if a != b {
                assert_eq!(b.supersedes(&a), !want, "{b:?} vs {a:?}");
            }
        }
    }
}
