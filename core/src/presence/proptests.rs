//! Property tests: the merge laws of the CRDT, delivery-order independence, and the local API
//! against a naive model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::ids::ConnId;
use crate::time::WallClock;

const TOPICS: [&str; 2] = ["t0", "t1"];
const USERS: [&str; 3] = ["u0", "u1", "u2"];

/// Small domains, so keys collide and equal stamps with different states occur.
fn arb_entry() -> impl Strategy<Value = (PresenceKey, PresenceEntry)> {
    let key = (0..TOPICS.len(), 0..USERS.len(), 1..=3u64)
        .prop_map(|(t, u, o)| PresenceKey::new(TOPICS[t], USERS[u], NodeId(o)));
    let hlc = (0..4u64, 0..3u32, 1..=3u64).prop_map(|(w, c, n)| Hlc::new(w, c, NodeId(n)));
    let data = prop_oneof![
        (0..3i64).prop_map(Value::from),
        (0..3i64).prop_map(|k| json!({ "k": k })),
    ];
    let state = prop_oneof![
        Just(EntryState::Absent),
        (data, 1..3u32).prop_map(|(data, connections)| EntryState::Present { data, connections }),
    ];
    (key, hlc, state).prop_map(|(key, hlc, state)| (key, PresenceEntry { hlc, state }))
}

fn state_of(entries: &[(PresenceKey, PresenceEntry)]) -> PresenceState {
    let mut s = PresenceState::new();
    for (k, e) in entries {
        let _ = s.merge_entry(k, e.clone());
    }
    s
}

fn merged(a: &PresenceState, b: &PresenceState) -> PresenceState {
    let mut out = a.clone();
    let _ = out.merge(b);
    out
}

/// The visible view recomputed from scratch from the entries.
fn naive_view(state: &PresenceState) -> BTreeMap<String, BTreeMap<String, UserPresence>> {
    let mut present: BTreeMap<(String, String), Vec<&PresenceEntry>> = BTreeMap::new();
    for (k, e) in state.entries() {
        if !e.is_absent() {
            present.entry((k.topic, k.user_id)).or_default().push(e);
        }
    }
    let mut view: BTreeMap<String, BTreeMap<String, UserPresence>> = BTreeMap::new();
    for ((topic, user), entries) in present {
        let newest = entries
            .iter()
            .copied()
            .find(|e| entries.iter().all(|o| o == e || e.supersedes(o)))
            .expect("a strict total order has a maximum");
        let EntryState::Present { data, .. } = &newest.state else {
            unreachable!("only present entries collected")
        };
        let connections = entries
            .iter()
            .map(|e| match e.state {
                EntryState::Present { connections, .. } => connections,
                EntryState::Absent => 0,
            })
            .sum();
        view.entry(topic).or_default().insert(
            user,
            UserPresence {
                data: data.clone(),
                connections,
            },
        );
    }
    view
}

/// Views and counters agree with [`naive_view`].
fn assert_derived_state_is_consistent(state: &PresenceState) {
    let naive = naive_view(state);
    let topics: BTreeSet<String> = state.entries().map(|(k, _)| k.topic).collect();
    for topic in &topics {
        let want = naive.get(topic).cloned().unwrap_or_default();
        assert_eq!(state.presence(topic), want, "{topic}");
        let stats = PresenceStats {
            num_users: want.len(),
            num_connections: want.values().map(|u| u64::from(u.connections)).sum(),
        };
        assert_eq!(state.stats(topic), stats, "{topic}");
    }
    assert_eq!(state.topic_count(), naive.len());
    assert_eq!(
        state.total_users(),
        naive.values().map(BTreeMap::len).sum::<usize>()
    );
    let tombstones = state.entries().filter(|(_, e)| e.is_absent()).count();
    assert_eq!(state.tombstone_count(), tombstones);
}

