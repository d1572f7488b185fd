//! The checkers. Each reads the trace (and the end-of-run [`Final`] figures) and reports
//! [`Violation`]s; none of them trusts the client machine's own bookkeeping.
//!
//! Safety (the whole run, faults included):
//! - `order`: per client session and topic, delivered offsets strictly increase within an epoch,
//!   and no `(epoch, offset)` is delivered twice;
//! - `content`: every delivered stamp is one the server gave a publication, with its payload;
//! - `silent-gap`: every delivery follows the previous one (`offset + 1`, or offset 0 of a new
//!   epoch), unless an explicit `NotRecovered` moved the client's position in between;
//! - `memory`: the server's recovery rings stay within their budget.
//!
//! Liveness (after the heal and the settle phase):
//! - `catch-up`: every live client's last delivery in every topic is the last publication;
//! - `presence`: each topic's presence is exactly the live clients' users, and empty once
//!   they have all left (no ghosts);
//! - `leak`: after the clients leave, no connection and no task is left on the server.
//!
//! Cluster (`topology.servers > 1`, see `check/cluster.rs`): `interest` (no MSG reaches a
//! node without a subscriber for it once interest converged), `dlq-sound` and `dlq-complete`
//! (the dead letters against what the origin knew), and the expectations `breaker` and
//! `failover`; and (see `check/membership.rs`) `membership` (a full mesh of the current
//! instances, nothing suspect), with `[presence]` `presence-views` (one presence truth on every
//! node, equal to the connected users) and `presence-accounting` (each node's join/leave
//! frames against the sessions).
//!
//! Always: `protocol` (no client ever saw a malformed or undecryptable frame), and with
//! `client.encryption`, `encryption` (key exchanges happened). Scenario expectations
//! (`[expect]`) add `full-recovery`, `not-recovered`, `slow-consumer` and `reconnects`.

use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::Scenario;
use crate::trace::{Entry, Record};

mod cluster;
mod membership;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker's name.
    pub checker: &'static str,
    /// What it saw.
    pub detail: String,
}

/// Figures taken at the end of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Final {
    /// Client hosts whose software was running at the end of the settle phase.
    pub live_clients: BTreeSet<usize>,
    /// The latest session of each client.
    pub last_session: BTreeMap<usize, u32>,
    /// Per topic, the users present at the end of the settle phase.
    pub presence_settled: BTreeMap<String, BTreeSet<String>>,
    /// Per topic, the users present after every client left.
    pub presence_after: BTreeMap<String, BTreeSet<String>>,
    /// Connections open after every client left.
    pub connections_after: usize,
    /// Tasks alive on the server host when it had started (before any client).
    pub tasks_baseline: Option<usize>,
    /// Tasks alive on the server host after every client left.
    pub tasks_after: Option<usize>,
    /// Connections the server closed as slow consumers (1013).
    pub slow_consumer_drops: u64,
    /// Whether presence is on.
    pub presence_enabled: bool,
    /// Tasks a node may keep beyond its baseline (the cluster links' sessions and writers).
    pub tasks_allowance: usize,
    /// Every live node's views at the end of the settle phase (clusters).
    pub views: Vec<NodeView>,
    /// Per live node, the users of the presence topic once every client left.
    pub presence_after_nodes: BTreeMap<usize, BTreeSet<String>>,
}

/// One live node's views, read at the end of the settle phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Server index.
    pub server: usize,
    /// Its instance id (this incarnation).
    pub instance: String,
    /// The instance ids it has a live link to (`cluster_info()`).
    pub linked: BTreeSet<String>,
    /// Membership's alive nodes (`cluster_figures().members`).
    pub members: usize,
    /// Membership's suspects.
    pub suspects: usize,
    /// `presence(topic)` of the presence topic: user → connections.
    pub presence: BTreeMap<String, u32>,
}

type Key = (usize, u32, String);

