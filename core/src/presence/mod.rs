//! Presence: which users are in which topic, across the cluster (UPSTREAM §9, CONTRACT D15).
//!
//! Owns the presence CRDT and the local API a node uses for its own connections:
//!
//! - [`hlc`]: [`NodeId`], the hybrid logical clock stamp [`Hlc`] and its generator [`HlcClock`];
//! - [`entry`]: one last-writer-wins register per `(topic, user, origin node)`;
//! - [`state`]: [`PresenceState`], the map of registers, its merge and derived counters;
//! - [`table`]: [`PresenceTable`], one node's view: local connections tracked into the state
//!   under the node's own origin, remote entries merged in;
//! - [`view`]: the events ([`PresenceChange`]) and views handed out.
//!
//! Inputs are commands with a stamp from the node's [`HlcClock`], and remote entries. Outputs
//! are visibility changes to broadcast as `presence_join` / `presence_leave` /
//! `presence_update` (UPSTREAM §2.5.6). No clock, no I/O.
//!
//! Why a CRDT instead of the original's sentinels (UPSTREAM §13.3 item 5): there a user present
//! on two nodes never left anywhere, because each node kept the other's sentinel. Here each
//! origin owns its own register for the user and writes `Absent` when its last connection
//! leaves, so a leave propagates; a user is visible while any origin says `Present`; a peer whose
//! session ends is forgotten ([`PresenceTable::forget_origin`]); and since merges commute, every
//! node that has seen the same entries shows the same users, whatever the delivery order.

pub mod entry;
pub mod error;
pub mod hlc;
pub mod state;
pub mod table;
pub mod view;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use entry::{EntryState, PresenceEntry, PresenceKey};
pub use error::{PresenceError, PresenceLimits};
pub use hlc::{Hlc, HlcClock, NodeId};
pub use state::PresenceState;
pub use table::PresenceTable;
pub use view::{PresenceChange, PresenceChangeKind, PresenceStats, UserPresence};
