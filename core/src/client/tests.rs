use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

use super::*;
use crate::protocol::{Envelope, json_to_msgpack, zlib_compress};

const WALL0: WallClock = WallClock::from_unix_millis(1_764_000_000_000);
const T0: Instant = Instant::from_secs(1_000);
const SEED: u64 = 7;

fn at(secs: u64) -> Instant {
    T0 + Duration::from_secs(secs)
}

fn client_with(f: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut cfg = ClientConfig::default();
    f(&mut cfg);
    Client::new(cfg, WALL0, SEED).expect("valid test config")
}

fn drain(c: &mut Client) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// Every frame sent, parsed as JSON.
fn sent(outs: &[Output]) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::SendText(t) => Some(serde_json::from_str(t).expect("client sends JSON")),
            _ => None,
        })
        .collect()
}

fn events(outs: &[Output]) -> Vec<Event> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Offsets (`o`) of delivered stamped messages.
fn delivered_offsets(outs: &[Output]) -> Vec<u64> {
    events(outs)
        .iter()
        .filter_map(|e| match e {
            Event::Message(d) => d.envelope.stamp.as_ref().map(|s| s.offset),
            _ => None,
        })
        .collect()
}

fn messages(outs: &[Output]) -> Vec<Envelope> {
    events(outs)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(d) => Some(d.envelope),
            _ => None,
        })
        .collect()
}

fn server_ready(conn_id: &str) -> String {
    json!({"c": "WSE", "t": "server_ready",
           "p": {"details": {"connection_id": conn_id, "features": {"recovery": true}}}})
    .to_string()
}

fn stamped(topic: &str, epoch: u32, offset: u64) -> String {
    json!({"c": "U", "t": "tick", "tp": topic, "e": format!("{epoch:08x}"), "o": offset,
           "p": {"n": offset}})
    .to_string()
}

fn ack(recovery: Value) -> String {
    let mut v = json!({"c": "WSE", "t": "subscription_update",
        "p": {"success": true, "success_topics": [], "failed_topics": []}});
    v["p"]["recovery"] = recovery;
    v.to_string()
}

/// Subscription requests among the sent frames (their `p`).
fn subscription_requests(outs: &[Output]) -> Vec<Value> {
    sent(outs)
        .into_iter()
        .filter(|v| v["t"] == "subscription_update")
        .map(|v| v["p"].clone())
        .collect()
}

/// A client that connected at `T0` and got `server_ready`; outputs drained.
fn ready_client(f: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut c = client_with(f);
    c.start(T0);
    c.handle_connected(T0);
    c.handle_text(T0, &server_ready("conn-1"));
    drain(&mut c);
    assert_eq!(c.state(), State::Ready);
    c
}

/// Drops the connection with `close`, waits out the backoff and reconnects to `server_ready`.
fn reconnect(c: &mut Client, now: Instant, close: Option<u16>) -> Vec<Output> {
    c.handle_closed(now, close);
    let State::Backoff { until } = c.state() else {
        panic!("expected backoff, got {:?}", c.state());
    };
    c.handle_timeout(until);
    c.handle_connected(until);
    c.handle_text(until, &server_ready("conn-2"));
    drain(c)
}

/// Removes `id` and `ts` after checking their form; returns the rest.
fn without_id_and_ts(mut v: Value, wall: WallClock) -> Value {
    let obj = v.as_object_mut().unwrap();
    let id = obj.remove("id").unwrap();
    let id = uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4, "ids are UUIDv4");
    assert_eq!(
        obj.remove("ts").unwrap(),
        json!(wall.rfc3339_millis().to_string())
    );
    v
}

fn wall_at(now: Instant) -> WallClock {
    WallClock::from_unix_micros(WALL0.unix_micros() + now.as_micros())
}

// ----- session ------------------------------------------------------------------------------

#[test]
fn scripted_session_sends_hello_then_subscription_then_queue_then_ready() {
    let mut c = client_with(|cfg| cfg.topics = vec!["prices".into(), "chat".into()]);
    assert_eq!(c.state(), State::Idle);
    c.start(T0);
    assert_eq!(drain(&mut c), vec![Output::Connect]);
    assert_eq!(c.state(), State::Connecting);
    c.subscribe(T0, &["news".into()]);
    c.send(T0, "chat_message", json!({"text": "hi"})).unwrap();
    assert!(
        drain(&mut c).is_empty(),
        "nothing is sent before the session"
    );

    c.handle_connected(at(1));
    assert_eq!(c.state(), State::AwaitingReady);
    assert!(drain(&mut c).is_empty());
    c.handle_text(at(2), &server_ready("conn-1"));
    let out = drain(&mut c);
    let frames = sent(&out);
    assert_eq!(frames.len(), 3, "{out:?}");
    assert_eq!(
        without_id_and_ts(frames[0].clone(), wall_at(at(2))),
        json!({"c": "WSE", "t": "client_hello", "seq": 2, "v": 1, "pri": 10, "p": {
            "client_version": ClientConfig::default().client_version,
            "protocol_version": 1,
            "features": {"compression": true, "encryption": false, "batching": true,
                "priority_queue": true, "circuit_breaker": true, "offline_queue": true,
                "message_signing": false, "rate_limiting": true, "health_check": true,
                "metrics": true},
            "connection_id": "conn-1"}})
    );
    assert_eq!(
        without_id_and_ts(frames[1].clone(), wall_at(at(2))),
        json!({"c": "WSE", "t": "subscription_update", "seq": 3, "v": 1,
               "p": {"action": "subscribe", "topics": ["chat", "news", "prices"]}})
    );
    assert_eq!(
        without_id_and_ts(frames[2].clone(), wall_at(T0)),
        json!({"c": "U", "t": "chat_message", "seq": 1, "v": 1, "p": {"text": "hi"}}),
        "the queued message keeps the seq and ts of its send()"
    );
    assert_eq!(
        out.last(),
        Some(&Output::Event(Event::Ready {
            connection_id: Some("conn-1".into()),
            reconnected: false
        }))
    );
    assert_eq!(c.connection_id(), Some("conn-1"));
    assert_eq!(c.state(), State::Ready);
}

