//! Model-based property test: the registry against a naive list of subscriptions.

use proptest::prelude::*;

use super::*;

/// One command against both the registry and the model.
#[derive(Debug, Clone)]
enum Op {
    Subscribe(u128, Vec<String>, Option<String>),
    Unsubscribe(u128, Option<Vec<String>>),
    Remove(u128),
    Publish(String),
}

/// The obvious implementation: every subscription as a `(conn, key, group)` triple, scanned.
#[derive(Debug, Default)]
struct Model {
    limit: usize,
    subs: Vec<(ConnId, String, Option<String>)>,
    /// Round-robin cursor per live `(topic, group)`.
    cursors: BTreeMap<(String, String), usize>,
}

impl Model {
    fn holds(&self, conn: ConnId, key: &str, group: Option<&str>) -> bool {
        self.subs
            .iter()
            .any(|(c, k, g)| *c == conn && k == key && g.as_deref() == group)
    }

    fn count(&self, conn: ConnId) -> usize {
        self.subs.iter().filter(|(c, _, _)| *c == conn).count()
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        topics: &[String],
        group: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), SubscribeError> {
        let mut new: Vec<String> = Vec::new();
        let mut cut = Vec::new();
        for t in topics {
            let control = t.chars().any(|ch| ch.is_ascii_control());
            if !control && !new.contains(t) && !self.holds(conn, t, group) {
                new.push(t.clone());
            }
        }
        if self.limit > 0 && !new.is_empty() {
            let used = self.count(conn);
            if used >= self.limit {
                return Err(SubscribeError::LimitReached { limit: self.limit });
            }
            cut = new.split_off(new.len().min(self.limit - used));
        }
        for t in &new {
            self.subs.push((conn, t.clone(), group.map(str::to_owned)));
        }
        Ok((new, cut))
    }

    fn unsubscribe(&mut self, conn: ConnId, topics: Option<&[String]>) {
        self.subs
            .retain(|(c, k, _)| *c != conn || topics.is_some_and(|ts| !ts.contains(k)));
        let live: BTreeSet<(String, String)> = self
            .subs
            .iter()
            .filter_map(|(_, k, g)| g.as_ref().map(|g| (k.clone(), g.clone())))
            .collect();
        self.cursors.retain(|key, _| live.contains(key));
    }

    /// Exact subscribers, plus glob subscribers the permit allows; a connection that is both
    /// is delivered through its exact key regardless of the permit (the set union).
    fn fanout(&self, topic: &str, permit: impl Fn(ConnId, &str) -> bool) -> Vec<ConnId> {
        let receivers: BTreeSet<ConnId> = self
            .subs
            .iter()
            .filter(|(c, k, g)| {
                g.is_none()
                    && if is_glob(k) {
                        glob_match(k, topic) && permit(*c, topic)
                    } else {
                        k == topic
                    }
            })
            .map(|(c, _, _)| *c)
            .collect();
        receivers.into_iter().collect()
    }

    fn queue(&mut self, topic: &str, eligible: impl Fn(ConnId) -> bool) -> (Vec<ConnId>, usize) {
        let groups: BTreeSet<String> = self
            .subs
            .iter()
            .filter(|(_, k, _)| k == topic)
            .filter_map(|(_, _, g)| g.clone())
            .collect();
        let (mut picks, mut misses) = (Vec::new(), 0);
        for group in groups {
            let members: Vec<ConnId> = self
                .subs
                .iter()
                .filter(|(_, k, g)| k == topic && g.as_ref() == Some(&group))
                .map(|(c, _, _)| *c)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let cursor = self.cursors.entry((topic.to_owned(), group)).or_insert(0);
            let n = members.len();
            match (0..n)
                .map(|s| (*cursor + s) % n)
                .find(|&at| eligible(members[at]))
            {
                Some(at) => {
                    picks.push(members[at]);
                    *cursor = at + 1;
                }
                None => misses += 1,
            }
        }
        (picks, misses)
    }

    fn subscriber_count(&self, key: &str) -> usize {
        self.subs
            .iter()
            .filter(|(_, k, g)| g.is_none() && k == key)
            .count()
    }
}

