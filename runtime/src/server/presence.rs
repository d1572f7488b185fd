//! Presence on one node (UPSTREAM §9, with §13.3 #5 fixed): who is in each topic, from
//! `wse-core`'s [`PresenceTable`] (already the cluster CRDT; this node is its only origin until
//! the cluster exists).
//!
//! A user is the JWT `sub` of an authenticated connection (drain or callback mode alike). A
//! user's first connection tracked in a topic makes a join, the last one gone a leave —
//! unsubscribe, disconnect and idle close all go through the same path — and
//! `update_presence` an update in every topic where that connection has presence. Joins and
//! leaves are queued as `PresenceJoin`/`PresenceLeave` events (before the connection's
//! `Disconnect`) and every change is sent to the topic's subscribers as a `presence_*` frame
//! (never stored for recovery).
//!
//! Lock order: the presence lock, then topic shards, `conns` and machines (via `deliver`); the
//! recovery store is never taken while holding it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use wse_core::ConnId;
use wse_core::cluster::presence_sync::{PresenceChunk, encode_chunks};
use wse_core::presence::{
    HlcClock, NodeId, PresenceChange, PresenceChangeKind, PresenceError, PresenceLimits,
    PresenceStats, PresenceTable, UserPresence,
};
use wse_core::protocol::{self, Frame, PresenceKind};

use super::{Server, ServerEvent, Shared, lock};
use crate::wsframe;

/// How often tombstones are collected.
pub(super) const GC_TICK: Duration = Duration::from_secs(30);
/// Tombstones older than this are dropped. With one node no reordered add can arrive, so this
/// only bounds memory; the cluster will tie it to its heartbeat timeout.
const TOMBSTONE_HORIZON_MS: u64 = 60_000;

/// The presence table and the clock that stamps its changes.
#[derive(Debug)]
pub(super) struct Presence {
    table: PresenceTable,
    clock: HlcClock,
}

impl Presence {
    pub(super) fn new(node: NodeId, limits: PresenceLimits) -> Presence {
        Presence {
            table: PresenceTable::new(node, limits),
            clock: HlcClock::new(node),
        }
    }

    /// This node's whole presence (tombstones included) as PresenceFull chunks.
    pub(super) fn own_chunks(&self) -> Vec<String> {
        encode_chunks(self.table.own(), &self.table.own_entries())
    }
}

/// Why [`Server::update_presence`] refused.
#[derive(Debug, thiserror::Error)]
pub enum PresenceUpdateError {
    /// Presence is not enabled on this server.
    #[error("presence is not enabled")]
    Disabled,
    /// Too large, or the connection has no presence anywhere.
    #[error(transparent)]
    Refused(#[from] PresenceError),
}

impl Server {
    /// The visible users of `topic` (empty when presence is off).
    pub fn presence(&self, topic: &str) -> BTreeMap<String, UserPresence> {
        self.shared
            .presence
            .as_ref()
            .map(|p| lock(p).table.presence(topic))
            .unwrap_or_default()
    }

    /// `num_users` / `num_connections` of `topic`, in O(1) (zeros when presence is off).
    pub fn presence_stats(&self, topic: &str) -> PresenceStats {
        self.shared
            .presence
            .as_ref()
            .map(|p| lock(p).table.stats(topic))
            .unwrap_or_default()
    }

    /// Adds `conn`'s user to the presence of each of `topics` the connection is already
    /// subscribed to, with `data` (a join event where it is the user's first connection in the
    /// topic). For a subscription made without presence, e.g. by
    /// [`Server::subscribe_with_recovery`]; returns the topics joined. Anonymous connections
    /// and topics not subscribed are skipped.
    pub fn join_presence(&self, conn: ConnId, topics: &[String], data: &Value) -> Vec<String> {
        let subscribed: Vec<String> = topics
            .iter()
            .filter(|t| self.shared.registry.is_subscribed(conn, t))
            .cloned()
            .collect();
        if !subscribed.is_empty() {
            self.shared.track_presence(conn, &subscribed, data);
        }
        subscribed
    }

    /// Replaces the presence data of `conn`'s user in every topic where this connection has
    /// presence, and sends `presence_update` to those topics.
    pub fn update_presence(&self, conn: ConnId, data: Value) -> Result<(), PresenceUpdateError> {
        let presence = self
            .shared
            .presence
            .as_ref()
            .ok_or(PresenceUpdateError::Disabled)?;
        let (_, wall) = self.shared.now();
        let mut p = lock(presence);
        let hlc = p.clock.now(wall);
        let changes = p.table.update(conn, data, hlc)?;
        self.shared.announce(&mut p, changes);
        Ok(())
    }
}

impl Shared {
    /// Tracks `conn` (if authenticated) with `data` in each of `topics`; refused topics (data
    /// too large, topic full) are skipped silently, as the original does.
    pub(super) fn track_presence(&self, conn: ConnId, topics: &[String], data: &Value) {
        let Some(presence) = &self.presence else {
            return;
        };
        let mut p = lock(presence);
        // Looked up under the presence lock: a connection that is no longer registered is
        // never tracked, so its disconnect cleanup cannot be overtaken (no ghost users).
        let Some(user) = self.user_of(conn) else {
            return;
        };
        let (_, wall) = self.now();
        let mut changes = Vec::new();
        for topic in topics {
            let hlc = p.clock.now(wall);
            if let Ok(Some(change)) = p.table.track(topic, &user, conn, data.clone(), hlc) {
                changes.push(change);
            }
        }
        self.announce(&mut p, changes);
    }

