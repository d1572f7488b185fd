//! Topic state sharded so that concurrent publishers to different topics do not serialize on
//! one lock.
//!
//! Exact topic keys (and the queue groups on them) live in one of [`SHARDS`] `Registry` shards
//! chosen by a hash of the key; glob patterns live in one extra shard, because every publish
//! must match them all. A publish to topic `T` locks `shard(T)` and, only if any pattern is
//! subscribed, the pattern shard. The per-connection subscription limit spans shards, so it is
//! enforced here (the shards are built unlimited), with subscribes serialized by one lock.
//!
//! The same lock keeps the node's cluster interest ([`LocalInterest`]): every subscription
//! added or removed is counted per key, and the keys that got their first or lost their last
//! subscriber are reported, in order, to the observer the cluster installs (SUB and UNSUB).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use wse_core::ConnId;
use wse_core::cluster::LocalInterest;
use wse_core::glob::is_glob;
use wse_core::pubsub::{Registry, SubscribeError, Targets};

/// Exact-topic shards (a power of two).
pub const SHARDS: usize = 16;

/// Told `(first, last)`: keys that got their first local subscription and keys that lost
/// their last one.
pub type InterestObserver = Arc<dyn Fn(&[String], &[String]) + Send + Sync>;

/// The sharded registry.
pub struct Topics {
    exact: Vec<Mutex<Registry>>,
    patterns: Mutex<Registry>,
    /// Glob subscriptions held; 0 lets a publish skip the pattern shard's lock.
    pattern_subscriptions: AtomicUsize,
    limit: usize,
    /// Serializes subscription changes; guards `interest`.
    subscribing: Mutex<LocalInterest>,
    observer: OnceLock<InterestObserver>,
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Topics {
    /// Empty, with `max_subscriptions_per_connection` (0 = unlimited).
    pub fn new(limit: usize) -> Topics {
        Topics {
            exact: (0..SHARDS).map(|_| Mutex::new(Registry::new(0))).collect(),
            patterns: Mutex::new(Registry::new(0)),
            pattern_subscriptions: AtomicUsize::new(0),
            limit,
            subscribing: Mutex::new(LocalInterest::new()),
            observer: OnceLock::new(),
        }
    }

    /// Installs the observer of interest changes (once; later calls are ignored).
    pub fn set_observer(&self, observer: InterestObserver) {
        let _ = self.observer.set(observer);
    }

    /// Every key with at least one local subscription (fan-out or queue group), sorted.
    pub fn interest_keys(&self) -> Vec<String> {
        lock(&self.subscribing).keys()
    }

    /// Runs `f` on [`Topics::interest_keys`] with subscription changes held back until it
    /// returns, so what `f` registers cannot miss a change (the observer runs after it).
    pub fn with_interest_keys<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        let interest = lock(&self.subscribing);
        f(&interest.keys())
    }

