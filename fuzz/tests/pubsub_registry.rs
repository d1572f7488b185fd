//! Fuzz target: operation sequences against the topic registry (`wse_core::pubsub::Registry`),
//! checked against a naive model (a flat list of `(connection, key, group)` subscriptions).
//!
//! Input: a per-connection limit (0 = unlimited) and steps on five connections: subscribe
//! (fan-out or queue group, topics over a tiny alphabet with globs and a control character),
//! unsubscribe (some or all), remove the connection, publish (with fuzzed eligibility and ACL
//! permits). Invariants after every step:
//!
//! - subscribe reports exactly what the model adds, cuts at the limit, rejects, and which keys
//!   got their first subscriber; `LimitReached` exactly when the model says so;
//! - unsubscribe reports exactly the removed keys, the keys left without subscribers and the
//!   groups left;
//! - per connection: held keys, held groups and the count equal the model's, and never exceed
//!   the limit;
//! - `topics()`, `topic_count`, `subscriber_count`, `has_subscribers` equal the model's;
//! - a publish reaches exactly the exact subscribers plus the permitted glob subscribers, each
//!   once, ascending; each queue group on the topic yields one eligible member or one miss;
//! - removing every connection leaves the registry empty (no memory kept for nobody).

use std::collections::{BTreeMap, BTreeSet};

use bolero::TypeGenerator;
use wse_core::ConnId;
use wse_core::glob::{glob_match, is_glob};
use wse_core::pubsub::{Registry, SubscribeError};
use wse_fuzz::name_from;

const CONNS: u8 = 5;
/// Topic alphabet: `\u{1}` is the control character subscribe must reject.
const TOPIC_ALPHABET: &[u8] = b"ab*?\x01";

#[derive(Debug, TypeGenerator)]
struct Input {
    limit: u8,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Op {
    Subscribe {
        conn: u8,
        topics: Vec<Vec<u8>>,
        group: Option<bool>,
    },
    Unsubscribe {
        conn: u8,
        topics: Option<Vec<Vec<u8>>>,
    },
    Remove(u8),
    Publish {
        topic: Vec<u8>,
        eligible: u8,
        permit: u8,
    },
}

/// Every subscription as `(conn, key, group)`.
#[derive(Debug, Default)]
struct Model {
    subs: BTreeSet<(ConnId, String, Option<String>)>,
}

impl Model {
    fn count(&self, conn: ConnId) -> usize {
        self.subs.iter().filter(|(c, _, _)| *c == conn).count()
    }

    fn fanout_keys(&self) -> BTreeMap<String, usize> {
        let mut keys = BTreeMap::new();
        for (_, k, g) in &self.subs {
            if g.is_none() {
                *keys.entry(k.clone()).or_insert(0) += 1;
            }
        }
        keys
    }
}

fn conn_id(n: u8) -> ConnId {
    ConnId::from_u128(u128::from(n % CONNS) + 1)
}

fn topic(bytes: &[u8]) -> String {
    name_from(&bytes[..bytes.len().min(4)], TOPIC_ALPHABET)
}

#[test]
fn pubsub_registry() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let limit = usize::from(input.limit % 6);
        let mut registry = Registry::new(limit);
        let mut model = Model::default();
        for op in &input.ops {
            step(&mut registry, &mut model, limit, op);
            check(&registry, &model, limit);
        }
        for n in 0..CONNS {
            let _ = registry.remove_connection(conn_id(n));
        }
        assert!(
            registry.is_empty(),
            "entries kept after every connection left"
        );
    });
}

