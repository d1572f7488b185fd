//! Membership and presence convergence (issue 12; clusters, `[presence]` for the presence
//! checkers).
//!
//! - `membership` (every cluster scenario): at the end of the settle phase every server runs,
//!   and each node's live links (`cluster_info()` instance ids) are exactly the other nodes'
//!   current instances; membership counts them all alive (`members = servers − 1`) and has no
//!   suspect left.
//! - `presence-views`: at the end of the settle phase, each node's `presence(topic)` of the
//!   presence topic is the same on every node and is exactly the users with a connected client
//!   session (last `Ready` not followed by a `Disconnected` or a crash of its host): no ghost,
//!   no missing user. A user's connection count equals its connected clients when every one of
//!   them last connected or disconnected at least `STALE_MS` before (a stale server-side
//!   connection of a client that failed over is gone by then). Once every client left, every
//!   node's view is empty.
//! - `presence-accounting`: what each node's watcher received, against each user's sessions.
//!   See [`accounting`] for the rule and what is excluded.

use std::collections::{BTreeMap, BTreeSet};

use super::Final;
use crate::scenario::{Action, Scenario};
use crate::trace::{Entry, Record};

/// Uncertainty of a session start or a graceful end as the server sees it (the subscription is
/// processed, and the change reaches every node, well within this).
const DELTA_MS: u64 = 500;
/// Most violations reported per checker (the first ones tell the story).
const MAX_REPORTS: usize = 12;

