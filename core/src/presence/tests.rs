//! Behaviour of the local presence API and of merging, scenario by scenario.

use serde_json::{Value, json};

use super::*;
use crate::ids::ConnId;
use crate::time::WallClock;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn limits() -> PresenceLimits {
    PresenceLimits {
        max_data_size: 64,
        max_members: 0,
    }
}

fn conn(n: u128) -> ConnId {
    ConnId::from_u128(n)
}

/// A table and its clock, with the wall clock advancing one millisecond per stamp.
struct Node {
    table: PresenceTable,
    clock: HlcClock,
    wall_ms: u64,
}

impl Node {
    fn new(id: NodeId, limits: PresenceLimits) -> Self {
        Node {
            table: PresenceTable::new(id, limits),
            clock: HlcClock::new(id),
            wall_ms: 1_000,
        }
    }

    fn stamp(&mut self) -> Hlc {
        self.wall_ms += 1;
        self.clock.now(WallClock::from_unix_millis(self.wall_ms))
    }

    fn track(&mut self, topic: &str, user: &str, c: u128, data: Value) -> Option<PresenceChange> {
        let hlc = self.stamp();
        let out = self.table.track(topic, user, conn(c), data, hlc).unwrap();
        self.table.check_invariants();
        out
    }

    fn untrack(&mut self, topic: &str, c: u128) -> Option<PresenceChange> {
        let hlc = self.stamp();
        let out = self.table.untrack(topic, conn(c), hlc);
        self.table.check_invariants();
        out
    }

