//! Fuzz target: operation sequences against one node's presence table
//! (`wse_core::presence::PresenceTable`), with local commands and hostile remote entries.
//!
//! Input: limits (data size, members per topic) and steps over three topics, four users, six
//! local connections and four origins (three peers and our own id, which a peer may echo back
//! stale): track, untrack, untrack a connection, update, merge a remote entry (any stamp, any
//! connection count, present or a tombstone), forget a peer, collect tombstones, let time pass,
//! ship local updates. Invariants after every step:
//!
//! - for every topic, `stats` equals a recount of `presence` (users, summed connections), and
//!   `topic_count` / `total_users` equal the recount over topics;
//! - every user with local connections is visible with at least that many connections;
//! - `topics_of` equals the model of what each connection tracks, and a refused command
//!   (`UserMismatch`, `TopicFull`, `DataTooLarge`, `UnknownConnection`) changes nothing;
//! - a reported join or update leaves the user visible, a leave leaves them invisible;
//! - shipped local updates carry our own origin only.

use std::collections::BTreeMap;

use bolero::TypeGenerator;
use serde_json::{Value, json};
use wse_core::presence::{
    EntryState, Hlc, HlcClock, NodeId, PresenceChange, PresenceChangeKind, PresenceEntry,
    PresenceError, PresenceKey, PresenceLimits, PresenceTable,
};
use wse_core::{ConnId, WallClock};

const OWN: NodeId = NodeId(100);
const TOPICS: [&str; 3] = ["room:1", "room:2", "room:3"];
const USERS: [&str; 4] = ["ann", "bob", "cy", "dee"];
const CONNS: u8 = 6;

#[derive(Debug, TypeGenerator)]
struct Input {
    max_data: u8,
    max_members: u8,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Op {
    Track {
        topic: u8,
        user: u8,
        conn: u8,
        data: u8,
    },
    Untrack {
        topic: u8,
        conn: u8,
    },
    UntrackConnection(u8),
    Update {
        conn: u8,
        data: u8,
    },
    Remote {
        topic: u8,
        user: u8,
        origin: u8,
        skew_ms: i16,
        counter: u8,
        state: Option<(u8, u32)>,
    },
    Forget(u8),
    Gc(u16),
    Advance(u16),
    Ship,
}

fn data(n: u8) -> Value {
    json!({ "status": "s".repeat(usize::from(n % 64)) })
}

fn conn_id(n: u8) -> ConnId {
    ConnId::from_u128(u128::from(n % CONNS) + 1)
}

#[test]
fn presence_table() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let limits = PresenceLimits {
            max_data_size: 16 + usize::from(input.max_data % 64),
            max_members: usize::from(input.max_members % 4),
        };
        let mut table = PresenceTable::new(OWN, limits);
        let mut clock = HlcClock::new(OWN);
        let mut wall_ms: u64 = 1_764_000_000_000;
        // conn → topic → user: what each local connection tracks.
        let mut model: BTreeMap<ConnId, BTreeMap<&str, &str>> = BTreeMap::new();
        for op in &input.ops {
            let wall = WallClock::from_unix_millis(wall_ms);
            let changes: Vec<PresenceChange> = match op {
                Op::Track {
                    topic,
                    user,
                    conn,
                    data: d,
                } => {
                    let (topic, user, conn) = (
                        TOPICS[usize::from(*topic) % 3],
                        USERS[usize::from(*user) % 4],
                        conn_id(*conn),
                    );
                    let before = snapshot(&table);
                    match table.track(topic, user, conn, data(*d), clock.now(wall)) {
                        Ok(change) => {
                            model.entry(conn).or_default().insert(topic, user);
                            change.into_iter().collect()
                        }
                        Err(e) => {
                            check_refusal(&e, &model, conn, topic, user);
                            assert_eq!(
                                snapshot(&table),
                                before,
                                "a refused track changed the table"
                            );
                            Vec::new()
                        }
                    }
                }
                Op::Untrack { topic, conn } => {
                    let (topic, conn) = (TOPICS[usize::from(*topic) % 3], conn_id(*conn));
                    if let Some(topics) = model.get_mut(&conn) {
                        topics.remove(topic);
                        if topics.is_empty() {
                            model.remove(&conn);
                        }
                    }
                    table
                        .untrack(topic, conn, clock.now(wall))
                        .into_iter()
                        .collect()
                }
                Op::UntrackConnection(conn) => {
                    model.remove(&conn_id(*conn));
                    table.untrack_connection(conn_id(*conn), clock.now(wall))
                }
                Op::Update { conn, data: d } => {
                    let conn = conn_id(*conn);
                    let before = snapshot(&table);
                    match table.update(conn, data(*d), clock.now(wall)) {
                        Ok(changes) => changes,
                        Err(e) => {
                            match e {
                                PresenceError::UnknownConnection(c) => {
                                    assert_eq!(c, conn);
                                    assert!(
                                        !model.contains_key(&conn),
                                        "tracked connection unknown"
                                    );
                                }
                                PresenceError::DataTooLarge { .. } => {}
                                other => panic!("update refused with {other:?}"),
                            }
                            assert_eq!(
                                snapshot(&table),
                                before,
                                "a refused update changed the table"
                            );
                            Vec::new()
                        }
                    }
                }
                Op::Remote {
                    topic,
                    user,
                    origin,
                    skew_ms,
                    counter,
                    state,
                } => {
                    let origin = if origin % 4 == 3 {
                        OWN
                    } else {
                        NodeId(101 + u64::from(origin % 4))
                    };
                    let stamp_ms = wall_ms.saturating_add_signed(i64::from(*skew_ms));
                    let hlc = Hlc::new(stamp_ms, u32::from(*counter), origin);
                    clock.observe(hlc);
                    let entry = match state {
                        Some((d, connections)) => {
                            PresenceEntry::present(hlc, data(*d), *connections)
                        }
                        None => PresenceEntry::absent(hlc),
                    };
                    let key = PresenceKey::new(
                        TOPICS[usize::from(*topic) % 3],
                        USERS[usize::from(*user) % 4],
                        origin,
                    );
                    table.merge_remote([(key, entry)])
                }
                Op::Forget(origin) => table.forget_origin(NodeId(100 + u64::from(origin % 4))),
                Op::Gc(back) => {
                    let _ = table.gc_tombstones(wall_ms.saturating_sub(u64::from(*back)));
                    Vec::new()
                }
                Op::Advance(ms) => {
                    wall_ms += u64::from(*ms);
                    Vec::new()
                }
                Op::Ship => {
                    let updates = table.take_local_updates();
                    assert!(
                        updates.iter().all(|(k, _)| k.origin == OWN),
                        "shipped a foreign entry"
                    );
                    Vec::new()
                }
            };
            check_changes(&table, &changes);
            check(&table, &model);
        }
    });
}

