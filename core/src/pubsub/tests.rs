//! Table-driven tests of every registry rule.

use super::*;

fn c(n: u128) -> ConnId {
    ConnId::from_u128(n)
}

fn strings(topics: &[&str]) -> Vec<String> {
    topics.iter().map(|t| (*t).to_owned()).collect()
}

fn conns(ns: &[u128]) -> Vec<ConnId> {
    ns.iter().map(|&n| c(n)).collect()
}

/// A registry (unlimited) with each `(conn, topics, group)` subscribed in order.
fn registry_with(subs: &[(u128, &[&str], Option<&str>)]) -> Registry {
    let mut r = Registry::new(0);
    for &(conn, topics, group) in subs {
        let _ = r
            .subscribe(c(conn), &strings(topics), group)
            .expect("unlimited registry");
    }
    r.assert_invariants();
    r
}

fn fanout_of(r: &mut Registry, topic: &str) -> Vec<ConnId> {
    r.publish_targets(topic, |_| true, |_, _| true).fanout
}

#[test]
fn fanout_is_exact_plus_matching_globs_deduplicated_and_ascending() {
    type Case<'a> = (
        &'a [(u128, &'a [&'a str], Option<&'a str>)],
        &'a str,
        &'a [u128],
    );
    let cases: &[Case<'_>] = &[
        (&[(1, &["chat:lobby"], None)], "chat:lobby", &[1]),
        (&[(1, &["chat:lobby"], None)], "chat:other", &[]),
        (
            &[(2, &["chat:*"], None), (1, &["chat:lobby"], None)],
            "chat:lobby",
            &[1, 2],
        ),
        // One connection through an exact key and two patterns: delivered once.
        (
            &[(1, &["chat:lobby", "chat:*", "*"], None)],
            "chat:lobby",
            &[1],
        ),
        (
            &[(3, &["user:?"], None), (2, &["user:*"], None)],
            "user:7",
            &[2, 3],
        ),
        (
            &[(3, &["user:?"], None), (2, &["user:*"], None)],
            "user:77",
            &[2],
        ),
        // A pattern key is not an exact key: "chat:*" does not receive a publish to "chat:x"
        // through the exact map, only through matching, and the exact map never holds it.
        (&[(1, &["chat:*"], None)], "chat:*", &[1]),
        // Queue members are not fan-out receivers.
        (&[(1, &["jobs"], Some("workers"))], "jobs", &[]),
        (
            &[(1, &["jobs"], Some("workers")), (2, &["jobs"], None)],
            "jobs",
            &[2],
        ),
    ];
    for (subs, topic, want) in cases {
        let mut r = registry_with(subs);
        assert_eq!(
            fanout_of(&mut r, topic),
            conns(want),
            "subs {subs:?} publish {topic:?}"
        );
    }
}

#[test]
fn glob_permit_denial_removes_only_glob_receivers_and_is_asked_once_per_connection() {
    let mut r = registry_with(&[
        (1, &["data:internal:audit"], None),
        (2, &["data:*"], None),
        (3, &["data:*", "data:internal:*"], None),
        (4, &["data:*", "data:internal:audit"], None),
    ]);
    let mut asked = Vec::new();
    let targets = r.publish_targets(
        "data:internal:audit",
        |_| true,
        |conn, topic| {
            asked.push((conn, topic.to_owned()));
            conn != c(2)
        },
    );
    // 1 and 4 are exact subscribers: never asked, never filtered. 2 denied, 3 permitted.
    assert_eq!(targets.fanout, conns(&[1, 3, 4]));
    let topic = "data:internal:audit".to_owned();
    assert_eq!(asked, vec![(c(2), topic.clone()), (c(3), topic)]);
}

#[test]
fn queue_groups_round_robin_skip_ineligible_members_and_count_misses() {
    let mut r = registry_with(&[
        (1, &["jobs"], Some("a")),
        (2, &["jobs"], Some("a")),
        (3, &["jobs"], Some("a")),
        (9, &["jobs"], Some("b")),
    ]);
    // Each row: eligible connections for this publish, expected picks (group a, then b), misses.
    let rows: &[(&[u128], &[u128], usize)] = &[
        (&[1, 2, 3, 9], &[1, 9], 0),
        (&[1, 2, 3, 9], &[2, 9], 0),
        (&[1, 2, 9], &[1, 9], 0), // cursor at 3, ineligible: wraps to 1
        (&[3], &[3], 1),          // cursor at 2, skips to 3; group b has nobody eligible
        (&[], &[], 2),
        (&[1, 2, 3, 9], &[1, 9], 0), // a miss does not move the cursor (still past 3)
    ];
    for (step, &(eligible, want, misses)) in rows.iter().enumerate() {
        let ok: Vec<ConnId> = conns(eligible);
        let t = r.publish_targets("jobs", |m| ok.contains(&m), |_, _| true);
        assert_eq!(
            (t.queue, t.queue_misses),
            (conns(want), misses),
            "step {step}"
        );
        assert!(t.fanout.is_empty());
    }
}