/// Applies events to a view of `(topic, user) → data`, asserting that joins and leaves
/// alternate and updates only touch visible users. With `every_data_change_is_an_event` (merges),
/// a leave must also carry the data the events last showed and an update must change it; local
/// tracks overwrite data silently, so for them only visibility is checked.
fn apply_events(
    view: &mut BTreeMap<(String, String), Value>,
    events: &[PresenceChange],
    every_data_change_is_an_event: bool,
) {
    for ev in events {
        let key = (ev.topic.clone(), ev.user_id.clone());
        match ev.kind {
            PresenceChangeKind::Join => {
                assert!(
                    view.insert(key, ev.data.clone()).is_none(),
                    "join twice: {ev:?}"
                )
            }
            PresenceChangeKind::Leave => {
                let old = view.remove(&key).expect("a leave follows a join");
                if every_data_change_is_an_event {
                    assert_eq!(old, ev.data, "leave: {ev:?}");
                }
            }
            PresenceChangeKind::Update => {
                let old = view
                    .insert(key, ev.data.clone())
                    .expect("an update follows a join");
                if every_data_change_is_an_event {
                    assert_ne!(old, ev.data, "update: {ev:?}");
                }
            }
        }
    }
}

fn flat_view(table: &PresenceTable) -> BTreeMap<(String, String), Value> {
    TOPICS
        .iter()
        .flat_map(|t| {
            table
                .presence(t)
                .into_iter()
                .map(move |(u, p)| ((t.to_string(), u), p.data))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_is_commutative_associative_and_idempotent(
        a in prop::collection::vec(arb_entry(), 0..12),
        b in prop::collection::vec(arb_entry(), 0..12),
        c in prop::collection::vec(arb_entry(), 0..12),
    ) {
        let (a, b, c) = (state_of(&a), state_of(&b), state_of(&c));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(&merged(&a, &a), &a);
        let abc = merged(&merged(&a, &b), &c);
        prop_assert!(merged(&abc, &b) == abc, "merging a part again changes nothing");
        assert_derived_state_is_consistent(&abc);
    }

    #[test]
    fn any_delivery_order_gives_the_same_state_and_events_that_replay_it(
        (history, shuffled) in prop::collection::vec(arb_entry(), 0..24)
            .prop_flat_map(|h| (Just(h.clone()), Just(h).prop_shuffle())),
        batch in any::<bool>(),
    ) {
        let mut tables = [history, shuffled].map(|entries| {
            let mut table = PresenceTable::new(NodeId(9), PresenceLimits::default());
            let mut seen = BTreeMap::new();
            if batch {
                apply_events(&mut seen, &table.merge_remote(entries), true);
            } else {
                for entry in entries {
                    apply_events(&mut seen, &table.merge_remote([entry]), true);
                    assert_eq!(seen, flat_view(&table), "events track the view step by step");
                }
            }
            assert_eq!(seen, flat_view(&table), "events replay the final view");
            table
        });
        let [first, second] = &mut tables;
        prop_assert_eq!(first.state(), second.state());
        for topic in TOPICS {
            prop_assert_eq!(first.presence(topic), second.presence(topic));
            prop_assert_eq!(first.stats(topic), second.stats(topic));
        }
        assert_derived_state_is_consistent(first.state());
        first.check_invariants();
    }
}

/// One local command.
#[derive(Clone, Debug)]
enum Op {
    Track {
        conn: u8,
        topic: usize,
        data: String,
    },
    Untrack {
        conn: u8,
        topic: usize,
    },
    UntrackConnection {
        conn: u8,
    },
    Update {
        conn: u8,
        data: String,
    },
}

const CONNS: u8 = 5;
const MODEL_TOPICS: [&str; 3] = ["t0", "t1", "t2"];
const MODEL_LIMITS: PresenceLimits = PresenceLimits {
    max_data_size: 8,
    max_members: 2,
};

fn arb_op() -> impl Strategy<Value = Op> {
    let conn = 0..CONNS;
    let topic = 0..MODEL_TOPICS.len();
    // Up to 9 bytes as JSON, so some data is over the 8-byte limit.
    let data = "[ab]{0,7}";
    prop_oneof![
        4 => (conn.clone(), topic.clone(), data).prop_map(|(conn, topic, data)| Op::Track { conn, topic, data }),
        3 => (conn.clone(), topic).prop_map(|(conn, topic)| Op::Untrack { conn, topic }),
        1 => conn.clone().prop_map(|conn| Op::UntrackConnection { conn }),
        2 => (conn, data).prop_map(|(conn, data)| Op::Update { conn, data }),
    ]
}

/// Each connection authenticates as one user; two connections share a user.
fn user_of(conn: u8) -> String {
    format!("u{}", conn % 3)
}

/// The obvious implementation: the set of `(topic, conn)` tracked, and each user's data.
#[derive(Debug, Default)]
struct Model {
    tracked: BTreeSet<(String, u8)>,
    data: BTreeMap<(String, String), Value>,
}

impl Model {
    fn visible(&self, topic: &str, user: &str) -> bool {
        self.tracked
            .iter()
            .any(|(t, c)| t == topic && user_of(*c) == user)
    }

    fn users(&self, topic: &str) -> BTreeSet<String> {
        self.tracked
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, c)| user_of(*c))
            .collect()
    }

    fn topics_of(&self, conn: u8) -> Vec<String> {
        self.tracked
            .iter()
            .filter(|(_, c)| *c == conn)
            .map(|(t, _)| t.clone())
            .collect()
    }

    fn view(&self, topic: &str) -> BTreeMap<String, UserPresence> {
        self.users(topic)
            .into_iter()
            .map(|user| {
                let connections = self
                    .tracked
                    .iter()
                    .filter(|(t, c)| t == topic && user_of(*c) == user)
                    .count();
                let data = self.data[&(topic.to_string(), user.clone())].clone();
                let connections = u32::try_from(connections).expect("few connections");
                (user, UserPresence { data, connections })
            })
            .collect()
    }

    fn size_error(data: &Value) -> Option<PresenceError> {
        let size = data.to_string().len();
        (size > MODEL_LIMITS.max_data_size).then_some(PresenceError::DataTooLarge {
            size,
            max: MODEL_LIMITS.max_data_size,
        })
    }

    fn track(
        &mut self,
        conn: u8,
        topic: &str,
        data: Value,
    ) -> Result<Option<PresenceChange>, PresenceError> {
        if let Some(e) = Self::size_error(&data) {
            return Err(e);
        }
        let user = user_of(conn);
        let was_visible = self.visible(topic, &user);
        if !was_visible && self.users(topic).len() >= MODEL_LIMITS.max_members {
            return Err(PresenceError::TopicFull {
                topic: topic.into(),
                max_members: MODEL_LIMITS.max_members,
            });
        }
        self.tracked.insert((topic.into(), conn));
        self.data.insert((topic.into(), user.clone()), data.clone());
        Ok((!was_visible).then(|| change(PresenceChangeKind::Join, topic, &user, data)))
    }

    fn untrack(&mut self, conn: u8, topic: &str) -> Option<PresenceChange> {
        if !self.tracked.remove(&(topic.to_string(), conn)) {
            return None;
        }
        let user = user_of(conn);
        if self.visible(topic, &user) {
            return None;
        }
        let data = self.data.remove(&(topic.to_string(), user.clone()))?;
        Some(change(PresenceChangeKind::Leave, topic, &user, data))
    }

    fn update(&mut self, conn: u8, data: &Value) -> Result<Vec<PresenceChange>, PresenceError> {
        if let Some(e) = Self::size_error(data) {
            return Err(e);
        }
        let topics = self.topics_of(conn);
        if topics.is_empty() {
            return Err(PresenceError::UnknownConnection(ConnId::from_u128(
                conn.into(),
            )));
        }
        let user = user_of(conn);
        let mut out = Vec::new();
        for topic in topics {
            let old = self
                .data
                .insert((topic.clone(), user.clone()), data.clone());
            if old.as_ref() != Some(data) {
                out.push(change(
                    PresenceChangeKind::Update,
                    &topic,
                    &user,
                    data.clone(),
                ));
            }
        }
        Ok(out)
    }
}