pub(super) fn check(
    s: &Scenario,
    entries: &[Entry],
    fin: &Final,
    bad: &mut dyn FnMut(&'static str, String),
) {
    membership(s, fin, bad);
    if s.presence.is_some() {
        presence_views(s, entries, fin, bad);
        accounting(s, entries, bad);
    }
}

fn membership(s: &Scenario, fin: &Final, bad: &mut dyn FnMut(&'static str, String)) {
    if fin.views.is_empty() {
        return; // the run ended before the settle phase did (a host failed): reported as such
    }
    let servers = s.topology.servers;
    let instance: BTreeMap<usize, &str> = fin
        .views
        .iter()
        .map(|v| (v.server, v.instance.as_str()))
        .collect();
    let name_of = |id: &str| {
        instance.iter().find(|(_, i)| **i == id).map_or_else(
            || format!("unknown instance {id}"),
            |(s, _)| format!("server{s}"),
        )
    };
    for i in (0..servers).filter(|i| !instance.contains_key(i)) {
        bad(
            "membership",
            format!("server{i} is not running at the end of the settle phase"),
        );
    }
    for v in &fin.views {
        let expected: BTreeSet<String> = instance
            .iter()
            .filter(|(j, _)| **j != v.server)
            .map(|(_, id)| (*id).to_owned())
            .collect();
        if v.linked != expected {
            let missing: Vec<String> = expected
                .difference(&v.linked)
                .map(|id| name_of(id))
                .collect();
            let extra: Vec<String> = v
                .linked
                .difference(&expected)
                .map(|id| name_of(id))
                .collect();
            bad(
                "membership",
                format!(
                    "server{} after healing: no link to {missing:?}, links to {extra:?} that are not live nodes",
                    v.server
                ),
            );
        }
        if v.members != servers - 1 || v.suspects != 0 {
            bad(
                "membership",
                format!(
                    "server{} after healing: membership has {} alive and {} suspect nodes, expected {} alive and none suspect",
                    v.server,
                    v.members,
                    v.suspects,
                    servers - 1
                ),
            );
        }
    }
}

/// Time after a client's last connection change from which its server-side connection count
/// is exact: a stale connection left behind by a failover is closed by the server's idle
/// timeout within this.
fn stale_ms(s: &Scenario) -> u64 {
    (s.server.idle_timeout_secs + s.server.ping_interval_secs) * 1_000 + 1_000
}

fn presence_views(
    s: &Scenario,
    entries: &[Entry],
    fin: &Final,
    bad: &mut dyn FnMut(&'static str, String),
) {
    if fin.views.is_empty() {
        return;
    }
    let settle_end = s.timing.heal_at_ms + s.timing.settle_ms;
    // Per client: connected at the end of the settle phase, and when that last changed.
    let mut connected: BTreeMap<usize, (bool, u64)> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.at_ms <= settle_end) {
        match &e.record {
            Record::Ready { client, .. } => {
                connected.insert(*client, (true, e.at_ms));
            }
            Record::Disconnected { client, .. } => {
                connected.insert(*client, (false, e.at_ms));
            }
            Record::Fault(f) => {
                for c in 0..s.topology.clients {
                    if crash_names(f, &format!("client{c}")) {
                        connected.insert(c, (false, e.at_ms));
                    }
                }
            }
            _ => {}
        }
    }
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    let mut exact: BTreeMap<String, bool> = BTreeMap::new();
    for (c, (up, since)) in &connected {
        let user = s.user_of(*c);
        let settled = since + stale_ms(s) <= settle_end;
        *exact.entry(user.clone()).or_insert(true) &= settled;
        if *up {
            *expected.entry(user).or_default() += 1;
        }
    }
    let live: BTreeSet<&String> = expected.keys().collect();
    let mut reported = 0;
    for v in &fin.views {
        let shown: BTreeSet<&String> = v.presence.keys().collect();
        if shown != live {
            let ghosts: Vec<&&String> = shown.difference(&live).collect();
            let missing: Vec<&&String> = live.difference(&shown).collect();
            bad(
                "presence-views",
                format!(
                    "server{} after healing: ghosts {ghosts:?} (no connected session), missing {missing:?} (connected)",
                    v.server
                ),
            );
            reported += 1;
            continue;
        }
        for (user, n) in &v.presence {
            let want = expected.get(user).copied().unwrap_or(0);
            if exact.get(user).copied().unwrap_or(false) && *n != want && reported < MAX_REPORTS {
                bad(
                    "presence-views",
                    format!(
                        "server{} after healing: {user} has {n} connections, {want} clients are connected as {user}",
                        v.server
                    ),
                );
                reported += 1;
            }
        }
    }
    let distinct: BTreeSet<&BTreeMap<String, u32>> =
        fin.views.iter().map(|v| &v.presence).collect();
    if distinct.len() > 1 {
        let views: Vec<String> = fin
            .views
            .iter()
            .map(|v| format!("server{}: {:?}", v.server, v.presence))
            .collect();
        bad(
            "presence-views",
            format!("the nodes disagree after healing: {}", views.join("; ")),
        );
    }
    for (server, users) in &fin.presence_after_nodes {
        if !users.is_empty() {
            bad(
                "presence-views",
                format!("server{server} after every client left: ghosts {users:?}"),
            );
        }
    }
}

/// True when fault text `f` crashes or restarts `host`.
fn crash_names(f: &str, host: &str) -> bool {
    (f.starts_with("Crash") || f.starts_with("Bounce")) && f.contains(&format!("\"{host}\""))
}

/// One client connection as the cluster sees it: visible from somewhere in `start` to
/// somewhere in `end` (each `[earliest, latest]`).
#[derive(Clone, Copy, Debug)]
struct Conn {
    start: (u64, u64),
    end: (u64, u64),
}

/// Intervals `[from, to)` during which node views may legitimately disagree with the sessions.
fn disturbances(s: &Scenario, quiet_after: u64) -> Vec<(u64, u64)> {
    let is_server = |h: &str| h.starts_with("server");
    let mut out = Vec::new();
    // The first start (in a random order) and the mesh forming.
    out.push((0, s.cluster.start_spread_ms + quiet_after));
    let mut faults = s.faults.clone();
    faults.sort_by_key(|f| f.at_ms);
    let mut open: BTreeSet<String> = BTreeSet::new();
    let mut since = 0;
    let pair = |k: &str, a: &str, b: &str| {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        format!("{k} {a} {b}")
    };
    for f in &faults {
        let t = f.at_ms;
        let (opens, closes): (Option<String>, Option<String>) = match &f.action {
            Action::Partition { a, b } if is_server(a) && is_server(b) => {
                (Some(pair("p", a, b)), None)
            }
            Action::Repair { a, b } if is_server(a) && is_server(b) => {
                (None, Some(pair("p", a, b)))
            }
            Action::Hold { a, b } if is_server(a) && is_server(b) => (Some(pair("h", a, b)), None),
            Action::Release { a, b } if is_server(a) && is_server(b) => {
                (None, Some(pair("h", a, b)))
            }
            Action::PartitionOneway { from, to } if is_server(from) && is_server(to) => {
                (Some(format!("o {from} {to}")), None)
            }
            Action::RepairOneway { from, to } if is_server(from) && is_server(to) => {
                (None, Some(format!("o {from} {to}")))
            }
            // Latency and loss between servers: disturbed until the heal.
            Action::Latency { a, b, .. } | Action::Loss { a, b, .. }
                if is_server(a) && is_server(b) =>
            {
                (Some(pair("l", a, b)), None)
            }
            Action::Crash { host } if is_server(host) => (Some(format!("c {host}")), None),
            Action::Bounce { host } if is_server(host) => {
                out.push((t.saturating_sub(DELTA_MS), t + quiet_after));
                (None, Some(format!("c {host}")))
            }
            _ => (None, None),
        };
        if let Some(k) = opens {
            if open.is_empty() {
                since = t.saturating_sub(DELTA_MS);
            }
            open.insert(k);
        }
        if let Some(k) = closes
            && open.remove(&k)
            && open.is_empty()
        {
            out.push((since, t + quiet_after));
        }
    }
    if !open.is_empty() {
        out.push((since, s.timing.heal_at_ms + quiet_after));
    }
    out
}

/// `presence-accounting`: the join/leave events each node's watcher received.
///
/// **What the simulator observes.** Watcher `i` stays connected to node `i` (it is never
/// faulted; its connection ends only when node `i` crashes or restarts, or at the end), and
/// its frames follow node `i`'s view of the presence topic: a `presence_join` when a user
/// becomes visible there, a `presence_leave` when it stops being visible. A watcher connection
/// counts from its subscription's acknowledgement, when the harness also reads node `i`'s view.
///
/// **Truth.** A user is visible cluster-wide while at least one of its client connections is
/// tracked by some node: from `Ready` (± `DELTA_MS`: the subscription with presence is processed
/// right after) to the connection's end as the server sees it — `± DELTA_MS` around the
/// `Disconnected` when the harness made the client close (a `leave` fault, the end of the run);
/// otherwise (a partition, the client's idle timeout) from the client's idle timeout plus a
/// ping before its `Disconnected` to the server's idle timeout plus a ping after it; for a
/// client host crash, from the crash to the server's idle timeout plus a ping after it. Several
/// sessions of one user, on one node or several, make one visibility period while they overlap.
///
/// So at every moment a user is **surely visible** (some connection surely tracked), **surely
/// invisible** (no connection possibly tracked) or uncertain. Moments are also uncertain while
/// the mesh is **disturbed**: a partition, hold, latency or loss between two servers, or a
/// server crash, from when it starts until `presence.quiet_after_ms` after it is undone (a
/// restart is a disturbance of that length too), and the nodes' first start
/// (`start_spread_ms + quiet_after_ms`): node views may then legitimately differ from the
/// sessions (a partitioned node's users leave on the other side after the heartbeat timeout
/// and join again after the heal).
///
/// **Rule**, per watcher connection and user:
/// 1. joins and leaves alternate (never two joins, or two leaves, in a row) — always, faults or
///    not: the watcher's state starts from the view read at the acknowledgement when the user
///    was surely visible or surely invisible then, else from the first stable moment;
/// 2. at every moment the user is surely visible (invisible), the watcher's state is visible
///    (invisible): a missing join or leave, or a ghost, is caught at the next such moment;
/// 3. no event arrives while the user is surely visible or surely invisible: exactly one join
///    per visibility period (overlapping sessions on several nodes are one period) and exactly
///    one leave when it ends, nothing in between.
///
/// **Excluded soundly**: uncertain moments (around session boundaries, during disturbances);
/// a watcher's connection ends when its node crashes, and the next connection starts afresh
/// with the view read then. Frames lost in flight cannot happen (watchers are never faulted).
fn accounting(s: &Scenario, entries: &[Entry], bad: &mut dyn FnMut(&'static str, String)) {
    let Some(p) = &s.presence else { return };
    let settle_end = s.timing.heal_at_ms + s.timing.settle_ms;
    let server_slack =
        (s.server.idle_timeout_secs + s.server.ping_interval_secs) * 1_000 + DELTA_MS;
    let client_slack = s.client.idle_timeout_ms + s.client.ping_interval_ms + DELTA_MS;
    let disturbed = disturbances(s, p.quiet_after_ms);

    // Client connections per user.
    let mut conns: BTreeMap<String, Vec<Conn>> = BTreeMap::new();
    let mut open: BTreeMap<usize, (u32, u64)> = BTreeMap::new();
    let mut requested: BTreeSet<(usize, u32)> = BTreeSet::new();
    let close = |conns: &mut BTreeMap<String, Vec<Conn>>, c: usize, start: u64, end: (u64, u64)| {
        conns.entry(s.user_of(c)).or_default().push(Conn {
            start: (start.saturating_sub(DELTA_MS), start + DELTA_MS),
            end,
        });
    };
    // Watcher connections: (watcher, start, view at start, end, events).
    struct Watch {
        watcher: usize,
        start: u64,
        present: Option<BTreeSet<String>>,
        end: u64,
        events: Vec<(u64, bool, String)>,
    }
    let mut watches: Vec<Watch> = Vec::new();
    let mut current: BTreeMap<usize, usize> = BTreeMap::new();
    for e in entries {
        let at = e.at_ms;
        match &e.record {
            Record::Ready {
                client, session, ..
            } => {
                if let Some((_, r)) = open.insert(*client, (*session, at)) {
                    close(
                        &mut conns,
                        *client,
                        r,
                        (at.saturating_sub(client_slack), at + server_slack),
                    );
                }
            }
            Record::Disconnected {
                client, session, ..
            } => {
                if let Some((sess, r)) = open.remove(client) {
                    let end = if requested.contains(&(*client, *session)) || at >= settle_end {
                        (at.saturating_sub(DELTA_MS), at + DELTA_MS)
                    } else {
                        (at.saturating_sub(client_slack), at + server_slack)
                    };
                    debug_assert_eq!(sess, *session);
                    close(&mut conns, *client, r, end);
                }
            }
            Record::Leave { client, session } => {
                requested.insert((*client, *session));
            }
            Record::Fault(f) => {
                for c in 0..s.topology.clients {
                    if crash_names(f, &format!("client{c}"))
                        && let Some((_, r)) = open.remove(&c)
                    {
                        close(&mut conns, c, r, (at, at + server_slack));
                    }
                }
            }
            Record::WatcherReady { watcher, present } => {
                if let Some(k) = current.remove(watcher) {
                    watches[k].end = at;
                }
                current.insert(*watcher, watches.len());
                watches.push(Watch {
                    watcher: *watcher,
                    start: at,
                    present: present.as_ref().map(|v| v.iter().cloned().collect()),
                    end: u64::MAX,
                    events: Vec::new(),
                });
            }
            Record::WatcherDown { watcher } => {
                if let Some(k) = current.remove(watcher) {
                    watches[k].end = at;
                }
            }
            Record::PresenceEvent {
                watcher,
                join,
                user,
            } => {
                if let Some(&k) = current.get(watcher) {
                    watches[k].events.push((at, *join, user.clone()));
                }
            }
            _ => {}
        }
    }
    for (c, (_, r)) in open {
        close(&mut conns, c, r, (u64::MAX, u64::MAX));
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Label {
        Visible,
        Invisible,
        Uncertain,
    }
    let label = |user: &str, t: u64| {
        if disturbed.iter().any(|(a, b)| *a <= t && t < *b) {
            return Label::Uncertain;
        }
        let cs = conns.get(user).map_or(&[][..], Vec::as_slice);
        if cs.iter().any(|c| c.start.1 <= t && t < c.end.0) {
            Label::Visible
        } else if cs.iter().all(|c| t < c.start.0 || t >= c.end.1) {
            Label::Invisible
        } else {
            Label::Uncertain
        }
    };
    let users: BTreeSet<String> = (0..s.topology.clients).map(|c| s.user_of(c)).collect();
    let mut reported = 0;
    let mut report = |detail: String| {
        if reported < MAX_REPORTS {
            bad("presence-accounting", detail);
        }
        reported += 1;
    };
    let word = |v: bool| if v { "visible" } else { "invisible" };
    for w in &watches {
        for user in &users {
            // Segment boundaries: every moment the label may change, within the connection.
            let mut cuts: BTreeSet<u64> = BTreeSet::new();
            cuts.insert(w.start);
            for c in conns.get(user).map_or(&[][..], Vec::as_slice) {
                cuts.extend([c.start.0, c.start.1, c.end.0, c.end.1]);
            }
            for (a, b) in &disturbed {
                cuts.extend([*a, *b]);
            }
            let cuts: Vec<u64> = cuts
                .into_iter()
                .filter(|t| *t >= w.start && *t < w.end)
                .collect();
            let events: Vec<&(u64, bool, String)> =
                w.events.iter().filter(|(_, _, u)| u == user).collect();
            let mut state: Option<bool> = match label(user, w.start) {
                Label::Uncertain => None,
                _ => w.present.as_ref().map(|p| p.contains(user)),
            };
            let mut next = 0;
            'segments: for (k, from) in cuts.iter().enumerate() {
                let to = cuts.get(k + 1).copied().unwrap_or(w.end);
                let l = label(user, *from);
                let stable = match l {
                    Label::Visible => Some(true),
                    Label::Invisible => Some(false),
                    Label::Uncertain => None,
                };
                if let Some(truth) = stable {
                    match state {
                        Some(v) if v != truth => {
                            report(format!(
                                "watcher{} (node server{}): {user} is {} there at {from} ms, but it is surely {} then ({})",
                                w.watcher,
                                w.watcher,
                                word(v),
                                word(truth),
                                if truth {
                                    "a join is missing"
                                } else {
                                    "a leave is missing, or a ghost"
                                }
                            ));
                            break 'segments;
                        }
                        None => state = Some(truth),
                        Some(_) => {}
                    }
                }
                while let Some((at, join, _)) =
                    events.get(next).copied().filter(|(at, ..)| *at < to)
                {
                    next += 1;
                    let kind = if *join {
                        "presence_join"
                    } else {
                        "presence_leave"
                    };
                    if let Some(truth) = stable {
                        report(format!(
                            "watcher{} (node server{}): {kind} for {user} at {at} ms, while {user} was surely {} and stable ({from}..{to} ms)",
                            w.watcher,
                            w.watcher,
                            word(truth)
                        ));
                        break 'segments;
                    }
                    if state == Some(*join) {
                        report(format!(
                            "watcher{} (node server{}): {kind} for {user} at {at} ms, but {user} was already {} there (two in a row)",
                            w.watcher,
                            w.watcher,
                            word(*join)
                        ));
                        break 'segments;
                    }
                    state = Some(*join);
                }
            }
        }
    }
    if reported > MAX_REPORTS {
        bad(
            "presence-accounting",
            format!("… and {} more", reported - MAX_REPORTS),
        );
    }
}
