//! The Rust client (`wse_runtime::client`: the core's client machine on tokio) against a real
//! loopback server running the standalone server's built-in protocol: it authenticates,
//! subscribes, receives, and after the server drops it, reconnects and recovers what it missed.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use wse_core::client::{ClientConfig, Event, ReconnectPolicy};
use wse_core::config::{JwtSettings, ServerConfig};
use wse_runtime::client::{self, ClientHandle, ClientOptions, TcpDialer};
use wse_runtime::server::ServerHandle;
use wse_runtime::standalone::app::{self, AppPolicy};

const SECRET: &[u8] = b"rust-client-test-secret-of-32-bytes!";
const WAIT: Duration = Duration::from_secs(10);

/// A JWT server with recovery and presence and the built-in client protocol; `f` adjusts it.
async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig {
        port: 0,
        recovery_enabled: true,
        presence_enabled: true,
        jwt: Some(JwtSettings {
            secret: SECRET.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    f(&mut config);
    let server = ServerHandle::start(&config).await.unwrap();
    tokio::spawn(app::run((*server).clone(), AppPolicy::default()));
    server
}

fn token(sub: &str) -> String {
    support::hs256_token(SECRET, sub, None)
}

fn connect(server: &ServerHandle, sub: &str, topics: &[&str]) -> ClientHandle {
    let addr = server.local_addr().to_string();
    let mut options = ClientOptions::new(format!("ws://{addr}/wse"));
    options.token = Some(token(sub));
    let config = ClientConfig {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        presence: Some(json!({"status": "here"})),
        reconnect: ReconnectPolicy {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
            ..ReconnectPolicy::default()
        },
        ..ClientConfig::default()
    };
    client::spawn(TcpDialer::new(addr), options, config).unwrap()
}

/// Waits for the first event `pick` accepts.
async fn until<T>(c: &mut ClientHandle, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = c.next_event().await.expect("client ended early");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

fn n_of(event: &Event) -> Option<u64> {
    match event {
        Event::Message(d) if d.envelope.stamp.is_some() => d
            .envelope
            .p
            .as_ref()
            .and_then(|p| p.get("n"))
            .and_then(Value::as_u64),
        _ => None,
    }
}

#[tokio::test]
async fn the_rust_client_subscribes_receives_and_recovers_after_a_drop() {
    let server = start_with(|_| {}).await;
    let mut c = connect(&server, "alice", &["room"]);
    until(&mut c, |e| {
        matches!(e, Event::SubscriptionAck { .. }).then_some(())
    })
    .await;
    assert!(
        server.presence("room").contains_key("alice"),
        "joined presence"
    );

    for n in 0..3 {
        server.broadcast_local("room", &json!({"t": "m", "p": {"n": n}}).to_string());
    }
    for n in 0..3 {
        assert_eq!(until(&mut c, |e| n_of(&e)).await, n);
    }

    // The server drops the client (1012: restart); while it is away, 3 more publications.
    let conn = server.connections()[0];
    server.disconnect(conn, 1012, "restart");
    until(&mut c, |e| {
        matches!(
            e,
            Event::Disconnected {
                close: Some(1012),
                ..
            }
        )
        .then_some(())
    })
    .await;
    for n in 3..6 {
        server.broadcast_local("room", &json!({"t": "m", "p": {"n": n}}).to_string());
    }
    // The replay arrives before the ack that reports it.
    let mut replayed = Vec::new();
    let count = until(&mut c, |e| {
        if let Some(n) = n_of(&e) {
            replayed.push(n);
        }
        match e {
            Event::Recovered { topic, count } if topic == "room" => Some(count),
            _ => None,
        }
    })
    .await;
    assert_eq!(count, 3);
    assert_eq!(replayed, [3, 4, 5]);
    server.broadcast_local("room", r#"{"t":"m","p":{"n":6}}"#);
    assert_eq!(until(&mut c, |e| n_of(&e)).await, 6, "live traffic resumes");
    c.close();
    c.join().await;
    server.stop().await;
}

#[tokio::test]
async fn an_encrypted_rust_client_exchanges_keys_and_follows_rotations() {
    let server = start_with(|c| c.key_rotation_interval_secs = 1).await;
    let addr = server.local_addr().to_string();
    let mut options = ClientOptions::new(format!("ws://{addr}/wse"));
    options.token = Some(token("bob"));
    let client_config = ClientConfig {
        topics: vec!["room".into()],
        encryption: true,
        ..ClientConfig::default()
    };
    let mut c = client::spawn(TcpDialer::new(addr), options, client_config).unwrap();
    until(&mut c, |e| matches!(e, Event::Encrypted).then_some(())).await;
    until(&mut c, |e| {
        matches!(e, Event::SubscriptionAck { .. }).then_some(())
    })
    .await;
    let publisher = {
        let server = (*server).clone();
        tokio::spawn(async move {
            for n in 0..300u64 {
                server.broadcast_local("room", &json!({"t": "m", "p": {"n": n}}).to_string());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut rotations = 0;
    let mut next = 0;
    while next < 300 {
        let got = until(&mut c, |e| match e {
            Event::KeyRotated => Some(None),
            other => n_of(&other).map(Some),
        })
        .await;
        match got {
            None => rotations += 1,
            Some(n) => {
                assert_eq!(n, next, "in order, none lost");
                next += 1;
            }
        }
    }
    publisher.await.unwrap();
    assert!(rotations >= 2, "{rotations} rotations in about 3 s");
    assert_eq!(server.health_snapshot()["e2e_undecryptable"], 0);
    c.close();
    c.join().await;
    server.stop().await;
}
