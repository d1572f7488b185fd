//! Every scenario, small, against the Rust bench server in this process: the load generator
//! counts what it should (no loss, no duplicates, every handshake and ping) and the bench
//! control protocol works end to end. Figures are benchmarks' business, not asserted here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wse_loadgen::conn::Target;
use wse_loadgen::scenarios::{self, Common, Fanout};
use wse_loadgen::serve::{self, BenchServerConfig};

const SECRET: &[u8] = b"loadgen-test-secret-0123456789abcdef";

fn n(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

// One test: goose keeps process-wide state (its logger), so attacks run one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_the_rust_bench_server_and_counts_exactly() {
    let config = BenchServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        secret: SECRET.to_vec(),
        max_connections: 1000,
        cluster_port: None,
        cluster_peers: Vec::new(),
    };
    let handle = serve::start(&config).await.expect("bench server starts");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = tokio::spawn(serve::run((*handle).clone(), async {
        let _ = stop_rx.await;
    }));
    let common = Common {
        target: Arc::new(Target::new(handle.local_addr(), "/wse", SECRET.to_vec(), 2)),
        users: 5,
        hatch_rate: 100,
        report: None,
        timeout: Duration::from_secs(60),
    };

    let hs = scenarios::handshake(&common, 40, 4)
        .await
        .expect("handshake");
    assert_eq!(n(&hs, "failures"), 0, "{hs}");
    assert_eq!(n(&hs, "handshake_count"), 40, "{hs}");
    assert_eq!(
        n(&hs, "goose_requests"),
        40,
        "goose recorded each handshake: {hs}"
    );
    assert_eq!(hs["impl"], "rust");

    let fan = Fanout {
        subscribers: 20,
        messages: 30,
        size: 50,
        rate: 0,
        subscriber_targets: Vec::new(),
        settle: Duration::ZERO,
    };
    let f = scenarios::fanout(&common, fan).await.expect("fanout");
    assert_eq!(n(&f, "published"), 30, "{f}");
    assert_eq!(n(&f, "delivered"), 600, "{f}");
    assert_eq!(
        (n(&f, "lost"), n(&f, "duplicates"), n(&f, "reordered")),
        (0, 0, 0),
        "{f}"
    );
    assert_eq!(n(&f, "e2e_count"), 600, "a latency per delivery: {f}");

    let paced = Fanout {
        subscribers: 5,
        messages: 10,
        size: 10,
        rate: 200,
        subscriber_targets: Vec::new(),
        settle: Duration::ZERO,
    };
    let p = scenarios::fanout(&common, paced)
        .await
        .expect("paced fanout");
    assert_eq!((n(&p, "delivered"), n(&p, "lost")), (50, 0), "{p}");

    let i = scenarios::inbound(&common, 5, 400).await.expect("inbound");
    assert_eq!(n(&i, "expected"), 2000, "{i}");
    assert_eq!(n(&i, "received"), 2000, "{i}");
    assert_eq!(
        (n(&i, "lost"), n(&i, "server_reported_dropped")),
        (0, 0),
        "{i}"
    );

    let r = scenarios::rtt(&common, 2, 25).await.expect("rtt");
    assert_eq!((n(&r, "rtt_count"), n(&r, "failures")), (50, 0), "{r}");

    let idle = scenarios::idle(&common, 30, Duration::ZERO)
        .await
        .expect("idle");
    assert_eq!(
        (n(&idle, "opened"), n(&idle, "failures")),
        (30, 0),
        "{idle}"
    );
    assert!(n(&idle, "server_connections") >= 31, "{idle}");
    assert!(idle.get("rss_per_connection_kb").is_some(), "{idle}");

    // Cluster fan-out: publisher on this node, subscribers on two more nodes (B knows A and
    // C, C knows A), every message once to every subscriber across the mesh.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (ca, cb, cc) = (free(), free(), free());
    let node = |cluster_port: u16, peers: Vec<String>| BenchServerConfig {
        cluster_port: Some(cluster_port),
        cluster_peers: peers,
        ..config.clone()
    };
    let a = serve::start(&node(ca, vec![])).await.expect("node A");
    let b = serve::start(&node(
        cb,
        vec![format!("127.0.0.1:{ca}"), format!("127.0.0.1:{cc}")],
    ))
    .await
    .expect("node B");
    let c = serve::start(&node(cc, vec![format!("127.0.0.1:{ca}")]))
        .await
        .expect("node C");
    let (stop_nodes, stopped) = tokio::sync::watch::channel(false);
    let apps: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|h| {
            let mut stopped = stopped.clone();
            tokio::spawn(serve::run((**h).clone(), async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    let target = |h: &wse_runtime::server::ServerHandle| {
        Arc::new(Target::new(h.local_addr(), "/wse", SECRET.to_vec(), 2))
    };
    let cluster = Common {
        target: target(&a),
        ..common.clone()
    };
    let fan = Fanout {
        subscribers: 20,
        messages: 30,
        size: 50,
        rate: 0,
        subscriber_targets: vec![target(&b), target(&c)],
        settle: Duration::ZERO,
    };
    let f = scenarios::fanout(&cluster, fan)
        .await
        .expect("cluster fanout");
    assert_eq!(n(&f, "delivered"), 600, "{f}");
    assert_eq!(
        (n(&f, "lost"), n(&f, "duplicates"), n(&f, "reordered")),
        (0, 0, 0),
        "{f}"
    );
    assert_eq!(
        n(&f, "nodes"),
        1,
        "one process holds all three nodes here: {f}"
    );
    stop_nodes.send_replace(true);
    for app in apps {
        app.await.expect("node app ends");
    }
    for h in [a, b, c] {
        h.stop().await;
    }

    let _ = stop_tx.send(());
    app.await.expect("bench app ends");
    handle.stop().await;
}
