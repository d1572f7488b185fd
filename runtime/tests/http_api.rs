//! The standalone server's HTTP API on the WebSocket port, driven over raw HTTP/1.1 on loopback
//! next to real WebSocket clients (tokio-tungstenite).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wse_core::ConnId;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_runtime::server::{ServerEvent, ServerHandle};
use wse_runtime::standalone::http_api::{ApiOptions, ApiService};

use support::{Ws, connect, next};

const KEY: &str = "test-api-key-0123456789";
const SECRET: &[u8] = b"http-api-test-secret-of-32-bytes-or-more";
const WAIT: Duration = Duration::from_secs(5);

// ----- setup ---------------------------------------------------------------------------------

fn config(f: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut c = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..Default::default()
    };
    f(&mut c);
    c
}

fn jwt_settings() -> JwtSettings {
    JwtSettings {
        secret: SECRET.to_vec(),
        ..Default::default()
    }
}

fn with_jwt(c: &mut ServerConfig) {
    c.jwt = Some(jwt_settings());
}

fn console_files(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "index.html" => Some(("text/html; charset=utf-8", b"<h1>console</h1>")),
        "app.js" => Some(("text/javascript", b"console.log(1)")),
        _ => None,
    }
}

/// A server whose API uses `options` (the server's own JWT settings are passed on).
async fn start_with(config: &ServerConfig, f: impl FnOnce(&mut ApiOptions)) -> ServerHandle {
    let mut options = ApiOptions::new(KEY);
    options.jwt = config.jwt.clone();
    options.static_files = Some(console_files);
    f(&mut options);
    ServerHandle::start_with_http(config, Some(Arc::new(ApiService::new(options))))
        .await
        .unwrap()
}

async fn start(config: &ServerConfig) -> ServerHandle {
    start_with(config, |_| {}).await
}

// ----- raw HTTP/1.1 --------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// `(status, error.code, error.message)` of an error reply.
    fn error(&self) -> (u16, String, String) {
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e.as_object().map(|o| o.len()), Some(2), "{v}");
        (
            self.status,
            e["code"].as_str().unwrap().to_owned(),
            e["message"].as_str().unwrap().to_owned(),
        )
    }
}

/// Writes `head` (request line and headers, no blank line) and `body`, reads the reply to EOF.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut out = format!("{head}\r\n\r\n").into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("a reply in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let reply = Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    let length: usize = reply.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, reply.body.len());
    reply
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost");
    for (name, value) in headers {
        head.push_str(&format!("\r\n{name}: {value}"));
    }
    if !body.is_empty() {
        head.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    exchange(addr, &head, body).await
}

const AUTH: (&str, &str) = ("Authorization", "apikey test-api-key-0123456789");
const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn get(server: &ServerHandle, path: &str) -> Reply {
    request(server.local_addr(), "GET", path, &[AUTH], b"").await
}

async fn post(server: &ServerHandle, path: &str, body: &Value) -> Reply {
    let body = body.to_string();
    request(
        server.local_addr(),
        "POST",
        path,
        &[AUTH, JSON],
        body.as_bytes(),
    )
    .await
}

// ----- WebSocket clients ---------------------------------------------------------------------

async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected a JSON text frame, got {other:?}"),
    }
}

async fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        if let Message::Close(Some(f)) = next(ws).await {
            return (u16::from(f.code), f.reason.to_string());
        }
    }
}

async fn event(server: &ServerHandle) -> ServerEvent {
    server.next_event(WAIT).await.expect("an event in time")
}

/// A client of a server without JWT, and its id.
async fn plain_client(server: &ServerHandle) -> (Ws, ConnId) {
    let ws = connect(server, None).await;
    loop {
        match event(server).await {
            ServerEvent::Connect(id, _) => return (ws, id),
            // An earlier client's end may still be on its way.
            ServerEvent::Disconnect(_) | ServerEvent::PresenceLeave { .. } => {}
            other => panic!("expected connect, got {other:?}"),
        }
    }
}