    /// Counts `added` and `removed` subscriptions and tells the observer about transitions
    /// (called with the `subscribing` lock held, so observers see changes in order).
    fn account(&self, interest: &mut LocalInterest, added: &[String], removed: &[String]) {
        let first: Vec<String> = added.iter().filter(|k| interest.add(k)).cloned().collect();
        let last: Vec<String> = removed
            .iter()
            .filter(|k| interest.remove(k))
            .cloned()
            .collect();
        if let Some(observer) = self.observer.get()
            && (!first.is_empty() || !last.is_empty())
        {
            observer(&first, &last);
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Registry> {
        if is_glob(key) {
            return &self.patterns;
        }
        // A fixed-key hasher: the shard of a topic is the same in every run (simulation
        // replays), and a client that picks colliding names only adds lock contention.
        let mut h = DefaultHasher::new();
        h.write(key.as_bytes());
        &self.exact[(h.finish() as usize) & (SHARDS - 1)]
    }

    fn all(&self) -> impl Iterator<Item = &Mutex<Registry>> {
        self.exact.iter().chain(std::iter::once(&self.patterns))
    }

    /// Subscribes with the semantics of `Registry::subscribe` (control characters rejected,
    /// duplicates ignored, limit counted over topics and queue memberships, `LimitReached` at
    /// the limit, truncation below it); returns the keys added.
    pub fn subscribe(
        &self,
        conn: ConnId,
        topics: &[String],
        group: Option<&str>,
    ) -> Result<Vec<String>, SubscribeError> {
        let mut interest = lock(&self.subscribing);
        let held = |key: &str| {
            let r = lock(self.shard(key));
            match group {
                None => r.topics_of(conn).iter().any(|t| t == key),
                Some(g) => r
                    .queue_groups_of(conn)
                    .iter()
                    .any(|(t, gg)| t == key && gg == g),
            }
        };
        let mut fresh: Vec<&String> = Vec::new();
        for t in topics {
            let valid = !t.bytes().any(|b| b.is_ascii_control());
            if valid && !fresh.contains(&t) && !held(t) {
                fresh.push(t);
            }
        }
        if self.limit > 0 {
            let current: usize = self.all().map(|r| lock(r).subscription_count(conn)).sum();
            let budget = self.limit.saturating_sub(current);
            if budget == 0 && !fresh.is_empty() {
                return Err(SubscribeError::LimitReached { limit: self.limit });
            }
            fresh.truncate(budget);
        }
        let mut added = Vec::with_capacity(fresh.len());
        for t in fresh {
            let outcome = lock(self.shard(t)).subscribe(conn, std::slice::from_ref(t), group)?;
            if is_glob(t) && group.is_none() {
                self.pattern_subscriptions
                    .fetch_add(outcome.added.len(), Ordering::AcqRel);
            }
            added.extend(outcome.added);
        }
        self.account(&mut interest, &added, &[]);
        Ok(added)
    }

    /// Unsubscribes from `topics`, or from everything with `None`.
    pub fn unsubscribe(&self, conn: ConnId, topics: Option<&[String]>) {
        let mut interest = lock(&self.subscribing);
        let mut removed = Vec::new();
        match topics {
            None => self
                .all()
                .for_each(|r| self.forget(&mut lock(r), conn, None, &mut removed)),
            Some(ts) => {
                for t in ts {
                    self.forget(
                        &mut lock(self.shard(t)),
                        conn,
                        Some(std::slice::from_ref(t)),
                        &mut removed,
                    );
                }
            }
        }
        self.account(&mut interest, &[], &removed);
    }

    fn forget(
        &self,
        r: &mut Registry,
        conn: ConnId,
        topics: Option<&[String]>,
        removed: &mut Vec<String>,
    ) {
        let out = r.unsubscribe(conn, topics);
        let globs = out.removed.iter().filter(|k| is_glob(k)).count();
        self.pattern_subscriptions
            .fetch_sub(globs, Ordering::AcqRel);
        removed.extend(out.removed);
        removed.extend(out.left_groups.into_iter().map(|(topic, _)| topic));
    }

    /// Receivers of a publish to `topic` (see `Registry::publish_targets`), fan-out merged
    /// across the exact shard and the pattern shard without duplicates, ascending.
    pub fn publish_targets(
        &self,
        topic: &str,
        mut eligible: impl FnMut(ConnId) -> bool,
        mut glob_permit: impl FnMut(ConnId, &str) -> bool,
    ) -> Targets {
        let mut targets =
            lock(self.shard(topic)).publish_targets(topic, &mut eligible, &mut glob_permit);
        if !is_glob(topic) && self.pattern_subscriptions.load(Ordering::Acquire) > 0 {
            let globbed = lock(&self.patterns).publish_targets(topic, eligible, glob_permit);
            targets.fanout.extend(globbed.fanout);
            targets.fanout.sort_unstable();
            targets.fanout.dedup();
            targets.queue.extend(globbed.queue);
            targets.queue_misses += globbed.queue_misses;
        }
        targets
    }

    /// Fan-out subscribers of exactly this key.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        lock(self.shard(topic)).subscriber_count(topic)
    }

    /// `{group: members}` on this topic.
    pub fn queue_group_info(&self, topic: &str) -> BTreeMap<String, usize> {
        lock(self.shard(topic)).queue_group_info(topic)
    }

    /// Every fan-out key with its subscriber count, ascending by key.
    pub fn topics(&self) -> Vec<(String, usize)> {
        let mut all: Vec<(String, usize)> = self.all().flat_map(|r| lock(r).topics()).collect();
        all.sort();
        all
    }

    /// Fan-out keys with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.all().map(|r| lock(r).topic_count()).sum()
    }

