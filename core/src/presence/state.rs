//! The presence CRDT: a map of last-writer-wins registers keyed by `(topic, user, origin)`,
//! plus counters derived from it.
//!
//! Owns [`PresenceState`]. Inputs: entries ([`PresenceState::merge_entry`]) or a whole other
//! state ([`PresenceState::merge`]). Outputs: the visibility changes each merge caused.
//!
//! A user is **visible** in a topic iff at least one origin's entry is `Present`; the visible data
//! is that of the `Present` entry with the greatest stamp; the connection count is the sum over
//! `Present` entries.
//!
//! Invariants:
//!
//! - merging is commutative, associative and idempotent (per key, the entry kept is the maximum
//!   under the strict total order [`PresenceEntry::supersedes`]), so every delivery order of the
//!   same entries gives the same state;
//! - a tombstone with a greater stamp is never undone by an older `Present`, as long as the
//!   tombstone is kept (see below);
//! - the per-topic counters and the global totals always equal a recomputation from the entries;
//! - no empty user or topic map is kept.
//!
//! **Tombstone bound.** `Absent` entries are kept so a delayed older `Present` cannot resurrect a
//! user, and dropped by [`PresenceState::gc_tombstones`]`(horizon_ms)` once their stamp is older
//! than the horizon. Cost of the rule: an entry delayed by more than the horizon (`now − horizon`)
//! that arrives after its tombstone was collected is accepted again, and the user reappears until
//! its origin writes again or is forgotten ([`PresenceState::forget_origin`], called when a peer's
//! session ends). Choose the horizon well above the worst delivery delay between peers. Memory:
//! at most one tombstone per `(topic, user, origin)` that left within the horizon; a GC pass costs
//! a scan of all entries.

use std::collections::BTreeMap;

use serde_json::Value;

use super::entry::{EntryState, PresenceEntry, PresenceKey};
use super::hlc::NodeId;
use super::view::{PresenceChange, PresenceChangeKind, PresenceStats, UserPresence};

/// The replicated presence state. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresenceState {
    /// Topic → its users. Never holds an empty topic.
    topics: BTreeMap<String, TopicState>,
    /// Visible users summed over topics.
    total_users: usize,
    /// Topics with at least one visible user.
    visible_topics: usize,
    /// `Absent` entries held.
    tombstones: usize,
}

/// One topic's users and counters.
#[derive(Clone, Debug, Default, PartialEq)]
struct TopicState {
    /// User → origin → entry. Never holds an empty user.
    users: BTreeMap<String, BTreeMap<NodeId, PresenceEntry>>,
    stats: PresenceStats,
}