fn change(kind: PresenceChangeKind, topic: &str, user: &str, data: Value) -> PresenceChange {
    PresenceChange {
        topic: topic.into(),
        user_id: user.into(),
        kind,
        data,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn local_commands_match_a_naive_model(
        ops in prop::collection::vec(arb_op(), 0..60),
        walls_ms in prop::collection::vec(0..20u64, 60),
    ) {
        let mut table = PresenceTable::new(NodeId(1), MODEL_LIMITS);
        let mut clock = HlcClock::new(NodeId(1));
        let mut model = Model::default();
        let mut seen = BTreeMap::new();
        for (op, wall_ms) in ops.iter().zip(walls_ms) {
            // The wall clock jumps around, backwards too; the HLC keeps stamps increasing.
            let hlc = clock.now(WallClock::from_unix_millis(wall_ms));
            let events = match op.clone() {
                Op::Track { conn, topic, data } => {
                    let topic = MODEL_TOPICS[topic];
                    let c = ConnId::from_u128(conn.into());
                    let got = table.track(topic, &user_of(conn), c, json!(data), hlc);
                    prop_assert_eq!(&got, &model.track(conn, topic, json!(data)), "{:?}", op);
                    got.ok().flatten().into_iter().collect()
                }
                Op::Untrack { conn, topic } => {
                    let topic = MODEL_TOPICS[topic];
                    let got = table.untrack(topic, ConnId::from_u128(conn.into()), hlc);
                    prop_assert_eq!(&got, &model.untrack(conn, topic), "{:?}", op);
                    got.into_iter().collect()
                }
                Op::UntrackConnection { conn } => {
                    let got = table.untrack_connection(ConnId::from_u128(conn.into()), hlc);
                    let want: Vec<_> = model
                        .topics_of(conn)
                        .iter()
                        .filter_map(|t| model.untrack(conn, t))
                        .collect();
                    prop_assert_eq!(&got, &want, "{:?}", op);
                    got
                }
                Op::Update { conn, data } => {
                    let got = table.update(ConnId::from_u128(conn.into()), json!(data), hlc);
                    prop_assert_eq!(&got, &model.update(conn, &json!(data)), "{:?}", op);
                    got.unwrap_or_default()
                }
            };
            table.check_invariants();
            apply_events(&mut seen, &events, false);
            let visible: BTreeSet<_> = seen.keys().cloned().collect();
            let model_visible: BTreeSet<_> = model.data.keys().cloned().collect();
            prop_assert_eq!(visible, model_visible, "joins and leaves match visibility");
            for topic in MODEL_TOPICS {
                let want = model.view(topic);
                let stats = PresenceStats {
                    num_users: want.len(),
                    num_connections: want.values().map(|u| u64::from(u.connections)).sum(),
                };
                prop_assert_eq!(table.presence(topic), want);
                prop_assert_eq!(table.stats(topic), stats);
            }
            prop_assert_eq!(table.total_users(), model.data.len());
            let topics: BTreeSet<_> = model.data.keys().map(|(t, _)| t.clone()).collect();
            prop_assert_eq!(table.topic_count(), topics.len());
            for conn in 0..CONNS {
                let got: Vec<_> = table.topics_of(ConnId::from_u128(conn.into())).collect();
                prop_assert_eq!(got, model.topics_of(conn));
            }
        }
        // Everyone leaves: only tombstones remain, and the GC removes them all.
        let end = clock.now(WallClock::from_unix_millis(100));
        for conn in 0..CONNS {
            let _ = table.untrack_connection(ConnId::from_u128(conn.into()), end);
        }
        prop_assert_eq!(table.total_users(), 0);
        let _ = table.gc_tombstones(u64::MAX);
        prop_assert!(table.state().is_empty());
        prop_assert!(table.take_local_updates().is_empty());
    }
}