/// Deterministic stand-ins for the caller's ACL and eligibility decisions.
fn permit(conn: ConnId, topic: &str) -> bool {
    (conn.as_uuid().as_u128() + topic.len() as u128) % 3 != 0
}

fn eligible(conn: ConnId, step: usize) -> bool {
    (conn.as_uuid().as_u128() + step as u128) % 4 != 0
}

fn topic() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "ab", "a*", "?b", "*", "a?", "bad\u{1}"])
        .prop_map(str::to_owned)
}

fn publish_topic() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "ab", "bb", "a*", "abc", ""]).prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    let conn = 1u128..5;
    let group = prop::option::of(prop::sample::select(vec!["g1", "g2"]).prop_map(str::to_owned));
    prop_oneof![
        4 => (conn.clone(), prop::collection::vec(topic(), 0..4), group)
            .prop_map(|(c, ts, g)| Op::Subscribe(c, ts, g)),
        2 => (conn.clone(), prop::option::of(prop::collection::vec(topic(), 0..3)))
            .prop_map(|(c, ts)| Op::Unsubscribe(c, ts)),
        1 => conn.prop_map(Op::Remove),
        3 => publish_topic().prop_map(Op::Publish),
    ]
}

/// Runs `ops` on a fresh registry, checking it against the model after every step; returns
/// every publish's targets.
fn run(limit: usize, ops: &[Op]) -> Result<Vec<Targets>, TestCaseError> {
    let mut r = Registry::new(limit);
    let mut m = Model {
        limit,
        ..Model::default()
    };
    let mut published = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Subscribe(conn, topics, group) => {
                let conn = ConnId::from_u128(*conn);
                let got = r
                    .subscribe(conn, topics, group.as_deref())
                    .map(|o| (o.added, o.truncated));
                prop_assert_eq!(got, m.subscribe(conn, topics, group.as_deref()));
            }
            Op::Unsubscribe(conn, topics) => {
                let conn = ConnId::from_u128(*conn);
                let _ = r.unsubscribe(conn, topics.as_deref());
                m.unsubscribe(conn, topics.as_deref());
            }
            Op::Remove(conn) => {
                let conn = ConnId::from_u128(*conn);
                let _ = r.remove_connection(conn);
                m.unsubscribe(conn, None);
            }
            Op::Publish(topic) => {
                let t = r.publish_targets(topic, |c| eligible(c, step), permit);
                prop_assert_eq!(&t.fanout, &m.fanout(topic, permit));
                let (queue, misses) = m.queue(topic, |c| eligible(c, step));
                prop_assert_eq!((&t.queue, t.queue_misses), (&queue, misses));
                published.push(t);
            }
        }
        r.assert_invariants();
        for key in ["a", "b", "ab", "a*", "?b", "*", "a?"] {
            prop_assert_eq!(
                r.subscriber_count(key),
                m.subscriber_count(key),
                "key {}",
                key
            );
        }
        for n in 1u128..5 {
            let conn = ConnId::from_u128(n);
            prop_assert_eq!(r.subscription_count(conn), m.count(conn));
        }
        let keys: BTreeSet<&String> = m
            .subs
            .iter()
            .filter(|(_, _, g)| g.is_none())
            .map(|(_, k, _)| k)
            .collect();
        prop_assert_eq!(r.topic_count(), keys.len());
        for topic in ["a", "b", "ab", "bb", "a*", "abc", ""] {
            let reached = m
                .subs
                .iter()
                .any(|(_, k, g)| k == topic || (g.is_none() && is_glob(k) && glob_match(k, topic)));
            prop_assert_eq!(r.has_subscribers(topic), reached, "topic {}", topic);
        }
    }
    for n in 1u128..5 {
        let _ = r.remove_connection(ConnId::from_u128(n));
    }
    r.assert_invariants();
    prop_assert!(r.is_empty());
    Ok(published)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn registry_agrees_with_the_naive_model(limit in 0usize..5, ops in prop::collection::vec(op(), 0..60)) {
        run(limit, &ops)?;
    }

    #[test]
    fn the_same_operations_give_the_same_targets(limit in 0usize..5, ops in prop::collection::vec(op(), 0..60)) {
        prop_assert_eq!(run(limit, &ops)?, run(limit, &ops)?);
    }
}
