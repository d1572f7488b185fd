//! The cluster mesh over loopback TCP: nodes in one process, each with its own listener and
//! clients, timings shortened (heartbeat 200 ms, dead after 1 s) so faults resolve quickly.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use support::{Ws, connect};
use tokio_tungstenite::tungstenite::Message;
use wse_core::cluster::{BackoffConfig, DlqReason};
use wse_core::config::ServerConfig;
use wse_runtime::cluster::{ClusterConfig, ClusterError, LinkTimings, TlsFiles};
use wse_runtime::net::{TcpConnector, TcpListener};
use wse_runtime::server::{ServerEvent, ServerHandle};

/// One node: its server and the address of its cluster listener.
struct Node {
    server: ServerHandle,
    addr: String,
    listener: Option<TcpListener>,
}

async fn node(recovery: bool) -> Node {
    let config = ServerConfig {
        port: 0,
        recovery_enabled: recovery,
        ..Default::default()
    };
    let server = ServerHandle::start(&config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = wse_runtime::net::Listener::local_addr(&listener)
        .unwrap()
        .to_string();
    Node {
        server,
        addr,
        listener: Some(listener),
    }
}

fn fast(peers: Vec<String>, me: &str) -> ClusterConfig {
    let mut c = ClusterConfig::new(peers);
    c.cluster_addr = Some(me.to_owned());
    c.link = LinkTimings {
        heartbeat_interval: Duration::from_millis(200),
        dead_after: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(2),
        queue_capacity: 10_000,
        higher_id_grace: Duration::from_millis(200),
    };
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
        ..BackoffConfig::default()
    };
    c
}

fn join(n: &mut Node, peers: &[&Node]) {
    let peers = peers.iter().map(|p| p.addr.clone()).collect();
    let config = fast(peers, &n.addr);
    n.server
        .connect_cluster_on(config, n.listener.take(), TcpConnector)
        .unwrap();
}

/// Polls `cond` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn client(n: &Node) -> (Ws, wse_core::ConnId) {
    let ws = connect(&n.server, None).await;
    loop {
        match n.server.next_event(Duration::from_secs(5)).await {
            Some(ServerEvent::Connect(id, _)) => return (ws, id),
            Some(_) => {}
            None => panic!("no connect event"),
        }
    }
}

async fn subscribed(n: &Node, topic: &str) -> Ws {
    let (ws, id) = client(n).await;
    n.server
        .subscribe_connection(id, &[topic.to_owned()], None, None)
        .unwrap();
    ws
}

/// The next text frame as JSON (skipping pings), within 5 s.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("valid");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

async fn silent(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_millis(300), ws.next())
        .await
        .is_err()
}

