//! The topic registry of one node: who is subscribed to what, and who receives a publish.
//!
//! Owns three kinds of subscription, each keyed by the string the application passed in:
//!
//! - **exact** fan-out subscriptions (`chat:lobby`): every subscriber gets every publish;
//! - **glob** fan-out subscriptions (any key with `*` or `?`, see [`crate::glob`]): every
//!   subscriber whose pattern matches the published topic gets it, if the caller's delivery-time
//!   ACL check allows it (CONTRACT D9: a glob subscription cannot bypass a deny rule);
//! - **queue-group** memberships `(topic, group)`: each publish to exactly `topic` goes to one
//!   member of each group, round robin, *instead of* fan-out to those members.
//!
//! Inputs are plain commands ([`Registry::subscribe`], [`Registry::unsubscribe`],
//! [`Registry::remove_connection`]) and [`Registry::publish_targets`], which returns who should
//! receive a publish. The registry knows nothing of ACLs, sockets or back-pressure: the caller
//! filters topics through its ACL before subscribing, and passes per-publish decisions in as
//! closures. No I/O, no clock, no randomness.
//!
//! Invariants (checked after every step of the property tests):
//!
//! - the forward maps (key → subscribers) and the per-connection index agree exactly;
//! - no empty entry is ever kept: removing every connection leaves [`Registry::is_empty`] true,
//!   so memory is bounded by what live connections hold (CONTRACT D11);
//! - a connection never holds more than `max_subscriptions_per_connection` subscriptions
//!   (topics plus queue-group memberships), unless the limit is 0 (unlimited);
//! - every output list is deterministic: ordered collections only.
//!
//! Cost: a publish is one `O(log n)` exact lookup, one glob match per distinct *pattern* held by
//! anyone (never a scan of all exact topics), and one `O(log g)` queue-group lookup.

mod outcome;
mod queue;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::glob::{glob_match, is_glob};
use crate::ids::ConnId;

pub use outcome::{SubscribeError, SubscribeOutcome, Targets, UnsubscribeOutcome};
use queue::QueueGroup;

/// Subscribers of one key.
type Subscribers = BTreeSet<ConnId>;

/// All subscriptions of one node. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Per-connection limit on topics plus queue-group memberships; 0 means unlimited.
    max_subscriptions_per_connection: usize,
    /// Exact fan-out topics (keys without `*`/`?`) → subscribers. Never holds an empty set.
    exact: BTreeMap<String, Subscribers>,
    /// Glob fan-out patterns → subscribers. Never holds an empty set.
    patterns: BTreeMap<String, Subscribers>,
    /// Topic → group name → members. Never holds an empty map or group.
    queues: BTreeMap<String, BTreeMap<String, QueueGroup>>,
    /// The reverse index: what each connection holds. Never holds an empty entry.
    conns: BTreeMap<ConnId, Held>,
}

/// What one connection is subscribed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Held {
    /// Fan-out keys, exact and glob.
    topics: BTreeSet<String>,
    /// `(topic, group)` queue-group memberships.
    groups: BTreeSet<(String, String)>,
}

impl Held {
    /// Subscriptions counted against the per-connection limit.
    fn count(&self) -> usize {
        self.topics.len() + self.groups.len()
    }

    fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.groups.is_empty()
    }
}

impl Registry {
    /// An empty registry. `max_subscriptions_per_connection == 0` means unlimited.
    pub fn new(max_subscriptions_per_connection: usize) -> Registry {
        Registry {
            max_subscriptions_per_connection,
            ..Registry::default()
        }
    }

