//! Hostile cluster peers: raw sockets on a node's cluster port that break the peer protocol
//! (bad HELLO, self-connection, oversized and truncated frames, a zstd bomb, unknown types,
//! frames that need a capability that was not negotiated, garbage). Each case asserts:
//!
//! 1. the offender gets what the protocol says: its socket is closed (every decoding or
//!    protocol error ends the session, UPSTREAM §10.3), or, for an unknown type, the frame is
//!    skipped and counted;
//! 2. the node stays up and keeps its real peer: a broadcast still reaches the subscriber on the
//!    other node, and the node still has exactly one link.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wse_core::cluster::{Capabilities, PeerFrame};
use wse_core::config::ServerConfig;
use wse_runtime::cluster::{ClusterConfig, LinkTimings};
use wse_runtime::net::{Listener, TcpConnector, TcpListener};
use wse_runtime::server::{ServerEvent, ServerHandle};

mod support;

struct Pair {
    a: ServerHandle,
    a_cluster: String,
    b: ServerHandle,
    witness: support::Ws,
    sent: u32,
}

fn timings() -> LinkTimings {
    LinkTimings {
        heartbeat_interval: Duration::from_millis(200),
        dead_after: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(1),
        ..LinkTimings::default()
    }
}

/// Node A (with a cluster port) linked to node B, a subscriber to "w" on B.
async fn pair() -> Pair {
    let cfg = ServerConfig {
        port: 0,
        ..Default::default()
    };
    let a = ServerHandle::start(&cfg).await.unwrap();
    let b = ServerHandle::start(&cfg).await.unwrap();
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_cluster = la.local_addr().unwrap().to_string();
    let mut ca = ClusterConfig::new(vec![]);
    ca.link = timings();
    a.connect_cluster_on(ca, Some(la), TcpConnector).unwrap();
    let mut cb = ClusterConfig::new(vec![a_cluster.clone()]);
    cb.link = timings();
    b.connect_cluster_on(cb, None::<TcpListener>, TcpConnector)
        .unwrap();
    let witness = support::connect(&b, None).await;
    let id = loop {
        if let Some(ServerEvent::Connect(id, _)) = b.next_event(Duration::from_secs(5)).await {
            break id;
        }
    };
    b.subscribe_connection(id, &["w".into()], None, None)
        .unwrap();
    for _ in 0..250 {
        if a.cluster_routes("w") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.cluster_routes("w"), 1, "A and B linked, interest known");
    Pair {
        a,
        a_cluster,
        b,
        witness,
        sent: 0,
    }
}

