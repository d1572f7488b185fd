//! End-to-end encryption on the real server over loopback (UPSTREAM §4, CONTRACT D7/D8): a test
//! client does the ECDH exchange in `client_hello` with `wse_core::crypto`, then checks that
//! every data frame it gets is an `E:` record it can open — `send_event`, `send`, `send_bytes`,
//! topic broadcasts, `broadcast_all`, recovery replays — while a plaintext client on the same
//! topic still gets the shared plaintext frame; that its own `E:` frames reach the application
//! (and an encrypted `ping` gets its `PONG`); and that a replayed frame is refused and counted.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use wse_core::ConnId;
use wse_core::config::ServerConfig;
use wse_core::crypto::{EphemeralKeyPair, SessionKey, open, parse_peer_public_key, seal};
use wse_runtime::server::{ServerEvent, ServerHandle};

use support::{Ws, next};

const WAIT: Duration = Duration::from_secs(5);

async fn start() -> ServerHandle {
    ServerHandle::start(&ServerConfig {
        port: 0,
        recovery_enabled: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn event(server: &ServerHandle) -> ServerEvent {
    server.next_event(WAIT).await.expect("an event in time")
}

async fn connect(server: &ServerHandle) -> (Ws, ConnId) {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/wse", server.local_addr()))
        .await
        .unwrap();
    match event(server).await {
        ServerEvent::Connect(id, _) => (ws, id),
        other => panic!("expected connect, got {other:?}"),
    }
}

/// Sends `client_hello` with a fresh key; returns the session key from `server_hello`.
async fn exchange(ws: &mut Ws, rng: &mut ChaCha20Rng) -> SessionKey {
    let ours = EphemeralKeyPair::generate(rng);
    let hello = json!({"c": "WSE", "t": "client_hello", "p": {
        "client_version": "test", "protocol_version": 1,
        "features": {"encryption": true}, "encryption_public_key": ours.public_key_b64()}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let Message::Text(reply) = next(ws).await else {
        panic!("server_hello is a text frame");
    };
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["t"], "server_hello");
    assert_eq!(reply["p"]["features"]["encryption"], true, "{reply}");
    let theirs = parse_peer_public_key(reply["p"]["encryption_public_key"].as_str().unwrap())
        .expect("a valid server key");
    ours.derive_session_key(&theirs)
}

/// The next frame, which must be an `E:` record; its plaintext as JSON.
async fn next_sealed(ws: &mut Ws, key: &SessionKey) -> Value {
    match next(ws).await {
        Message::Binary(b) => {
            let (_, plain) = open(key, &b).expect("an E: record under the session key");
            serde_json::from_slice(&plain).expect("JSON inside")
        }
        other => panic!("expected an E: record, got plaintext {other:?}"),
    }
}

fn event_of(t: &str, p: Value) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("t".into(), Value::from(t));
    event.insert("p".into(), p);
    event
}

#[tokio::test]
async fn after_the_exchange_every_data_frame_is_sealed_and_plain_clients_share_plaintext() {
    let server = start().await;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (mut enc, e) = connect(&server).await;
    let (mut plain, p) = connect(&server).await;
    let key = exchange(&mut enc, &mut rng).await;
    for c in [e, p] {
        server
            .subscribe_connection(c, &["room".into()], None, None)
            .unwrap();
    }

    assert!(server.send_event(e, &event_of("hello", json!({"n": 1})), 1024) > 0);
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["n"], 1);
    // A large event is not compressed for an encrypted connection: E: of the JSON.
    let big = "x".repeat(5000);
    server.send_event(e, &event_of("big", json!({"s": big})), 1024);
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["s"], big.as_str());
    server.send(e, r#"{"t":"raw","p":{"n":2}}"#);
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["n"], 2);
    server.send_bytes(e, br#"{"t":"bytes","p":{"n":3}}"#);
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["n"], 3);

    let stamp = server.broadcast_local("room", r#"{"t":"m","p":{"n":4}}"#);
    assert!(stamp.is_some());
    let got = next_sealed(&mut enc, &key).await;
    assert_eq!(
        (got["p"]["n"].clone(), got["tp"].clone()),
        (json!(4), json!("room"))
    );
    let Message::Text(shared) = next(&mut plain).await else {
        panic!("the plaintext subscriber gets the shared text frame");
    };
    assert_eq!(
        serde_json::from_str::<Value>(&shared).unwrap()["o"],
        got["o"]
    );

    server.broadcast_all(r#"{"t":"all","p":{"n":5}}"#);
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["n"], 5);
    assert!(matches!(next(&mut plain).await, Message::Text(_)));

    // A recovery replay to the encrypted connection is sealed too.
    server.broadcast_local("room", r#"{"t":"m","p":{"n":6}}"#);
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["n"], 6);
    let epoch = got["e"].as_str().unwrap().to_owned();
    let outcome = server
        .subscribe_with_recovery(e, &["room".into()], true, Some(&epoch), Some(0))
        .unwrap();
    assert!(outcome.recovered);
    assert_eq!(
        outcome.topics["room"].count, 1,
        "offset 1 (n = 6) follows offset 0"
    );
    assert_eq!(next_sealed(&mut enc, &key).await["p"]["n"], 6);
    server.stop().await;
}

#[tokio::test]
async fn sealed_client_frames_reach_the_application_and_a_replay_is_refused() {
    let server = start().await;
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let (mut ws, id) = connect(&server).await;
    let key = exchange(&mut ws, &mut rng).await;

    // The fast path works inside E: (CONTRACT D7): an encrypted ping gets a plain PONG.
    let ping = seal(
        &key,
        br#"{"c":"WSE","t":"ping","p":{"timestamp":1}}"#,
        &mut rng,
    );
    ws.send(Message::binary(ping)).await.unwrap();
    let Message::Text(pong) = next(&mut ws).await else {
        panic!("PONG is exempt from encryption");
    };
    assert!(pong.starts_with(r#"{"c":"WSE","t":"PONG""#), "{pong}");

    let frame = seal(&key, br#"{"t":"chat","p":{"text":"hi"}}"#, &mut rng);
    ws.send(Message::binary(frame.clone())).await.unwrap();
    match event(&server).await {
        ServerEvent::Msg(c, v) => {
            assert_eq!(c, id);
            assert_eq!(v["p"]["text"], "hi");
        }
        other => panic!("expected the message, got {other:?}"),
    }
    // The captured frame, sent again: refused (same IV), counted, never delivered.
    ws.send(Message::binary(frame)).await.unwrap();
    let garbage = seal(&SessionKey::from_bytes(&[7; 32]), b"{}", &mut rng);
    ws.send(Message::binary(garbage)).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while server.health_snapshot()["e2e_undecryptable"] != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the bad frame is counted");
    let health = server.health_snapshot();
    assert_eq!(health["e2e_replayed"], 1);
    assert!(
        server
            .next_event(Duration::from_millis(200))
            .await
            .is_none()
    );
    assert!(
        server
            .prometheus_metrics()
            .contains("wse_e2e_replayed_total 1")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bad_client_key_gets_key_exchange_failed_and_a_plain_hello() {
    let server = start().await;
    let (mut ws, id) = connect(&server).await;
    let hello = json!({"t": "client_hello", "p": {"features": {"encryption": true},
        "encryption_public_key": "bm90IGEga2V5"}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let Message::Text(error) = next(&mut ws).await else {
        panic!("text error")
    };
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["p"]["code"], "KEY_EXCHANGE_FAILED");
    let Message::Text(hello) = next(&mut ws).await else {
        panic!("text hello")
    };
    let hello: Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["p"]["features"]["encryption"], false);
    assert!(hello["p"].get("encryption_public_key").is_none());
    // Still a plaintext connection.
    server.send(id, "plain");
    assert_eq!(next(&mut ws).await, Message::text("plain"));
    server.stop().await;
}

#[tokio::test]
async fn a_second_hello_never_rekeys() {
    let server = start().await;
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (mut ws, id) = connect(&server).await;
    let key = exchange(&mut ws, &mut rng).await;
    let again = EphemeralKeyPair::generate(&mut rng);
    let hello = json!({"t": "client_hello", "p": {"features": {"encryption": true},
        "encryption_public_key": again.public_key_b64()}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let Message::Text(reply) = next(&mut ws).await else {
        panic!("server_hello is plain")
    };
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["p"]["features"]["encryption"], false);
    server.send(id, r#"{"t":"x","p":{"n":1}}"#);
    assert_eq!(
        next_sealed(&mut ws, &key).await["p"]["n"],
        1,
        "the first key stays"
    );
    server.stop().await;
}

#[tokio::test]
async fn ten_thousand_messages_across_several_key_rotations_all_arrive_and_decrypt() {
    use wse_core::Instant;
    use wse_core::crypto::rotation::{KEY_ROTATION, KEY_ROTATION_ACK, system_message};
    use wse_core::crypto::{ClientCryptoSession, CryptoConfig};

    let server = ServerHandle::start(&ServerConfig {
        port: 0,
        key_rotation_interval_secs: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let (mut ws, id) = connect(&server).await;
    let ours = EphemeralKeyPair::generate(&mut rng);
    let hello = json!({"t": "client_hello", "p": {"features": {"encryption": true,
        "key_rotation": true}, "encryption_public_key": ours.public_key_b64()}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let Message::Text(reply) = next(&mut ws).await else {
        panic!("server_hello is plain")
    };
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["p"]["features"]["key_rotation"], true, "negotiated");
    let theirs =
        parse_peer_public_key(reply["p"]["encryption_public_key"].as_str().unwrap()).unwrap();
    let config = CryptoConfig {
        rotation_grace: Duration::from_millis(500),
        ..CryptoConfig::default()
    };
    let mut client = ClientCryptoSession::new(ours.derive_session_key(&theirs), config);

    const TOTAL: u64 = 10_000;
    let sender = {
        let server = (*server).clone();
        tokio::spawn(async move {
            for n in 0..TOTAL {
                server.send_event(id, &event_of("m", json!({"n": n})), 1024);
                if n % 100 == 99 {
                    // About 3.5 s in all: several 1-second rotations.
                    tokio::time::sleep(Duration::from_millis(35)).await;
                }
            }
        })
    };
    let origin = tokio::time::Instant::now();
    let now = || Instant::from_micros(origin.elapsed().as_micros() as u64);
    let mut expected = 0u64;
    let mut rotations = 0;
    while expected < TOTAL {
        let Message::Binary(frame) = next(&mut ws).await else {
            continue; // the server's plain ping
        };
        let plain = client
            .decrypt(now(), &frame)
            .unwrap_or_else(|e| panic!("frame after message {expected} did not decrypt: {e}"));
        let msg: Value = serde_json::from_slice(&plain).unwrap();
        if msg["t"] == KEY_ROTATION {
            let ack = client
                .handle_key_rotation(now(), &msg["p"], &mut rng, |p| {
                    system_message(KEY_ROTATION_ACK, p).to_string().into_bytes()
                })
                .expect("a valid rotation");
            ws.send(Message::binary(ack)).await.unwrap();
            rotations += 1;
            continue;
        }
        assert_eq!(msg["p"]["n"], expected, "in order, none lost");
        expected += 1;
    }
    sender.await.unwrap();
    assert!(rotations >= 2, "only {rotations} rotations");
    // The client can still talk under the newest key.
    let frame = client.encrypt(br#"{"t":"after","p":{}}"#, &mut rng);
    ws.send(Message::binary(frame)).await.unwrap();
    loop {
        match event(&server).await {
            ServerEvent::Msg(_, v) if v["t"] == "after" => break,
            ServerEvent::Msg(_, v) => panic!("unexpected {v}"),
            _ => {}
        }
    }
    assert_eq!(server.health_snapshot()["e2e_undecryptable"], 0);
    server.stop().await;
}

#[tokio::test]
async fn configured_event_types_are_signed_with_the_shared_secret_or_the_session_key() {
    use wse_core::WallClock;
    use wse_core::crypto::{SignatureError, SigningKey, verify};

    const SIGNING: &[u8] = b"a-signing-secret-of-at-least-32-bytes";
    let now = || {
        WallClock::from_unix_micros(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64,
        )
    };
    let json_of = |m: Message| -> Map<String, Value> {
        match m {
            Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
            other => panic!("expected a binary event, got {other:?}"),
        }
    };

    // A shared secret: every connection's events of the configured types are signed.
    let server = ServerHandle::start(&ServerConfig {
        port: 0,
        signed_event_types: vec!["order_filled".into()],
        signing_secret: Some(SIGNING.to_vec()),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut ws, id) = connect(&server).await;
    server.send_event(id, &event_of("order_filled", json!({"qty": 3})), 1024);
    let mut signed = json_of(next(&mut ws).await);
    let key = SigningKey::from_shared_secret(SIGNING).unwrap();
    assert!(signed["sig"].as_str().unwrap().starts_with("v1:"));
    verify(&key, &signed, now(), Duration::from_secs(60)).expect("a valid signature");
    signed["p"]["qty"] = json!(4);
    assert_eq!(
        verify(&key, &signed, now(), Duration::from_secs(60)),
        Err(SignatureError::BadMac)
    );
    server.send_event(id, &event_of("chat", json!({})), 1024);
    assert!(
        json_of(next(&mut ws).await).get("sig").is_none(),
        "other types unsigned"
    );
    server.stop().await;

    // No shared secret: encrypted connections sign with a key derived from their session key.
    let server = ServerHandle::start(&ServerConfig {
        port: 0,
        signed_event_types: vec!["order_filled".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let (mut enc, e) = connect(&server).await;
    let session = exchange(&mut enc, &mut rng).await;
    server.send_event(e, &event_of("order_filled", json!({"qty": 1})), 1024);
    let sealed = next_sealed(&mut enc, &session).await;
    let sealed = sealed.as_object().unwrap();
    verify(
        &SigningKey::from_session_key(&session),
        sealed,
        now(),
        Duration::from_secs(60),
    )
    .expect("signed with the session-derived key");
    let (mut plain, p) = connect(&server).await;
    server.send_event(p, &event_of("order_filled", json!({"qty": 2})), 1024);
    assert!(
        json_of(next(&mut plain).await).get("sig").is_none(),
        "no key, no sig"
    );
    server.stop().await;
}