    /// Untracks `conn` from `topics`, or from every topic with `None` (disconnect).
    pub(super) fn untrack_presence(&self, conn: ConnId, topics: Option<&[String]>) {
        let Some(presence) = &self.presence else {
            return;
        };
        let (_, wall) = self.now();
        let mut p = lock(presence);
        let hlc = p.clock.now(wall);
        let changes = match topics {
            None => p.table.untrack_connection(conn, hlc),
            Some(topics) => topics
                .iter()
                .filter_map(|t| p.table.untrack(t, conn, hlc))
                .collect(),
        };
        self.announce(&mut p, changes);
    }

    /// `(presence_topics, presence_total_users)`.
    pub(super) fn presence_figures(&self) -> Option<(usize, usize)> {
        self.presence.as_ref().map(|p| {
            let p = lock(p);
            (p.table.topic_count(), p.table.total_users())
        })
    }

    /// The user of a registered, authenticated connection.
    fn user_of(&self, conn: ConnId) -> Option<String> {
        let peer = lock(&self.conns).get(&conn).cloned()?;
        let m = lock(&peer.machine);
        m.user().map(|u| u.user_id().to_owned())
    }

    /// Merges a peer's entries; the visible changes reach local subscribers (not the drain
    /// queue: remote changes are not this node's events, as in the original).
    pub(super) fn merge_remote_presence(&self, chunk: PresenceChunk) {
        let Some(presence) = &self.presence else {
            return;
        };
        let mut p = lock(presence);
        for (_, entry) in &chunk.entries {
            p.clock.observe(entry.hlc);
        }
        let changes = p.table.merge_remote(chunk.entries);
        self.broadcast_changes(changes);
    }

    /// Forgets a dead node's entries; its users leave where no other node has them.
    pub(super) fn forget_remote_presence(&self, origin: NodeId) {
        let Some(presence) = &self.presence else {
            return;
        };
        let mut p = lock(presence);
        let changes = p.table.forget_origin(origin);
        self.broadcast_changes(changes);
    }

    /// Sends the `presence_*` frames of remote `changes` to the topics' subscribers.
    fn broadcast_changes(&self, changes: Vec<PresenceChange>) {
        for change in changes {
            self.deliver_presence(&change);
        }
    }

    fn deliver_presence(&self, change: &PresenceChange) {
        let kind = match change.kind {
            PresenceChangeKind::Join => PresenceKind::Join,
            PresenceChangeKind::Leave => PresenceKind::Leave,
            PresenceChangeKind::Update => PresenceKind::Update,
        };
        let text = protocol::presence_event(kind, &change.user_id, &change.data);
        self.deliver(&change.topic, &wsframe::encode_core(&Frame::text(text)));
    }

    /// Queues the drain events and sends the wire events of `changes`, in order, while the
    /// presence lock is held (so two changes of one user never reach clients swapped), and
    /// ships this node's changed entries to the cluster.
    fn announce(&self, p: &mut Presence, changes: Vec<PresenceChange>) {
        let updates = p.table.take_local_updates();
        if !updates.is_empty()
            && let Some(cluster) = self.cluster.get()
        {
            cluster.route_presence(&encode_chunks(p.table.own(), &updates));
        }
        for change in changes {
            self.deliver_presence(&change);
            let event = match change.kind {
                PresenceChangeKind::Join => ServerEvent::PresenceJoin {
                    topic: change.topic,
                    user_id: change.user_id,
                    data: change.data,
                },
                PresenceChangeKind::Leave => ServerEvent::PresenceLeave {
                    topic: change.topic,
                    user_id: change.user_id,
                    data: change.data,
                },
                PresenceChangeKind::Update => continue,
            };
            self.emit(event);
        }
    }
}

/// Drops tombstones older than [`TOMBSTONE_HORIZON_MS`] (run every [`GC_TICK`]).
pub(super) fn collect_tombstones(shared: &Shared) {
    if let Some(presence) = &shared.presence {
        let (_, wall) = shared.now();
        let horizon = wall.unix_millis().saturating_sub(TOMBSTONE_HORIZON_MS);
        let _ = lock(presence).table.gc_tombstones(horizon);
    }
}