fn check_refusal(
    e: &PresenceError,
    model: &BTreeMap<ConnId, BTreeMap<&str, &str>>,
    conn: ConnId,
    topic: &str,
    user: &str,
) {
    match e {
        PresenceError::UserMismatch { tracked, .. } => {
            let held = model.get(&conn).and_then(|t| t.get(topic)).copied();
            assert_eq!(held, Some(tracked.as_str()));
            assert_ne!(held, Some(user));
        }
        PresenceError::TopicFull { .. } | PresenceError::DataTooLarge { .. } => {}
        PresenceError::UnknownConnection(_) => panic!("track refused as unknown connection"),
    }
}

/// Everything observable, to show that a refused command changed nothing.
fn snapshot(table: &PresenceTable) -> Vec<(PresenceKey, PresenceEntry)> {
    table
        .state()
        .entries()
        .map(|(k, e)| (k, e.clone()))
        .collect()
}

/// The last change reported for a user is what the table now shows.
fn check_changes(table: &PresenceTable, changes: &[PresenceChange]) {
    let mut last: BTreeMap<(&str, &str), PresenceChangeKind> = BTreeMap::new();
    for c in changes {
        last.insert((&c.topic, &c.user_id), c.kind);
    }
    for ((topic, user), kind) in last {
        let visible = table.presence(topic).contains_key(user);
        assert_eq!(
            visible,
            kind != PresenceChangeKind::Leave,
            "{kind:?} of {user} in {topic}"
        );
    }
}

fn check(table: &PresenceTable, model: &BTreeMap<ConnId, BTreeMap<&str, &str>>) {
    let (mut topics, mut users) = (0, 0);
    for topic in TOPICS {
        let presence = table.presence(topic);
        let stats = table.stats(topic);
        let connections: u64 = presence.values().map(|p| u64::from(p.connections)).sum();
        assert_eq!(
            (stats.num_users, stats.num_connections),
            (presence.len(), connections),
            "stats of {topic} differ from a recount of presence(): {presence:?}"
        );
        topics += usize::from(!presence.is_empty());
        users += presence.len();
        for (conn, tracked) in model {
            let local: Vec<&str> = table.topics_of(*conn).collect();
            assert_eq!(
                local,
                tracked.keys().copied().collect::<Vec<_>>(),
                "topics of {conn:?}"
            );
            if let Some(user) = tracked.get(topic) {
                let here = model
                    .values()
                    .filter(|t| t.get(topic) == Some(user))
                    .count();
                let shown = presence
                    .get(*user)
                    .unwrap_or_else(|| panic!("{user} tracked in {topic} but invisible"));
                assert!(
                    shown.connections as usize >= here,
                    "{user} in {topic}: {} < {here}",
                    shown.connections
                );
                let own = table
                    .state()
                    .entry(&PresenceKey::new(topic, *user, OWN))
                    .map(|e| &e.state);
                assert!(
                    matches!(own, Some(EntryState::Present { connections, .. }) if *connections as usize == here),
                    "own entry of {user} in {topic}: {own:?}, {here} local connections"
                );
            }
        }
    }
    assert_eq!(
        (table.topic_count(), table.total_users()),
        (topics, users),
        "global counters"
    );
}
