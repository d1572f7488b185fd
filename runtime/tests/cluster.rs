//! The cluster mesh over loopback TCP: nodes in one process, each with its own listener and
//! clients, timings shortened (heartbeat 200 ms, dead after 3 s) so faults resolve quickly.

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
        dead_after: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(2),
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
    let peers: Vec<String> = peers.iter().map(|p| p.addr.clone()).collect();
    join_addrs(n, &peers);
}

fn join_addrs(n: &mut Node, peers: &[String]) {
    let config = fast(peers.to_vec(), &n.addr);
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
    subscribed_on(&n.server, topic).await
}

async fn subscribed_on(server: &ServerHandle, topic: &str) -> Ws {
    let ws = connect(server, None).await;
    let id = loop {
        match server.next_event(Duration::from_secs(5)).await {
            Some(ServerEvent::Connect(id, _)) => break id,
            Some(_) => {}
            None => panic!("no connect event"),
        }
    };
    server
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
async fn messages_a_crashed_peer_wanted_are_dead_letters_while_it_is_away() {
    let mut a = node(false).await;
    let b_addr = free_addr();
    let mut config = fast(vec![b_addr.clone()], &a.addr);
    config.link.dead_after = Duration::from_secs(3);
    a.server
        .connect_cluster_on(config, a.listener.take(), TcpConnector)
        .unwrap();
    let plain = ServerConfig {
        port: 0,
        ..Default::default()
    };
    let mut b = Crashable::start(plain, &b_addr, fast(vec![], &b_addr));
    let _wb = subscribed_on(b.server(), "t").await;
    eventually("interest", || a.server.cluster_routes("t") == 1).await;
    b.crash();
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
    // Declared dead (silent for the heartbeat timeout), it is still a peer A expects back:
    // what it wanted is still recorded.
    eventually("B declared dead", || {
        a.server.cluster_figures().dead_peers == 1
    })
    .await;
    a.server.broadcast("t", r#"{"x":2}"#);
    assert_eq!(a.server.get_cluster_dlq_entries().len(), 1);
    a.server.stop().await;
}

#[tokio::test]
async fn a_node_that_stops_gracefully_is_dead_at_once_on_its_peers() {
    let (mut a, mut b) = (node(false).await, node(false).await);
    let mut config = fast(vec![b.addr.clone()], &a.addr);
    // Long enough that only the goodbye can explain a quick death.
    config.link.dead_after = Duration::from_secs(30);
    a.server
        .connect_cluster_on(config, a.listener.take(), TcpConnector)
        .unwrap();
    join(&mut b, &[]);
    let _wb = subscribed(&b, "t").await;
    eventually("interest", || a.server.cluster_routes("t") == 1).await;
    b.server.stop().await;
    eventually("B left", || a.server.cluster_figures().dead_peers == 1).await;
    let h = a.server.health_snapshot();
    assert_eq!(
        (h["cluster_members"].clone(), h["cluster_suspects"].clone()),
        (0.into(), 0.into())
    );
    // It meant to go: nothing is recorded as lost to it.
    a.server.broadcast("t", "{}");
    assert!(a.server.get_cluster_dlq_entries().is_empty());
    a.server.stop().await;
}

/// A node on its own runtime, so it can crash: shutting the runtime down drops every task and
/// socket at once — no SHUTDOWN frame, no close handshake, as when the process dies.
struct Crashable {
    rt: Option<tokio::runtime::Runtime>,
    server: Option<ServerHandle>,
    addr: String,
}

impl Crashable {
    /// Starts `config` and joins the cluster with `cluster` on `cluster_addr` (bound now).
    fn start(config: ServerConfig, cluster_addr: &str, cluster: ClusterConfig) -> Crashable {
        let bind = cluster_addr.to_owned();
        // Built and entered on a plain thread: a test's runtime may not block on another.
        let (rt, server) = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let server = rt.block_on(async {
                let server = ServerHandle::start(&config).await.unwrap();
                let listener = TcpListener::bind(&bind).await.unwrap();
                server
                    .connect_cluster_on(cluster, Some(listener), TcpConnector)
                    .unwrap();
                server
            });
            (rt, server)
        })
        .join()
        .expect("the node's runtime started");
        Crashable {
            rt: Some(rt),
            server: Some(server),
            addr: cluster_addr.to_owned(),
        }
    }

    fn server(&self) -> &ServerHandle {
        self.server.as_ref().expect("running")
    }

    /// Everything of this node stops at once.
    fn crash(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        self.server = None;
    }
}