#[test]
fn connection_id_is_read_from_p_or_from_p_details() {
    let cases = [
        (
            json!({"t": "server_ready", "p": {"connection_id": "a"}}),
            Some("a"),
        ),
        (
            json!({"t": "server_ready", "p": {"details": {"connection_id": "b"}}}),
            Some("b"),
        ),
        (json!({"t": "server_ready", "p": {}}), None),
        (json!({"t": "server_ready"}), None),
    ];
    for (ready, want) in cases {
        let mut c = client_with(|_| {});
        c.start(T0);
        c.handle_connected(T0);
        c.handle_text(T0, &ready.to_string());
        drain(&mut c);
        assert_eq!(c.state(), State::Ready, "{ready}");
        assert_eq!(c.connection_id(), want, "{ready}");
    }
}

#[test]
fn ready_timeout_proceeds_without_server_ready() {
    let mut c = client_with(|cfg| cfg.topics = vec!["a".into()]);
    c.start(T0);
    c.handle_connected(T0);
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(at(10)));
    c.handle_timeout(at(9));
    assert!(drain(&mut c).is_empty(), "early timeout is harmless");
    c.handle_timeout(at(10));
    let out = drain(&mut c);
    let types: Vec<Value> = sent(&out).iter().map(|v| v["t"].clone()).collect();
    assert_eq!(types, [json!("client_hello"), json!("subscription_update")]);
    assert_eq!(sent(&out)[0]["p"]["connection_id"], Value::Null);
    assert_eq!(
        events(&out),
        [Event::Ready {
            connection_id: None,
            reconnected: false
        }]
    );
}

#[test]
fn reconnect_resubscribes_every_topic_with_recover_and_the_known_positions() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["a".into(), "b".into(), "c".into()]);
    c.handle_text(at(1), &stamped("a", 0xabcd, 41));
    c.handle_text(at(1), &stamped("c", 0x1, 0));
    drain(&mut c);
    let out = reconnect(&mut c, at(2), None);
    let requests = subscription_requests(&out);
    assert_eq!(
        requests,
        [
            json!({"action": "subscribe", "topics": ["a", "b", "c"], "recover": true,
                "recovery": {"a": {"epoch": "0000abcd", "offset": 41},
                             "c": {"epoch": "00000001", "offset": 0}}})
        ]
    );
    assert_eq!(c.recovering().collect::<Vec<_>>(), ["a", "c"]);
    assert!(events(&out).contains(&Event::Ready {
        connection_id: Some("conn-2".into()),
        reconnected: true
    }));
}

fn ack_for(topics: &[&str], recovery: &Value) -> String {
    json!({"c": "WSE", "t": "subscription_update",
           "p": {"success": true, "success_topics": topics, "failed_topics": [],
                 "recovery": recovery}})
    .to_string()
}

#[test]
fn a_topic_resubscribed_without_a_position_is_announced_as_not_recovered() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["a".into(), "b".into()]);
    // First subscription: no history yet; nothing to announce.
    c.handle_text(at(1), &ack_for(&["a", "b"], &json!({})));
    assert!(
        !events(&drain(&mut c))
            .iter()
            .any(|e| matches!(e, Event::NotRecovered { .. }))
    );
    // Away without ever getting a message: on return the client cannot ask for what it missed.
    let out = reconnect(&mut c, at(2), None);
    assert_eq!(
        subscription_requests(&out),
        [json!({"action": "subscribe", "topics": ["a", "b"]})]
    );
    c.handle_text(
        at(3),
        &ack_for(
            &["a", "b"],
            &json!({"b": {"epoch": "00000005", "offset": 9, "recovered": false}}),
        ),
    );
    let evs = events(&drain(&mut c));
    assert!(evs.contains(&Event::NotRecovered {
        topic: "a".into(),
        epoch: None,
        offset: 0
    }));
    assert!(evs.contains(&Event::NotRecovered {
        topic: "b".into(),
        epoch: Some(5),
        offset: 9
    }));
    assert_eq!(
        c.positions()["b"],
        Position {
            epoch: 5,
            offset: 9
        }
    );
    // Announced once: a later ack says nothing more.
    c.handle_text(at(4), &ack_for(&["a", "b"], &json!({})));
    assert!(
        !events(&drain(&mut c))
            .iter()
            .any(|e| matches!(e, Event::NotRecovered { .. }))
    );
}

#[test]
fn configured_presence_data_rides_on_every_subscribe_request() {
    let mut c = ready_client(|cfg| {
        cfg.topics = vec!["a".into()];
        cfg.presence = Some(json!({"status": "online"}));
    });
    c.handle_text(at(1), &stamped("a", 7, 3));
    drain(&mut c);
    let out = reconnect(&mut c, at(2), None);
    assert_eq!(
        subscription_requests(&out),
        [
            json!({"action": "subscribe", "topics": ["a"], "recover": true,
                "recovery": {"a": {"epoch": "00000007", "offset": 3}},
                "presence": {"status": "online"}})
        ]
    );
}

#[test]
fn recovery_flags_in_flight_do_not_survive_a_reconnect() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["a".into(), "b".into()]);
    c.handle_text(at(1), &stamped("a", 1, 0));
    c.handle_text(at(1), &stamped("a", 1, 5));
    assert_eq!(c.recovering().collect::<Vec<_>>(), ["a"]);
    c.unsubscribe(at(1), &["b".into()]);
    c.handle_closed(at(2), Some(1006));
    assert_eq!(c.recovering().count(), 0);
    assert_eq!(c.positions().len(), 1, "positions survive");
    assert_eq!(c.subscribed().collect::<Vec<_>>(), ["a"]);
}

// ----- stamped messages ---------------------------------------------------------------------

#[test]
fn stamped_messages_in_order_are_delivered_and_recorded() {
    let mut c = ready_client(|_| {});
    for o in [5, 6, 7] {
        c.handle_text(at(1), &stamped("t", 9, o));
    }
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [5, 6, 7]);
    assert_eq!(
        c.positions().get("t"),
        Some(&Position {
            epoch: 9,
            offset: 7
        })
    );
    assert!(subscription_requests(&out).is_empty());
}

#[test]
fn duplicates_are_dropped_silently_and_counted() {
    let mut c = ready_client(|_| {});
    for o in [0, 1, 1, 0, 2] {
        c.handle_text(at(1), &stamped("t", 9, o));
    }
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [0, 1, 2]);
    assert_eq!(events(&out).len(), 3, "no event for a duplicate");
    assert_eq!(c.stats().stamp_duplicates, 2);
}