#[test]
fn queue_groups_receive_only_publishes_to_their_literal_topic() {
    let mut r = registry_with(&[(1, &["jobs:*"], Some("w")), (2, &["jobs"], Some("w"))]);
    let t = r.publish_targets("jobs:1", |_| true, |_, _| true);
    assert_eq!(t, Targets::default());
    let t = r.publish_targets("jobs:*", |_| true, |_, _| true);
    assert_eq!(t.queue, conns(&[1]));
}

#[test]
fn limit_counts_topics_and_queue_memberships_and_reports_truncation() {
    struct Case {
        name: &'static str,
        limit: usize,
        before: &'static [(&'static [&'static str], Option<&'static str>)],
        request: &'static [&'static str],
        group: Option<&'static str>,
        want: Result<(&'static [&'static str], &'static [&'static str]), usize>,
        count_after: usize,
    }
    let cases = [
        Case {
            name: "under the limit: everything added",
            limit: 3,
            before: &[],
            request: &["a", "b"],
            group: None,
            want: Ok((&["a", "b"], &[])),
            count_after: 2,
        },
        Case {
            name: "over the remaining budget: truncated in request order",
            limit: 3,
            before: &[(&["x"], None)],
            request: &["a", "b", "c"],
            group: None,
            want: Ok((&["a", "b"], &["c"])),
            count_after: 3,
        },
        Case {
            name: "queue memberships use the budget",
            limit: 3,
            before: &[(&["x", "y"], Some("g"))],
            request: &["a", "b"],
            group: None,
            want: Ok((&["a"], &["b"])),
            count_after: 3,
        },
        Case {
            name: "queue joins are limited too",
            limit: 2,
            before: &[(&["x"], None)],
            request: &["q1", "q2"],
            group: Some("g"),
            want: Ok((&["q1"], &["q2"])),
            count_after: 2,
        },
        Case {
            name: "at the limit with a new topic: error",
            limit: 2,
            before: &[(&["x"], None), (&["x"], Some("g"))],
            request: &["x", "new"],
            group: None,
            want: Err(2),
            count_after: 2,
        },
        Case {
            name: "at the limit with only held topics: a no-op, not an error",
            limit: 2,
            before: &[(&["x", "y"], None)],
            request: &["y", "x"],
            group: None,
            want: Ok((&[], &[])),
            count_after: 2,
        },
        Case {
            name: "held topics do not use the remaining budget",
            limit: 2,
            before: &[(&["x"], None)],
            request: &["x", "a", "b"],
            group: None,
            want: Ok((&["a"], &["b"])),
            count_after: 2,
        },
        Case {
            name: "the same topic in another group is a new membership",
            limit: 2,
            before: &[(&["x"], Some("g"))],
            request: &["x"],
            group: Some("h"),
            want: Ok((&["x"], &[])),
            count_after: 2,
        },
        Case {
            name: "zero means unlimited",
            limit: 0,
            before: &[(&["x", "y", "z"], None)],
            request: &["a", "b", "c"],
            group: Some("g"),
            want: Ok((&["a", "b", "c"], &[])),
            count_after: 6,
        },
    ];
    for case in cases {
        let mut r = Registry::new(case.limit);
        for &(topics, group) in case.before {
            let _ = r.subscribe(c(1), &strings(topics), group).expect(case.name);
        }
        let before = r.clone();
        let got = r.subscribe(c(1), &strings(case.request), case.group);
        match case.want {
            Ok((added, truncated)) => {
                let got = got.expect(case.name);
                assert_eq!(got.added, strings(added), "{}", case.name);
                assert_eq!(got.truncated, strings(truncated), "{}", case.name);
            }
            Err(limit) => {
                assert_eq!(
                    got,
                    Err(SubscribeError::LimitReached { limit }),
                    "{}",
                    case.name
                );
                assert_eq!(r.topics_of(c(1)), before.topics_of(c(1)), "{}", case.name);
            }
        }
        assert_eq!(
            r.subscription_count(c(1)),
            case.count_after,
            "{}",
            case.name
        );
        r.assert_invariants();
    }
}