impl PresenceState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges one entry: it replaces the entry under `key` iff it supersedes it. Returns the
    /// visibility change this caused, if any.
    pub fn merge_entry(
        &mut self,
        key: &PresenceKey,
        entry: PresenceEntry,
    ) -> Option<PresenceChange> {
        if let Some(current) = self.entry(key) {
            if !entry.supersedes(current) {
                return None;
            }
        }
        self.put(key, entry)
    }

    /// Merges every entry of `other` into `self`; returns the visibility changes, in key order.
    pub fn merge(&mut self, other: &PresenceState) -> Vec<PresenceChange> {
        other
            .entries()
            .filter_map(|(key, entry)| self.merge_entry(&key, entry.clone()))
            .collect()
    }

    /// The entry under `key`, if any.
    pub fn entry(&self, key: &PresenceKey) -> Option<&PresenceEntry> {
        self.topics
            .get(&key.topic)?
            .users
            .get(&key.user_id)?
            .get(&key.origin)
    }

    /// Every entry, in key order (for a full-state transfer to a peer).
    pub fn entries(&self) -> impl Iterator<Item = (PresenceKey, &PresenceEntry)> + '_ {
        self.topics.iter().flat_map(|(topic, t)| {
            t.users.iter().flat_map(move |(user, origins)| {
                origins
                    .iter()
                    .map(move |(origin, e)| (PresenceKey::new(topic, user, *origin), e))
            })
        })
    }

    /// The visible users of `topic` with their data and connection counts.
    pub fn presence(&self, topic: &str) -> BTreeMap<String, UserPresence> {
        let Some(t) = self.topics.get(topic) else {
            return BTreeMap::new();
        };
        t.users
            .iter()
            .filter_map(|(user, origins)| {
                let (data, connections) = visible(origins)?;
                Some((
                    user.clone(),
                    UserPresence {
                        data: data.clone(),
                        connections,
                    },
                ))
            })
            .collect()
    }

    /// Whether `user_id` is visible in `topic`.
    pub fn is_visible(&self, topic: &str, user_id: &str) -> bool {
        self.topics
            .get(topic)
            .and_then(|t| t.users.get(user_id))
            .is_some_and(|origins| visible(origins).is_some())
    }

    /// The counters of `topic`, O(log topics).
    pub fn stats(&self, topic: &str) -> PresenceStats {
        self.topics.get(topic).map(|t| t.stats).unwrap_or_default()
    }

    /// Topics with at least one visible user.
    pub fn topic_count(&self) -> usize {
        self.visible_topics
    }

    /// Visible users summed over topics (a user in two topics counts twice).
    pub fn total_users(&self) -> usize {
        self.total_users
    }

    /// `Absent` entries held (bounded by [`PresenceState::gc_tombstones`]).
    pub fn tombstone_count(&self) -> usize {
        self.tombstones
    }

    /// Whether no entry at all is held.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Drops every tombstone whose stamp is older than `horizon_ms` (wall milliseconds); returns
    /// how many. Visibility is unchanged. See the module documentation for the cost of the rule.
    pub fn gc_tombstones(&mut self, horizon_ms: u64) -> usize {
        let mut dropped = 0;
        self.topics.retain(|_, t| {
            t.users.retain(|_, origins| {
                origins.retain(|_, e| {
                    let old = e.is_absent() && e.hlc.wall_ms < horizon_ms;
                    dropped += usize::from(old);
                    !old
                });
                !origins.is_empty()
            });
            !t.users.is_empty()
        });
        self.tombstones -= dropped;
        dropped
    }

    /// Forgets every entry of `origin` (its peer session ended: CONTRACT D15, a dead node's
    /// users leave). Not a CRDT operation: nothing is written, so when the peer comes back its
    /// full state is merged afresh. Returns the resulting leaves and updates.
    pub fn forget_origin(&mut self, origin: NodeId) -> Vec<PresenceChange> {
        let keys: Vec<PresenceKey> = self
            .entries()
            .filter(|(k, _)| k.origin == origin)
            .map(|(k, _)| k)
            .collect();
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// Replaces (or inserts) the entry under `key` unconditionally; the visibility change.
    pub(super) fn put(
        &mut self,
        key: &PresenceKey,
        entry: PresenceEntry,
    ) -> Option<PresenceChange> {
        let topic = self.topics.entry(key.topic.clone()).or_default();
        let origins = topic.users.entry(key.user_id.clone()).or_default();
        let before = summary(origins);
        let added_tombstone = entry.is_absent();
        let removed_tombstone = origins
            .insert(key.origin, entry)
            .is_some_and(|old| old.is_absent());
        let after = summary(origins);
        self.tombstones =
            self.tombstones + usize::from(added_tombstone) - usize::from(removed_tombstone);
        self.account(key, before, after)
    }

    /// Removes the entry under `key` (no tombstone); the visibility change.
    fn remove(&mut self, key: &PresenceKey) -> Option<PresenceChange> {
        let topic = self.topics.get_mut(&key.topic)?;
        let origins = topic.users.get_mut(&key.user_id)?;
        let before = summary(origins);
        let old = origins.remove(&key.origin)?;
        self.tombstones -= usize::from(old.is_absent());
        let after = summary(origins);
        if origins.is_empty() {
            topic.users.remove(&key.user_id);
        }
        self.account(key, before, after)
    }

    /// Adjusts the counters for one user going from `before` to `after`, drops an emptied topic,
    /// and names the change.
    fn account(
        &mut self,
        key: &PresenceKey,
        before: Option<(Value, u32)>,
        after: Option<(Value, u32)>,
    ) -> Option<PresenceChange> {
        let topic = self
            .topics
            .get_mut(&key.topic)
            .expect("invariant: account is called right after touching this topic");
        let users_before = topic.stats.num_users;
        if let Some((_, c)) = &before {
            topic.stats.num_users -= 1;
            topic.stats.num_connections -= u64::from(*c);
        }
        if let Some((_, c)) = &after {
            topic.stats.num_users += 1;
            topic.stats.num_connections += u64::from(*c);
        }
        let users_after = topic.stats.num_users;
        if topic.users.is_empty() {
            self.topics.remove(&key.topic);
        }
        self.total_users = self.total_users + users_after - users_before;
        match (users_before > 0, users_after > 0) {
            (false, true) => self.visible_topics += 1,
            (true, false) => self.visible_topics -= 1,
            _ => {}
        }
        let (kind, data) = match (before, after) {
            (None, Some((data, _))) => (PresenceChangeKind::Join, data),
            (Some((data, _)), None) => (PresenceChangeKind::Leave, data),
            (Some((old, _)), Some((new, _))) if old != new => (PresenceChangeKind::Update, new),
            _ => return None,
        };
        Some(PresenceChange {
            topic: key.topic.clone(),
            user_id: key.user_id.clone(),
            kind,
            data,
        })
    }
}

/// The visible data and connection sum of one user, or `None` when no origin has them present.
fn visible(origins: &BTreeMap<NodeId, PresenceEntry>) -> Option<(&Value, u32)> {
    let mut newest: Option<(&PresenceEntry, &Value)> = None;
    let mut connections: u32 = 0;
    for entry in origins.values() {
        if let EntryState::Present {
            data,
            connections: c,
        } = &entry.state
        {
            connections = connections.saturating_add(*c);
            if newest.is_none_or(|(n, _)| entry.supersedes(n)) {
                newest = Some((entry, data));
            }
        }
    }
    newest.map(|(_, data)| (data, connections))
}

/// [`visible`], owned, to compare before and after a write.
fn summary(origins: &BTreeMap<NodeId, PresenceEntry>) -> Option<(Value, u32)> {
    visible(origins).map(|(data, c)| (data.clone(), c))
}
