//! The cluster checkers (runs with `topology.servers > 1`).
//!
//! - `interest`: interest has converged at `T_c` = the latest of the heal, the last fault, and
//!   the last client `Ready`/`Disconnected` before the clients leave, plus
//!   `cluster.interest_settle_ms`. From `T_c` to the end of the settle phase no node's
//!   `messages_unwanted` counter (MSGs received for a topic with no local subscriber) may grow:
//!   an increase between two samples both taken in that window is a violation. With partial
//!   topics the window must contain at least one of their publications (else the check would
//!   prove nothing).
//! - `dlq-sound`: every dead letter names a publication of its topic made on the node whose DLQ
//!   holds it (the topic's origin), a known peer other than that node, and a peer that could
//!   have wanted the topic (some client subscribed to it was ready on that peer by then). A
//!   `PeerGone` letter made by the publication's own `route` names a peer the origin had no live
//!   link to at that moment, or one linked for less than 200 ms (a restarted peer is
//!   recognised by the address it announces right after its HELLO; a link counts from when the
//!   origin's records first show it with that instance id, so a peer that restarted between two
//!   records is a new link).
//! - `dlq-complete` (sound, not complete): a publication made while the origin had no live link
//!   to peer `j`, after a link to `j` it saw in this incarnation (last seen live at `t_l`), is in
//!   the origin's DLQ for `j`, when `j` certainly wanted the topic as that link ended: a client
//!   subscribed to it was ready on `j` before `t_l − 2900 ms` (so its SUB reached the origin
//!   before the last frame the origin got from `j`: dead-after 2 s, heartbeat 0.5 s, margins),
//!   and that session neither disconnected nor met a fault naming its host from then until
//!   4 s after the link was first seen gone (a disconnect `j` noticed first reaches the client
//!   within its idle timeout) — a disconnect caused by `j` itself crashing does not count, `j`
//!   could not send an UNSUB any more. Bytes lost in flight on a partitioned socket are not
//!   covered (the origin does not know they were lost).
//! - `breaker` (`expect.breaker_opened`): some node's breaker opened.
//! - `failover` (`expect.failover`): some client reconnected to a server other than its home
//!   and recovered messages there.

use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::Scenario;
use crate::trace::{Entry, Record};

/// Margin between a client's `Ready` on a peer and the last time the origin saw the link live.
const SUB_KNOWN_MS: u64 = 2_900;
/// A peer that came back under a new instance is recognised by its address once its
/// announcement arrives, just after the link registers: until then the old instance's
/// departed interest may still record a loss.
const RELINK_GRACE_MS: u64 = 200;
/// How long after a link ended a disconnect the peer noticed earlier can still be recorded.
const DISCONNECT_LAG_MS: u64 = 4_000;

/// One client session's connection history.
#[derive(Default)]
struct Session {
    /// `(at, server)` of each `Ready`.
    ready: Vec<(u64, usize)>,
    /// Times of each `Disconnected`.
    disconnected: Vec<u64>,
}