#[test]
fn a_gap_drops_the_message_and_sends_one_recovery_request_from_the_stored_position() {
    let mut c = ready_client(|_| {});
    c.handle_text(at(1), &stamped("t", 0xabcd, 3));
    c.handle_text(at(1), &stamped("t", 0xabcd, 5));
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [3]);
    assert!(events(&out).contains(&Event::Gap {
        topic: "t".into(),
        expected: 4,
        got: 5
    }));
    let frames = sent(&out);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        without_id_and_ts(frames[0].clone(), wall_at(at(1))),
        json!({"c": "WSE", "t": "subscription_update", "seq": 2, "v": 1,
               "p": {"action": "subscribe", "topics": ["t"], "recover": true,
                     "recovery": {"t": {"epoch": "0000abcd", "offset": 3}}}})
    );
    assert_eq!(c.stats().gap_drops, 1);
    assert_eq!(c.stats().recovery_requests, 1);
}

#[test]
fn only_one_recovery_is_in_flight_per_topic_and_in_order_replay_is_still_accepted() {
    let mut c = ready_client(|_| {});
    c.handle_text(at(1), &stamped("t", 1, 0));
    c.handle_text(at(1), &stamped("t", 1, 3)); // gap: request
    c.handle_text(at(1), &stamped("t", 1, 4)); // gap, in flight: drop only
    c.handle_text(at(1), &stamped("u", 1, 0));
    c.handle_text(at(1), &stamped("u", 1, 2)); // another topic: its own request
    c.handle_text(at(2), &stamped("t", 1, 1)); // the replay
    c.handle_text(at(2), &stamped("t", 1, 2));
    c.handle_text(at(2), &stamped("t", 1, 3));
    let out = drain(&mut c);
    let requests = subscription_requests(&out);
    let topics: Vec<Value> = requests.iter().map(|p| p["topics"].clone()).collect();
    assert_eq!(topics, [json!(["t"]), json!(["u"])]);
    let t_offsets: Vec<u64> = messages(&out)
        .iter()
        .filter_map(|e| {
            e.stamp
                .as_ref()
                .filter(|s| s.topic == "t")
                .map(|s| s.offset)
        })
        .collect();
    assert_eq!(t_offsets, [0, 1, 2, 3]);
    assert_eq!(c.stats().gap_drops, 3);
    assert_eq!(c.stats().recovery_requests, 2);
}

#[test]
fn a_new_epoch_from_offset_zero_is_a_new_incarnation_and_is_accepted() {
    let mut c = ready_client(|_| {});
    c.handle_text(at(1), &stamped("t", 1, 7));
    c.handle_text(at(1), &stamped("t", 2, 0));
    c.handle_text(at(1), &stamped("t", 2, 1));
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [7, 0, 1]);
    assert!(subscription_requests(&out).is_empty());
    assert_eq!(
        c.positions()["t"],
        Position {
            epoch: 2,
            offset: 1
        }
    );
}

#[test]
fn a_new_epoch_mid_way_is_a_gap_recovered_from_the_old_position() {
    let mut c = ready_client(|_| {});
    c.handle_text(at(1), &stamped("t", 1, 7));
    c.handle_text(at(1), &stamped("t", 2, 4));
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [7]);
    assert!(events(&out).contains(&Event::Gap {
        topic: "t".into(),
        expected: 0,
        got: 4
    }));
    assert_eq!(
        subscription_requests(&out)[0]["recovery"],
        json!({"t": {"epoch": "00000001", "offset": 7}})
    );
    // The server answers NotRecovered with its epoch: the cursor moves there.
    c.handle_text(
        at(2),
        &ack(json!({"t": {"epoch": "00000002", "offset": 4, "recovered": false, "count": 0}})),
    );
    let out = drain(&mut c);
    assert_eq!(
        events(&out)[0],
        Event::NotRecovered {
            topic: "t".into(),
            epoch: Some(2),
            offset: 4
        }
    );
    c.handle_text(at(2), &stamped("t", 2, 5));
    assert_eq!(delivered_offsets(&drain(&mut c)), [5]);
}

#[test]
fn an_unanswered_recovery_is_given_up_after_the_timeout_with_an_explicit_notice() {
    let mut c = ready_client(|_| {});
    c.handle_text(at(1), &stamped("t", 1, 0));
    c.handle_text(at(1), &stamped("t", 1, 2));
    c.handle_text(at(10), &stamped("t", 1, 3));
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [0], "still waiting at 9 s");
    c.handle_text(at(11), &stamped("t", 1, 4));
    let out = drain(&mut c);
    assert_eq!(
        events(&out)[0],
        Event::NotRecovered {
            topic: "t".into(),
            epoch: Some(1),
            offset: 3
        }
    );
    assert_eq!(delivered_offsets(&out), [4]);
    assert_eq!(c.stats().recovery_timeouts, 1);
    assert_eq!(c.recovering().count(), 0);
}

#[test]
fn topics_past_the_tracking_limit_are_delivered_untracked() {
    let mut c = ready_client(|cfg| cfg.max_tracked_topics = 1);
    c.handle_text(at(1), &stamped("a", 1, 0));
    c.handle_text(at(1), &stamped("b", 1, 0));
    c.handle_text(at(1), &stamped("b", 1, 0));
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [0, 0, 0]);
    assert_eq!(c.positions().keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(c.stats().untracked, 2);
}

// ----- subscription acks --------------------------------------------------------------------

/// A ready client with topic `t` at (1, 10) and a recovery request in flight.
fn recovering_client() -> Client {
    let mut c = ready_client(|cfg| cfg.topics = vec!["t".into()]);
    c.handle_text(at(1), &stamped("t", 1, 10));
    c.handle_text(at(1), &stamped("t", 1, 20));
    drain(&mut c);
    assert_eq!(c.recovering().collect::<Vec<_>>(), ["t"]);
    c
}

