//! The standalone server's built-in client protocol (`standalone::app`), driven by real
//! WebSocket clients against a loopback server.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wse_core::auth::TopicAcl;
use wse_core::config::{JwtSettings, ServerConfig};
use wse_runtime::server::ServerHandle;
use wse_runtime::standalone::app::{self, AppPolicy};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SECRET: &[u8] = b"standalone-app-test-secret-of-32-bytes";
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

async fn start(policy: AppPolicy) -> ServerHandle {
    let config = ServerConfig {
        port: 0,
        recovery_enabled: true,
        jwt: Some(JwtSettings {
            secret: SECRET.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let server = ServerHandle::start(&config).await.unwrap();
    tokio::spawn(app::run((*server).clone(), policy));
    server
}

fn token(sub: &str, topics: Option<Value>) -> String {
    support::hs256_token(SECRET, sub, topics.map(|t| json!({"wse_topics": t})))
}

/// A connected client past `server_ready`.
async fn client(server: &ServerHandle, sub: &str, topics: Option<Value>) -> Ws {
    let mut req = format!("ws://{}/wse", server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Cookie",
        format!("access_token={}", token(sub, topics))
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_json(&mut ws).await["t"], "server_ready");
    ws
}

/// The next JSON message (text or binary frame), skipping pings.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("valid");
        let v: Value = match msg {
            Message::Text(t) => serde_json::from_str(&t).unwrap(),
            Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => continue,
        };
        if v["t"] != "ping" {
            return v;
        }
    }
}

/// Messages until (and without) the first of type `t`, and that one's payload.
async fn until(ws: &mut Ws, t: &str) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let v = next_json(ws).await;
        if v["t"] == t {
            return (before, v["p"].clone());
        }
        before.push(v);
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn subscribe(ws: &mut Ws, topics: &[&str]) -> Value {
    send(
        ws,
        json!({"c": "WSE", "t": "subscription_update", "p": {"action": "subscribe", "topics": topics}}),
    )
    .await;
    until(ws, "subscription_update").await.1
}

/// True if no message (other than pings) arrives within [`QUIET`].
async fn quiet(ws: &mut Ws) -> bool {
    tokio::time::timeout(QUIET, next_json(ws)).await.is_err()
}

#[tokio::test]
async fn a_subscribe_is_acknowledged_with_the_spec_shape_and_delivers() {
    let server = start(AppPolicy::default()).await;
    let mut ws = client(&server, "alice", None).await;
    let ack = subscribe(&mut ws, &["chat:1", "news"]).await;
    assert_eq!(
        ack,
        json!({"success": true, "success_topics": ["chat:1", "news"], "failed_topics": [], "recovery": {}})
    );
    server.broadcast_local("chat:1", r#"{"t":"chat","p":{"n":1}}"#);
    let msg = next_json(&mut ws).await;
    assert_eq!(
        (msg["t"].clone(), msg["tp"].clone()),
        (json!("chat"), json!("chat:1"))
    );

    // Once the topic has a ring, the ack reports its position.
    let ack = subscribe(&mut ws, &["chat:1"]).await;
    assert_eq!(ack["recovery"]["chat:1"]["epoch"], msg["e"]);
    assert_eq!(ack["recovery"]["chat:1"]["offset"], msg["o"]);
    assert_eq!(ack["recovery"]["chat:1"]["recovered"], false);
    server.stop().await;
}

#[tokio::test]
async fn topics_the_acl_refuses_are_reported_in_failed_topics() {
    let server = start(AppPolicy::default()).await;
    let acl = json!({"allow": ["chat:*"], "deny": ["chat:admin"]});
    let mut ws = client(&server, "bob", Some(acl)).await;
    let ack = subscribe(&mut ws, &["chat:1", "secret", "chat:admin", "chat:*"]).await;
    assert_eq!(ack["success"], true);
    assert_eq!(ack["success_topics"], json!(["chat:1", "chat:*"]));
    assert_eq!(ack["failed_topics"], json!(["secret", "chat:admin"]));

    let ack = subscribe(&mut ws, &["secret"]).await;
    assert_eq!(ack["success"], false);
    assert_eq!(ack["failed_topics"], json!(["secret"]));

    server.broadcast_local("chat:admin", r#"{"t":"x","p":{}}"#);
    server.broadcast_local("secret", r#"{"t":"x","p":{}}"#);
    assert!(quiet(&mut ws).await, "refused topics deliver nothing");
    server.stop().await;
}

#[tokio::test]
async fn the_default_acl_applies_to_tokens_without_one() {
    let policy = AppPolicy {
        client_publish: false,
        default_acl: Some(TopicAcl::new(vec![], vec!["internal:*".into()])),
    };
    let server = start(policy).await;
    let mut plain = client(&server, "carol", None).await;
    let ack = subscribe(&mut plain, &["internal:audit", "public"]).await;
    assert_eq!(ack["success_topics"], json!(["public"]));
    assert_eq!(ack["failed_topics"], json!(["internal:audit"]));
    // A token's own ACL is kept.
    let mut own = client(&server, "dave", Some(json!({"allow": []}))).await;
    let ack = subscribe(&mut own, &["internal:audit"]).await;
    assert_eq!(ack["success_topics"], json!(["internal:audit"]));
    server.stop().await;
}

#[tokio::test]
async fn malformed_subscription_updates_get_an_unsuccessful_ack() {
    let server = start(AppPolicy::default()).await;
    let mut ws = client(&server, "erin", None).await;
    let bad = [
        json!({"t": "subscription_update"}),
        json!({"t": "subscription_update", "p": "subscribe"}),
        json!({"t": "subscription_update", "p": {"action": "dance", "topics": ["a"]}}),
        json!({"t": "subscription_update", "p": {"action": "subscribe", "topics": "a"}}),
        json!({"t": "subscription_update", "p": {"action": "subscribe", "topics": ["a", 1]}}),
    ];
    for msg in bad {
        send(&mut ws, msg.clone()).await;
        let (_, ack) = until(&mut ws, "subscription_update").await;
        assert_eq!(ack["success"], false, "{msg}");
        assert_eq!(ack["success_topics"], json!([]), "{msg}");
    }
    // The connection and the protocol still work.
    assert_eq!(subscribe(&mut ws, &["ok"]).await["success"], true);
    server.stop().await;
}

#[tokio::test]
async fn unsubscribe_is_acknowledged_and_stops_delivery() {
    let server = start(AppPolicy::default()).await;
    let mut ws = client(&server, "frank", None).await;
    subscribe(&mut ws, &["a", "b"]).await;
    send(
        &mut ws,
        json!({"t": "subscription_update", "p": {"action": "unsubscribe", "topics": ["a"]}}),
    )
    .await;
    let (_, ack) = until(&mut ws, "subscription_update").await;
    assert_eq!(
        ack,
        json!({"success": true, "success_topics": ["a"], "failed_topics": [], "recovery": {}})
    );
    server.broadcast_local("a", r#"{"t":"x","p":{}}"#);
    server.broadcast_local("b", r#"{"t":"y","p":{}}"#);
    assert_eq!(next_json(&mut ws).await["t"], "y");
    server.stop().await;
}

#[tokio::test]
async fn a_reconnecting_client_recovers_each_topic_from_its_own_position() {
    let server = start(AppPolicy::default()).await;
    let mut first = client(&server, "gina", None).await;
    subscribe(&mut first, &["a", "b"]).await;
    server.broadcast_local("a", r#"{"t":"m","p":{"n":1}}"#);
    server.broadcast_local("b", r#"{"t":"m","p":{"n":10}}"#);
    server.broadcast_local("b", r#"{"t":"m","p":{"n":11}}"#);
    let seen: Vec<Value> = [
        next_json(&mut first).await,
        next_json(&mut first).await,
        next_json(&mut first).await,
    ]
    .into();
    let last = |topic: &str| {
        seen.iter()
            .rev()
            .find(|m| m["tp"] == topic)
            .unwrap()
            .clone()
    };
    let (a, b) = (last("a"), last("b"));
    first.close(None).await.unwrap();
    drop(first);

    // Missed while away: two on `a`, one on `b`.
    server.broadcast_local("a", r#"{"t":"m","p":{"n":2}}"#);
    server.broadcast_local("b", r#"{"t":"m","p":{"n":12}}"#);
    server.broadcast_local("a", r#"{"t":"m","p":{"n":3}}"#);

    let mut second = client(&server, "gina", None).await;
    send(
        &mut second,
        json!({"c": "WSE", "t": "subscription_update", "p": {
            "action": "subscribe", "topics": ["a", "b"], "recover": true,
            "recovery": {
                "a": {"epoch": a["e"], "offset": a["o"]},
                "b": {"epoch": b["e"], "offset": b["o"]},
            }
        }}),
    )
    .await;
    let (replayed, ack) = until(&mut second, "subscription_update").await;
    let numbers: Vec<i64> = replayed
        .iter()
        .map(|m| m["p"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 3, 12]);
    assert_eq!(ack["success"], true);
    assert_eq!(ack["recovery"]["a"]["recovered"], true);
    assert_eq!(ack["recovery"]["a"]["count"], 2);
    assert_eq!(ack["recovery"]["a"]["epoch"], a["e"]);
    assert_eq!(ack["recovery"]["b"]["recovered"], true);
    assert_eq!(ack["recovery"]["b"]["count"], 1);
    assert_eq!(
        ack["recovery"]["b"]["offset"],
        replayed.last().unwrap()["o"]
    );

    // A wrong epoch is not recovered, and says so, with the current position.
    let mut third = client(&server, "gina", None).await;
    send(
        &mut third,
        json!({"t": "subscription_update", "p": {
            "action": "subscribe", "topics": ["a"], "recover": true,
            "recovery": {"a": {"epoch": "00000000", "offset": 0}}
        }}),
    )
    .await;
    let (replayed, ack) = until(&mut third, "subscription_update").await;
    assert!(replayed.is_empty());
    assert_eq!(ack["recovery"]["a"]["recovered"], false);
    assert_eq!(ack["recovery"]["a"]["epoch"], a["e"]);
    server.stop().await;
}

fn publish_msg(topic: &str, n: i64) -> Value {
    json!({"t": "publish", "p": {"topic": topic, "data": {"t": "chat", "p": {"n": n}}}})
}

#[tokio::test]
async fn a_client_publishes_where_its_publish_globs_allow_and_is_refused_elsewhere() {
    let policy = AppPolicy {
        client_publish: true,
        default_acl: None,
    };
    let server = start(policy).await;
    let mut reader = client(&server, "reader", None).await;
    subscribe(&mut reader, &["chat:1", "news"]).await;
    let grants = json!({"publish": ["chat:*"], "deny": ["chat:admin"]});
    let mut writer = client(&server, "writer", Some(grants)).await;

    send(&mut writer, publish_msg("chat:1", 1)).await;
    let got = next_json(&mut reader).await;
    assert_eq!(
        (got["tp"].clone(), got["p"]["n"].clone()),
        (json!("chat:1"), json!(1))
    );

    for topic in ["news", "chat:admin"] {
        send(&mut writer, publish_msg(topic, 2)).await;
        let err = next_json(&mut writer).await;
        assert_eq!(err["t"], "error");
        assert_eq!(err["p"]["code"], "PUBLISH_FORBIDDEN", "{topic}");
    }
    // A token without publish globs may not publish at all.
    send(&mut reader, publish_msg("chat:1", 3)).await;
    assert_eq!(
        next_json(&mut reader).await["p"]["code"],
        "PUBLISH_FORBIDDEN"
    );
    // A malformed publish is answered, not delivered.
    send(
        &mut writer,
        json!({"t": "publish", "p": {"topic": "chat:1", "data": "text"}}),
    )
    .await;
    assert_eq!(next_json(&mut writer).await["p"]["code"], "INVALID_PUBLISH");
    assert!(quiet(&mut reader).await, "nothing refused was delivered");
    server.stop().await;
}

#[tokio::test]
async fn client_publish_is_refused_when_disabled() {
    let server = start(AppPolicy::default()).await;
    let mut reader = client(&server, "reader", None).await;
    subscribe(&mut reader, &["chat:1"]).await;
    let mut writer = client(&server, "writer", Some(json!({"publish": ["*"]}))).await;
    send(&mut writer, publish_msg("chat:1", 1)).await;
    let err = next_json(&mut writer).await;
    assert_eq!(err["p"]["code"], "PUBLISH_FORBIDDEN");
    assert!(err["p"]["message"].as_str().unwrap().contains("disabled"));
    assert!(quiet(&mut reader).await);
    server.stop().await;
}

#[tokio::test]
async fn the_protocol_task_ends_once_the_server_has_drained() {
    let config = ServerConfig {
        port: 0,
        ..Default::default()
    };
    let server = ServerHandle::start(&config).await.unwrap();
    let task = tokio::spawn(app::run((*server).clone(), AppPolicy::default()));
    server.stop().await;
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("ends after stop")
        .unwrap();
}