#[tokio::test]
async fn a_broadcast_on_one_node_reaches_subscribers_on_every_node_exactly_once() {
    let (mut a, mut b, mut c) = (node(false).await, node(false).await, node(false).await);
    // Partial, one-sided lists: A knows B and C, B knows C, C knows nobody.
    let (a_view, b_view) = ((b.addr.clone(), c.addr.clone()), c.addr.clone());
    let config = fast(vec![a_view.0, a_view.1], &a.addr);
    a.server
        .connect_cluster_on(config, a.listener.take(), TcpConnector)
        .unwrap();
    let config = fast(vec![b_view], &b.addr);
    b.server
        .connect_cluster_on(config, b.listener.take(), TcpConnector)
        .unwrap();
    join(&mut c, &[]);
    let mut wa = subscribed(&a, "news").await;
    let mut wb = subscribed(&b, "news").await;
    let mut wc = subscribed(&c, "news").await;
    eventually("a full mesh", || {
        [&a, &b, &c]
            .iter()
            .all(|n| n.server.cluster_peers_count() == 2)
    })
    .await;
    eventually("interest converged", || {
        [&a, &b, &c]
            .iter()
            .all(|n| n.server.cluster_routes("news") == 2)
    })
    .await;
    for (i, origin) in [&a, &b, &c].iter().enumerate() {
        origin
            .server
            .broadcast("news", &format!(r#"{{"t":"n","p":{i}}}"#));
        for ws in [&mut wa, &mut wb, &mut wc] {
            let got = recv(ws).await;
            assert_eq!(got["p"], i, "{got}");
            assert_eq!(got["c"], "U");
        }
    }
    for ws in [&mut wa, &mut wb, &mut wc] {
        assert!(silent(ws).await, "each message exactly once");
    }
    for n in [&a, &b, &c] {
        let h = n.server.health_snapshot();
        assert_eq!(h["cluster_connected"], true);
        assert_eq!(h["cluster_peer_count"], 2);
        assert_eq!(h["cluster_messages_sent"], 2);
        assert_eq!(h["cluster_messages_delivered"], 2);
        assert_eq!(n.server.cluster_info().len(), 2);
    }
    for n in [&a, &b, &c] {
        n.server.stop().await;
    }
}

#[tokio::test]
async fn interest_routing_sends_a_topic_only_to_nodes_with_subscribers() {
    let (mut a, mut b) = (node(false).await, node(false).await);
    join(&mut a, &[&b]);
    join(&mut b, &[]);
    eventually("linked", || a.server.cluster_peers_count() == 1).await;
    // No subscriber anywhere: nothing leaves A.
    a.server.broadcast("quiet", "{}");
    assert_eq!(a.server.health_snapshot()["cluster_messages_sent"], 0);
    // A glob subscription on B makes A route the matching topics only.
    let mut wb = subscribed(&b, "px.*").await;
    eventually("SUB reached A", || a.server.cluster_routes("px.eur") == 1).await;
    a.server.broadcast("px.eur", r#"{"t":"px"}"#);
    a.server.broadcast("other", "{}");
    assert_eq!(recv(&mut wb).await["t"], "px");
    assert_eq!(a.server.health_snapshot()["cluster_messages_sent"], 1);
    // The last subscriber leaving sends UNSUB.
    drop(wb);
    eventually("UNSUB reached A", || a.server.cluster_routes("px.eur") == 0).await;
    a.server.stop().await;
    b.server.stop().await;
}

#[tokio::test]
async fn two_nodes_that_dial_each_other_keep_exactly_one_link() {
    let (mut a, mut b) = (node(false).await, node(false).await);
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    a.server
        .connect_cluster_on(fast(vec![ba], &aa), a.listener.take(), TcpConnector)
        .unwrap();
    b.server
        .connect_cluster_on(
            fast(vec![aa.clone()], &b.addr),
            b.listener.take(),
            TcpConnector,
        )
        .unwrap();
    eventually("linked", || {
        a.server.cluster_peers_count() == 1 && b.server.cluster_peers_count() == 1
    })
    .await;
    // Several heartbeats and backoff periods later: still one link each, and it is the same one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.server.cluster_peers_count(), 1);
    assert_eq!(b.server.cluster_peers_count(), 1);
    let (ia, ib) = (a.server.cluster_info(), b.server.cluster_info());
    assert_eq!(ia[0].instance_id, b.server.cluster().unwrap().instance_id());
    assert_eq!(ib[0].instance_id, a.server.cluster().unwrap().instance_id());
    assert_eq!(ia[0].address, b.addr);
    assert_eq!(ib[0].address, aa);
    a.server.stop().await;
    b.server.stop().await;
}

#[tokio::test]
async fn a_client_that_fails_over_to_another_node_recovers_what_it_missed() {
    let (mut a, mut b, mut c) = (node(true).await, node(true).await, node(true).await);
    join(&mut a, &[&b, &c]);
    join(&mut b, &[&c]);
    join(&mut c, &[]);
    let mut wb = subscribed(&b, "feed").await;
    let _wc = subscribed(&c, "feed").await;
    eventually("interest converged", || {
        a.server.cluster_routes("feed") == 2
    })
    .await;
    let first = a.server.broadcast("feed", r#"{"t":"f","n":0}"#).unwrap();
    let got = recv(&mut wb).await;
    // The stamp B delivers is the origin's (D16).
    assert_eq!(got["tp"], "feed");
    assert_eq!(got["e"], first.0.to_string());
    assert_eq!(got["o"], first.1);
    // The client "loses" node B; three more messages are published meanwhile.
    drop(wb);
    for n in 1..4 {
        a.server
            .broadcast("feed", &format!(r#"{{"t":"f","n":{n}}}"#));
    }
    // It reconnects to node C and asks for everything after the offset it has.
    eventually("C stored the stream", || {
        c.server
            .recovery_history("feed", 10)
            .is_some_and(|h| h.messages.len() == 4)
    })
    .await;
    let (mut wc2, id) = client(&c).await;
    let epoch = first.0.to_string();
    let outcome = c
        .server
        .subscribe_with_recovery(id, &["feed".into()], true, Some(&epoch), Some(first.1))
        .unwrap();
    assert!(outcome.recovered, "{outcome:?}");
    for n in 1..4 {
        let got = recv(&mut wc2).await;
        assert_eq!(
            (got["n"].clone(), got["o"].clone()),
            (n.into(), (first.1 + n).into())
        );
        assert_eq!(got["e"], epoch);
    }
    for n in [&a, &b, &c] {
        n.server.stop().await;
    }
}

#[tokio::test]
async fn a_draining_node_is_sent_no_new_routed_traffic() {
    let (mut a, mut b) = (node(false).await, node(false).await);
    join(&mut a, &[&b]);
    join(&mut b, &[]);
    let _wb = subscribed(&b, "t").await;
    eventually("interest", || a.server.cluster_routes("t") == 1).await;
    b.server
        .start_drain(4300, "draining", Duration::from_secs(1));
    eventually("DRAIN reached A", || a.server.cluster_routes("t") == 0).await;
    a.server.broadcast("t", "{}");
    assert_eq!(a.server.health_snapshot()["cluster_messages_sent"], 0);
    a.server.stop().await;
    b.server.stop().await;
}

#[tokio::test]
async fn messages_a_departed_peer_wanted_are_dead_letters_until_it_is_declared_dead() {
    let (mut a, mut b) = (node(false).await, node(false).await);
    let mut config = fast(vec![b.addr.clone()], &a.addr);
    config.link.dead_after = Duration::from_secs(3);
    a.server
        .connect_cluster_on(config, a.listener.take(), TcpConnector)
        .unwrap();
    join(&mut b, &[]);
    let _wb = subscribed(&b, "t").await;
    eventually("interest", || a.server.cluster_routes("t") == 1).await;
    let b_addr = b.addr.clone();
    let stopping = tokio::spawn(async move { b.server.stop().await });
    eventually("B gone", || a.server.cluster_peers_count() == 0).await;
    a.server.broadcast("t", r#"{"x":1}"#);
    a.server.broadcast("unwanted", "{}");
    let dlq = a.server.get_cluster_dlq_entries();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].topic, "t");
    assert_eq!(dlq[0].reason, DlqReason::PeerGone);
    assert_eq!(dlq[0].peer, b_addr);
    assert!(dlq[0].payload.contains(r#""x":1"#));
    assert!(a.server.get_cluster_dlq_entries().is_empty(), "drained");
    // Once B is dead (silent for the heartbeat timeout) nothing is recorded for it any more.
    eventually("B declared dead", || {
        a.server.cluster_figures().dead_peers == 1
    })
    .await;
    a.server.broadcast("t", r#"{"x":2}"#);
    assert!(a.server.get_cluster_dlq_entries().is_empty());
    stopping.await.unwrap();
    a.server.stop().await;
}

#[tokio::test]
async fn a_killed_peer_is_declared_dead_and_redialled_when_it_returns() {
    let (mut a, b) = (node(false).await, node(false).await);
    let b_addr = b.addr.clone();
    join(&mut a, &[&b]);
    let mut b = b;
    join(&mut b, &[]);
    eventually("linked", || a.server.cluster_peers_count() == 1).await;
    // B vanishes without SHUTDOWN: its runtime is dropped mid-flight (a crash).
    let Node { server, .. } = b;
    drop(server);
    // A finds out from the heartbeat (or the closed socket) and then redials the same
    // address; a new node there is linked again.
    let listener = TcpListener::bind(&b_addr).await;
    if let Ok(listener) = listener {
        let config = ServerConfig {
            port: 0,
            ..Default::default()
        };
        let b2 = ServerHandle::start(&config).await.unwrap();
        b2.connect_cluster_on(fast(vec![], &b_addr), Some(listener), TcpConnector)
            .unwrap();
        eventually("relinked to the new B", || {
            a.server
                .cluster_info()
                .first()
                .map(|p| p.instance_id.as_str())
                == b2.cluster().map(|c| c.instance_id())
        })
        .await;
        b2.stop().await;
    }
    a.server.stop().await;
}

#[tokio::test]
async fn connect_cluster_refuses_what_upstream_refuses() {
    let n = node(false).await;
    let mut seeds = ClusterConfig::new(vec![]);
    seeds.seeds = vec!["127.0.0.1:1".into()];
    let err = n
        .server
        .connect_cluster_on(seeds, None::<TcpListener>, TcpConnector)
        .unwrap_err();
    assert!(matches!(err, ClusterError::SeedsNeedAddr), "{err}");
    let bad = ClusterConfig::new(vec!["no-port".into()]);
    let err = n
        .server
        .connect_cluster_on(bad, None::<TcpListener>, TcpConnector)
        .unwrap_err();
    assert!(matches!(err, ClusterError::BadAddress(_)), "{err}");
    let partial = TlsFiles::from_parts(Some("a.pem".into()), None, None).unwrap_err();
    assert!(
        partial.to_string().starts_with("Partial TLS config: "),
        "{partial}"
    );
    n.server
        .connect_cluster_on(
            ClusterConfig::new(vec![]),
            None::<TcpListener>,
            TcpConnector,
        )
        .unwrap();
    let again = n
        .server
        .connect_cluster_on(
            ClusterConfig::new(vec![]),
            None::<TcpListener>,
            TcpConnector,
        )
        .unwrap_err();
    assert_eq!(again.to_string(), "Cluster already connected");
    assert!(matches!(
        n.server.reload_cluster_tls(&TlsFiles {
            cert: "c".into(),
            key: "k".into(),
            ca: "a".into()
        }),
        Err(ClusterError::TlsNotConfigured)
    ));
    n.server.stop().await;
}

/// Certificates made at test time: a CA and node certificates for 127.0.0.1, written as PEM
/// files in a fresh directory.
mod pki {
    use std::path::PathBuf;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use wse_runtime::cluster::TlsFiles;

    pub(crate) struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
        dir: PathBuf,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Ca {
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("CA key");
            let issuer = CertifiedIssuer::self_signed(params, key).expect("CA");
            let dir = std::env::temp_dir().join(format!(
                "wse-cluster-pki-{}-{name}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            std::fs::write(dir.join("ca.pem"), issuer.pem()).expect("write CA");
            Ca { issuer, dir }
        }

        /// Files for a node named `name` (SAN 127.0.0.1).
        pub(crate) fn node(&self, name: &str) -> TlsFiles {
            let key = KeyPair::generate().expect("node key");
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("SAN");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &self.issuer).expect("node cert");
            let (cert_path, key_path) = (
                self.dir.join(format!("{name}.pem")),
                self.dir.join(format!("{name}.key")),
            );
            std::fs::write(&cert_path, cert.pem()).expect("write cert");
            std::fs::write(&key_path, key.serialize_pem()).expect("write key");
            TlsFiles {
                cert: cert_path,
                key: key_path,
                ca: self.dir.join("ca.pem"),
            }
        }
    }

    impl Drop for Ca {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        h.finish()
    }
}

fn join_tls(n: &mut Node, peers: &[&Node], tls: TlsFiles) {
    let mut config = fast(peers.iter().map(|p| p.addr.clone()).collect(), &n.addr);
    config.tls = Some(tls);
    n.server
        .connect_cluster_on(config, n.listener.take(), TcpConnector)
        .unwrap();
}

#[tokio::test]
async fn an_mtls_mesh_links_routes_and_never_admits_a_node_from_another_ca() {
    let ca = pki::Ca::new("cluster");
    let rogue_ca = pki::Ca::new("rogue");
    let (mut a, mut b, mut r) = (node(false).await, node(false).await, node(false).await);
    join_tls(&mut a, &[&b], ca.node("a"));
    join_tls(&mut b, &[], ca.node("b"));
    // The rogue node dials both, and both dial it back (it is in nobody's list, but it tries).
    join_tls(&mut r, &[&a, &b], rogue_ca.node("r"));
    let mut wb = subscribed(&b, "secure").await;
    eventually("A and B linked over mTLS", || {
        a.server.cluster_routes("secure") == 1
    })
    .await;
    a.server.broadcast("secure", r#"{"t":"s"}"#);
    assert_eq!(recv(&mut wb).await["t"], "s");
    // Several dial periods later the rogue is still alone, and A–B is untouched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.server.cluster_peers_count(), 0);
    assert_eq!(a.server.cluster_peers_count(), 1);
    assert_eq!(b.server.cluster_peers_count(), 1);
    // A reload with unreadable files is refused and changes nothing; a good one is accepted.
    let bad = TlsFiles {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
        ca: "/nonexistent/ca.pem".into(),
    };
    let err = a.server.reload_cluster_tls(&bad).unwrap_err();
    assert!(err.to_string().starts_with("TLS config error: "), "{err}");
    a.server.reload_cluster_tls(&ca.node("a2")).unwrap();
    a.server.broadcast("secure", r#"{"t":"s2"}"#);
    assert_eq!(recv(&mut wb).await["t"], "s2");
    for n in [&a, &b, &r] {
        n.server.stop().await;
    }
}

#[tokio::test]
async fn nodes_that_know_only_one_seed_find_each_other_by_gossip() {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(node(false).await);
    }
    let seed = nodes[0].addr.clone();
    for (i, n) in nodes.iter_mut().enumerate() {
        let mut config = fast(vec![], &n.addr.clone());
        if i > 0 {
            config.seeds = vec![seed.clone()];
        }
        n.server
            .connect_cluster_on(config, n.listener.take(), TcpConnector)
            .unwrap();
    }
    eventually("a full mesh of four", || {
        nodes.iter().all(|n| n.server.cluster_peers_count() == 3)
    })
    .await;
    // A message published on the last node reaches a subscriber on the second.
    let mut w = subscribed(&nodes[1], "g").await;
    eventually("interest", || nodes[3].server.cluster_routes("g") == 1).await;
    nodes[3].server.broadcast("g", r#"{"t":"g"}"#);
    assert_eq!(recv(&mut w).await["t"], "g");
    for n in &nodes {
        n.server.stop().await;
    }
}