pub(super) fn check(s: &Scenario, entries: &[Entry], bad: &mut dyn FnMut(&'static str, String)) {
    interest(s, entries, bad);
    dlq(s, entries, bad);
    expectations(s, entries, bad);
}

fn interest(s: &Scenario, entries: &[Entry], bad: &mut dyn FnMut(&'static str, String)) {
    let settle_end = s.timing.heal_at_ms + s.timing.settle_ms;
    let mut last_change = s.timing.heal_at_ms;
    for e in entries.iter().filter(|e| e.at_ms <= settle_end) {
        if matches!(
            e.record,
            Record::Ready { .. } | Record::Disconnected { .. } | Record::Fault(_)
        ) {
            last_change = last_change.max(e.at_ms);
        }
    }
    let converged = last_change + s.cluster.interest_settle_ms;
    let partial: BTreeSet<&String> = s.cluster.partial_topics.keys().collect();
    let in_window = |at: u64| at >= converged && at <= settle_end;
    let witnesses = entries
        .iter()
        .filter(|e| in_window(e.at_ms))
        .filter(|e| matches!(&e.record, Record::Publish { topic, .. } if partial.contains(topic)))
        .count();
    if !partial.is_empty() && witnesses == 0 {
        bad(
            "interest",
            format!(
                "no partial topic was published between convergence ({converged} ms) and the end of the settle phase ({settle_end} ms): the check proves nothing"
            ),
        );
    }
    // Per server: (incarnation, at, unwanted) of its previous sample.
    let mut prev: BTreeMap<usize, (u32, u64, u64)> = BTreeMap::new();
    for e in entries {
        let Record::ClusterSample {
            server,
            incarnation,
            unwanted,
            ..
        } = &e.record
        else {
            continue;
        };
        if let Some(&(inc, at, before)) = prev.get(server)
            && inc == *incarnation
            && *unwanted > before
            && at >= converged
            && e.at_ms <= settle_end
        {
            bad(
                "interest",
                format!(
                    "server{server} received {} MSG(s) for topics it has no subscriber for between {at} and {} ms, after interest converged at {converged} ms",
                    unwanted - before,
                    e.at_ms
                ),
            );
        }
        prev.insert(*server, (*incarnation, e.at_ms, *unwanted));
    }
}

fn dlq(s: &Scenario, entries: &[Entry], bad: &mut dyn FnMut(&'static str, String)) {
    let servers = s.topology.servers;
    // Sessions, faults and publications, for the rules below.
    let mut sessions: BTreeMap<(usize, u32), Session> = BTreeMap::new();
    let mut faults: Vec<(u64, &str)> = Vec::new();
    let mut published: BTreeMap<u64, &str> = BTreeMap::new();
    let mut letters: BTreeSet<(usize, u64, usize)> = BTreeSet::new();
    for e in entries {
        match &e.record {
            Record::Ready {
                client,
                session,
                server,
                ..
            } => sessions
                .entry((*client, *session))
                .or_default()
                .ready
                .push((e.at_ms, *server)),
            Record::Disconnected {
                client, session, ..
            } => sessions
                .entry((*client, *session))
                .or_default()
                .disconnected
                .push(e.at_ms),
            Record::Fault(f) => faults.push((e.at_ms, f.as_str())),
            Record::Publish { topic, n, .. } => {
                published.insert(*n, topic.as_str());
            }
            Record::DeadLetter {
                server,
                n,
                peer: Some(peer),
                ..
            } => {
                letters.insert((*server, *n, *peer));
            }
            _ => {}
        }
    }
    let names = |f: &str, host: &str| f.contains(&format!("\"{host}\""));
    let subscribed = |client: usize, topic: &str| s.topics_of(client).iter().any(|t| t == topic);
    // Could `peer` have wanted `topic` by `at`: a subscribed client was ready on it.
    let could_want = |peer: usize, topic: &str, at: u64| {
        sessions.iter().any(|((c, _), sess)| {
            subscribed(*c, topic) && sess.ready.iter().any(|(r, j)| *j == peer && *r <= at)
        })
    };
    // Did `peer` certainly want `topic` when its link, last seen live at `tl`, ended (first
    // seen gone at `tu`)?
    let certainly_wanted = |peer: usize, topic: &str, tl: u64, tu: u64| {
        let until = tu + DISCONNECT_LAG_MS;
        let peer_host = format!("server{peer}");
        sessions.iter().any(|((c, _), sess)| {
            if !subscribed(*c, topic) {
                return false;
            }
            let client_host = format!("client{c}");
            sess.ready.iter().any(|&(r, j)| {
                if j != peer || r + SUB_KNOWN_MS >= tl {
                    return false;
                }
                // The same session's next Ready ends this connection.
                if sess.ready.iter().any(|&(r2, _)| r2 > r && r2 <= until) {
                    return false;
                }
                if faults
                    .iter()
                    .any(|(at, f)| *at > r && *at <= until && names(f, &client_host))
                {
                    return false;
                }
                // A disconnect counts unless the peer crashed first (it could not say UNSUB).
                sess.disconnected
                    .iter()
                    .filter(|d| **d > r && **d <= until)
                    .all(|d| {
                        faults.iter().any(|(at, f)| {
                            *at > r
                                && at <= d
                                && (f.starts_with("Crash") || f.starts_with("Bounce"))
                                && names(f, &peer_host)
                        })
                    })
            })
        })
    };

    // Per origin: its incarnation, live links, and when each peer was last seen linked / first
    // seen gone.
    struct Origin {
        incarnation: u32,
        linked: BTreeSet<usize>,
        linked_since: BTreeMap<usize, u64>,
        /// The instance behind each live link, as last recorded.
        instance_of: BTreeMap<usize, String>,
        last_linked: BTreeMap<usize, u64>,
        gone_since: BTreeMap<usize, u64>,
    }
    let mut origins: BTreeMap<usize, Origin> = BTreeMap::new();
    for e in entries {
        match &e.record {
            Record::Links {
                server,
                incarnation,
                linked,
                instances,
            } => {
                let o = origins.entry(*server).or_insert_with(|| Origin {
                    incarnation: *incarnation,
                    linked: BTreeSet::new(),
                    linked_since: BTreeMap::new(),
                    instance_of: BTreeMap::new(),
                    last_linked: BTreeMap::new(),
                    gone_since: BTreeMap::new(),
                });
                if o.incarnation != *incarnation {
                    o.incarnation = *incarnation;
                    o.last_linked.clear();
                    o.gone_since.clear();
                }
                let now: BTreeSet<usize> = linked.iter().copied().collect();
                for j in o.linked.difference(&now) {
                    o.gone_since.insert(*j, e.at_ms);
                }
                for (j, id) in linked.iter().zip(instances) {
                    o.gone_since.remove(j);
                    // A peer that restarted between two records: a new link, just made.
                    if o.instance_of
                        .insert(*j, id.clone())
                        .is_some_and(|old| old != *id)
                    {
                        o.linked_since.insert(*j, e.at_ms);
                    }
                    o.linked_since.entry(*j).or_insert(e.at_ms);
                }
                o.linked_since.retain(|j, _| now.contains(j));
                o.linked = now;
            }
            Record::Publish { topic, n, .. } => {
                let origin = s.cluster.origin(topic);
                let Some(o) = origins.get_mut(&origin) else {
                    continue;
                };
                for j in &o.linked {
                    o.last_linked.insert(*j, e.at_ms);
                }
                for j in (0..servers).filter(|j| *j != origin && !o.linked.contains(j)) {
                    let (Some(&tl), Some(&tu)) = (o.last_linked.get(&j), o.gone_since.get(&j))
                    else {
                        continue;
                    };
                    if certainly_wanted(j, topic, tl, tu) && !letters.contains(&(origin, *n, j)) {
                        bad(
                            "dlq-complete",
                            format!(
                                "server{origin} published {topic} n={n} at {} ms while its link to server{j} was gone (since {tu} ms, live until {tl} ms) and server{j} wanted {topic}, but no dead letter records it",
                                e.at_ms
                            ),
                        );
                    }
                }
            }
            Record::DeadLetter {
                server,
                topic,
                n,
                peer,
                reason,
                routed,
            } => {
                let at = e.at_ms;
                let Some(peer) = *peer else {
                    bad(
                        "dlq-sound",
                        format!(
                            "server{server}: dead letter {topic} n={n} for an unknown peer address (at {at} ms)"
                        ),
                    );
                    continue;
                };
                if peer == *server || peer >= servers {
                    bad(
                        "dlq-sound",
                        format!(
                            "server{server}: dead letter {topic} n={n} names server{peer} (at {at} ms)"
                        ),
                    );
                }
                match published.get(n) {
                    Some(t) if *t == topic.as_str() && s.cluster.origin(topic) == *server => {}
                    _ => bad(
                        "dlq-sound",
                        format!(
                            "server{server}: dead letter {topic} n={n} for server{peer} is not a publication of this node (at {at} ms)"
                        ),
                    ),
                }
                if !could_want(peer, topic, at) {
                    bad(
                        "dlq-sound",
                        format!(
                            "server{server}: dead letter {topic} n={n} for server{peer}, which never had a subscriber for {topic} (at {at} ms)"
                        ),
                    );
                }
                let linked_since = origins
                    .get(server)
                    .and_then(|o| o.linked_since.get(&peer).copied());
                if *routed
                    && reason == "peer channel closed"
                    && linked_since.is_some_and(|since| at > since + RELINK_GRACE_MS)
                {
                    bad(
                        "dlq-sound",
                        format!(
                            "server{server}: dead letter {topic} n={n} says server{peer} is gone, but the link to it was live when it was published (at {at} ms)"
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

fn expectations(s: &Scenario, entries: &[Entry], bad: &mut dyn FnMut(&'static str, String)) {
    if s.expect.breaker_opened {
        let opened = entries.iter().any(|e| {
            matches!(e.record, Record::ClusterSample { breaker_opened, .. } if breaker_opened > 0)
        });
        if !opened {
            bad("breaker", "no node's circuit breaker opened".into());
        }
    }
    if s.expect.failover {
        // (client, session) → the server of its current connection, when not its home.
        let mut away: BTreeMap<(usize, u32), usize> = BTreeMap::new();
        let mut recovered_away = false;
        for e in entries {
            match &e.record {
                Record::Ready {
                    client,
                    session,
                    reconnected: true,
                    server,
                } if *server != s.home_of(*client) => {
                    away.insert((*client, *session), *server);
                }
                Record::Ready {
                    client, session, ..
                } => {
                    away.remove(&(*client, *session));
                }
                Record::Recovered {
                    client,
                    session,
                    count,
                    ..
                } if *count > 0 && away.contains_key(&(*client, *session)) => {
                    recovered_away = true;
                }
                _ => {}
            }
        }
        if !recovered_away {
            bad(
                "failover",
                "no client reconnected to another node and recovered there".into(),
            );
        }
    }
}