#[test]
fn limit_error_message_names_the_limit() {
    let err = SubscribeError::LimitReached { limit: 7 };
    assert_eq!(err.to_string(), "reached max subscriptions (7)");
}

#[test]
fn topics_with_ascii_control_characters_are_rejected() {
    let cases: &[(&str, bool)] = &[
        ("chat:lobby", true),
        ("caf\u{e9}", true),
        ("with space", true),
        ("", true),
        ("nul\u{0}", false),
        ("tab\t", false),
        ("new\nline", false),
        ("\u{1f}unit", false),
        ("del\u{7f}", false),
        ("glob*\r", false),
    ];
    for &(topic, accepted) in cases {
        let mut r = Registry::new(0);
        let got = r
            .subscribe(c(1), &strings(&[topic]), None)
            .expect("unlimited");
        assert_eq!(got.added.len(), usize::from(accepted), "{topic:?}");
        assert_eq!(got.rejected.len(), usize::from(!accepted), "{topic:?}");
        assert_eq!(
            r.subscriber_count(topic),
            usize::from(accepted),
            "{topic:?}"
        );
        assert_eq!(r.is_empty(), !accepted, "{topic:?}");
    }
}

#[test]
fn rejected_topics_do_not_use_the_budget() {
    let mut r = Registry::new(1);
    let got = r
        .subscribe(c(1), &strings(&["bad\n", "good"]), None)
        .expect("budget of one");
    assert_eq!(
        (got.added, got.rejected),
        (strings(&["good"]), strings(&["bad\n"]))
    );
}

#[test]
fn resubscribing_does_not_double_count() {
    for topic in ["chat:lobby", "chat:*", "user:?"] {
        let mut r = Registry::new(0);
        let first = r
            .subscribe(c(1), &strings(&[topic, topic]), None)
            .expect("unlimited");
        assert_eq!(first.added, strings(&[topic]), "{topic}");
        let again = r
            .subscribe(c(1), &strings(&[topic]), None)
            .expect("unlimited");
        assert_eq!(again, SubscribeOutcome::default(), "{topic}");
        assert_eq!(r.subscriber_count(topic), 1, "{topic}");
        assert_eq!(r.subscription_count(c(1)), 1, "{topic}");
        assert_eq!(r.topic_count(), 1, "{topic}");
        // One unsubscribe is enough to clear it.
        let out = r.unsubscribe(c(1), Some(&strings(&[topic])));
        assert_eq!(out.last_subscriber, strings(&[topic]), "{topic}");
        assert!(r.is_empty(), "{topic}");
    }
    let mut r = registry_with(&[(1, &["jobs"], Some("g")), (1, &["jobs"], Some("g"))]);
    assert_eq!(
        r.queue_group_info("jobs"),
        BTreeMap::from([("g".to_owned(), 1)])
    );
    assert_eq!(r.subscription_count(c(1)), 1);
    let _ = r.remove_connection(c(1));
    assert!(r.is_empty());
}

#[test]
fn first_subscriber_reports_keys_going_from_zero_to_one() {
    let mut r = Registry::new(0);
    let a = r
        .subscribe(c(1), &strings(&["t", "p:*"]), None)
        .expect("unlimited");
    assert_eq!(a.first_subscriber, strings(&["t", "p:*"]));
    let b = r
        .subscribe(c(2), &strings(&["t", "u"]), None)
        .expect("unlimited");
    assert_eq!(
        (b.added, b.first_subscriber),
        (strings(&["t", "u"]), strings(&["u"]))
    );
    let q = r
        .subscribe(c(3), &strings(&["v"]), Some("g"))
        .expect("unlimited");
    assert_eq!((q.added, q.first_subscriber), (strings(&["v"]), vec![]));
}

#[test]
fn last_subscriber_reports_keys_going_to_zero() {
    let mut r = registry_with(&[(1, &["t", "u", "p:*"], None), (2, &["t"], None)]);
    let out = r.unsubscribe(c(1), Some(&strings(&["t", "p:*", "never"])));
    assert_eq!(out.removed, strings(&["t", "p:*"]));
    assert_eq!(out.last_subscriber, strings(&["p:*"]));
    let out = r.unsubscribe(c(2), None);
    assert_eq!(
        (out.removed, out.last_subscriber),
        (strings(&["t"]), strings(&["t"]))
    );
    assert_eq!(r.topics_of(c(1)), strings(&["u"]));
}