impl Drop for Crashable {
    fn drop(&mut self) {
        self.crash();
    }
}

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_crashed_peer_is_declared_dead_and_its_restart_is_linked_again() {
    let mut a = node(false).await;
    let b_addr = free_addr();
    join_addrs(&mut a, std::slice::from_ref(&b_addr));
    let plain = ServerConfig {
        port: 0,
        ..Default::default()
    };
    let mut b = Crashable::start(plain.clone(), &b_addr, fast(vec![], &b_addr));
    eventually("linked", || a.server.cluster_peers_count() == 1).await;
    let first = b.server().cluster().unwrap().instance_id().to_owned();
    b.crash();
    eventually("B declared dead", || {
        a.server.cluster_figures().dead_peers == 1
    })
    .await;
    assert_eq!(a.server.cluster_peers_count(), 0);
    // The same address comes back as a new incarnation: A's dial loop links it.
    let b2 = Crashable::start(plain, &b_addr, fast(vec![], &b_addr));
    let second = b2.server().cluster().unwrap().instance_id().to_owned();
    assert_ne!(first, second);
    eventually("relinked to the new B", || {
        a.server
            .cluster_info()
            .first()
            .map(|p| p.instance_id.clone())
            == Some(second.clone())
    })
    .await;
    assert_eq!(a.server.cluster_info()[0].address, b2.addr);
    a.server.stop().await;
}

const SECRET: &[u8] = b"cluster-test-secret-of-32-bytes-or-more";