#[test]
fn a_recovered_ack_keeps_the_cursor_and_clears_the_flight() {
    let mut c = recovering_client();
    for o in 11..=19 {
        c.handle_text(at(2), &stamped("t", 1, o));
    }
    c.handle_text(
        at(2),
        &ack(json!({"t": {"epoch": "00000001", "offset": 19, "recovered": true, "count": 9}})),
    );
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), (11..=19).collect::<Vec<_>>());
    let evs = events(&out);
    assert_eq!(
        evs[evs.len() - 2..],
        [
            Event::Recovered {
                topic: "t".into(),
                count: 9
            },
            Event::SubscriptionAck {
                success_topics: vec![],
                failed_topics: vec![]
            }
        ]
    );
    assert_eq!(c.positions()["t"].offset, 19);
    assert_eq!(c.recovering().count(), 0);
    c.handle_text(at(3), &stamped("t", 1, 25));
    assert_eq!(
        subscription_requests(&drain(&mut c)).len(),
        1,
        "a later gap asks again"
    );
}

#[test]
fn an_absent_recovered_field_means_recovered() {
    let mut c = recovering_client();
    c.handle_text(
        at(2),
        &ack(json!({"t": {"epoch": "00000001", "offset": 10, "count": 0}})),
    );
    assert!(events(&drain(&mut c)).contains(&Event::Recovered {
        topic: "t".into(),
        count: 0
    }));
}

#[test]
fn a_not_recovered_ack_moves_the_cursor_only_forward() {
    let cases = [
        (
            "same epoch, ack behind live messages",
            ("00000001", 12),
            Some((1, 15)),
        ),
        ("same epoch, ack ahead", ("00000001", 30), Some((1, 30))),
        ("other epoch", ("00000002", 3), Some((2, 3))),
    ];
    for (name, (epoch, offset), want) in cases {
        let mut c = recovering_client();
        for o in 11..=15 {
            c.handle_text(at(2), &stamped("t", 1, o)); // live, in order
        }
        c.handle_text(
            at(2),
            &ack(json!({"t": {"epoch": epoch, "offset": offset, "recovered": false, "count": 0}})),
        );
        let out = drain(&mut c);
        assert!(
            events(&out).contains(&Event::NotRecovered {
                topic: "t".into(),
                epoch: crate::protocol::envelope::parse_epoch(epoch),
                offset
            }),
            "{name}"
        );
        let got = c.positions().get("t").map(|p| (p.epoch, p.offset));
        assert_eq!(got, want, "{name}");
        assert_eq!(c.recovering().count(), 0, "{name}");
    }
}

#[test]
fn a_not_recovered_ack_without_history_forgets_the_position() {
    let mut c = recovering_client();
    c.handle_text(
        at(2),
        &ack(json!({"t": {"epoch": null, "offset": 0, "recovered": false, "count": 0}})),
    );
    let out = drain(&mut c);
    assert!(events(&out).contains(&Event::NotRecovered {
        topic: "t".into(),
        epoch: None,
        offset: 0
    }));
    assert!(c.positions().is_empty());
    c.handle_text(at(3), &stamped("t", 5, 9));
    assert_eq!(delivered_offsets(&drain(&mut c)), [9], "starts afresh");
}

#[test]
fn a_not_recovered_entry_for_an_unknown_topic_just_sets_its_position() {
    let mut c = ready_client(|_| {});
    c.subscribe(at(1), &["fresh".into()]);
    drain(&mut c);
    c.handle_text(
        at(1),
        &ack(json!({"fresh": {"epoch": "0000000a", "offset": 41, "recovered": false, "count": 0}})),
    );
    let out = drain(&mut c);
    assert_eq!(
        events(&out),
        [Event::SubscriptionAck {
            success_topics: vec![],
            failed_topics: vec![]
        }],
        "no loss notice for a topic the client had no position in"
    );
    c.handle_text(at(1), &stamped("fresh", 10, 41));
    c.handle_text(at(1), &stamped("fresh", 10, 42));
    assert_eq!(delivered_offsets(&drain(&mut c)), [42]);
}

#[test]
fn subscription_ack_is_reported_and_failed_topics_leave_the_subscribed_set() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["ok".into(), "denied".into()]);
    let text = json!({"c": "WSE", "t": "subscription_update", "p": {"success": true,
        "success_topics": ["ok"], "failed_topics": ["denied"], "recovery": {}}})
    .to_string();
    c.handle_text(at(1), &text);
    assert_eq!(
        events(&drain(&mut c)),
        [Event::SubscriptionAck {
            success_topics: vec!["ok".into()],
            failed_topics: vec!["denied".into()]
        }]
    );
    assert_eq!(c.subscribed().collect::<Vec<_>>(), ["ok"]);
}

#[test]
fn a_malformed_recovery_entry_is_a_protocol_error_and_clears_the_flight() {
    let mut c = recovering_client();
    c.handle_text(at(2), &ack(json!({"t": {"epoch": "xyz", "offset": 1}})));
    let out = drain(&mut c);
    assert!(matches!(&events(&out)[0], Event::ProtocolError(m) if m.contains("epoch")));
    assert_eq!(c.recovering().count(), 0);
    assert_eq!(c.positions()["t"].offset, 10, "cursor untouched");
}

// ----- unstamped messages -------------------------------------------------------------------

#[test]
fn unstamped_messages_are_deduplicated_by_id_until_they_age_out() {
    let mut c = ready_client(|_| {});
    let msg = |id: &str| json!({"t": "chat", "id": id, "p": {}}).to_string();
    c.handle_text(at(1), &msg("m1"));
    c.handle_text(at(2), &msg("m1"));
    c.handle_text(at(2), &msg("m2"));
    c.handle_text(at(3), &json!({"t": "chat", "p": {}}).to_string());
    c.handle_text(at(3), &json!({"t": "chat", "p": {}}).to_string());
    c.handle_text(at(300), &msg("m1")); // 299 s after it was seen: still remembered
    c.handle_text(at(301), &msg("m1")); // 300 s: forgotten
    let out = drain(&mut c);
    let ids: Vec<Option<String>> = messages(&out).into_iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [
            Some("m1".into()),
            Some("m2".into()),
            None,
            None,
            Some("m1".into())
        ]
    );
    assert_eq!(c.stats().id_duplicates, 2);
}