    /// Whether `conn` holds a subscription to exactly `topic` (a key: a topic or a pattern).
    pub fn is_subscribed(&self, conn: ConnId, topic: &str) -> bool {
        lock(self.shard(topic))
            .topics_of(conn)
            .iter()
            .any(|t| t == topic)
    }

    /// Forgets a connection everywhere (disconnect).
    pub fn remove_connection(&self, conn: ConnId) {
        self.unsubscribe(conn, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u128) -> ConnId {
        ConnId::from_u128(n)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn the_limit_spans_shards_and_counts_queue_memberships() {
        let t = Topics::new(3);
        assert_eq!(t.subscribe(c(1), &s(&["a", "b"]), None).unwrap().len(), 2);
        assert_eq!(
            t.subscribe(c(1), &s(&["a", "x:*", "c"]), None).unwrap(),
            s(&["x:*"])
        );
        assert!(t.subscribe(c(1), &s(&["jobs"]), Some("w")).is_err());
        t.unsubscribe(c(1), Some(&s(&["b"])));
        assert_eq!(
            t.subscribe(c(1), &s(&["jobs"]), Some("w")).unwrap(),
            s(&["jobs"])
        );
    }

    #[test]
    fn exact_and_glob_receivers_merge_without_duplicates() {
        let t = Topics::new(0);
        t.subscribe(c(2), &s(&["chat:lobby", "chat:*"]), None)
            .unwrap();
        t.subscribe(c(1), &s(&["chat:*"]), None).unwrap();
        t.subscribe(c(3), &s(&["other"]), None).unwrap();
        let got = t.publish_targets("chat:lobby", |_| true, |_, _| true);
        assert_eq!(got.fanout, vec![c(1), c(2)]);
        let denied = t.publish_targets("chat:lobby", |_| true, |conn, _| conn != c(1));
        assert_eq!(
            denied.fanout,
            vec![c(2)],
            "exact subscriptions are not ACL-filtered again"
        );
    }

    #[test]
    fn interest_reports_first_and_last_subscriptions_in_order() {
        let t = Topics::new(0);
        type Log = Vec<(Vec<String>, Vec<String>)>;
        let seen: Arc<Mutex<Log>> = Arc::default();
        let log = Arc::clone(&seen);
        t.set_observer(Arc::new(move |first: &[String], last: &[String]| {
            lock(&log).push((first.to_vec(), last.to_vec()));
        }));
        t.subscribe(c(1), &s(&["a", "p.*"]), None).unwrap();
        t.subscribe(c(2), &s(&["a"]), None).unwrap();
        t.subscribe(c(3), &s(&["jobs"]), Some("g")).unwrap();
        assert_eq!(t.interest_keys(), s(&["a", "jobs", "p.*"]));
        t.unsubscribe(c(1), Some(&s(&["a"])));
        t.remove_connection(c(2));
        t.remove_connection(c(3));
        t.remove_connection(c(1));
        assert!(t.interest_keys().is_empty());
        assert_eq!(
            *lock(&seen),
            vec![
                (s(&["a", "p.*"]), vec![]),
                (s(&["jobs"]), vec![]),
                (vec![], s(&["a"])),
                (vec![], s(&["jobs"])),
                (vec![], s(&["p.*"])),
            ]
        );
    }

    #[test]
    fn removing_every_connection_leaves_nothing_behind() {
        let t = Topics::new(0);
        for n in 0..50 {
            let topics = s(&[&format!("t{n}"), "shared", "p:*"]);
            t.subscribe(c(n), &topics, None).unwrap();
            t.subscribe(c(n), &s(&["jobs"]), Some("g")).unwrap();
        }
        assert_eq!(t.subscriber_count("shared"), 50);
        for n in 0..50 {
            t.remove_connection(c(n));
        }
        assert!(t.all().all(|r| lock(r).is_empty()));
        assert_eq!(t.pattern_subscriptions.load(Ordering::Acquire), 0);
    }
}
