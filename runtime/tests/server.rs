//! The server on loopback, driven by a real WebSocket client (tokio-tungstenite).

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wse_core::config::{JwtSettings, ServerConfig};
use wse_runtime::server::{ServerEvent, ServerHandle};

use support::{Ws, connect, next};

const SECRET: &[u8] = b"integration-test-secret-of-32-bytes-or-more";
const WAIT: Duration = Duration::from_secs(5);

fn config(f: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut c = ServerConfig {
        port: 0,
        ..Default::default()
    };
    f(&mut c);
    c
}

fn jwt(c: &mut ServerConfig) {
    c.jwt = Some(JwtSettings {
        secret: SECRET.to_vec(),
        ..Default::default()
    });
}

fn token(sub: &str) -> String {
    support::hs256_token(SECRET, sub, None)
}

async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
        other => panic!("expected JSON, got {other:?}"),
    }
}

async fn close_code_of(ws: &mut Ws) -> u16 {
    loop {
        match next(ws).await {
            Message::Close(Some(f)) => return u16::from(f.code),
            Message::Close(None) => return 1005,
            _ => {}
        }
    }
}

async fn event(server: &ServerHandle) -> ServerEvent {
    server.next_event(WAIT).await.expect("an event in time")
}

#[tokio::test]
async fn an_authenticated_client_gets_server_ready_first_then_hello_and_pong() {
    let server = ServerHandle::start(&config(jwt)).await.unwrap();
    let mut ws = connect(&server, Some(&token("alice"))).await;
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["t"], "server_ready");
    let ServerEvent::AuthConnect(id, user, _cookies) = event(&server).await else {
        panic!()
    };
    assert_eq!(user, "alice");
    assert_eq!(ready["p"]["details"]["connection_id"], id.to_string());

    ws.send(Message::text(
        r#"{"c":"WSE","t":"client_hello","p":{"protocol_version":1}}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["t"], "server_hello");
    ws.send(Message::text(
        r#"{"c":"WSE","t":"ping","p":{"timestamp":1},"v":1}"#,
    ))
    .await
    .unwrap();
    let Message::Text(pong) = next(&mut ws).await else {
        panic!()
    };
    assert!(pong[..25].contains(r#""t":"PONG""#), "{pong}");

    ws.send(Message::text(r#"{"t":"chat","p":{"x":1}}"#))
        .await
        .unwrap();
    assert_eq!(
        event(&server).await,
        ServerEvent::Msg(id, json!({"t":"chat","p":{"x":1}}))
    );
    ws.close(None).await.unwrap();
    assert_eq!(event(&server).await, ServerEvent::Disconnect(id));
    server.stop().await;
}

#[tokio::test]
async fn a_client_without_a_token_gets_auth_required_and_close_4401() {
    let server = ServerHandle::start(&config(jwt)).await.unwrap();
    let mut ws = connect(&server, None).await;
    let err = next_json(&mut ws).await;
    assert_eq!(err["p"]["code"], "AUTH_REQUIRED");
    assert_eq!(close_code_of(&mut ws).await, 4401);
    assert_eq!(server.connection_count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_the_upgrade_is_answered_with_503_and_retry_after() {
    let server = ServerHandle::start(&config(|c| c.max_connections = 1))
        .await
        .unwrap();
    let _first = connect(&server, None).await;
    let _ = event(&server).await;
    let mut raw = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    raw.write_all(
        b"GET /wse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = String::new();
    tokio::time::timeout(WAIT, raw.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 503 "), "{resp}");
    assert!(resp.contains("Retry-After: 5"), "{resp}");
    server.stop().await;
}

#[tokio::test]
async fn send_send_event_and_broadcasts_reach_clients_in_their_framings() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let mut a = connect(&server, None).await;
    let ServerEvent::Connect(a_id, _) = event(&server).await else {
        panic!()
    };
    let mut b = connect(&server, None).await;
    let _ = event(&server).await;

    server.send(a_id, "hello a");
    assert_eq!(next(&mut a).await, Message::text("hello a"));
    let ev = json!({"t":"order","p":{"big":"x".repeat(2000)}});
    assert!(server.send_event(a_id, ev.as_object().unwrap(), 1024) > 0);
    let Message::Binary(bin) = next(&mut a).await else {
        panic!()
    };
    assert_eq!(&bin[..2], b"C:", "over the threshold: zlib");

    server.broadcast_all(r#"{"t":"news","p":1}"#);
    for ws in [&mut a, &mut b] {
        let Message::Text(t) = next(ws).await else {
            panic!()
        };
        assert_eq!(t.as_str(), r#"{"c":"U","t":"news","p":1}"#);
    }
    server.stop().await;
}

#[tokio::test]
async fn oversize_messages_close_with_1009_and_disconnect_closes_with_the_given_code() {
    let server = ServerHandle::start(&config(|c| c.max_message_size = 1024))
        .await
        .unwrap();
    let mut a = connect(&server, None).await;
    let ServerEvent::Connect(a_id, _) = event(&server).await else {
        panic!()
    };
    a.send(Message::text("x".repeat(2000))).await.unwrap();
    assert_eq!(close_code_of(&mut a).await, 1009);
    drop(a);
    assert_eq!(event(&server).await, ServerEvent::Disconnect(a_id));

    let mut b = connect(&server, None).await;
    let ServerEvent::Connect(b_id, _) = event(&server).await else {
        panic!()
    };
    server.disconnect(b_id, 4300, "drain");
    assert_eq!(close_code_of(&mut b).await, 4300);
    server.stop().await;
}

#[tokio::test]
async fn stop_closes_clients_with_1001_and_the_port_can_be_bound_again() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    assert!(
        server.is_running(),
        "bound and accepting when start returns"
    );
    let addr = server.local_addr();
    let mut a = connect(&server, None).await;
    let _ = event(&server).await;
    server.stop().await;
    assert_eq!(close_code_of(&mut a).await, u16::from(CloseCode::Away));
    let again = ServerHandle::start(&config(|c| c.port = addr.port()))
        .await
        .expect("rebind after stop");
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_1013_while_a_fast_one_receives_everything() {
    let server = ServerHandle::start(&config(|c| c.max_outbound_queue_bytes = 256 * 1024))
        .await
        .unwrap();
    let mut slow = connect(&server, None).await;
    let ServerEvent::Connect(slow_id, _) = event(&server).await else {
        panic!()
    };
    let mut fast = connect(&server, None).await;
    let _ = event(&server).await;

    const N: usize = 3000; // 3000 × 10 KB = 30 MB: far beyond socket buffers and the budget
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen_by_fast = std::sync::Arc::clone(&progress);
    let reader = tokio::spawn(async move {
        let mut seen = 0usize;
        while seen < N {
            match tokio::time::timeout(Duration::from_secs(20), fast.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["p"]["n"], seen, "in order, none missing");
                    seen += 1;
                    seen_by_fast.store(seen, std::sync::atomic::Ordering::Release);
                }
                other => panic!("fast consumer stalled after {seen}: {other:?}"),
            }
        }
        seen
    });
    let pad = "x".repeat(10_000);
    for n in 0..N {
        server.broadcast_all(&format!(r#"{{"t":"tick","p":{{"n":{n},"pad":"{pad}"}}}}"#));
        // Pace the publisher to the fast consumer (at most 8 messages, 80 KB, ahead), as a
        // real feed would be: the slow one never reads and must not hold the fast one back.
        while n.saturating_sub(progress.load(std::sync::atomic::Ordering::Acquire)) > 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(reader.await.unwrap(), N);
    assert!(server.slow_consumer_drops() >= 1);
    // The slow client finally reads: whatever was queued, then the 1013 close.
    assert_eq!(close_code_of(&mut slow).await, 1013);
    drop(slow);
    loop {
        if event(&server).await == ServerEvent::Disconnect(slow_id) {
            break;
        }
    }
    assert!(!server.connections().contains(&slow_id));
    server.stop().await;
}

async fn plain_client(server: &ServerHandle) -> (Ws, wse_core::ConnId) {
    let ws = connect(server, None).await;
    match event(server).await {
        ServerEvent::Connect(id, _) => (ws, id),
        other => panic!("expected connect, got {other:?}"),
    }
}

async fn silent(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_millis(200), ws.next())
        .await
        .is_err()
}

#[tokio::test]
async fn topic_publications_reach_exact_and_glob_subscribers_once() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let (mut exact, e) = plain_client(&server).await;
    let (mut glob, g) = plain_client(&server).await;
    let (mut both, b) = plain_client(&server).await;
    let (mut other, o) = plain_client(&server).await;
    server
        .subscribe_connection(e, &["chat:lobby".into()], None, None)
        .unwrap();
    server
        .subscribe_connection(g, &["chat:*".into()], None, None)
        .unwrap();
    server
        .subscribe_connection(b, &["chat:lobby".into(), "chat:*".into()], None, None)
        .unwrap();
    server
        .subscribe_connection(o, &["news".into()], None, None)
        .unwrap();
    assert_eq!(server.topic_subscriber_count("chat:lobby"), 2);

    server.broadcast_local("chat:lobby", r#"{"t":"msg","p":"hi"}"#);
    for ws in [&mut exact, &mut glob, &mut both] {
        assert_eq!(
            next(ws).await,
            Message::text(r#"{"c":"U","t":"msg","p":"hi"}"#)
        );
    }
    assert!(silent(&mut both).await, "deduplicated by connection");
    assert!(silent(&mut other).await);

    server.unsubscribe_connection(e, None);
    server.broadcast_local("chat:lobby", r#"{"t":"msg","p":2}"#);
    assert!(silent(&mut exact).await);
    server.stop().await;
}

#[tokio::test]
async fn a_deny_rule_holds_against_a_glob_subscription_at_delivery() {
    // UPSTREAM §13.3 #3: allow data:*, deny data:internal:*, subscribe to the pattern data:*.
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let (mut ws, id) = plain_client(&server).await;
    server.set_topic_acl(id, vec!["data:*".into()], vec!["data:internal:*".into()]);
    let added = server
        .subscribe_connection(id, &["data:*".into(), "secrets".into()], None, None)
        .unwrap();
    assert_eq!(
        added,
        vec!["data:*".to_string()],
        "secrets is not allowed at all"
    );
    server.broadcast_local("data:internal:audit", r#"{"t":"x","p":"secret"}"#);
    server.broadcast_local("data:public:prices", r#"{"t":"x","p":"public"}"#);
    let Message::Text(t) = next(&mut ws).await else {
        panic!()
    };
    assert!(
        t.contains("public"),
        "the denied topic was never delivered: {t}"
    );
    assert!(silent(&mut ws).await);
    server.stop().await;
}

#[tokio::test]
async fn queue_groups_deliver_each_publication_to_one_member_in_turn() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let (mut w1, a) = plain_client(&server).await;
    let (mut w2, b) = plain_client(&server).await;
    for id in [a, b] {
        server
            .subscribe_connection(id, &["jobs".into()], None, Some("workers"))
            .unwrap();
    }
    assert_eq!(server.queue_group_info("jobs").get("workers"), Some(&2));
    assert_eq!(
        server.topic_subscriber_count("jobs"),
        0,
        "queue members are not fan-out"
    );
    for n in 0..4 {
        server.broadcast_local("jobs", &format!(r#"{{"t":"job","p":{n}}}"#));
    }
    let mut got = Vec::new();
    for ws in [&mut w1, &mut w2] {
        for _ in 0..2 {
            let Message::Text(t) = next(ws).await else {
                panic!()
            };
            got.push(
                serde_json::from_str::<Value>(&t).unwrap()["p"]
                    .as_u64()
                    .unwrap(),
            );
        }
        assert!(silent(ws).await);
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn the_subscription_limit_is_enforced() {
    let server = ServerHandle::start(&config(|c| c.max_subscriptions_per_connection = 2))
        .await
        .unwrap();
    let (_ws, id) = plain_client(&server).await;
    let added = server
        .subscribe_connection(id, &["a".into(), "b".into(), "c".into()], None, None)
        .unwrap();
    assert_eq!(added.len(), 2);
    assert!(
        server
            .subscribe_connection(id, &["d".into()], None, None)
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_clients_are_closed_with_4408_and_websocket_pings_are_answered() {
    let server = ServerHandle::start(&config(|c| {
        c.ping_interval_secs = 1;
        c.idle_timeout_secs = 2;
    }))
    .await
    .unwrap();
    let (mut ws, _) = plain_client(&server).await;
    ws.send(Message::Ping(b"hb".to_vec().into())).await.unwrap();
    let mut saw_pong = false;
    let mut saw_server_ping = false;
    let code = loop {
        match next(&mut ws).await {
            Message::Pong(p) => saw_pong |= &p[..] == b"hb",
            Message::Text(t) => saw_server_ping |= t.starts_with(r#"{"c":"WSE","t":"ping""#),
            Message::Close(f) => break f.map(|f| u16::from(f.code)),
            _ => {}
        }
    };
    assert!(saw_pong && saw_server_ping);
    assert_eq!(code, Some(4408));
    server.stop().await;
}

#[tokio::test]
async fn drain_closes_clients_with_4300_and_refuses_new_sockets() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let (mut ws, _) = plain_client(&server).await;
    let closer = async {
        let code = close_code_of(&mut ws).await;
        drop(ws); // completes the close from the client side
        code
    };
    let (code, ()) = tokio::join!(
        closer,
        server.drain(4300, "rolling restart", Duration::from_secs(5))
    );
    assert_eq!(code, 4300);
    assert_eq!(server.connection_count(), 0);
    assert!(server.is_draining() && !server.is_running());
    let mut req = format!("ws://{}/wse", server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().remove("Cookie");
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap();
    assert!(refused.is_err(), "no upgrade while draining");
    server.stop().await;
}

#[tokio::test]
async fn health_and_metrics_report_connections_and_traffic() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let (mut ws, _) = plain_client(&server).await;
    ws.send(Message::text(r#"{"t":"a"}"#)).await.unwrap();
    let _ = event(&server).await;
    let health = server.health_snapshot();
    assert_eq!(health["connections"], 1);
    assert_eq!(health["cluster_connected"], false);
    for key in [
        "inbound_queue_depth",
        "inbound_dropped",
        "uptime_secs",
        "recovery_enabled",
        "cluster_dlq_size",
    ] {
        assert!(health.contains_key(key), "{key}");
    }
    let text = server.prometheus_metrics();
    assert!(
        text.contains("# TYPE wse_connections gauge\nwse_connections 1\n"),
        "{text}"
    );
    assert!(text.contains("wse_messages_received_total 1\n"), "{text}");
    assert!(text.contains("wse_connections_accepted_total 1\n"));
    server.stop().await;
}

#[tokio::test]
async fn a_callback_receives_every_event_in_order_instead_of_the_queue() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    assert!(server.set_event_callback(move |e| drop(tx.send(e))).await);
    assert!(
        !server.set_event_callback(|_| {}).await,
        "only one consumer"
    );
    let mut ws = connect(&server, None).await;
    ws.send(Message::text(r#"{"t":"one"}"#)).await.unwrap();
    ws.send(Message::text("two")).await.unwrap();
    ws.close(None).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(
            tokio::time::timeout(WAIT, rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let id = match &got[0] {
        ServerEvent::Connect(id, _) => *id,
        other => panic!("{other:?}"),
    };
    assert_eq!(got[1], ServerEvent::Msg(id, json!({"t":"one"})));
    assert_eq!(got[2], ServerEvent::Raw(id, "two".into()));
    assert_eq!(got[3], ServerEvent::Disconnect(id));
    assert_eq!(server.next_event(Duration::from_millis(10)).await, None);
    server.stop().await;
}

#[tokio::test]
async fn next_events_waits_for_the_first_then_takes_what_is_queued_up_to_max() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    assert!(
        server
            .next_events(10, Duration::from_millis(20))
            .await
            .is_empty()
    );
    let mut ws = connect(&server, None).await;
    for i in 0..5 {
        ws.send(Message::text(json!({"t": "n", "p": {"i": i}}).to_string()))
            .await
            .unwrap();
    }
    // The connect event plus five messages; wait until all six are queued.
    while server.inbound_queue_depth() < 6 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = server.next_events(4, WAIT).await;
    assert_eq!(first.len(), 4);
    assert!(matches!(first[0], ServerEvent::Connect(..)));
    let rest = server.next_events(100, WAIT).await;
    let ids: Vec<Value> = rest
        .iter()
        .map(|e| match e {
            ServerEvent::Msg(_, v) => v["p"]["i"].clone(),
            other => panic!("expected a message, got {other:?}"),
        })
        .collect();
    assert_eq!(ids, [json!(3), json!(4)]);
    server.stop().await;
}

#[tokio::test]
async fn start_drain_returns_at_once_and_has_closed_every_client_with_its_code() {
    let server = ServerHandle::start(&config(|_| {})).await.unwrap();
    let mut ws = connect(&server, None).await;
    let _ = event(&server).await;
    server.start_drain(4300, "rolling restart", Duration::from_secs(5));
    assert!(server.is_draining() && !server.is_stopped());
    assert_eq!(close_code_of(&mut ws).await, 4300);
    server.stop().await;
    assert!(server.is_stopped());
}

async fn authed_client(server: &ServerHandle, user: &str) -> (Ws, wse_core::ConnId) {
    let mut ws = connect(server, Some(&token(user))).await;
    assert_eq!(next_json(&mut ws).await["t"], "server_ready");
    match event(server).await {
        ServerEvent::AuthConnect(id, sub, _) if sub == user => (ws, id),
        other => panic!("expected {user}'s auth_connect, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_connection_recovers_exactly_the_missed_stamped_messages_after_its_position() {
    let server = ServerHandle::start(&config(|c| c.recovery_enabled = true))
        .await
        .unwrap();
    let (mut first, a) = plain_client(&server).await;
    server
        .subscribe_connection(a, &["room".into()], None, None)
        .unwrap();
    for n in 0..3 {
        server.broadcast_local("room", &json!({"t": "m", "p": {"n": n}}).to_string());
    }
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(next(&mut first).await);
    }
    let stamp: Value = serde_json::from_str(live[0].to_text().unwrap()).unwrap();
    let epoch = stamp["e"].as_str().unwrap().to_owned();
    assert_eq!(
        (stamp["tp"].clone(), stamp["o"].clone()),
        (json!("room"), json!(0))
    );
    drop(first);
    let _ = event(&server).await; // disconnect
    // A new connection that had offset 0 gets offsets 1 and 2, byte-identical, then live ones.
    let (mut second, b) = plain_client(&server).await;
    let outcome = server
        .subscribe_with_recovery(b, &["room".into()], true, Some(&epoch), Some(0))
        .unwrap();
    assert!(outcome.recovered);
    assert_eq!(outcome.topics["room"].count, 2);
    assert_eq!(outcome.topics["room"].offset, 2);
    server.broadcast_local("room", r#"{"t":"m","p":{"n":3}}"#);
    assert_eq!(next(&mut second).await, live[1]);
    assert_eq!(next(&mut second).await, live[2]);
    assert_eq!(next_json(&mut second).await["o"], 3);
    server.stop().await;
}

#[tokio::test]
async fn a_replay_larger_than_the_outbound_budget_is_sent_whole_and_not_charged() {
    // A slow consumer closed with 1013 has missed more than its budget by construction; were
    // the replay charged, it could never recover. The replay's bytes are the ring's own.
    let server = ServerHandle::start(&config(|c| {
        c.recovery_enabled = true;
        c.max_outbound_queue_bytes = 4096;
    }))
    .await
    .unwrap();
    let pad = "x".repeat(1000);
    for n in 0..10 {
        server.broadcast_local(
            "big",
            &json!({"t": "m", "p": {"n": n, "pad": pad}}).to_string(),
        );
    }
    let (mut ws, id) = plain_client(&server).await;
    let epoch = server
        .subscribe_with_recovery(id, &["big".into()], false, None, None)
        .unwrap()
        .topics["big"]
        .epoch
        .unwrap();
    let outcome = server
        .subscribe_with_recovery(id, &["big".into()], true, Some(&epoch.to_string()), Some(0))
        .unwrap();
    assert!(outcome.recovered);
    assert_eq!(outcome.topics["big"].count, 9, "offsets 1..=9, about 10 KB");
    for o in 1..=9 {
        assert_eq!(next_json(&mut ws).await["o"], o);
    }
    // Live traffic after the replay is charged as usual and still flows.
    server.broadcast_local("big", r#"{"t":"m","p":{"n":10}}"#);
    assert_eq!(next_json(&mut ws).await["o"], 10);
    assert_eq!(server.slow_consumer_drops(), 0);
    server.stop().await;
}

#[tokio::test]
async fn presence_leaves_are_queued_before_the_disconnect_and_sent_to_the_topic() {
    let server = ServerHandle::start(&config(|c| {
        jwt(c);
        c.presence_enabled = true;
    }))
    .await
    .unwrap();
    let (mut watcher, w) = authed_client(&server, "watcher").await;
    server
        .subscribe_connection(w, &["room".into()], Some(&json!({})), None)
        .unwrap();
    assert!(
        matches!(event(&server).await, ServerEvent::PresenceJoin { user_id, .. } if user_id == "watcher")
    );
    let (leaver, l) = authed_client(&server, "leaver").await;
    server
        .subscribe_connection(l, &["room".into()], Some(&json!({"s": 1})), None)
        .unwrap();
    let mut events = Vec::new();
    drop(leaver);
    while !matches!(events.last(), Some(ServerEvent::Disconnect(_))) {
        events.push(event(&server).await);
    }
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            ServerEvent::PresenceJoin { user_id, .. } => format!("join {user_id}"),
            ServerEvent::PresenceLeave { user_id, .. } => format!("leave {user_id}"),
            ServerEvent::Disconnect(id) if *id == l => "disconnect leaver".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["join leaver", "leave leaver", "disconnect leaver"]);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = next_json(&mut watcher).await;
        seen.push(format!(
            "{} {}",
            m["t"].as_str().unwrap(),
            m["p"]["user_id"].as_str().unwrap()
        ));
    }
    assert_eq!(
        seen,
        [
            "presence_join watcher",
            "presence_join leaver",
            "presence_leave leaver"
        ]
    );
    assert_eq!(server.presence_stats("room").num_users, 1);
    server.stop().await;
}

#[tokio::test]
async fn send_event_calls_refused_by_the_rate_limit_are_counted_in_the_metrics() {
    let server = ServerHandle::start(&config(|c| {
        c.rate_limit_capacity = 2.0;
        c.rate_limit_refill = 0.001;
    }))
    .await
    .unwrap();
    let (ws, id) = plain_client(&server).await;
    let ev = json!({"t": "tick"});
    let sent: Vec<usize> = (0..5)
        .map(|_| server.send_event(id, ev.as_object().unwrap(), 0))
        .collect();
    assert_eq!(sent.iter().filter(|&&n| n > 0).count(), 2, "{sent:?}");
    let text = server.prometheus_metrics();
    assert!(text.contains("\nwse_rate_limited_total 3\n"), "{text}");
    assert!(text.contains("\nwse_messages_sent_total 2\n"), "{text}");
    drop(ws);
    server.stop().await;
}