#[test]
fn the_id_window_forgets_the_oldest_when_full() {
    let mut c = ready_client(|cfg| cfg.dedup_window = 2);
    for id in ["a", "b", "c", "a", "c"] {
        c.handle_text(at(1), &json!({"t": "x", "id": id}).to_string());
    }
    let ids: Vec<String> = messages(&drain(&mut c))
        .into_iter()
        .filter_map(|e| e.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c", "a"]);
}

#[test]
fn a_batch_is_unwrapped_and_each_item_checked() {
    let mut c = ready_client(|_| {});
    let batch = json!({"c": "WSE", "t": "batch", "p": {"count": 5, "messages": [
        {"t": "chat", "id": "x", "p": 1},
        {"t": "chat", "id": "x", "p": 2},
        {"t": "tick", "tp": "t", "e": "00000001", "o": 0},
        {"t": "ping", "p": {"server_time": "now"}},
        {"t": "batch", "p": {"messages": []}},
        7
    ]}})
    .to_string();
    c.handle_text(at(1), &batch);
    let out = drain(&mut c);
    let types: Vec<Option<String>> = messages(&out).into_iter().map(|e| e.t).collect();
    assert_eq!(types, [Some("chat".into()), Some("tick".into())]);
    assert_eq!(sent(&out)[0]["t"], "PONG");
    let errors = events(&out)
        .into_iter()
        .filter(|e| matches!(e, Event::ProtocolError(_)))
        .count();
    assert_eq!(errors, 2, "nested batch and non-object item");
}

#[test]
fn legacy_prefixes_are_stripped_and_aliases_applied() {
    let mut c = ready_client(|_| {});
    for text in [
        r#"WSE{"t":"a"}"#,
        r#"S{"t":"b"}"#,
        r#"U{"type":"c","payload":1}"#,
    ] {
        c.handle_text(at(1), text);
    }
    let out = drain(&mut c);
    let got: Vec<(Option<String>, Option<Value>)> =
        messages(&out).into_iter().map(|e| (e.t, e.p)).collect();
    assert_eq!(
        got,
        [
            (Some("a".into()), None),
            (Some("b".into()), None),
            (Some("c".into()), Some(json!(1)))
        ]
    );
}

// ----- system messages ----------------------------------------------------------------------

#[test]
fn a_server_ping_gets_a_pong_echoing_its_timestamp() {
    let mut c = ready_client(|_| {});
    c.handle_text(
        at(1),
        r#"{"c":"WSE","t":"ping","p":{"server_time":"2025-11-24T16:00:00.000Z"}}"#,
    );
    let out = drain(&mut c);
    let ms = wall_at(at(1)).unix_millis();
    assert_eq!(
        out,
        [Output::SendText(format!(
            r#"{{"c":"WSE","t":"PONG","p":{{"server_timestamp":"2025-11-24T16:00:00.000Z","client_timestamp":{ms}}},"v":1}}"#
        ))]
    );
    c.handle_text(at(1), "WSE:PING:12345");
    assert_eq!(
        drain(&mut c),
        [Output::SendText(format!(
            r#"{{"c":"WSE","t":"PONG","p":{{"server_timestamp":12345,"client_timestamp":{ms}}},"v":1}}"#
        ))]
    );
}

#[test]
fn internal_messages_are_never_delivered() {
    let mut c = ready_client(|_| {});
    for t in [
        "PONG",
        "pong",
        "server_hello",
        "server_ready",
        "health_check",
        "config_update",
        "heartbeat",
        "sync_request",
        "metrics_request",
        "priority_message",
    ] {
        c.handle_text(at(1), &json!({"c": "WSE", "t": t, "p": {}}).to_string());
    }
    c.handle_text(at(1), "PONG:1");
    assert_eq!(drain(&mut c), []);
}

#[test]
fn a_server_error_is_reported() {
    let mut c = ready_client(|_| {});
    c.handle_text(
        at(1),
        r#"{"c":"WSE","t":"error","p":{"code":"RATE_LIMITED","message":"Rate limit exceeded","retry_after":1.0},"v":1}"#,
    );
    assert_eq!(
        events(&drain(&mut c)),
        [Event::ServerError {
            code: "RATE_LIMITED".into(),
            message: "Rate limit exceeded".into()
        }]
    );
}

#[test]
fn malformed_text_is_a_protocol_error_and_nothing_else() {
    let long = "x".repeat((1 << 20) + 1);
    let cases = [
        "not json",
        "[1,2]",
        "{\"t\":",
        r#"{"t":"tick","tp":"t","e":"zz","o":1}"#,
        r#"{"t":"subscription_update","p":[]}"#,
        r#"{"t":"batch","p":{}}"#,
        long.as_str(),
    ];
    for text in cases {
        let mut c = ready_client(|_| {});
        c.handle_text(at(1), text);
        let out = drain(&mut c);
        assert!(
            matches!(out.as_slice(), [Output::Event(Event::ProtocolError(_))]),
            "{text:.40}: {out:?}"
        );
        assert_eq!(c.state(), State::Ready);
        assert_eq!(c.stats().protocol_errors, 1);
    }
}

#[test]
fn frames_are_ignored_without_a_connection() {
    let mut c = client_with(|_| {});
    c.handle_text(T0, &stamped("t", 1, 0));
    c.handle_binary(T0, b"xyz");
    c.start(T0);
    drain(&mut c);
    c.handle_text(T0, &stamped("t", 1, 0));
    assert_eq!(drain(&mut c), []);
    assert!(c.positions().is_empty());
}

// ----- binary frames ------------------------------------------------------------------------

#[test]
fn binary_frames_are_decoded_by_prefix() {
    let mut c = ready_client(|_| {});
    let compressed = [
        b"C:".as_slice(),
        &zlib_compress(stamped("t", 1, 0).as_bytes(), 1),
    ]
    .concat();
    c.handle_binary(at(1), &compressed);
    let packed = [
        b"M:".as_slice(),
        &json_to_msgpack(&json!({"t": "tick", "tp": "t", "e": "00000001", "o": 1})),
    ]
    .concat();
    c.handle_binary(at(1), &packed);
    c.handle_binary(at(1), b"E:\x00\x01\x02");
    c.handle_binary(at(1), b"\x01raw");
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [0, 1]);
    let evs = events(&out);
    assert_eq!(
        evs[2..],
        [
            Event::ProtocolError(
                "encrypted frame but no key: encryption is not supported by this client yet".into()
            ),
            Event::Binary(b"\x01raw".to_vec())
        ]
    );
}