fn jwt_presence() -> ServerConfig {
    ServerConfig {
        port: 0,
        presence_enabled: true,
        jwt: Some(wse_core::config::JwtSettings {
            secret: SECRET.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An authenticated client of `server` as `sub`, past its connect event.
async fn user(server: &ServerHandle, sub: &str) -> (Ws, wse_core::ConnId) {
    let token = support::hs256_token(SECRET, sub, None);
    let ws = connect(server, Some(&token)).await;
    loop {
        match server.next_event(Duration::from_secs(5)).await {
            Some(ServerEvent::AuthConnect(id, who, _)) if who == sub => return (ws, id),
            Some(_) => {}
            None => panic!("no auth connect event"),
        }
    }
}

/// The next `presence_*` frame, skipping `server_ready` and the like.
async fn presence_event(ws: &mut Ws) -> (String, String) {
    loop {
        let v = recv(ws).await;
        let t = v["t"].as_str().unwrap_or_default().to_owned();
        if t.starts_with("presence_") {
            return (t, v["p"]["user_id"].as_str().unwrap_or_default().to_owned());
        }
    }
}

#[tokio::test]
async fn presence_is_one_truth_across_nodes_and_a_crashed_nodes_users_leave() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = wse_runtime::net::Listener::local_addr(&listener)
        .unwrap()
        .to_string();
    let a = ServerHandle::start(&jwt_presence()).await.unwrap();
    a.connect_cluster_on(fast(vec![], &a_addr), Some(listener), TcpConnector)
        .unwrap();
    let c_addr = free_addr();
    let mut c = Crashable::start(jwt_presence(), &c_addr, fast(vec![a_addr.clone()], &c_addr));
    eventually("linked", || a.cluster_peers_count() == 1).await;
    // A watcher on A, in the topic.
    let (mut watcher, w) = user(&a, "watcher").await;
    a.subscribe_connection(w, &["room".into()], None, None)
        .unwrap();
    // Carol joins the room on C.
    let (carol_ws, carol) = {
        let server = c.server();
        let token = support::hs256_token(SECRET, "carol", None);
        let ws = connect(server, Some(&token)).await;
        let id = loop {
            match server.next_event(Duration::from_secs(5)).await {
                Some(ServerEvent::AuthConnect(id, _, _)) => break id,
                Some(_) => {}
                None => panic!("no auth connect on C"),
            }
        };
        (ws, id)
    };
    c.server()
        .subscribe_connection(
            carol,
            &["room".into()],
            Some(&serde_json::json!({"s": "on"})),
            None,
        )
        .unwrap();
    assert_eq!(
        presence_event(&mut watcher).await,
        ("presence_join".into(), "carol".into())
    );
    assert!(a.presence("room").contains_key("carol"));
    assert_eq!(a.presence_stats("room").num_users, 1);
    // C crashes: no leave is ever sent; A purges Carol once C is dead.
    c.crash();
    drop(carol_ws);
    assert_eq!(
        presence_event(&mut watcher).await,
        ("presence_leave".into(), "carol".into())
    );
    assert!(a.presence("room").is_empty());
    a.stop().await;
}

#[tokio::test]
async fn a_leave_on_one_node_reaches_the_others_and_a_user_on_two_nodes_stays_until_both_leave() {
    let (mut a, mut b) = (node(false).await, node(false).await);
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    for (n, peers) in [(&mut a, vec![ba.clone()]), (&mut b, vec![])] {
        let addr = n.addr.clone();
        let l = n.listener.take();
        let server = ServerHandle::start(&jwt_presence()).await.unwrap();
        server
            .connect_cluster_on(fast(peers, &addr), l, TcpConnector)
            .unwrap();
        n.server.stop().await;
        n.server = server;
    }
    let _ = aa;
    eventually("linked", || a.server.cluster_peers_count() == 1).await;
    let (mut watcher, w) = user(&b.server, "watcher").await;
    b.server
        .subscribe_connection(w, &["room".into()], None, None)
        .unwrap();
    let data = serde_json::json!({});
    // Dave on A and on B: one join on B's watcher (his B connection), none for the second.
    let (dave_b_ws, dave_b) = user(&b.server, "dave").await;
    b.server
        .subscribe_connection(dave_b, &["room".into()], Some(&data), None)
        .unwrap();
    assert_eq!(
        presence_event(&mut watcher).await,
        ("presence_join".into(), "dave".into())
    );
    let (dave_a_ws, dave_a) = user(&a.server, "dave").await;
    a.server
        .subscribe_connection(dave_a, &["room".into()], Some(&data), None)
        .unwrap();
    eventually("A sees dave", || {
        a.server.presence("room").contains_key("dave")
    })
    .await;
    eventually("B counts dave's two connections", || {
        b.server.presence("room").get("dave").map(|u| u.connections) == Some(2)
    })
    .await;
    // Dave leaves B: still present through A, so no leave on B.
    b.server.unsubscribe_connection(dave_b, None);
    drop(dave_b_ws);
    assert!(silent(&mut watcher).await, "no leave while dave is on A");
    assert!(b.server.presence("room").contains_key("dave"));
    // Dave leaves A too: the leave crosses the link.
    a.server.unsubscribe_connection(dave_a, None);
    drop(dave_a_ws);
    assert_eq!(
        presence_event(&mut watcher).await,
        ("presence_leave".into(), "dave".into())
    );
    assert!(b.server.presence("room").is_empty());
    a.server.stop().await;
    b.server.stop().await;
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

#[tokio::test]
async fn a_rolling_restart_drains_a_node_and_its_next_life_rejoins_and_resyncs() {
    // A and B know each other; B is drained (DRAIN: A stops routing to it), stopped
    // (SHUTDOWN: A declares it dead at once), and started again at the same address as a new
    // incarnation, which A links and routes to again, with its presence.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = wse_runtime::net::Listener::local_addr(&listener)
        .unwrap()
        .to_string();
    let b_addr = free_addr();
    let a = ServerHandle::start(&jwt_presence()).await.unwrap();
    a.connect_cluster_on(
        fast(vec![b_addr.clone()], &a_addr),
        Some(listener),
        TcpConnector,
    )
    .unwrap();
    let start_b = || async {
        let b = ServerHandle::start(&jwt_presence()).await.unwrap();
        let l = TcpListener::bind(&b_addr).await.unwrap();
        b.connect_cluster_on(fast(vec![a_addr.clone()], &b_addr), Some(l), TcpConnector)
            .unwrap();
        b
    };
    let b = start_b().await;
    let (_erin_ws, erin) = user(&b, "erin").await;
    b.subscribe_connection(erin, &["room".into()], Some(&serde_json::json!({})), None)
        .unwrap();
    eventually("erin visible on A, B routed", || {
        a.presence("room").contains_key("erin") && a.cluster_routes("room") == 1
    })
    .await;
    let first = b.cluster().unwrap().instance_id().to_owned();

    b.start_drain(4300, "rolling restart", Duration::from_secs(1));
    eventually("A routes nothing to the draining B", || {
        a.cluster_routes("room") == 0
    })
    .await;
    b.stop().await;
    eventually("B's goodbye: erin gone on A at once", || {
        a.presence("room").is_empty() && a.cluster_figures().dead_peers == 1
    })
    .await;

    let b2 = start_b().await;
    let (mut erin2_ws, erin2) = user(&b2, "erin").await;
    b2.subscribe_connection(erin2, &["room".into()], Some(&serde_json::json!({})), None)
        .unwrap();
    eventually("the next life is linked, routed and present", || {
        a.cluster_info().first().map(|p| p.instance_id.clone()) != Some(first.clone())
            && a.cluster_routes("room") == 1
            && a.presence("room").contains_key("erin")
    })
    .await;
    a.broadcast("room", r#"{"t":"back"}"#);
    loop {
        if recv(&mut erin2_ws).await["t"] == "back" {
            break;
        }
    }
    b2.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn server_hello_advertises_the_cluster_once_the_node_joined_one() {
    use futures_util::SinkExt;
    let mut a = node(false).await;
    let hello =
        r#"{"c":"WSE","t":"client_hello","p":{"client_version":"2.0.7","protocol_version":2}}"#;
    let features = |mut ws: Ws| async move {
        ws.send(Message::text(hello)).await.unwrap();
        loop {
            let v = recv(&mut ws).await;
            if v["t"] == "server_hello" {
                return v["p"]["features"]["cluster"].clone();
            }
        }
    };
    let before = connect(&a.server, None).await;
    let open_before = connect(&a.server, None).await;
    assert_eq!(features(before).await, false);
    join(&mut a, &[]);
    let after = connect(&a.server, None).await;
    assert_eq!(features(after).await, true);
    assert_eq!(
        features(open_before).await,
        true,
        "already open connections too"
    );
    a.server.stop().await;
}