fn token(sub: &str) -> String {
    support::hs256_token(SECRET, sub, None)
}

/// An authenticated client (server_ready consumed) and its id.
async fn authed_client(server: &ServerHandle, cookie_token: &str, user: &str) -> (Ws, ConnId) {
    let mut ws = connect(server, Some(cookie_token)).await;
    assert_eq!(next_json(&mut ws).await["t"], "server_ready");
    loop {
        match event(server).await {
            ServerEvent::AuthConnect(id, sub, _) if sub == user => return (ws, id),
            // An earlier client's end may still be on its way.
            ServerEvent::Disconnect(_) | ServerEvent::PresenceLeave { .. } => {}
            other => panic!("expected {user}'s auth_connect, got {other:?}"),
        }
    }
}

// ----- auth ----------------------------------------------------------------------------------

#[tokio::test]
async fn api_routes_refuse_a_missing_wrong_or_differently_schemed_key_with_401() {
    let server = start(&config(|_| {})).await;
    let addr = server.local_addr();
    let wrong_key = format!("apikey {KEY}x");
    let bearer = format!("Bearer {KEY}");
    for headers in [
        vec![],
        vec![("Authorization", wrong_key.as_str())],
        vec![("Authorization", "apikey short")],
        vec![("Authorization", bearer.as_str())],
        vec![("Authorization", KEY)],
    ] {
        for (method, path) in [
            ("GET", "/api/health"),
            ("POST", "/api/publish"),
            ("GET", "/api/no-such-route"),
        ] {
            let reply = request(addr, method, path, &headers, b"").await;
            let (status, code, message) = reply.error();
            assert_eq!(
                (status, code.as_str()),
                (401, "unauthorized"),
                "{headers:?} {path}"
            );
            assert!(message.contains("apikey"), "{message}");
            assert_eq!(reply.header("www-authenticate"), Some("apikey"));
            assert_eq!(reply.header("content-type"), Some("application/json"));
        }
    }
    // The scheme is case-insensitive.
    let ok = request(
        addr,
        "GET",
        "/api/health",
        &[("Authorization", &format!("APIKEY {KEY}"))],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    server.stop().await;
}

// ----- reads ---------------------------------------------------------------------------------

#[tokio::test]
async fn health_metrics_and_info_describe_the_running_server() {
    let server = start(&config(|_| {})).await;
    let (_ws, id) = plain_client(&server).await;
    server
        .subscribe_connection(id, &["chat".into(), "news".into()], None, None)
        .unwrap();
    let (_ws2, id2) = plain_client(&server).await;
    server
        .subscribe_connection(id2, &["chat".into()], None, None)
        .unwrap();

    let health = get(&server, "/api/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.json()["connections"], 2);
    assert!(health.json()["uptime_secs"].is_f64());

    let metrics = get(&server, "/api/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = metrics.text();
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
        } else if !line.starts_with("# HELP ") {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                typed.contains(name),
                "sample without a TYPE line before it: {line}"
            );
            value.parse::<f64>().unwrap();
            samples += 1;
        }
    }
    assert!(samples > 10, "{text}");
    assert!(text.contains("wse_connections 2\n"), "{text}");

    server.broadcast_local("chat", r#"{"t":"m","p":{}}"#);
    let info = get(&server, "/api/info").await.json();
    assert_eq!(info["connections"], 2);
    assert_eq!(
        info["topics"],
        json!([{"topic": "chat", "subscribers": 2}, {"topic": "news", "subscribers": 1}])
    );
    assert_eq!(info["topics_total"], 2);
    assert!(info["uptime_secs"].as_f64().unwrap() >= 0.0);
    assert!(info["bytes_sent_total"].as_u64().unwrap() > 0, "{info}");
    for counter in [
        "messages_received_total",
        "messages_sent_total",
        "bytes_received_total",
    ] {
        assert!(info[counter].is_u64(), "{counter}: {info}");
    }
    server.stop().await;
}

#[tokio::test]
async fn history_returns_the_publications_stored_for_a_recovery_topic() {
    let server = start(&config(|c| c.recovery_enabled = true)).await;
    for n in 0..3 {
        let reply = post(
            &server,
            "/api/publish",
            &json!({"topic": "news feed", "data": {"t": "item", "p": {"n": n}}}),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    // The topic is percent-encoded in the query (`%20`, and `+` as a space).
    let all = get(&server, "/api/history?topic=news%20feed").await.json();
    assert_eq!(all["topic"], "news feed");
    let epoch = all["epoch"].as_str().expect("a ring has an epoch");
    assert_eq!(epoch.len(), 8);
    assert_eq!(all["first_offset"], 0);
    let messages = all["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    for (n, m) in messages.iter().enumerate() {
        assert_eq!(m["t"], "item");
        assert_eq!(m["p"]["n"], n);
        assert_eq!(m["tp"], "news feed");
        assert_eq!(m["e"], epoch);
        assert_eq!(m["o"], n);
    }
    let newest = get(&server, "/api/history?topic=news+feed&limit=1")
        .await
        .json();
    assert_eq!(newest["first_offset"], 2);
    assert_eq!(newest["messages"].as_array().unwrap().len(), 1);
    assert_eq!(newest["messages"][0]["p"]["n"], 2);

    let none = get(&server, "/api/history?topic=quiet").await.json();
    assert_eq!(
        none,
        json!({"topic": "quiet", "epoch": null, "first_offset": 0, "messages": []})
    );
    for (path, field) in [
        ("/api/history", "topic: required"),
        ("/api/history?topic=x&limit=0", "limit:"),
        ("/api/history?topic=x&limit=10001", "limit:"),
        ("/api/history?topic=x&limit=many", "limit:"),
        ("/api/history?topic=%zz", "topic: bad percent-encoding"),
    ] {
        let (status, _, message) = get(&server, path).await.error();
        assert_eq!(status, 400, "{path}");
        assert!(message.starts_with(field), "{path}: {message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn presence_and_presence_stats_show_the_users_subscribed_with_presence() {
    let server = start(&config(|c| {
        with_jwt(c);
        c.presence_enabled = true;
    }))
    .await;
    let (_a, a) = authed_client(&server, &token("alice"), "alice").await;
    let (_b, b) = authed_client(&server, &token("alice"), "alice").await;
    let (_c, c) = authed_client(&server, &token("bob"), "bob").await;
    for (id, data) in [
        (a, json!({"s": 1})),
        (b, json!({"s": 1})),
        (c, json!({"s": 2})),
    ] {
        server
            .subscribe_connection(id, &["room/1".into()], Some(&data), None)
            .unwrap();
    }
    let presence = get(&server, "/api/presence?topic=room%2F1").await.json();
    assert_eq!(
        presence,
        json!({"topic": "room/1", "users": {
            "alice": {"data": {"s": 1}, "connections": 2},
            "bob": {"data": {"s": 2}, "connections": 1},
        }})
    );
    let stats = get(&server, "/api/presence_stats?topic=room%2F1")
        .await
        .json();
    assert_eq!(
        stats,
        json!({"topic": "room/1", "num_users": 2, "num_connections": 3})
    );
    let empty = get(&server, "/api/presence?topic=elsewhere").await.json();
    assert_eq!(empty, json!({"topic": "elsewhere", "users": {}}));
    for path in ["/api/presence", "/api/presence_stats?other=1"] {
        let (status, code, message) = get(&server, path).await.error();
        assert_eq!(
            (status, code.as_str(), message.as_str()),
            (400, "missing_field", "topic: required")
        );
    }
    server.stop().await;
}

// ----- writes --------------------------------------------------------------------------------

#[tokio::test]
async fn publish_reaches_subscribers_and_broadcast_reaches_every_connection() {
    let server = start(&config(|_| {})).await;
    let (mut subscriber, s) = plain_client(&server).await;
    let (mut bystander, _) = plain_client(&server).await;
    server
        .subscribe_connection(s, &["chat".into()], None, None)
        .unwrap();

    let reply = post(
        &server,
        "/api/publish",
        &json!({"topic": "chat", "data": {"t": "chat_message", "p": {"text": "hi"}}}),
    )
    .await;
    assert_eq!((reply.status, reply.json()), (200, json!({"ok": true})));
    let got = next_json(&mut subscriber).await;
    assert_eq!(
        (got["t"].clone(), got["p"]["text"].clone()),
        (json!("chat_message"), json!("hi"))
    );

    let reply = post(
        &server,
        "/api/publish",
        &json!({"topic": "chat", "data": "plain words"}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(next(&mut subscriber).await, Message::text("plain words"));

    let reply = post(
        &server,
        "/api/broadcast",
        &json!({"data": {"t": "notice", "p": {}}}),
    )
    .await;
    assert_eq!((reply.status, reply.json()), (200, json!({"ok": true})));
    for ws in [&mut subscriber, &mut bystander] {
        assert_eq!(next_json(ws).await["t"], "notice");
    }
    let reply = post(&server, "/api/broadcast", &json!({"data": "to all"})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(next(&mut bystander).await, Message::text("to all"));
    server.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field_and_other_media_types_415() {
    let server = start(&config(|_| {})).await;
    let addr = server.local_addr();
    let raw = |body: &'static str| async move {
        request(addr, "POST", "/api/publish", &[AUTH, JSON], body.as_bytes()).await
    };
    let (status, code, message) = raw("{not json").await.error();
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    assert!(message.starts_with("body: not valid JSON"), "{message}");
    let (status, code, _) = raw("[1, 2]").await.error();
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let empty = request(addr, "POST", "/api/publish", &[AUTH], b"").await;
    assert_eq!(empty.error().1, "invalid_json");

    for (body, code, message) in [
        (json!({"data": "x"}), "missing_field", "topic: required"),
        (json!({"topic": "t"}), "missing_field", "data: required"),
        (
            json!({"topic": 5, "data": "x"}),
            "invalid_field",
            "topic: expected a string, got an integer",
        ),
        (
            json!({"topic": "t", "data": [1]}),
            "invalid_field",
            "data: expected an object or a string, got an array",
        ),
        (
            json!({"topic": "", "data": "x"}),
            "invalid_field",
            "topic: must not be empty",
        ),
        (
            json!({"topic": "a\u{1}b", "data": "x"}),
            "invalid_field",
            "topic: contains a control character",
        ),
    ] {
        let reply = post(&server, "/api/publish", &body).await;
        assert_eq!(
            reply.error(),
            (400, code.to_owned(), message.to_owned()),
            "{body}"
        );
    }
    let reply = post(&server, "/api/broadcast", &json!({"data": true})).await;
    assert_eq!(
        reply.error().2,
        "data: expected an object or a string, got a boolean"
    );

    let reply = request(
        addr,
        "POST",
        "/api/publish",
        &[AUTH, ("Content-Type", "text/plain")],
        br#"{"topic":"t","data":"x"}"#,
    )
    .await;
    assert_eq!(reply.error().0, 415);
    assert_eq!(reply.error().1, "unsupported_media_type");
    // Parameters of application/json are fine.
    let reply = request(
        addr,
        "POST",
        "/api/publish",
        &[AUTH, ("Content-Type", "application/json; charset=utf-8")],
        br#"{"topic":"t","data":"x"}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let server = start(&config(|_| {})).await;
    let addr = server.local_addr();
    for path in ["/api/nope", "/api/health/", "/api", "/elsewhere", "/"] {
        let (status, code, _) = get(&server, path).await.error();
        assert_eq!((status, code.as_str()), (404, "not_found"), "{path}");
    }
    for (method, path, allow) in [
        ("GET", "/api/publish", "POST"),
        ("PUT", "/api/broadcast", "POST"),
        ("GET", "/api/disconnect", "POST"),
        ("GET", "/api/token", "POST"),
        ("POST", "/api/health", "GET"),
        ("DELETE", "/api/history", "GET"),
        ("POST", "/console", "GET"),
    ] {
        let reply = request(addr, method, path, &[AUTH], b"").await;
        assert_eq!(reply.error().1, "method_not_allowed", "{method} {path}");
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413() {
    let server = start_with(&config(|_| {}), |o| o.max_body_bytes = 64).await;
    let addr = server.local_addr();
    // Announced too large: answered from the head, the body is never read (so none is sent).
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\n{}: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 65",
        AUTH.0, AUTH.1
    );
    let reply = exchange(addr, &head, b"").await;
    assert_eq!(reply.error().0, 413);
    assert_eq!(reply.error().1, "body_too_large");
    // At the limit it is read and handled.
    let body = json!({"topic": "t", "data": "x".repeat(30)}).to_string();
    let padded = format!("{body:<64}");
    let reply = request(
        addr,
        "POST",
        "/api/publish",
        &[AUTH, JSON],
        padded.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    server.stop().await;
}

#[tokio::test]
async fn disconnect_closes_by_conn_id_or_by_user_with_the_given_code() {
    let server = start(&config(with_jwt)).await;
    let (mut one, one_id) = authed_client(&server, &token("ann"), "ann").await;
    let reply = post(
        &server,
        "/api/disconnect",
        &json!({"conn_id": one_id.to_string(), "code": 4000, "reason": "bye"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"disconnected": 1}))
    );
    assert_eq!(close_of(&mut one).await, (4000, "bye".to_owned()));

    let (mut b1, _) = authed_client(&server, &token("bob"), "bob").await;
    let (mut b2, _) = authed_client(&server, &token("bob"), "bob").await;
    let reply = post(&server, "/api/disconnect", &json!({"user_id": "bob"})).await;
    assert_eq!(reply.json(), json!({"disconnected": 2}));
    assert_eq!(close_of(&mut b1).await.0, 1000);
    assert_eq!(close_of(&mut b2).await.0, 1000);
    let reply = post(&server, "/api/disconnect", &json!({"user_id": "nobody"})).await;
    assert_eq!(reply.json(), json!({"disconnected": 0}));

    let unknown = "01901234-5678-7abc-8def-0123456789ab";
    let reply = post(&server, "/api/disconnect", &json!({"conn_id": unknown})).await;
    assert_eq!(
        reply.error(),
        (
            404,
            "unknown_connection".into(),
            format!("conn_id: no connection {unknown}")
        )
    );
    let long_reason = "r".repeat(124);
    for (body, message) in [
        (json!({}), "conn_id (or user_id): required"),
        (
            json!({"conn_id": "not-a-uuid"}),
            "conn_id: not a connection id (a UUID)",
        ),
        (
            json!({"conn_id": 7}),
            "conn_id: expected a string, got an integer",
        ),
        (
            json!({"conn_id": unknown, "user_id": "x"}),
            "conn_id: give conn_id or user_id, not both",
        ),
        (
            json!({"user_id": "x", "code": 1005}),
            "code: cannot be sent",
        ),
        (
            json!({"user_id": "x", "code": 70000}),
            "code: cannot be sent",
        ),
        (
            json!({"user_id": "x", "code": "4000"}),
            "code: expected a non-negative integer, got a string",
        ),
        (
            json!({"user_id": "x", "reason": long_reason}),
            "reason: longer than 123 bytes",
        ),
    ] {
        let (status, _, got) = post(&server, "/api/disconnect", &body).await.error();
        assert_eq!(status, 400, "{body}");
        assert!(got.starts_with(message), "{body}: {got}");
    }
    server.stop().await;
}

// ----- token ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_minted_token_is_accepted_by_the_websocket_handshake_of_the_same_server() {
    let server = start(&config(|c| {
        c.jwt = Some(JwtSettings {
            issuer: Some("wse-test".into()),
            audience: Some("console".into()),
            ..jwt_settings()
        });
    }))
    .await;
    let reply = post(
        &server,
        "/api/token",
        &json!({"sub": "operator", "ttl_secs": 120}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let minted = reply.json()["token"].as_str().unwrap().to_owned();
    let (mut ws, id) = authed_client(&server, &minted, "operator").await;
    // The console then subscribes itself; here the server does it and a publication arrives.
    server
        .subscribe_connection(id, &["ops".into()], None, None)
        .unwrap();
    post(
        &server,
        "/api/publish",
        &json!({"topic": "ops", "data": {"t": "x", "p": {}}}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["t"], "x");

    // A token the server did not mint for these iss/aud is refused (the claims matter).
    let foreign = token("operator");
    let mut refused = connect(&server, Some(&foreign)).await;
    assert_eq!(close_of(&mut refused).await.0, 4401);

    let (status, code, message) = post(&server, "/api/token", &json!({"ttl_secs": 5}))
        .await
        .error();
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (400, "missing_field", "sub: required")
    );
    let (status, _, message) = post(
        &server,
        "/api/token",
        &json!({"sub": "x", "ttl_secs": 86_401}),
    )
    .await
    .error();
    assert_eq!(status, 400);
    assert!(message.starts_with("ttl_secs:"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn token_minting_is_409_without_an_hs256_secret() {
    let server = start(&config(|_| {})).await;
    let (status, code, _) = post(&server, "/api/token", &json!({"sub": "x"}))
        .await
        .error();
    assert_eq!((status, code.as_str()), (409, "token_unavailable"));
    server.stop().await;

    let rs256 = JwtSettings {
        algorithm: JwtAlgorithm::Rs256,
        ..jwt_settings()
    };
    let server = start_with(&config(|_| {}), |o| o.jwt = Some(rs256)).await;
    let (status, _, message) = post(&server, "/api/token", &json!({"sub": "x"}))
        .await
        .error();
    assert_eq!(status, 409);
    assert!(message.contains("RS256"), "{message}");
    server.stop().await;
}

// ----- console and coexistence ---------------------------------------------------------------

#[tokio::test]
async fn console_files_are_served_without_a_key() {
    let server = start(&config(|_| {})).await;
    let addr = server.local_addr();
    for path in ["/console", "/console/", "/console/index.html"] {
        let reply = request(addr, "GET", path, &[], b"").await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(reply.text(), "<h1>console</h1>");
    }
    let js = request(addr, "GET", "/console/app.js", &[], b"").await;
    assert_eq!((js.status, js.text().as_str()), (200, "console.log(1)"));
    assert_eq!(js.header("content-type"), Some("text/javascript"));
    for path in [
        "/console/missing.css",
        "/consoles",
        "/console/../api/health",
    ] {
        let (status, code, _) = request(addr, "GET", path, &[], b"").await.error();
        assert_eq!((status, code.as_str()), (404, "not_found"), "{path}");
    }
    server.stop().await;

    let bare = start_with(&config(|_| {}), |o| o.static_files = None).await;
    let reply = request(bare.local_addr(), "GET", "/console", &[], b"").await;
    assert_eq!(reply.status, 404);
    bare.stop().await;
}

#[tokio::test]
async fn websocket_upgrades_still_work_on_the_api_port() {
    let server = start(&config(|_| {})).await;
    let (mut ws, id) = plain_client(&server).await;
    // HTTP requests and the open WebSocket interleave on the same port.
    assert_eq!(get(&server, "/api/health").await.json()["connections"], 1);
    server.send(id, "hello");
    assert_eq!(next(&mut ws).await, Message::text("hello"));
    let (_second, _) = plain_client(&server).await;
    assert_eq!(get(&server, "/api/info").await.json()["connections"], 2);
    server.stop().await;
}