#[test]
fn plain_json_and_raw_zlib_in_binary_frames_are_read_as_messages() {
    let mut c = ready_client(|_| {});
    // send_event below the compression threshold: JSON in a binary frame.
    c.handle_binary(at(1), stamped("t", 1, 0).as_bytes());
    c.handle_binary(at(1), &zlib_compress(stamped("t", 1, 1).as_bytes(), 1));
    c.handle_binary(at(1), format!("U{}", stamped("t", 1, 2)).as_bytes());
    c.handle_binary(at(1), b"[1,2]");
    let out = drain(&mut c);
    assert_eq!(delivered_offsets(&out), [0, 1, 2]);
    assert_eq!(
        events(&out).last(),
        Some(&Event::Binary(b"[1,2]".to_vec())),
        "JSON that is not an object stays binary"
    );
}

#[test]
fn a_subscription_ack_in_a_binary_frame_is_understood() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["a".into()]);
    c.handle_binary(
        at(1),
        json!({"c": "WSE", "t": "subscription_update",
               "p": {"success": true, "success_topics": ["a"], "failed_topics": [],
                     "recovery": {"a": {"epoch": "00000002", "offset": 9, "recovered": false}}}})
        .to_string()
        .as_bytes(),
    );
    let out = drain(&mut c);
    assert!(events(&out).contains(&Event::SubscriptionAck {
        success_topics: vec!["a".into()],
        failed_topics: vec![]
    }));
    assert_eq!(
        c.positions()["a"],
        Position {
            epoch: 2,
            offset: 9
        }
    );
}

#[test]
fn a_compressed_ping_is_answered_like_a_text_one() {
    let mut c = ready_client(|_| {});
    let frame = [
        b"C:".as_slice(),
        &zlib_compress(br#"{"t":"ping","p":{"server_time":"s"}}"#, 1),
    ]
    .concat();
    c.handle_binary(at(1), &frame);
    assert_eq!(sent(&drain(&mut c))[0]["t"], "PONG");
}

#[test]
fn bad_binary_frames_are_protocol_errors() {
    let bomb = [b"C:".as_slice(), &zlib_compress(&vec![b' '; 4 << 20], 9)].concat();
    assert!(bomb.len() < 1 << 20, "the bomb itself is small");
    let not_utf8 = [b"C:".as_slice(), &zlib_compress(&[0xff, 0xfe], 1)].concat();
    let mut deep = b"M:".to_vec();
    deep.extend(std::iter::repeat_n(0x91, 100));
    deep.push(0x01);
    let cases: [(&str, Vec<u8>); 6] = [
        ("zlib bomb", bomb),
        ("corrupt zlib", b"C:\x78\x01garbage".to_vec()),
        ("inflates to non-UTF-8", not_utf8),
        ("msgpack too deep", deep),
        ("msgpack not a map", [b"M:".as_slice(), &[0x01]].concat()),
        ("frame too large", vec![0u8; (1 << 20) + 1]),
    ];
    for (name, frame) in cases {
        let mut c = ready_client(|_| {});
        c.handle_binary(at(1), &frame);
        let out = drain(&mut c);
        assert!(
            matches!(out.as_slice(), [Output::Event(Event::ProtocolError(_))]),
            "{name}: {out:?}"
        );
    }
}

// ----- close policy and backoff -------------------------------------------------------------

#[test]
fn close_code_policy_table() {
    enum Want {
        Closed,
        Failed,
        Retry,
    }
    let cases = [
        (Some(1000), Want::Closed),
        (Some(1001), Want::Closed),
        (Some(1005), Want::Closed),
        (Some(4401), Want::Failed),
        (Some(4403), Want::Failed),
        (Some(1008), Want::Failed),
        (Some(1006), Want::Retry),
        (Some(1011), Want::Retry),
        (Some(1013), Want::Retry),
        (Some(4300), Want::Retry),
        (Some(4408), Want::Retry),
        (Some(4429), Want::Retry),
        (None, Want::Retry),
    ];
    for (close, want) in cases {
        let mut c = ready_client(|_| {});
        c.handle_closed(at(1), close);
        let out = drain(&mut c);
        let [
            Output::Event(Event::Disconnected {
                close: got,
                retry_in,
            }),
        ] = out.as_slice()
        else {
            panic!("{close:?}: {out:?}");
        };
        assert_eq!(*got, close);
        match want {
            Want::Closed => {
                assert_eq!(c.state(), State::Closed, "{close:?}");
                assert_eq!(*retry_in, None);
                assert_eq!(c.poll_timeout(), None);
            }
            Want::Failed => {
                let code = close.unwrap();
                assert_eq!(
                    c.state(),
                    State::Failed(FailReason::Rejected { code }),
                    "{close:?}"
                );
                assert_eq!(*retry_in, None);
            }
            Want::Retry => {
                let delay = retry_in.expect("a retry");
                assert_eq!(
                    c.state(),
                    State::Backoff {
                        until: at(1) + delay
                    },
                    "{close:?}"
                );
                c.handle_timeout(at(1) + delay);
                assert_eq!(drain(&mut c), [Output::Connect], "{close:?}");
                assert_eq!(c.state(), State::Connecting);
            }
        }
    }
}

#[test]
fn failed_attempts_grow_the_delay_and_ready_resets_it() {
    let mut c = client_with(|cfg| cfg.reconnect.jitter = 0.0);
    c.start(T0);
    drain(&mut c);
    let mut now = T0;
    let mut delays = vec![];
    for _ in 0..4 {
        c.handle_connect_failed(now);
        let out = drain(&mut c);
        let [
            Output::Event(Event::Disconnected {
                close: None,
                retry_in: Some(d),
            }),
        ] = out.as_slice()
        else {
            panic!("{out:?}");
        };
        delays.push(d.as_millis());
        now = now + *d;
        c.handle_timeout(now);
        assert_eq!(drain(&mut c), [Output::Connect]);
    }
    assert_eq!(delays, [1000, 1500, 2250, 3375]);
    assert_eq!(c.reconnect_attempts(), 4);
    c.handle_connected(now);
    c.handle_text(now, &server_ready("x"));
    drain(&mut c);
    assert_eq!(c.reconnect_attempts(), 0);
    c.handle_closed(now, None);
    let evs = events(&drain(&mut c));
    assert_eq!(
        evs,
        [Event::Disconnected {
            close: None,
            retry_in: Some(Duration::from_secs(1))
        }]
    );
}

#[test]
fn max_attempts_reached_fails_the_client() {
    let mut c = client_with(|cfg| cfg.reconnect.max_attempts = Some(2));
    c.start(T0);
    let mut now = T0;
    for _ in 0..2 {
        c.handle_connect_failed(now);
        let State::Backoff { until } = c.state() else {
            panic!("{:?}", c.state());
        };
        now = until;
        c.handle_timeout(now);
    }
    drain(&mut c);
    c.handle_connect_failed(now);
    assert_eq!(
        c.state(),
        State::Failed(FailReason::AttemptsExhausted { attempts: 2 })
    );
    assert_eq!(
        events(&drain(&mut c)),
        [Event::Disconnected {
            close: None,
            retry_in: None
        }]
    );
    assert_eq!(c.poll_timeout(), None);
    c.start(now);
    assert_eq!(drain(&mut c), [Output::Connect], "start runs it again");
}

#[test]
fn close_sends_1000_and_never_reconnects() {
    let mut c = ready_client(|_| {});
    c.close(at(1));
    assert_eq!(
        drain(&mut c),
        [
            Output::Close {
                code: 1000,
                reason: String::new()
            },
            Output::Event(Event::Disconnected {
                close: Some(1000),
                retry_in: None
            })
        ]
    );
    assert_eq!(c.state(), State::Closed);
    c.handle_closed(at(1), Some(1006));
    c.handle_timeout(at(100));
    assert_eq!(drain(&mut c), []);
    assert_eq!(c.send(at(1), "x", json!({})), Err(SendError::Closed));
}

#[test]
fn close_during_backoff_cancels_the_reconnect() {
    let mut c = ready_client(|_| {});
    c.handle_closed(at(1), None);
    drain(&mut c);
    c.close(at(1));
    assert_eq!(c.state(), State::Closed);
    c.handle_timeout(at(100));
    assert_eq!(drain(&mut c), []);
}

fn policy(strategy: ReconnectStrategy, max_secs: u64) -> ReconnectPolicy {
    ReconnectPolicy {
        strategy,
        max: Duration::from_secs(max_secs),
        jitter: 0.0,
        ..ReconnectPolicy::default()
    }
}

#[test]
fn backoff_delays_per_strategy_without_jitter() {
    use ReconnectStrategy::*;
    let cases: [(ReconnectStrategy, u64, &[u32], &[u64]); 6] = [
        (
            Exponential,
            30,
            &[0, 1, 2, 3, 9, 50],
            &[1000, 1500, 2250, 3375, 30_000, 30_000],
        ),
        (
            Linear,
            30,
            &[0, 1, 2, 10, 40],
            &[1000, 2000, 3000, 11_000, 30_000],
        ),
        (
            Fibonacci,
            300,
            &[0, 1, 2, 3, 4, 9, 10, 11, 1000],
            &[1000, 1000, 2000, 3000, 5000, 55_000, 89_000, 89_000, 89_000],
        ),
        // max(1.5^n, 2^(n-1) capped at 60 s), then max.
        (
            Adaptive,
            30,
            &[0, 1, 2, 4, 5, 7],
            &[1000, 1500, 2250, 8000, 16_000, 30_000],
        ),
        (
            Adaptive,
            300,
            &[7, 10, 12, 15],
            &[64_000 - 4000, 60_000, 129_746, 300_000],
        ),
        (Exponential, 1000, &[20, u32::MAX], &[300_000, 300_000]),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (strategy, max, ns, want) in cases {
        let p = policy(strategy, max);
        let got: Vec<u64> = ns
            .iter()
            .map(|&n| p.delay(n, &mut rng).as_millis() as u64)
            .collect();
        assert_eq!(got, want, "{strategy:?} max {max}");
    }
}

#[test]
fn jitter_stays_within_ten_percent_and_the_same_seed_gives_the_same_delays() {
    let p = ReconnectPolicy::default();
    let draw = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..2000)
            .map(|i| p.delay(i % 12, &mut rng))
            .collect::<Vec<_>>()
    };
    let a = draw(3);
    assert_eq!(a, draw(3));
    assert_ne!(a, draw(4));
    let plain = policy(ReconnectStrategy::Exponential, 30);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (mut below, mut above) = (false, false);
    for (i, d) in a.iter().enumerate() {
        let nominal = plain.delay((i % 12) as u32, &mut rng).as_secs_f64();
        let ratio = d.as_secs_f64() / nominal;
        assert!((0.9..=1.1).contains(&ratio), "ratio {ratio}");
        below |= ratio < 0.95;
        above |= ratio > 1.05;
    }
    assert!(below && above, "jitter spreads both ways");
}