/// Runs every checker.
pub fn check(scenario: &Scenario, entries: &[Entry], fin: &Final) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut bad = |checker: &'static str, detail: String| v.push(Violation { checker, detail });

    // What the server published: (topic, epoch, offset) -> n, and each topic's last stamp.
    let mut published: BTreeMap<(String, u32, u64), u64> = BTreeMap::new();
    let mut last_publication: BTreeMap<String, (u32, u64, u64)> = BTreeMap::new();
    // When each client session was first ready (subscribed): earlier publications are not owed.
    let mut first_ready: BTreeMap<(usize, u32), u64> = BTreeMap::new();
    for e in entries {
        match &e.record {
            Record::Publish {
                topic,
                epoch,
                offset,
                n,
            } => {
                published.insert((topic.clone(), *epoch, *offset), *n);
                last_publication.insert(topic.clone(), (*epoch, *offset, e.at_ms));
            }
            Record::Ready {
                client, session, ..
            } => {
                first_ready.entry((*client, *session)).or_insert(e.at_ms);
            }
            _ => {}
        }
    }

    let mut cursor: BTreeMap<Key, Option<(u32, u64)>> = BTreeMap::new();
    let mut seen: BTreeMap<Key, BTreeSet<(u32, u64)>> = BTreeMap::new();
    let mut not_recovered_known = 0u64;
    // When each session was last told NotRecovered per topic.
    let mut last_notice: BTreeMap<Key, u64> = BTreeMap::new();
    let mut reconnects = 0u64;
    let mut encrypted = 0u64;
    for e in entries {
        match &e.record {
            Record::Deliver {
                client,
                session,
                topic,
                epoch,
                offset,
                n,
            } => {
                let key = (*client, *session, topic.clone());
                let at = e.at_ms;
                if !seen
                    .entry(key.clone())
                    .or_default()
                    .insert((*epoch, *offset))
                {
                    bad(
                        "order",
                        format!(
                            "client{client} session {session} got {topic} {epoch:08x}/{offset} twice (at {at} ms)"
                        ),
                    );
                }
                match published.get(&(topic.clone(), *epoch, *offset)) {
                    None => bad(
                        "content",
                        format!("client{client} got {topic} {epoch:08x}/{offset}, never published"),
                    ),
                    Some(p) if p != n => bad(
                        "content",
                        format!(
                            "client{client} got {topic} {epoch:08x}/{offset} carrying n={n}, published with n={p}"
                        ),
                    ),
                    Some(_) => {}
                }
                let slot = cursor.entry(key).or_default();
                if let Some((ce, co)) = *slot {
                    if ce == *epoch && *offset <= co {
                        bad(
                            "order",
                            format!(
                                "client{client} session {session} {topic}: offset {offset} after {co} in epoch {epoch:08x} (at {at} ms)"
                            ),
                        );
                    } else if (ce == *epoch && *offset != co + 1) || (ce != *epoch && *offset != 0)
                    {
                        bad(
                            "silent-gap",
                            format!(
                                "client{client} session {session} {topic}: delivered {epoch:08x}/{offset} after {ce:08x}/{co} with no NotRecovered in between (at {at} ms)"
                            ),
                        );
                    }
                }
                *slot = Some((*epoch, *offset));
            }
            Record::NotRecovered {
                client,
                session,
                topic,
                epoch,
                offset,
            } => {
                last_notice.insert((*client, *session, topic.clone()), e.at_ms);
                let slot = cursor
                    .entry((*client, *session, topic.clone()))
                    .or_default();
                if slot.is_some() {
                    not_recovered_known += 1;
                    if scenario.expect.full_recovery {
                        bad(
                            "full-recovery",
                            format!(
                                "client{client} session {session} {topic}: NotRecovered at {} ms though everything should be recoverable",
                                e.at_ms
                            ),
                        );
                    }
                }
                *slot = match (*slot, *epoch) {
                    (_, None) => None,
                    (Some((ce, co)), Some(ae)) if ce == ae => Some((ae, co.max(*offset))),
                    (_, Some(ae)) => Some((ae, *offset)),
                };
            }
            Record::Ready { reconnected, .. } => reconnects += u64::from(*reconnected),
            Record::ProtocolError {
                client,
                session,
                detail,
            } => bad(
                "protocol",
                format!(
                    "client{client} session {session}: {detail} (at {} ms)",
                    e.at_ms
                ),
            ),
            Record::Encrypted { .. } => encrypted += 1,
            Record::ServerSample {
                server,
                recovery_bytes,
                recovery_budget,
                ..
            } if recovery_bytes > recovery_budget => bad(
                "memory",
                format!(
                    "server{server}: recovery rings hold {recovery_bytes} bytes, budget {recovery_budget} (at {} ms)",
                    e.at_ms
                ),
            ),
            _ => {}
        }
    }

    // Liveness: every live client caught up with the last publication of every topic.
    for client in &fin.live_clients {
        let Some(session) = fin.last_session.get(client) else {
            continue;
        };
        for topic in &scenario.topics_of(*client) {
            let Some(&(epoch, offset, at)) = last_publication.get(topic) else {
                continue;
            };
            let got = cursor
                .get(&(*client, *session, topic.clone()))
                .copied()
                .flatten();
            let key = (*client, *session, topic.clone());
            // Not owed: published before the session subscribed, or before an explicit
            // NotRecovered that told the client it lost everything up to then.
            let owed = first_ready
                .get(&(*client, *session))
                .is_some_and(|ready| at >= *ready)
                && last_notice.get(&key).is_none_or(|notice| at > *notice);
            let last = (epoch, offset);
            if got != Some(last) && (owed || got.is_some()) {
                bad(
                    "catch-up",
                    format!(
                        "client{client} session {session} {topic}: at {} after healing, the last publication is {:08x}/{}",
                        got.map_or_else(|| "nothing".to_owned(), |(e, o)| format!("{e:08x}/{o}")),
                        last.0,
                        last.1
                    ),
                );
            }
        }
    }

    if fin.presence_enabled {
        let expected: BTreeSet<String> = fin
            .live_clients
            .iter()
            .map(|c| scenario.user_of(*c))
            .collect();
        for topic in &scenario.workload.topics {
            let got = fin.presence_settled.get(topic).cloned().unwrap_or_default();
            if got != expected {
                bad(
                    "presence",
                    format!("{topic} after healing: present {got:?}, live clients {expected:?}"),
                );
            }
            let after = fin.presence_after.get(topic).cloned().unwrap_or_default();
            if !after.is_empty() {
                bad(
                    "presence",
                    format!("{topic} after every client left: ghosts {after:?}"),
                );
            }
        }
    }

    if fin.connections_after != 0 {
        bad(
            "leak",
            format!(
                "{} connections still open after every client left",
                fin.connections_after
            ),
        );
    }
    if let (Some(base), Some(after)) = (fin.tasks_baseline, fin.tasks_after)
        && after > base + fin.tasks_allowance
    {
        bad(
            "leak",
            format!(
                "{after} tasks alive on the server after every client left, {base} before any came"
            ),
        );
    }

    if scenario.expect.not_recovered && not_recovered_known == 0 {
        bad(
            "not-recovered",
            "no client was told NotRecovered for a position it had".into(),
        );
    }
    if scenario.expect.slow_consumer && fin.slow_consumer_drops == 0 {
        bad(
            "slow-consumer",
            "no connection was closed as a slow consumer".into(),
        );
    }
    if scenario.client.encryption && encrypted == 0 {
        bad(
            "encryption",
            "clients asked for encryption but no key exchange completed".into(),
        );
    }
    if scenario.topology.servers > 1 {
        cluster::check(scenario, entries, &mut bad);
        membership::check(scenario, entries, fin, &mut bad);
    }
    if reconnects < scenario.expect.min_reconnects {
        bad(
            "reconnects",
            format!(
                "{reconnects} reconnections, expected at least {}",
                scenario.expect.min_reconnects
            ),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let mut s = Scenario::random(1);
        s.workload.topics = vec!["t".into()];
        s.client.encryption = false;
        s
    }

    fn at(at_ms: u64, record: Record) -> Entry {
        Entry { at_ms, record }
    }

    fn publish(epoch: u32, offset: u64) -> Record {
        Record::Publish {
            topic: "t".into(),
            epoch,
            offset,
            n: u64::from(epoch) * 1000 + offset,
        }
    }

    fn deliver(epoch: u32, offset: u64) -> Record {
        Record::Deliver {
            client: 0,
            session: 0,
            topic: "t".into(),
            epoch,
            offset,
            n: u64::from(epoch) * 1000 + offset,
        }
    }

    fn ready() -> Record {
        Record::Ready {
            client: 0,
            session: 0,
            reconnected: false,
            server: 0,
        }
    }

    fn live_client() -> Final {
        Final {
            live_clients: [0].into(),
            last_session: [(0, 0)].into(),
            ..Final::default()
        }
    }

    fn checkers(entries: &[Entry]) -> Vec<&'static str> {
        check(&scenario(), entries, &live_client())
            .into_iter()
            .map(|v| v.checker)
            .collect()
    }

    #[test]
    fn a_contiguous_run_that_ends_at_the_last_publication_passes() {
        let mut e = vec![at(0, ready())];
        for o in 0..5 {
            e.push(at(10 + o, publish(1, o)));
            e.push(at(11 + o, deliver(1, o)));
        }
        assert_eq!(checkers(&e), Vec::<&str>::new());
    }

    #[test]
    fn a_hole_is_a_silent_gap_unless_not_recovered_explains_it() {
        let mut e = vec![at(0, ready())];
        for o in 0..4 {
            e.push(at(10, publish(1, o)));
        }
        e.extend([at(20, deliver(1, 0)), at(21, deliver(1, 3))]);
        assert_eq!(checkers(&e), ["silent-gap"]);
        e.insert(
            e.len() - 1,
            at(
                20,
                Record::NotRecovered {
                    client: 0,
                    session: 0,
                    topic: "t".into(),
                    epoch: Some(1),
                    offset: 2,
                },
            ),
        );
        assert_eq!(checkers(&e), Vec::<&str>::new());
    }

    #[test]
    fn a_new_epoch_must_start_at_offset_zero() {
        let base = vec![
            at(0, ready()),
            at(10, publish(1, 0)),
            at(11, deliver(1, 0)),
            at(12, publish(2, 0)),
            at(12, publish(2, 1)),
        ];
        let mut ok = base.clone();
        ok.extend([at(13, deliver(2, 0)), at(14, deliver(2, 1))]);
        assert_eq!(checkers(&ok), Vec::<&str>::new());
        let mut skipped = base;
        skipped.push(at(14, deliver(2, 1)));
        assert_eq!(checkers(&skipped), ["silent-gap"]);
    }

    #[test]
    fn stopping_short_of_the_last_publication_fails_catch_up() {
        let e = vec![
            at(0, ready()),
            at(10, publish(1, 0)),
            at(11, deliver(1, 0)),
            at(12, publish(1, 1)),
        ];
        assert_eq!(checkers(&e), ["catch-up"]);
    }

    #[test]
    fn a_delivery_with_another_payload_or_stamp_fails_content() {
        let e = vec![
            at(0, ready()),
            at(10, publish(1, 0)),
            at(
                11,
                Record::Deliver {
                    client: 0,
                    session: 0,
                    topic: "t".into(),
                    epoch: 1,
                    offset: 0,
                    n: 999,
                },
            ),
        ];
        assert_eq!(checkers(&e), ["content"]);
    }

    #[test]
    fn over_budget_samples_and_leftover_connections_and_tasks_are_reported() {
        let e = vec![at(
            5,
            Record::ServerSample {
                server: 0,
                recovery_bytes: 11,
                recovery_budget: 10,
                connections: 0,
            },
        )];
        let fin = Final {
            connections_after: 1,
            tasks_baseline: Some(5),
            tasks_after: Some(6),
            ..Final::default()
        };
        let found: Vec<&str> = check(&scenario(), &e, &fin)
            .into_iter()
            .map(|v| v.checker)
            .collect();
        assert_eq!(found, ["memory", "leak", "leak"]);
    }
}
