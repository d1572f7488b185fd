//! The presence table of one node: its own connections' presence, written into the replicated
//! [`PresenceState`] under its own origin, plus remote entries merged in.
//!
//! Owns [`PresenceTable`]. Inputs: local commands ([`PresenceTable::track`],
//! [`PresenceTable::untrack`], [`PresenceTable::untrack_connection`], [`PresenceTable::update`])
//! and remote entries ([`PresenceTable::merge_remote`]), each with a stamp from the node's
//! [`HlcClock`](super::HlcClock). Outputs: the visibility changes to broadcast, and the node's
//! own changed entries to ship to peers ([`PresenceTable::take_local_updates`]).
//!
//! Invariants (checked after every step of the model test):
//!
//! - for every `(topic, user)`, the own-origin entry is `Present` with `connections` equal to
//!   the number of local connections tracking that user there, or (after the last one left) an
//!   `Absent` tombstone;
//! - the per-connection index and the per-`(topic, user)` connection sets agree, and neither
//!   keeps an empty set, so repeated join/leave does not grow memory;
//! - local writes always supersede the previous own-origin entry: a stamp that is not newer is
//!   replaced by the successor of the current one;
//! - an own-origin entry from a peer that is newer than ours (stale state from before a restart
//!   with the same id) is refuted, never adopted: we rewrite our truth with a newer stamp.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use serde_json::Value;

use super::entry::{EntryState, PresenceEntry, PresenceKey};
use super::error::{PresenceError, PresenceLimits};
use super::hlc::{Hlc, NodeId};
use super::state::PresenceState;
use super::view::{PresenceChange, PresenceChangeKind, PresenceStats, UserPresence};
use crate::ids::ConnId;

/// `(topic, user_id)`.
type TopicUser = (String, String);

/// Presence of one node. See the module documentation.
#[derive(Clone, Debug)]
pub struct PresenceTable {
    own: NodeId,
    limits: PresenceLimits,
    state: PresenceState,
    /// `(topic, user)` → local connections tracking that user there. Never holds an empty set.
    local: BTreeMap<TopicUser, BTreeSet<ConnId>>,
    /// Connection → topic → the user it tracks there. Never holds an empty map.
    conns: BTreeMap<ConnId, BTreeMap<String, String>>,
    /// Own-origin keys written since the last [`PresenceTable::take_local_updates`]; a subset of
    /// the own keys held in `state`, so bounded by it.
    dirty: BTreeSet<TopicUser>,
}