#[test]
fn the_same_seed_replays_the_same_session() {
    let run = |seed| {
        let mut c = Client::new(
            ClientConfig {
                topics: vec!["a".into()],
                ..ClientConfig::default()
            },
            WALL0,
            seed,
        )
        .unwrap();
        c.start(T0);
        c.handle_connected(T0);
        c.handle_text(T0, &server_ready("x"));
        c.send(at(1), "chat", json!({"n": 1})).unwrap();
        c.handle_closed(at(2), None);
        drain(&mut c)
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

// ----- liveness -----------------------------------------------------------------------------

#[test]
fn pings_every_interval_and_idle_timeout_closes_with_4000_and_reconnects() {
    let mut c = ready_client(|_| {});
    assert_eq!(c.poll_timeout(), Some(at(15)));
    c.handle_timeout(at(15));
    let ms = wall_at(at(15)).unix_millis();
    assert_eq!(
        drain(&mut c),
        [Output::SendText(format!(
            r#"{{"c":"WSE","t":"ping","p":{{"timestamp":{ms}}},"v":1}}"#
        ))]
    );
    assert_eq!(c.poll_timeout(), Some(at(30)));
    c.handle_timeout(at(30));
    assert_eq!(sent(&drain(&mut c))[0]["t"], "ping");
    assert_eq!(c.poll_timeout(), Some(at(40)), "idle deadline comes first");
    c.handle_timeout(at(40));
    let out = drain(&mut c);
    assert_eq!(
        out[0],
        Output::Close {
            code: 4000,
            reason: "idle".into()
        }
    );
    assert!(matches!(
        out[1],
        Output::Event(Event::Disconnected {
            close: Some(4000),
            retry_in: Some(_)
        })
    ));
    assert!(matches!(c.state(), State::Backoff { .. }));
}

#[test]
fn any_frame_from_the_server_postpones_the_idle_timeout() {
    let mut c = ready_client(|_| {});
    c.handle_text(at(35), r#"{"t":"PONG"}"#);
    c.handle_timeout(at(40));
    c.handle_binary(at(70), b"\x01");
    c.handle_timeout(at(74));
    let out = drain(&mut c);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Close { .. })),
        "{out:?}"
    );
    c.handle_timeout(at(110));
    assert!(drain(&mut c).contains(&Output::Close {
        code: 4000,
        reason: "idle".into()
    }));
}

