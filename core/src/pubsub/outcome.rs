//! What [`Registry`](super::Registry) commands report back: the plain result structs of
//! subscribe, unsubscribe and publish, and the one subscribe error.
//!
//! Every list holds distinct entries. Subscribe lists keep the caller's request order;
//! unsubscribe lists keep the request order for an explicit topic list and ascending order for
//! "everything".

use crate::ids::ConnId;

/// The result of a successful [`Registry::subscribe`](super::Registry::subscribe).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "first_subscriber keys need a cluster SUB"]
pub struct SubscribeOutcome {
    /// Subscriptions (fan-out keys, or the topics of new queue-group memberships) that were
    /// actually added by this call. Already-held ones are not repeated here.
    pub added: Vec<String>,
    /// Fan-out keys (exact topics or glob patterns) that went from 0 to 1 local subscriber: the
    /// caller sends a cluster SUB for each. Queue-group joins never appear here.
    pub first_subscriber: Vec<String>,
    /// Topics dropped because they contain an ASCII control character.
    pub rejected: Vec<String>,
    /// New subscriptions cut because they exceeded the connection's remaining budget.
    pub truncated: Vec<String>,
}

/// Why a subscribe was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection already holds `limit` subscriptions (topics plus queue-group
    /// memberships) and asked for at least one more.
    #[error("reached max subscriptions ({limit})")]
    LimitReached {
        /// The configured `max_subscriptions_per_connection`.
        limit: usize,
    },
}

/// The result of [`Registry::unsubscribe`](super::Registry::unsubscribe) and
/// [`Registry::remove_connection`](super::Registry::remove_connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "last_subscriber keys need a cluster UNSUB, removed keys a presence leave"]
pub struct UnsubscribeOutcome {
    /// Fan-out keys the connection no longer holds (the caller sends presence leaves).
    pub removed: Vec<String>,
    /// Fan-out keys that now have no local subscriber at all: the caller sends a cluster UNSUB.
    pub last_subscriber: Vec<String>,
    /// `(topic, group)` queue-group memberships the connection left.
    pub left_groups: Vec<(String, String)>,
}

/// Who receives one publish, as computed by
/// [`Registry::publish_targets`](super::Registry::publish_targets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "the targets are the whole point of the call"]
pub struct Targets {
    /// Fan-out receivers: exact subscribers plus permitted glob subscribers, each connection
    /// once, ascending by [`ConnId`].
    pub fanout: Vec<ConnId>,
    /// One chosen member per queue group on the topic, in ascending group-name order. Not
    /// deduplicated against `fanout` or across groups: each membership is its own delivery.
    pub queue: Vec<ConnId>,
    /// Queue groups on the topic where no member was eligible (a slow-consumer drop).
    pub queue_misses: usize,
}