    /// Subscribes `conn` to `topics`: fan-out subscriptions, or, with `queue_group`,
    /// memberships of `(topic, group)` for round-robin delivery instead of fan-out.
    ///
    /// In order: duplicates in `topics` are ignored; topics with an ASCII control character
    /// are dropped (`rejected`); already-held subscriptions are no-ops; then the limit
    /// applies. If the connection already holds `max_subscriptions_per_connection`
    /// subscriptions and any new one was asked for, nothing changes and
    /// [`SubscribeError::LimitReached`] is returned; otherwise new subscriptions beyond the
    /// remaining budget are cut (`truncated`), keeping the earliest in `topics`.
    ///
    /// A queue group is keyed by the literal topic string, glob characters included: it only
    /// receives publishes to exactly that string.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        topics: &[String],
        queue_group: Option<&str>,
    ) -> Result<SubscribeOutcome, SubscribeError> {
        let mut outcome = SubscribeOutcome::default();
        let held = self.conns.get(&conn);
        let mut seen = BTreeSet::new();
        let mut wanted: Vec<&String> = Vec::new();
        for topic in topics {
            if !seen.insert(topic.as_str()) {
                continue;
            }
            if topic.chars().any(|ch| ch.is_ascii_control()) {
                outcome.rejected.push(topic.clone());
                continue;
            }
            let already = held.is_some_and(|h| match queue_group {
                None => h.topics.contains(topic),
                Some(group) => h.groups.contains(&(topic.clone(), group.to_owned())),
            });
            if !already {
                wanted.push(topic);
            }
        }
        if wanted.is_empty() {
            return Ok(outcome);
        }
        let limit = self.max_subscriptions_per_connection;
        if limit > 0 {
            let used = held.map_or(0, Held::count);
            if used >= limit {
                return Err(SubscribeError::LimitReached { limit });
            }
            let budget = limit - used;
            if wanted.len() > budget {
                outcome.truncated = wanted.split_off(budget).into_iter().cloned().collect();
            }
        }
        let held = self.conns.entry(conn).or_default();
        for topic in wanted {
            match queue_group {
                None => {
                    held.topics.insert(topic.clone());
                    let map = if is_glob(topic) {
                        &mut self.patterns
                    } else {
                        &mut self.exact
                    };
                    let subscribers = map.entry(topic.clone()).or_default();
                    subscribers.insert(conn);
                    if subscribers.len() == 1 {
                        outcome.first_subscriber.push(topic.clone());
                    }
                }
                Some(group) => {
                    held.groups.insert((topic.clone(), group.to_owned()));
                    self.queues
                        .entry(topic.clone())
                        .or_default()
                        .entry(group.to_owned())
                        .or_default()
                        .join(conn);
                }
            }
            outcome.added.push(topic.clone());
        }
        Ok(outcome)
    }

    /// Unsubscribes `conn`. `None` removes everything, queue-group memberships included.
    /// `Some(topics)` removes the fan-out subscriptions to those keys and every queue-group
    /// membership on those topics; keys the connection does not hold are ignored.
    pub fn unsubscribe(&mut self, conn: ConnId, topics: Option<&[String]>) -> UnsubscribeOutcome {
        let mut outcome = UnsubscribeOutcome::default();
        let Some(held) = self.conns.get_mut(&conn) else {
            return outcome;
        };
        let (keys, groups): (Vec<String>, Vec<(String, String)>) = match topics {
            None => {
                let all = std::mem::take(held);
                (
                    all.topics.into_iter().collect(),
                    all.groups.into_iter().collect(),
                )
            }
            Some(topics) => {
                let mut seen = BTreeSet::new();
                let mut keys = Vec::new();
                let mut groups = Vec::new();
                for topic in topics {
                    if !seen.insert(topic.as_str()) {
                        continue;
                    }
                    if held.topics.remove(topic) {
                        keys.push(topic.clone());
                    }
                    let on_topic: Vec<(String, String)> = held
                        .groups
                        .range((topic.clone(), String::new())..)
                        .take_while(|(t, _)| t == topic)
                        .cloned()
                        .collect();
                    for membership in on_topic {
                        held.groups.remove(&membership);
                        groups.push(membership);
                    }
                }
                (keys, groups)
            }
        };
        if held.is_empty() {
            self.conns.remove(&conn);
        }
        for key in keys {
            let map = if is_glob(&key) {
                &mut self.patterns
            } else {
                &mut self.exact
            };
            if remove_member(map, &key, conn) {
                outcome.last_subscriber.push(key.clone());
            }
            outcome.removed.push(key);
        }
        for (topic, group) in groups {
            self.leave_group(conn, &topic, &group);
            outcome.left_groups.push((topic, group));
        }
        outcome
    }

    /// Forgets `conn` entirely (on disconnect): every subscription and queue-group membership.
    /// Afterwards no entry anywhere mentions it.
    pub fn remove_connection(&mut self, conn: ConnId) -> UnsubscribeOutcome {
        self.unsubscribe(conn, None)
    }

    /// Who receives a publish to `topic`.
    ///
    /// Fan-out: every exact subscriber of `topic`, plus every glob subscriber whose pattern
    /// matches `topic` and for which `glob_permit(conn, topic)` holds (the caller's
    /// delivery-time ACL check; asked at most once per connection, in ascending order, and
    /// never for a connection that already receives the publish as an exact subscriber).
    /// Deduplicated, ascending. `eligible` is not applied to fan-out.
    ///
    /// Queue groups on exactly `topic`, in ascending group-name order: the first member with
    /// `eligible(member)`, starting at the group's round-robin cursor, which then moves past
    /// it. A group with no eligible member adds one to `queue_misses`.
    pub fn publish_targets(
        &mut self,
        topic: &str,
        mut eligible: impl FnMut(ConnId) -> bool,
        mut glob_permit: impl FnMut(ConnId, &str) -> bool,
    ) -> Targets {
        let mut fanout: Vec<ConnId> = self
            .exact
            .get(topic)
            .map(|subscribers| subscribers.iter().copied().collect())
            .unwrap_or_default();
        let mut via_glob: Vec<ConnId> = Vec::new();
        for (pattern, subscribers) in &self.patterns {
            if glob_match(pattern, topic) {
                // `fanout` holds only the sorted exact subscribers at this point.
                via_glob.extend(
                    subscribers
                        .iter()
                        .filter(|c| fanout.binary_search(c).is_err()),
                );
            }
        }
        if !via_glob.is_empty() {
            via_glob.sort_unstable();
            via_glob.dedup();
            via_glob.retain(|&conn| glob_permit(conn, topic));
            fanout.extend(via_glob);
            fanout.sort_unstable();
        }
        let mut queue = Vec::new();
        let mut queue_misses = 0;
        if let Some(groups) = self.queues.get_mut(topic) {
            for group in groups.values_mut() {
                match group.pick(&mut eligible) {
                    Some(member) => queue.push(member),
                    None => queue_misses += 1,
                }
            }
        }
        Targets {
            fanout,
            queue,
            queue_misses,
        }
    }

    /// Fan-out subscribers of exactly this key: a glob pattern is its own key (subscribers of
    /// `chat:*` are not counted for `chat:lobby`). Queue-group members are not counted.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        let map = if is_glob(topic) {
            &self.patterns
        } else {
            &self.exact
        };
        map.get(topic).map_or(0, BTreeSet::len)
    }

    /// `{group name: member count}` for the queue groups on exactly `topic`.
    pub fn queue_group_info(&self, topic: &str) -> BTreeMap<String, usize> {
        self.queues
            .get(topic)
            .map(|groups| {
                groups
                    .iter()
                    .map(|(name, group)| (name.clone(), group.len()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every fan-out key (exact topics, then glob patterns) with its subscriber count.
    pub fn topics(&self) -> Vec<(String, usize)> {
        self.exact
            .iter()
            .chain(self.patterns.iter())
            .map(|(topic, subs)| (topic.clone(), subs.len()))
            .collect()
    }

    /// Number of fan-out keys (exact topics plus glob patterns) with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    /// Subscriptions held by `conn`: fan-out keys plus queue-group memberships (what the limit
    /// counts).
    pub fn subscription_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, Held::count)
    }

    /// Fan-out keys (exact topics and glob patterns) held by `conn`, ascending.
    pub fn topics_of(&self, conn: ConnId) -> Vec<String> {
        self.conns
            .get(&conn)
            .map(|held| held.topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `(topic, group)` queue-group memberships held by `conn`, ascending.
    pub fn queue_groups_of(&self, conn: ConnId) -> Vec<(String, String)> {
        self.conns
            .get(&conn)
            .map(|held| held.groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// True if a publish to `topic` would reach anyone, before delivery-time checks: an exact
    /// subscriber, a matching glob subscriber (whether or not its ACL would permit it), or a
    /// queue group on exactly `topic`.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.exact.contains_key(topic)
            || self.queues.contains_key(topic)
            || self
                .patterns
                .keys()
                .any(|pattern| glob_match(pattern, topic))
    }

    /// True if nothing at all is held: no subscription, no group, no connection entry.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.patterns.is_empty()
            && self.queues.is_empty()
            && self.conns.is_empty()
    }

    /// The configured per-connection limit (0 = unlimited).
    pub fn max_subscriptions_per_connection(&self) -> usize {
        self.max_subscriptions_per_connection
    }

    /// Removes `conn` from `(topic, group)`, dropping the group and the topic entry when empty.
    fn leave_group(&mut self, conn: ConnId, topic: &str, group: &str) {
        let Some(groups) = self.queues.get_mut(topic) else {
            return;
        };
        if let Some(members) = groups.get_mut(group) {
            members.leave(conn);
            if members.is_empty() {
                groups.remove(group);
            }
        }
        if groups.is_empty() {
            self.queues.remove(topic);
        }
    }

    /// Checks that the forward maps and the per-connection index agree and hold no empty
    /// entry. Panics with the broken invariant.
    #[cfg(test)]
    fn assert_invariants(&self) {
        let mut topics: BTreeMap<ConnId, BTreeSet<String>> = BTreeMap::new();
        for (map, glob) in [(&self.exact, false), (&self.patterns, true)] {
            for (key, subscribers) in map {
                assert_eq!(is_glob(key), glob, "key {key:?} is in the wrong map");
                assert!(!subscribers.is_empty(), "empty subscriber set for {key:?}");
                for &conn in subscribers {
                    topics.entry(conn).or_default().insert(key.clone());
                }
            }
        }
        let mut groups: BTreeMap<ConnId, BTreeSet<(String, String)>> = BTreeMap::new();
        for (topic, by_name) in &self.queues {
            assert!(!by_name.is_empty(), "empty group map for {topic:?}");
            for (name, group) in by_name {
                assert!(!group.is_empty(), "empty group {name:?} on {topic:?}");
                for conn in group.members() {
                    groups
                        .entry(conn)
                        .or_default()
                        .insert((topic.clone(), name.clone()));
                }
            }
        }
        let limit = self.max_subscriptions_per_connection;
        for (conn, held) in &self.conns {
            assert!(!held.is_empty(), "empty index entry for {conn:?}");
            assert!(
                limit == 0 || held.count() <= limit,
                "{conn:?} over the limit"
            );
            assert_eq!(
                topics.remove(conn).unwrap_or_default(),
                held.topics,
                "{conn:?} topics"
            );
            assert_eq!(
                groups.remove(conn).unwrap_or_default(),
                held.groups,
                "{conn:?} groups"
            );
        }
        assert!(
            topics.is_empty() && groups.is_empty(),
            "subscribers missing from the index"
        );
    }
}

/// Removes `conn` from `map[key]`, dropping the entry if it becomes empty. True if it did.
fn remove_member(map: &mut BTreeMap<String, Subscribers>, key: &str, conn: ConnId) -> bool {
    let Some(subscribers) = map.get_mut(key) else {
        return false;
    };
    subscribers.remove(&conn);
    if subscribers.is_empty() {
        map.remove(key);
        true
    } else {
        false
    }
}
