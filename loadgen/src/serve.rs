//! The bench server on the Rust runtime directly (no Python): the same control protocol as
//! `loadgen/bench_server.py` (see the crate docs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wse_core::config::{JwtSettings, ServerConfig};
use wse_core::ids::ConnId;
use wse_runtime::cluster::{ClusterConfig, ClusterError};
use wse_runtime::server::{Server, ServerEvent, ServerHandle, StartError};

use crate::BENCH_TOPIC;
use crate::conn::wall_us;

/// Bench server settings (the Python script's defaults).
#[derive(Clone, Debug)]
pub struct BenchServerConfig {
    /// Bind address.
    pub host: String,
    /// Port (0 = any).
    pub port: u16,
    /// HS256 secret.
    pub secret: Vec<u8>,
    /// Connection cap.
    pub max_connections: usize,
    /// Join a cluster listening on this port (on `host`); `None`: a single node.
    pub cluster_port: Option<u16>,
    /// Cluster peers to dial.
    pub cluster_peers: Vec<String>,
}

/// Counters of inbound `in` messages.
#[derive(Debug, Default)]
struct Inbound {
    received: AtomicU64,
    first_us: AtomicU64,
    last_us: AtomicU64,
}

/// Why the bench server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The cluster.
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
}

/// Starts the server (and joins the cluster when configured); the returned handle serves until
/// `stop`.
pub async fn start(config: &BenchServerConfig) -> Result<ServerHandle, ServeError> {
    let handle = start_node(config).await?;
    if config.cluster_port.is_some() || !config.cluster_peers.is_empty() {
        let mut cluster = ClusterConfig::new(config.cluster_peers.clone());
        cluster.cluster_port = config.cluster_port;
        cluster.bind_host = config.host.clone();
        cluster.cluster_addr = config.cluster_port.map(|p| format!("{}:{p}", config.host));
        if let Err(e) = handle.connect_cluster(cluster).await {
            handle.stop().await;
            return Err(e.into());
        }
    }
    Ok(handle)
}

async fn start_node(config: &BenchServerConfig) -> Result<ServerHandle, StartError> {
    let server_config = ServerConfig {
        host: config.host.clone(),
        port: config.port,
        max_connections: config.max_connections,
        jwt: Some(JwtSettings {
            secret: config.secret.clone(),
            ..Default::default()
        }),
        // Benchmarks measure traffic, not keep-alives.
        ping_interval_secs: 300,
        idle_timeout_secs: 600,
        ..Default::default()
    };
    ServerHandle::start(&server_config).await
}

/// Runs the application side of the bench protocol until `stop` resolves.
pub async fn run(server: Server, stop: impl std::future::Future<Output = ()>) {
    let epoch = Instant::now();
    let inbound = Arc::new(Inbound::default());
    tokio::pin!(stop);
    loop {
        let events = tokio::select! {
            biased;
            () = &mut stop => break,
            events = server.next_events(1024, Duration::from_millis(50)) => events,
        };
        for event in events {
            match event {
                ServerEvent::AuthConnect(id, user, _) if user.starts_with("f-") => {
                    let _ = server.subscribe_connection(id, &[BENCH_TOPIC.to_owned()], None, None);
                }
                ServerEvent::Msg(id, Value::Object(m)) => {
                    let kind = m.get("t").and_then(Value::as_str).unwrap_or("");
                    if kind == "in" {
                        let now = epoch.elapsed().as_micros() as u64;
                        if inbound.received.fetch_add(1, Ordering::Relaxed) == 0 {
                            inbound.first_us.store(now, Ordering::Relaxed);
                        }
                        inbound.last_us.store(now, Ordering::Relaxed);
                    } else {
                        control(&server, &inbound, id, kind, m.get("p"));
                    }
                }
                _ => {}
            }
        }
    }
}

fn control(server: &Server, inbound: &Arc<Inbound>, id: ConnId, kind: &str, p: Option<&Value>) {
    match kind {
        "bench_reset" => {
            inbound.received.store(0, Ordering::Relaxed);
            inbound.first_us.store(0, Ordering::Relaxed);
            inbound.last_us.store(0, Ordering::Relaxed);
            server.send(id, &stats(server, inbound));
        }
        "bench_stats" => server.send(id, &stats(server, inbound)),
        "bench_fanout" => {
            let field = |k: &str| {
                p.and_then(|p| p.get(k))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            let (count, size, rate) = (field("count"), field("size") as usize, field("rate"));
            let server = server.clone();
            tokio::spawn(async move {
                let sent = publish(&server, count, size, rate).await;
                let done = json!({"t": "bench_fanout_done", "p": sent}).to_string();
                server.send(id, &done);
            });
        }
        _ => {}
    }
}

async fn publish(server: &Server, count: u64, size: usize, rate: u64) -> Value {
    let pad = "x".repeat(size);
    let started = Instant::now();
    for seq in 0..count {
        if let Some(due_us) = (seq * 1_000_000).checked_div(rate) {
            let due = started + Duration::from_micros(due_us);
            tokio::time::sleep_until(due.into()).await;
        }
        let text = format!(
            r#"{{"t":"bench","p":{{"q":{seq},"st":{},"pad":"{pad}"}}}}"#,
            wall_us()
        );
        server.broadcast(BENCH_TOPIC, &text);
        if rate == 0 && seq % 64 == 63 {
            // Let the writers run between bursts, as a Python publisher thread would.
            tokio::task::yield_now().await;
        }
    }
    json!({"sent": count, "elapsed_us": started.elapsed().as_micros() as u64})
}

fn stats(server: &Server, inbound: &Inbound) -> String {
    json!({"t": "bench_stats", "p": {
        "pid": std::process::id(),
        "impl": "rust",
        "connections": server.connection_count(),
        "subscribers": server.topic_subscriber_count(BENCH_TOPIC),
        "routes": server.cluster_routes(BENCH_TOPIC),
        "peers": server.cluster_peers_count(),
        "received": inbound.received.load(Ordering::Relaxed),
        "dropped": server.inbound_dropped(),
        "first_us": inbound.first_us.load(Ordering::Relaxed),
        "last_us": inbound.last_us.load(Ordering::Relaxed),
    }})
    .to_string()
}