    /// Ships this node's pending own entries to `other`; returns what `other` saw change.
    fn ship_to(&mut self, other: &mut Node) -> Vec<PresenceChange> {
        let updates = self.table.take_local_updates();
        for (_, e) in &updates {
            other.clock.observe(e.hlc);
        }
        let out = other.table.merge_remote(updates);
        other.table.check_invariants();
        out
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

use PresenceChangeKind::{Join, Leave, Update};

#[test]
fn first_track_joins_and_further_connections_of_the_user_do_not() {
    let mut n = Node::new(A, limits());
    assert_eq!(
        n.track("t", "alice", 1, json!({"s": 1})),
        Some(change(Join, "t", "alice", json!({"s": 1})))
    );
    assert_eq!(n.track("t", "alice", 2, json!({"s": 1})), None);
    let view = n.table.presence("t");
    assert_eq!(view["alice"].connections, 2);
    assert_eq!(
        n.table.stats("t"),
        PresenceStats {
            num_users: 1,
            num_connections: 2
        }
    );
}

#[test]
fn later_track_of_a_visible_user_overwrites_data_without_an_event() {
    let mut n = Node::new(A, limits());
    let _ = n.track("t", "alice", 1, json!("old"));
    assert_eq!(n.track("t", "alice", 1, json!("new")), None);
    assert_eq!(n.track("t", "alice", 2, json!("newer")), None);
    assert_eq!(n.table.presence("t")["alice"].data, json!("newer"));
}

#[test]
fn untracking_the_last_connection_leaves_with_the_last_data() {
    let mut n = Node::new(A, limits());
    let _ = n.track("t", "alice", 1, json!("a"));
    let _ = n.track("t", "alice", 2, json!("b"));
    assert_eq!(n.untrack("t", 1), None);
    assert_eq!(n.table.presence("t")["alice"].connections, 1);
    assert_eq!(
        n.untrack("t", 2),
        Some(change(Leave, "t", "alice", json!("b")))
    );
    assert!(n.table.presence("t").is_empty());
    assert_eq!(n.table.stats("t"), PresenceStats::default());
    assert_eq!((n.table.topic_count(), n.table.total_users()), (0, 0));
    assert_eq!(n.untrack("t", 2), None, "a second untrack is a no-op");
}

#[test]
fn untrack_connection_leaves_every_topic_of_that_connection_only() {
    let mut n = Node::new(A, limits());
    let _ = n.track("t1", "alice", 1, json!(1));
    let _ = n.track("t2", "alice", 1, json!(2));
    let _ = n.track("t2", "bob", 2, json!(3));
    assert_eq!(n.table.topics_of(conn(1)).collect::<Vec<_>>(), ["t1", "t2"]);
    assert_eq!((n.table.topic_count(), n.table.total_users()), (2, 3));
    let hlc = n.stamp();
    let out = n.table.untrack_connection(conn(1), hlc);
    n.table.check_invariants();
    assert_eq!(
        out,
        [
            change(Leave, "t1", "alice", json!(1)),
            change(Leave, "t2", "alice", json!(2))
        ]
    );
    assert_eq!(n.table.topics_of(conn(1)).count(), 0);
    assert_eq!((n.table.topic_count(), n.table.total_users()), (1, 1));
}

#[test]
fn local_commands_refuse_what_breaks_a_limit_and_change_nothing() {
    let tight = PresenceLimits {
        max_data_size: 10,
        max_members: 1,
    };
    let mut n = Node::new(A, tight);
    let _ = n.track("t", "alice", 1, json!("ok"));
    let big = json!("0123456789"); // 12 bytes with quotes
    let hlc = n.stamp();
    let cases: Vec<(&str, Result<_, PresenceError>)> = vec![
        (
            "oversized track",
            n.table
                .clone()
                .track("t", "alice", conn(2), big.clone(), hlc),
        ),
        (
            "new user in a full topic",
            n.table.clone().track("t", "bob", conn(2), json!(1), hlc),
        ),
        (
            "connection already tracking another user",
            n.table.clone().track("t", "bob", conn(1), json!(1), hlc),
        ),
    ];
    let want = [
        PresenceError::DataTooLarge { size: 12, max: 10 },
        PresenceError::TopicFull {
            topic: "t".into(),
            max_members: 1,
        },
        PresenceError::UserMismatch {
            conn: conn(1),
            topic: "t".into(),
            tracked: "alice".into(),
        },
    ];
    for ((name, got), want) in cases.into_iter().zip(want) {
        assert_eq!(got, Err(want), "{name}");
    }
    assert_eq!(
        n.table.clone().update(conn(1), big, hlc),
        Err(PresenceError::DataTooLarge { size: 12, max: 10 })
    );
    assert_eq!(
        n.table.clone().update(conn(9), json!(1), hlc),
        Err(PresenceError::UnknownConnection(conn(9)))
    );
    // An existing user may add connections to a full topic; other topics are not full.
    assert_eq!(n.track("t", "alice", 2, json!(1)), None);
    assert!(n.track("u", "bob", 3, json!(1)).is_some());
}

#[test]
fn update_changes_data_in_every_topic_of_that_connection_only() {
    let mut n = Node::new(A, limits());
    let _ = n.track("t1", "alice", 1, json!("x"));
    let _ = n.track("t2", "alice", 1, json!("x"));
    let _ = n.track("t3", "alice", 2, json!("x"));
    let hlc = n.stamp();
    let out = n.table.update(conn(1), json!("y"), hlc).unwrap();
    n.table.check_invariants();
    assert_eq!(
        out,
        [
            change(Update, "t1", "alice", json!("y")),
            change(Update, "t2", "alice", json!("y"))
        ]
    );
    assert_eq!(n.table.presence("t3")["alice"].data, json!("x"));
    let hlc = n.stamp();
    assert_eq!(
        n.table.update(conn(1), json!("y"), hlc),
        Ok(vec![]),
        "same data: no event"
    );
}

#[test]
fn repeated_join_and_leave_does_not_grow_the_table() {
    let mut n = Node::new(A, limits());
    for _ in 0..100 {
        let _ = n.track("t", "alice", 1, json!(1));
        let _ = n.track("u", "alice", 1, json!(1));
        let hlc = n.stamp();
        let _ = n.table.untrack_connection(conn(1), hlc);
    }
    assert_eq!(
        n.table.state().entries().count(),
        2,
        "one tombstone per key"
    );
    assert_eq!(n.table.take_local_updates().len(), 2);
    assert_eq!(n.table.gc_tombstones(n.wall_ms + 1), 2);
    assert!(n.table.state().is_empty());
    assert_eq!(n.table.topics_of(conn(1)).count(), 0);
}

#[test]
fn a_user_on_two_nodes_leaves_everywhere_once_both_nodes_drop_them() {
    // UPSTREAM §13.3 item 5: the original kept such a user present forever.
    let (mut a, mut b) = (Node::new(A, limits()), Node::new(B, limits()));
    let _ = a.track("t", "alice", 1, json!("on a"));
    assert_eq!(
        a.ship_to(&mut b),
        [change(Join, "t", "alice", json!("on a"))]
    );
    let _ = b.track("t", "alice", 2, json!("on b"));
    assert_eq!(
        b.ship_to(&mut a),
        [change(Update, "t", "alice", json!("on b"))]
    );
    assert_eq!(a.table.stats("t").num_connections, 2);

    assert_eq!(a.untrack("t", 1), None, "still present through b");
    assert_eq!(a.ship_to(&mut b), []);
    assert_eq!(b.table.stats("t").num_connections, 1);
    assert_eq!(
        b.untrack("t", 2),
        Some(change(Leave, "t", "alice", json!("on b")))
    );
    assert_eq!(
        b.ship_to(&mut a),
        [change(Leave, "t", "alice", json!("on b"))]
    );
    assert_eq!(a.table.state(), b.table.state());
    assert_eq!(a.table.total_users() + b.table.total_users(), 0);
}

#[test]
fn leaving_while_another_node_holds_the_user_shows_that_nodes_data() {
    let (mut a, mut b) = (Node::new(A, limits()), Node::new(B, limits()));
    let _ = b.track("t", "alice", 2, json!("on b"));
    let _ = b.ship_to(&mut a);
    a.wall_ms = b.wall_ms;
    let _ = a.track("t", "alice", 1, json!("on a"));
    assert_eq!(a.table.presence("t")["alice"].data, json!("on a"));
    assert_eq!(
        a.untrack("t", 1),
        Some(change(Update, "t", "alice", json!("on b")))
    );
}

#[test]
fn a_newer_remove_is_not_undone_by_an_older_join_delivered_late() {
    let mut n = Node::new(A, limits());
    let key = PresenceKey::new("t", "alice", B);
    let join = PresenceEntry::present(Hlc::new(10, 0, B), json!(1), 1);
    let leave = PresenceEntry::absent(Hlc::new(11, 0, B));
    assert_eq!(n.table.merge_remote([(key.clone(), leave)]), []);
    assert_eq!(
        n.table.merge_remote([(key.clone(), join.clone())]),
        [],
        "discarded: no event"
    );
    assert!(n.table.presence("t").is_empty());
    assert_eq!(n.table.state().tombstone_count(), 1);

    let mut fresh = Node::new(A, limits());
    let rejoin = PresenceEntry::present(Hlc::new(12, 0, B), json!(2), 1);
    let out = fresh
        .table
        .merge_remote([(key.clone(), join), (key, rejoin)]);
    assert_eq!(
        out,
        [
            change(Join, "t", "alice", json!(1)),
            change(Update, "t", "alice", json!(2))
        ]
    );
}

#[test]
fn a_duplicate_remote_entry_produces_no_event() {
    let mut n = Node::new(A, limits());
    let entry = (
        PresenceKey::new("t", "alice", B),
        PresenceEntry::present(Hlc::new(10, 0, B), json!(1), 1),
    );
    assert_eq!(n.table.merge_remote([entry.clone()]).len(), 1);
    assert_eq!(n.table.merge_remote([entry]), []);
}

#[test]
fn remote_data_over_the_size_limit_is_dropped() {
    let mut n = Node::new(A, limits());
    let big = json!("x".repeat(100));
    let entry = PresenceEntry::present(Hlc::new(10, 0, B), big, 1);
    assert_eq!(
        n.table
            .merge_remote([(PresenceKey::new("t", "u", B), entry)]),
        []
    );
    assert!(n.table.state().is_empty());
}

#[test]
fn forgetting_a_peer_removes_only_the_users_it_alone_kept() {
    let mut n = Node::new(A, limits());
    let _ = n.track("t", "alice", 1, json!("local"));
    let _ = n.table.merge_remote([
        (
            PresenceKey::new("t", "alice", B),
            PresenceEntry::present(Hlc::new(1, 0, B), json!("remote"), 3),
        ),
        (
            PresenceKey::new("t", "bob", B),
            PresenceEntry::present(Hlc::new(1, 0, B), json!("b"), 1),
        ),
    ]);
    assert_eq!(n.table.stats("t").num_connections, 5);
    assert_eq!(
        n.table.forget_origin(B),
        [change(Leave, "t", "bob", json!("b"))]
    );
    assert_eq!(
        n.table.forget_origin(A),
        [],
        "own origin is never forgotten"
    );
    assert_eq!(
        n.table.stats("t"),
        PresenceStats {
            num_users: 1,
            num_connections: 1
        }
    );
}

#[test]
fn gc_drops_only_tombstones_older_than_the_horizon() {
    let mut n = Node::new(A, limits());
    let entries = [
        ("old-leave", PresenceEntry::absent(Hlc::new(10, 0, B))),
        ("new-leave", PresenceEntry::absent(Hlc::new(30, 0, B))),
        (
            "old-join",
            PresenceEntry::present(Hlc::new(10, 0, B), json!(1), 1),
        ),
    ];
    let _ = n
        .table
        .merge_remote(entries.map(|(u, e)| (PresenceKey::new("t", u, B), e)));
    assert_eq!(n.table.gc_tombstones(20), 1);
    let users: Vec<String> = n.table.state().entries().map(|(k, _)| k.user_id).collect();
    assert_eq!(users, ["new-leave", "old-join"]);
    assert_eq!(n.table.state().tombstone_count(), 1);
}

#[test]
fn a_stale_entry_of_our_own_origin_is_refuted_not_adopted() {
    let mut n = Node::new(A, limits());
    let _ = n.track("t", "alice", 1, json!("now"));
    let _ = n.table.take_local_updates();
    let ghost = PresenceEntry::present(Hlc::new(u64::MAX / 2, 0, A), json!("ghost"), 7);
    let out = n.table.merge_remote([
        (PresenceKey::new("t", "alice", A), ghost.clone()),
        (PresenceKey::new("t", "carol", A), ghost),
    ]);
    n.table.check_invariants();
    assert_eq!(out, []);
    assert_eq!(n.table.presence("t")["alice"].data, json!("now"));
    assert_eq!(n.table.presence("t")["alice"].connections, 1);
    let shipped = n.table.take_local_updates();
    assert_eq!(shipped.len(), 2);
    assert!(
        shipped
            .iter()
            .all(|(_, e)| e.hlc.wall_ms == u64::MAX / 2 && e.hlc.node == A)
    );
    assert!(
        shipped[1].1.is_absent(),
        "carol is absent here: {shipped:?}"
    );
}

#[test]
fn a_local_write_with_a_stale_stamp_still_supersedes_our_previous_entry() {
    let mut n = PresenceTable::new(A, limits());
    let late = Hlc::new(50, 0, A);
    let early = Hlc::new(10, 0, A);
    let _ = n.track("t", "alice", conn(1), json!(1), late).unwrap();
    assert_eq!(
        n.untrack("t", conn(1), early),
        Some(change(Leave, "t", "alice", json!(1)))
    );
    n.check_invariants();
    let key = PresenceKey::new("t", "alice", A);
    assert_eq!(
        n.state().entry(&key).map(|e| e.hlc),
        Some(Hlc::new(50, 1, A))
    );
}