impl Pair {
    /// A still routes to B, and still has exactly B.
    async fn still_serves(&mut self) {
        self.sent += 1;
        let n = self.sent;
        self.a.broadcast("w", &format!(r#"{{"n":{n}}}"#));
        let got = loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.witness.next())
                .await
                .expect("the witness got the broadcast in time")
                .expect("open")
                .expect("valid");
            if let Message::Text(t) = m {
                break t;
            }
        };
        assert!(got.contains(&format!(r#""n":{n}"#)), "{got}");
        assert_eq!(
            self.a.cluster_peers_count(),
            1,
            "A keeps exactly its real peer"
        );
    }

    async fn attacker(&self) -> TcpStream {
        TcpStream::connect(&self.a_cluster).await.unwrap()
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
    }
}

/// Reads until the node closes the socket; panics (naming the case) if it stays open for 3 s.
async fn closed_by_node(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the node kept a hostile peer's socket open: {what}"),
        }
    }
}

fn frame(f: &PeerFrame) -> Vec<u8> {
    f.encode().expect("encodable")
}

fn hello(id: &str) -> Vec<u8> {
    frame(&PeerFrame::hello(id, Capabilities::ALL))
}

/// A HELLO offering everything, our presence CRDT included.
fn hello_sync(id: &str) -> Vec<u8> {
    frame(&PeerFrame::hello(
        id,
        Capabilities::ALL | Capabilities::PRESENCE_SYNC,
    ))
}

/// A raw frame: outer length, then the 8-byte header and body as given.
fn raw(ty: u8, flags: u8, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let inner_len = 8 + topic.len() + payload.len();
    let mut v = Vec::new();
    v.extend_from_slice(&(inner_len as u32).to_be_bytes());
    v.push(ty);
    v.push(flags);
    v.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(topic);
    v.extend_from_slice(payload);
    v
}

#[tokio::test]
async fn protocol_breakers_are_disconnected_and_the_real_peer_is_untouched() {
    let mut p = pair().await;
    let a_id = p.a.cluster().unwrap().instance_id().to_owned();
    let mut bad_magic = hello("x");
    bad_magic[4 + 8] = b'X';
    let bomb = zstd::bulk::compress(&vec![b'a'; 64 << 20], 19).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a frame before HELLO", frame(&PeerFrame::Ping)),
        ("a HELLO with a bad magic", bad_magic),
        (
            "a HELLO with the node's own id (self-connection)",
            hello(&a_id),
        ),
        (
            "a HELLO of version 0",
            frame(&PeerFrame::Hello {
                version: 0,
                instance_id: "v0".into(),
                capabilities: Capabilities::ALL,
            }),
        ),
        ("an outer length of zero", 0u32.to_be_bytes().to_vec()),
        (
            "an outer length over 1 MiB",
            ((1u32 << 20) + 1).to_be_bytes().to_vec(),
        ),
        ("lengths that do not add up", {
            let mut v = hello("lm");
            let extra = raw(0x02, 0, b"", b"");
            let mut bad = extra.clone();
            bad[0..4].copy_from_slice(&9u32.to_be_bytes());
            bad.push(0);
            v.extend(bad);
            v
        }),
        ("a zstd bomb after HELLO", {
            let mut v = hello("bomber");
            v.extend(raw(0x01, 0x01, b"w", &bomb));
            v
        }),
        ("a second HELLO", {
            let mut v = hello("twice");
            v.extend(hello("twice"));
            v
        }),
        ("undefined flag bits", {
            let mut v = hello("flags");
            v.extend(raw(0x02, 0x80, b"", b""));
            v
        }),
        ("invalid UTF-8 in a topic", {
            let mut v = hello("utf8");
            v.extend(raw(0x01, 0, &[0xff, 0xfe], b"{}"));
            v
        }),
        ("presence without the PRESENCE capability", {
            let mut v = frame(&PeerFrame::hello("presence", Capabilities(0x0B)));
            v.extend(raw(0x0C, 0, b"", b"{}"));
            v
        }),
        ("a presence chunk that is not the CRDT's shape", {
            let mut v = hello_sync("chunk");
            v.extend(raw(0x0C, 0, b"", br#"{"o":1,"e":[["t"]]}"#));
            v
        }),
        ("presence chunks speaking for two origins on one link", {
            let mut v = hello_sync("two-origins");
            v.extend(raw(0x0C, 0, b"", br#"{"o":1,"e":[]}"#));
            v.extend(raw(0x0C, 0, b"", br#"{"o":2,"e":[]}"#));
            v
        }),
    ];
    for (what, bytes) in cases {
        let mut s = p.attacker().await;
        // A write may fail once the node has hung up; the outcome is the same.
        let _ = s.write_all(&bytes).await;
        closed_by_node(&mut s, what).await;
        p.still_serves().await;
    }
    p.stop().await;
}

#[tokio::test]
async fn a_truncated_frame_or_a_silent_peer_is_dropped_by_the_handshake_deadline() {
    let mut p = pair().await;
    for bytes in [Vec::new(), hello("cut")[..10].to_vec()] {
        let mut s = p.attacker().await;
        s.write_all(&bytes).await.unwrap();
        closed_by_node(&mut s, "silent or truncated").await;
        p.still_serves().await;
    }
    p.stop().await;
}

#[tokio::test]
async fn unknown_types_are_skipped_and_counted_and_the_session_goes_on() {
    let mut p = pair().await;
    let mut s = p.attacker().await;
    let mut bytes = hello("future-node");
    bytes.extend(raw(0x7F, 0, b"", b""));
    bytes.extend(raw(0x42, 0, b"", b""));
    bytes.extend(frame(&PeerFrame::Ping));
    s.write_all(&bytes).await.unwrap();
    for _ in 0..100 {
        if p.a.health_snapshot()["cluster_unknown_message_types"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.a.health_snapshot()["cluster_unknown_message_types"], 2);
    assert_eq!(
        p.a.cluster_peers_count(),
        2,
        "the forward-compatible peer is linked"
    );
    drop(s);
    for _ in 0..100 {
        if p.a.cluster_peers_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.still_serves().await;
    p.stop().await;
}

#[tokio::test]
async fn garbage_floods_cost_one_socket_each_and_nothing_else() {
    let mut p = pair().await;
    let mut sockets = Vec::new();
    for i in 0..20u8 {
        let mut s = p.attacker().await;
        let junk: Vec<u8> = (0..4096u32)
            .map(|k| (k as u8).wrapping_mul(31) ^ i)
            .collect();
        let _ = s.write_all(&junk).await;
        sockets.push(s);
    }
    for s in &mut sockets {
        closed_by_node(s, "garbage").await;
    }
    p.still_serves().await;
    p.stop().await;
}