#[test]
fn unsubscribe_everything_includes_queue_memberships() {
    let mut r = registry_with(&[
        (1, &["t"], None),
        (1, &["jobs", "mail"], Some("g")),
        (1, &["jobs"], Some("h")),
        (2, &["jobs"], Some("g")),
    ]);
    let out = r.unsubscribe(c(1), None);
    assert_eq!(out.removed, strings(&["t"]));
    let left: Vec<(String, String)> = [("jobs", "g"), ("jobs", "h"), ("mail", "g")]
        .iter()
        .map(|(t, g)| ((*t).to_owned(), (*g).to_owned()))
        .collect();
    assert_eq!(out.left_groups, left);
    assert_eq!(r.subscription_count(c(1)), 0);
    assert_eq!(
        r.queue_group_info("jobs"),
        BTreeMap::from([("g".to_owned(), 1)])
    );
    assert!(r.queue_group_info("mail").is_empty());
    r.assert_invariants();
}

#[test]
fn unsubscribe_listed_topics_leaves_their_queue_groups_only() {
    let mut r = registry_with(&[
        (1, &["jobs", "mail"], Some("g")),
        (1, &["jobs"], None),
        (1, &["jobsx"], Some("g")),
    ]);
    let out = r.unsubscribe(c(1), Some(&strings(&["jobs"])));
    assert_eq!(out.removed, strings(&["jobs"]));
    assert_eq!(out.left_groups, vec![("jobs".to_owned(), "g".to_owned())]);
    assert_eq!(
        r.queue_groups_of(c(1)),
        vec![
            ("jobsx".to_owned(), "g".to_owned()),
            ("mail".to_owned(), "g".to_owned())
        ]
    );
    r.assert_invariants();
}

#[test]
fn unknown_connections_and_topics_are_ignored() {
    let mut r = registry_with(&[(1, &["t"], None)]);
    assert_eq!(r.unsubscribe(c(2), None), UnsubscribeOutcome::default());
    assert_eq!(
        r.unsubscribe(c(1), Some(&strings(&["x"]))),
        UnsubscribeOutcome::default()
    );
    assert_eq!(r.remove_connection(c(3)), UnsubscribeOutcome::default());
    assert_eq!(r.subscription_count(c(1)), 1);
    assert!(r.topics_of(c(9)).is_empty());
}

#[test]
fn removing_every_connection_leaves_the_registry_empty() {
    let mut r = registry_with(&[
        (1, &["a", "b", "c:*"], None),
        (2, &["a", "?"], None),
        (2, &["jobs"], Some("g")),
        (3, &["jobs", "a"], Some("h")),
    ]);
    let _ = r.publish_targets("jobs", |_| true, |_, _| true);
    assert!(!r.is_empty());
    let out = r.remove_connection(c(1));
    assert_eq!(out.last_subscriber, strings(&["b", "c:*"]));
    let _ = r.remove_connection(c(2));
    let out = r.remove_connection(c(3));
    assert_eq!(out.removed, Vec::<String>::new());
    assert_eq!(out.left_groups.len(), 2);
    r.assert_invariants();
    assert!(r.is_empty());
    assert_eq!(r.topic_count(), 0);
    assert!(!r.has_subscribers("a"));
}

#[test]
fn counts_and_listings_follow_the_key_rules() {
    let r = registry_with(&[
        (1, &["chat:lobby", "chat:*"], None),
        (2, &["chat:*"], None),
        (3, &["chat:lobby"], Some("g")),
    ]);
    let cases = [
        ("chat:lobby", 1),
        ("chat:*", 2),
        ("chat:other", 0),
        ("chat:?", 0),
    ];
    for (key, want) in cases {
        assert_eq!(r.subscriber_count(key), want, "{key}");
    }
    assert_eq!(r.topic_count(), 2);
    assert_eq!(r.topics_of(c(1)), strings(&["chat:*", "chat:lobby"]));
    assert_eq!(r.subscription_count(c(3)), 1);
    assert!(r.topics_of(c(3)).is_empty());
    assert_eq!(
        r.queue_group_info("chat:lobby"),
        BTreeMap::from([("g".to_owned(), 1)])
    );
    assert_eq!(r.max_subscriptions_per_connection(), 0);
}

#[test]
fn has_subscribers_sees_exact_glob_and_queue_receivers() {
    let r = registry_with(&[
        (1, &["a"], None),
        (2, &["b:*"], None),
        (3, &["q"], Some("g")),
    ]);
    let cases = [
        ("a", true),
        ("b:1", true),
        ("b", false),
        ("q", true),
        ("z", false),
    ];
    for (topic, want) in cases {
        assert_eq!(r.has_subscribers(topic), want, "{topic}");
    }
}
