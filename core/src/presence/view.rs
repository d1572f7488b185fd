//! What presence looks like from outside: events ([`PresenceChange`]), the per-topic view
//! ([`UserPresence`]) and O(1) counters ([`PresenceStats`]).

use serde_json::Value;

/// What happened to a user's visibility in a topic. Maps to the wire event types of
/// UPSTREAM §2.5.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PresenceChangeKind {
    /// The user became visible (`presence_join`).
    Join,
    /// The user stopped being visible (`presence_leave`).
    Leave,
    /// The user stayed visible and their visible data changed (`presence_update`).
    Update,
}

impl PresenceChangeKind {
    /// The wire event type (`t`) of this change.
    pub const fn event_type(self) -> &'static str {
        match self {
            PresenceChangeKind::Join => "presence_join",
            PresenceChangeKind::Leave => "presence_leave",
            PresenceChangeKind::Update => "presence_update",
        }
    }
}

/// One visibility change, to broadcast to the topic's subscribers.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "presence changes must be broadcast to the topic"]
pub struct PresenceChange {
    /// The topic.
    pub topic: String,
    /// The user.
    pub user_id: String,
    /// Join, leave or update.
    pub kind: PresenceChangeKind,
    /// The visible data: the new data for join and update, the last visible data for leave.
    pub data: Value,
}

/// One visible user in a topic.
#[derive(Clone, Debug, PartialEq)]
pub struct UserPresence {
    /// The data of the newest `Present` entry.
    pub data: Value,
    /// Connections summed over every origin that has the user present.
    pub connections: u32,
}

/// Per-topic counters, maintained incrementally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Visible users.
    pub num_users: usize,
    /// Connections of visible users, summed over origins.
    pub num_connections: u64,
}