fn step(registry: &mut Registry, model: &mut Model, limit: usize, op: &Op) {
    match op {
        Op::Subscribe {
            conn,
            topics,
            group,
        } => {
            let conn = conn_id(*conn);
            let topics: Vec<String> = topics.iter().map(|t| topic(t)).collect();
            let group = group.map(|g| if g { "g1" } else { "g2" }.to_owned());
            let got = registry.subscribe(conn, &topics, group.as_deref());
            // The model: dedup, reject control characters, skip held, then the budget.
            let (mut wanted, mut rejected, mut seen) = (Vec::new(), Vec::new(), BTreeSet::new());
            for t in &topics {
                if !seen.insert(t.clone()) {
                    continue;
                }
                if t.chars().any(|c| c.is_ascii_control()) {
                    rejected.push(t.clone());
                } else if !model.subs.contains(&(conn, t.clone(), group.clone())) {
                    wanted.push(t.clone());
                }
            }
            let used = model.count(conn);
            if limit > 0 && !wanted.is_empty() && used >= limit {
                assert_eq!(got, Err(SubscribeError::LimitReached { limit }));
                return;
            }
            let cut = if limit > 0 {
                wanted.split_off(wanted.len().min(limit - used))
            } else {
                Vec::new()
            };
            let keys_before = model.fanout_keys();
            let first: Vec<String> = if group.is_none() {
                wanted
                    .iter()
                    .filter(|t| !keys_before.contains_key(*t))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            for t in &wanted {
                model.subs.insert((conn, t.clone(), group.clone()));
            }
            let got = got.expect("within the limit");
            assert_eq!(
                (
                    &got.added,
                    &got.truncated,
                    &got.rejected,
                    &got.first_subscriber
                ),
                (&wanted, &cut, &rejected, &first),
                "subscribe {topics:?} group {group:?}"
            );
        }
        Op::Unsubscribe { conn, topics } => {
            let conn = conn_id(*conn);
            let topics: Option<Vec<String>> = topics
                .as_ref()
                .map(|ts| ts.iter().map(|t| topic(t)).collect());
            let got = registry.unsubscribe(conn, topics.as_deref());
            check_unsubscribe(model, conn, topics.as_deref(), &got);
        }
        Op::Remove(conn) => {
            let conn = conn_id(*conn);
            let got = registry.remove_connection(conn);
            check_unsubscribe(model, conn, None, &got);
        }
        Op::Publish {
            topic: t,
            eligible,
            permit,
        } => {
            let t = topic(t).replace(['*', '?'], "a");
            let is_eligible = |c: ConnId| eligible >> (c.as_uuid().as_u128() % 8) & 1 == 1;
            let is_permitted = |c: ConnId| permit >> (c.as_uuid().as_u128() % 8) & 1 == 1;
            let got = registry.publish_targets(&t, is_eligible, |c, _| is_permitted(c));
            let fanout: BTreeSet<ConnId> = model
                .subs
                .iter()
                .filter(|(c, k, g)| {
                    g.is_none()
                        && (*k == t || (is_glob(k) && glob_match(k, &t) && is_permitted(*c)))
                })
                .map(|(c, _, _)| *c)
                .collect();
            assert_eq!(
                got.fanout,
                fanout.into_iter().collect::<Vec<_>>(),
                "fan-out of {t:?}"
            );
            let mut groups: BTreeMap<&str, Vec<ConnId>> = BTreeMap::new();
            for (c, k, g) in &model.subs {
                if let (Some(g), true) = (g, *k == t) {
                    groups.entry(g).or_default().push(*c);
                }
            }
            let served: Vec<&Vec<ConnId>> = groups
                .values()
                .filter(|m| m.iter().any(|c| is_eligible(*c)))
                .collect();
            assert_eq!(
                got.queue_misses,
                groups.len() - served.len(),
                "queue misses on {t:?}"
            );
            assert_eq!(got.queue.len(), served.len());
            for (pick, members) in got.queue.iter().zip(served) {
                assert!(
                    members.contains(pick) && is_eligible(*pick),
                    "queue pick {pick:?}"
                );
            }
        }
    }
}

fn check_unsubscribe(
    model: &mut Model,
    conn: ConnId,
    topics: Option<&[String]>,
    got: &wse_core::pubsub::UnsubscribeOutcome,
) {
    let goes = |k: &String| topics.is_none_or(|ts| ts.contains(k));
    let leaving: Vec<(String, Option<String>)> = model
        .subs
        .iter()
        .filter(|(c, k, _)| *c == conn && goes(k))
        .map(|(_, k, g)| (k.clone(), g.clone()))
        .collect();
    for (k, g) in &leaving {
        model.subs.remove(&(conn, k.clone(), g.clone()));
    }
    let keys_after = model.fanout_keys();
    let removed: BTreeSet<&String> = leaving
        .iter()
        .filter(|(_, g)| g.is_none())
        .map(|(k, _)| k)
        .collect();
    let left: BTreeSet<(String, String)> = leaving
        .iter()
        .filter_map(|(k, g)| g.clone().map(|g| (k.clone(), g)))
        .collect();
    assert_eq!(
        got.removed.iter().collect::<BTreeSet<_>>(),
        removed,
        "removed keys"
    );
    assert_eq!(got.removed.len(), removed.len(), "a key reported twice");
    assert_eq!(
        got.left_groups.iter().cloned().collect::<BTreeSet<_>>(),
        left,
        "left groups"
    );
    let emptied: BTreeSet<&String> = removed
        .iter()
        .copied()
        .filter(|k| !keys_after.contains_key(*k))
        .collect();
    assert_eq!(
        got.last_subscriber.iter().collect::<BTreeSet<_>>(),
        emptied,
        "last subscriber"
    );
}

fn check(registry: &Registry, model: &Model, limit: usize) {
    for n in 0..CONNS {
        let conn = conn_id(n);
        let keys: Vec<String> = model
            .subs
            .iter()
            .filter(|(c, _, g)| *c == conn && g.is_none())
            .map(|(_, k, _)| k.clone())
            .collect();
        let groups: Vec<(String, String)> = model
            .subs
            .iter()
            .filter(|(c, _, _)| *c == conn)
            .filter_map(|(_, k, g)| g.clone().map(|g| (k.clone(), g)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(registry.topics_of(conn), keys, "keys of {conn:?}");
        assert_eq!(registry.queue_groups_of(conn), groups, "groups of {conn:?}");
        assert_eq!(registry.subscription_count(conn), model.count(conn));
        assert!(
            limit == 0 || registry.subscription_count(conn) <= limit,
            "over the limit"
        );
    }
    let keys = model.fanout_keys();
    let mut listed: Vec<(String, usize)> = registry.topics();
    listed.sort();
    assert_eq!(
        listed,
        keys.clone().into_iter().collect::<Vec<_>>(),
        "topics()"
    );
    assert_eq!(registry.topic_count(), keys.len());
    for key in keys
        .keys()
        .map(String::as_str)
        .chain(["a", "b", "ab", "a*", "*"])
    {
        assert_eq!(
            registry.subscriber_count(key),
            keys.get(key).copied().unwrap_or(0),
            "count of {key:?}"
        );
        let reached = model
            .subs
            .iter()
            .any(|(_, k, g)| k == key || (g.is_none() && is_glob(k) && glob_match(k, key)));
        if !is_glob(key) {
            assert_eq!(
                registry.has_subscribers(key),
                reached,
                "has_subscribers({key:?})"
            );
        }
    }
}