#[test]
fn a_stalled_driver_gets_one_ping_not_a_burst() {
    let mut c = ready_client(|cfg| cfg.idle_timeout = Duration::from_secs(1000));
    c.handle_timeout(at(100));
    assert_eq!(drain(&mut c).len(), 1);
    assert_eq!(c.poll_timeout(), Some(at(105)));
}

#[test]
fn idle_timeout_also_applies_while_waiting_for_server_ready() {
    let mut c = client_with(|cfg| cfg.ready_timeout = Duration::from_secs(100));
    c.start(T0);
    c.handle_connected(T0);
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(at(40)));
    c.handle_timeout(at(40));
    assert_eq!(
        drain(&mut c)[0],
        Output::Close {
            code: 4000,
            reason: "idle".into()
        }
    );
}

#[test]
fn timer_deadlines_by_state() {
    let mut c = client_with(|cfg| cfg.reconnect.jitter = 0.0);
    assert_eq!(c.poll_timeout(), None);
    c.start(T0);
    assert_eq!(c.poll_timeout(), None, "the dial timeout is the driver's");
    c.handle_connect_failed(T0);
    assert_eq!(c.poll_timeout(), Some(at(1)));
}

// ----- commands -----------------------------------------------------------------------------

#[test]
fn the_offline_queue_keeps_the_newest_messages_up_to_its_bound() {
    let mut c = client_with(|cfg| cfg.offline_queue = 3);
    for n in 0..5 {
        c.send(T0, "chat", json!({"n": n})).unwrap();
    }
    assert_eq!(c.offline_len(), 3);
    assert_eq!(c.stats().offline_dropped, 2);
    c.start(T0);
    c.handle_connected(T0);
    c.handle_text(T0, &server_ready("x"));
    let out = drain(&mut c);
    let payloads: Vec<Value> = sent(&out)
        .into_iter()
        .filter(|v| v["t"] == "chat")
        .map(|v| v["p"]["n"].clone())
        .collect();
    assert_eq!(payloads, [json!(2), json!(3), json!(4)]);
    assert_eq!(c.offline_len(), 0);
}

#[test]
fn send_refusals() {
    let mut c = client_with(|cfg| cfg.offline_queue = 0);
    assert_eq!(c.send(T0, "x", json!(1)), Err(SendError::NotReady));
    let mut c = ready_client(|cfg| cfg.max_frame_size = 200);
    assert!(matches!(
        c.send(at(1), "x", json!("y".repeat(200))),
        Err(SendError::TooLarge { limit: 200, .. })
    ));
    assert_eq!(drain(&mut c), []);
}

#[test]
fn send_while_ready_writes_the_envelope_with_the_client_category() {
    let mut c = ready_client(|_| {});
    c.send(at(1), "sync_request", json!({"topics": ["a"]}))
        .unwrap();
    c.send(at(1), "chat", json!({})).unwrap();
    let frames = sent(&drain(&mut c));
    assert_eq!(frames[0]["c"], "S");
    assert_eq!(frames[1]["c"], "U");
    assert_eq!(frames[1]["v"], 1);
    assert_eq!(
        frames[1]["seq"].as_i64().unwrap(),
        frames[0]["seq"].as_i64().unwrap() + 1
    );
    assert_ne!(frames[0]["id"], frames[1]["id"]);
}

#[test]
fn subscribe_while_ready_sends_only_new_topics() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["a".into()]);
    c.subscribe(at(1), &["a".into(), "b".into(), "b".into()]);
    c.subscribe(at(1), &["a".into()]);
    assert_eq!(
        subscription_requests(&drain(&mut c)),
        [json!({"action": "subscribe", "topics": ["b"]})]
    );
    assert_eq!(c.subscribed().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn unsubscribe_sends_the_request_and_forgets_the_positions() {
    let mut c = ready_client(|cfg| cfg.topics = vec!["a".into(), "b".into()]);
    c.handle_text(at(1), &stamped("a", 1, 0));
    drain(&mut c);
    c.unsubscribe(at(1), &["a".into(), "zzz".into()]);
    assert_eq!(
        subscription_requests(&drain(&mut c)),
        [json!({"action": "unsubscribe", "topics": ["a"]})]
    );
    assert!(c.positions().is_empty());
    assert_eq!(c.subscribed().collect::<Vec<_>>(), ["b"]);
}

// ----- configuration ------------------------------------------------------------------------

#[test]
fn invalid_configurations_name_the_field() {
    type Edit = fn(&mut ClientConfig);
    let cases: [(Edit, &str); 10] = [
        (|c| c.ping_interval = Duration::ZERO, "ping_interval"),
        (|c| c.idle_timeout = Duration::ZERO, "idle_timeout"),
        (|c| c.dedup_window = 0, "dedup_window"),
        (|c| c.dedup_max_age = Duration::ZERO, "dedup_max_age"),
        (|c| c.max_frame_size = 0, "max_frame_size"),
        (|c| c.max_tracked_topics = 0, "max_tracked_topics"),
        (|c| c.reconnect.factor = 0.5, "reconnect.factor"),
        (|c| c.reconnect.factor = f64::NAN, "reconnect.factor"),
        (|c| c.reconnect.jitter = 1.0, "reconnect.jitter"),
        (
            |c| c.reconnect.base = Duration::from_secs(60),
            "reconnect.base",
        ),
    ];
    for (edit, field) in cases {
        let mut cfg = ClientConfig::default();
        edit(&mut cfg);
        let err = Client::new(cfg, WALL0, 0).unwrap_err();
        assert_eq!(err.field, field);
    }
    assert!(Client::new(ClientConfig::default(), WALL0, 0).is_ok());
}