impl PresenceTable {
    /// An empty table for node `own`.
    pub fn new(own: NodeId, limits: PresenceLimits) -> Self {
        PresenceTable {
            own,
            limits,
            state: PresenceState::new(),
            local: BTreeMap::new(),
            conns: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// This node's id (the origin of its own entries).
    pub const fn own(&self) -> NodeId {
        self.own
    }

    /// Adds `conn`'s presence as `user_id` in `topic` with `data`. Returns a join when the user
    /// was not visible before; a user already visible just gets the new data, without an event.
    pub fn track(
        &mut self,
        topic: &str,
        user_id: &str,
        conn: ConnId,
        data: Value,
        hlc: Hlc,
    ) -> Result<Option<PresenceChange>, PresenceError> {
        self.check_size(&data)?;
        if let Some(tracked) = self.conns.get(&conn).and_then(|t| t.get(topic)) {
            if tracked != user_id {
                return Err(PresenceError::UserMismatch {
                    conn,
                    topic: topic.to_owned(),
                    tracked: tracked.clone(),
                });
            }
        }
        let max_members = self.limits.max_members;
        if max_members > 0
            && !self.state.is_visible(topic, user_id)
            && self.state.stats(topic).num_users >= max_members
        {
            return Err(PresenceError::TopicFull {
                topic: topic.to_owned(),
                max_members,
            });
        }
        let key = (topic.to_owned(), user_id.to_owned());
        let set = self.local.entry(key.clone()).or_default();
        set.insert(conn);
        let connections = count(set);
        self.conns
            .entry(conn)
            .or_default()
            .insert(topic.to_owned(), user_id.to_owned());
        let change = self.write_local(key, PresenceEntry::present(hlc, data, connections));
        // UPSTREAM §9.2: only a first join is announced; new data of a visible user is silent.
        Ok(change.filter(|c| c.kind == PresenceChangeKind::Join))
    }

    /// Removes `conn`'s presence in `topic`. Returns a leave when the user is no longer visible,
    /// or an update when they stay visible through another node whose data is now shown.
    pub fn untrack(&mut self, topic: &str, conn: ConnId, hlc: Hlc) -> Option<PresenceChange> {
        let topics = self.conns.get_mut(&conn)?;
        let user_id = topics.remove(topic)?;
        if topics.is_empty() {
            self.conns.remove(&conn);
        }
        let key = (topic.to_owned(), user_id);
        let set = self
            .local
            .get_mut(&key)
            .expect("invariant: a connection's topic has a local connection set");
        set.remove(&conn);
        let entry = if set.is_empty() {
            self.local.remove(&key);
            PresenceEntry::absent(hlc)
        } else {
            let connections = count(set);
            let data = self.own_data(&key);
            PresenceEntry::present(hlc, data, connections)
        };
        self.write_local(key, entry)
    }

    /// Removes `conn`'s presence from every topic (disconnect, idle removal).
    pub fn untrack_connection(&mut self, conn: ConnId, hlc: Hlc) -> Vec<PresenceChange> {
        self.topics_of(conn)
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .iter()
            .filter_map(|topic| self.untrack(topic, conn, hlc))
            .collect()
    }

    /// Replaces the data of `conn`'s user in every topic where `conn` has presence. Returns an
    /// update for every topic where the visible data changed.
    pub fn update(
        &mut self,
        conn: ConnId,
        data: Value,
        hlc: Hlc,
    ) -> Result<Vec<PresenceChange>, PresenceError> {
        self.check_size(&data)?;
        let targets: Vec<TopicUser> = self
            .conns
            .get(&conn)
            .ok_or(PresenceError::UnknownConnection(conn))?
            .iter()
            .map(|(t, u)| (t.clone(), u.clone()))
            .collect();
        let mut changes = Vec::new();
        // One clone per topic but the last, which takes `data` itself.
        let copies = std::iter::repeat_n(data, targets.len());
        for (key, data) in targets.into_iter().zip(copies) {
            let connections = count(
                self.local
                    .get(&key)
                    .expect("invariant: a connection's topic has a local connection set"),
            );
            let entry = PresenceEntry::present(hlc, data, connections);
            changes.extend(self.write_local(key, entry));
        }
        Ok(changes)
    }

    /// Merges entries received from peers; returns only the real visibility changes (joins,
    /// leaves, changed visible data). Entries with data over the size limit are dropped; entries
    /// of our own origin are refuted (see the module documentation).
    pub fn merge_remote(
        &mut self,
        entries: impl IntoIterator<Item = (PresenceKey, PresenceEntry)>,
    ) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        for (key, entry) in entries {
            if let EntryState::Present { data, .. } = &entry.state {
                if self.check_size(data).is_err() {
                    continue;
                }
            }
            if key.origin == self.own {
                changes.extend(self.refute(key, entry.hlc));
            } else {
                changes.extend(self.state.merge_entry(&key, entry));
            }
        }
        changes
    }

    /// Forgets every entry of peer `origin` (its session ended); returns the resulting leaves and
    /// updates. Our own origin is never forgotten.
    pub fn forget_origin(&mut self, origin: NodeId) -> Vec<PresenceChange> {
        if origin == self.own {
            return Vec::new();
        }
        self.state.forget_origin(origin)
    }

    /// Drops tombstones older than `horizon_ms`; returns how many (see
    /// [`PresenceState`] for the rule and its cost).
    pub fn gc_tombstones(&mut self, horizon_ms: u64) -> usize {
        let dropped = self.state.gc_tombstones(horizon_ms);
        let own = self.own;
        let state = &self.state;
        self.dirty
            .retain(|(t, u)| state.entry(&PresenceKey::new(t, u, own)).is_some());
        dropped
    }

    /// Every entry of this node's own origin, tombstones included: the full state a new peer
    /// link is sent.
    pub fn own_entries(&self) -> Vec<(PresenceKey, PresenceEntry)> {
        self.state
            .entries()
            .filter(|(k, _)| k.origin == self.own)
            .map(|(k, e)| (k, e.clone()))
            .collect()
    }

    /// The own-origin entries written since the last call, to send to peers.
    pub fn take_local_updates(&mut self) -> Vec<(PresenceKey, PresenceEntry)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|(topic, user)| {
                let key = PresenceKey::new(topic, user, self.own);
                let entry = self.state.entry(&key)?.clone();
                Some((key, entry))
            })
            .collect()
    }

    /// The visible users of `topic`.
    pub fn presence(&self, topic: &str) -> BTreeMap<String, UserPresence> {
        self.state.presence(topic)
    }

    /// The counters of `topic`.
    pub fn stats(&self, topic: &str) -> PresenceStats {
        self.state.stats(topic)
    }

    /// The topics where `conn` has presence, in order.
    pub fn topics_of(&self, conn: ConnId) -> impl Iterator<Item = &str> + '_ {
        self.conns
            .get(&conn)
            .into_iter()
            .flat_map(|topics| topics.keys().map(String::as_str))
    }

    /// Topics with at least one visible user.
    pub fn topic_count(&self) -> usize {
        self.state.topic_count()
    }

    /// Visible users summed over topics.
    pub fn total_users(&self) -> usize {
        self.state.total_users()
    }

    /// The replicated state (for a full-state transfer: [`PresenceState::entries`]).
    pub fn state(&self) -> &PresenceState {
        &self.state
    }

    /// Writes our own entry for `key`, stamped after the previous one; marks it for shipping.
    fn write_local(&mut self, key: TopicUser, mut entry: PresenceEntry) -> Option<PresenceChange> {
        let pkey = PresenceKey::new(key.0.clone(), key.1.clone(), self.own);
        if let Some(current) = self.state.entry(&pkey) {
            if entry.hlc <= current.hlc {
                entry.hlc = current.hlc.successor(self.own);
            }
        }
        self.dirty.insert(key);
        self.state.put(&pkey, entry)
    }

    /// A peer sent an entry of our own origin stamped `remote`: if it is newer than ours, we
    /// rewrite what we actually hold, stamped after it, so every peer converges to our truth.
    fn refute(&mut self, key: PresenceKey, remote: Hlc) -> Option<PresenceChange> {
        if self.state.entry(&key).is_some_and(|e| e.hlc >= remote) {
            return None;
        }
        let tu = (key.topic, key.user_id);
        let hlc = remote.successor(self.own);
        let entry = match self.local.get(&tu) {
            Some(set) => PresenceEntry::present(hlc, self.own_data(&tu), count(set)),
            None => PresenceEntry::absent(hlc),
        };
        self.write_local(tu, entry)
    }

    /// The data of our own `Present` entry for `key`.
    fn own_data(&self, key: &TopicUser) -> Value {
        match self
            .state
            .entry(&PresenceKey::new(key.0.clone(), key.1.clone(), self.own))
            .map(|e| &e.state)
        {
            Some(EntryState::Present { data, .. }) => data.clone(),
            _ => unreachable!("invariant: a user with local connections has a Present own entry"),
        }
    }

    /// Refuses data whose serialized JSON is larger than the limit.
    fn check_size(&self, data: &Value) -> Result<(), PresenceError> {
        let size = json_len(data);
        let max = self.limits.max_data_size;
        if size > max {
            return Err(PresenceError::DataTooLarge { size, max });
        }
        Ok(())
    }

    /// Test hook: every invariant of the module documentation.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        for ((topic, user), set) in &self.local {
            assert!(!set.is_empty(), "empty local set for {topic}/{user}");
            let key = PresenceKey::new(topic, user, self.own);
            match self.state.entry(&key).map(|e| &e.state) {
                Some(EntryState::Present { connections, .. }) => {
                    assert_eq!(*connections as usize, set.len(), "{topic}/{user}")
                }
                other => panic!("{topic}/{user}: own entry {other:?} with local connections"),
            }
            for conn in set {
                assert_eq!(
                    self.conns.get(conn).and_then(|t| t.get(topic)),
                    Some(user),
                    "index of {conn:?}"
                );
            }
        }
        for (conn, topics) in &self.conns {
            assert!(!topics.is_empty(), "empty topic map for {conn:?}");
            for (topic, user) in topics {
                assert!(self.local[&(topic.clone(), user.clone())].contains(conn));
            }
        }
        for (key, entry) in self.state.entries() {
            if key.origin == self.own && !entry.is_absent() {
                assert!(
                    self.local
                        .contains_key(&(key.topic.clone(), key.user_id.clone()))
                );
            }
        }
    }
}

/// Size of a connection set as an entry's count (saturating; a set never nears `u32::MAX`).
fn count(set: &BTreeSet<ConnId>) -> u32 {
    u32::try_from(set.len()).unwrap_or(u32::MAX)
}

/// Bytes of `value` serialized as compact JSON, counted without allocating the text.
fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` into an infallible writer cannot fail: its keys are strings.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}
