//! `wse-loadgen`: load scenarios against a WSE-protocol server, and the Rust bench server.
//!
//! ```sh
//! wse-loadgen serve --port 5101                               # the Rust bench server
//! wse-loadgen --url ws://127.0.0.1:5101/wse fanout --subscribers 1000 --messages 200
//! ```
//! Every scenario prints goose's report and one `RESULT {json}` line (also appended to
//! `--out`). The secret comes from `WSE_BENCH_SECRET` (default: the bench scripts' one).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc: events are allocated on the runtime's threads and freed on another (Python's), a
/// pattern on which glibc malloc's arena locks showed in profiles (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use serde_json::Value;
use wse_loadgen::conn::{Target, raise_file_limit};
use wse_loadgen::scenarios::{self, Common, Fanout, ScenarioError};
use wse_loadgen::serve::{self, BenchServerConfig};

/// The bench scripts' shared development secret (32 bytes; loopback benchmarks only).
const DEFAULT_SECRET: &str = "wse-bench-secret-0123456789abcdef";

#[derive(Parser, Debug)]
#[command(
    name = "wse-loadgen",
    version,
    about = "Load generator for WSE-protocol servers"
)]
struct Cli {
    /// The server's WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:5101/wse", global = true)]
    url: String,
    /// HS256 secret the server validates tokens with.
    #[arg(long, env = "WSE_BENCH_SECRET", default_value = DEFAULT_SECRET, hide_env_values = true, global = true)]
    secret: String,
    /// goose users; each owns an equal share of a scenario's connections.
    #[arg(long, default_value_t = 50, global = true)]
    users: usize,
    /// goose users started per second.
    #[arg(long, default_value_t = 500, global = true)]
    hatch_rate: usize,
    /// Loopback source addresses to connect from (127.0.0.1..N): more ephemeral ports.
    #[arg(long, default_value_t = 4, global = true)]
    sources: usize,
    /// Upper bound in seconds on every wait of a scenario.
    #[arg(long, default_value_t = 120, global = true)]
    timeout: u64,
    /// Append the result JSON line to this file.
    #[arg(long, global = true)]
    out: Option<String>,
    /// Write goose's HTML report here.
    #[arg(long, global = true)]
    report: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open and close N connections (JWT, until server_ready), C at a time.
    Handshake {
        /// Connections in total.
        #[arg(long, default_value_t = 2000)]
        connections: usize,
        /// Handshakes in flight.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// N subscribers, K publications of S bytes published by the server.
    Fanout {
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Publications.
        #[arg(long, default_value_t = 200)]
        messages: u64,
        /// Payload padding bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Publications per second (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Cluster fan-out: subscribers connect round-robin to these nodes (repeat the flag),
        /// the publisher is --url.
        #[arg(long = "sub-url")]
        sub_urls: Vec<String>,
        /// Cluster fan-out: when the publisher cannot report its routes (the original), the
        /// wait in ms after it has a live link to every subscriber node, before publishing.
        #[arg(long, default_value_t = 1000)]
        cluster_settle_ms: u64,
    },
    /// N connections each send M messages pipelined; the server drains and counts them.
    Inbound {
        /// Connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Messages per connection.
        #[arg(long, default_value_t = 2000)]
        messages: u64,
    },
    /// ping → PONG round trips.
    Rtt {
        /// Connections (one goose user each).
        #[arg(long, default_value_t = 10)]
        connections: usize,
        /// Round trips per connection.
        #[arg(long, default_value_t = 500)]
        pings: usize,
    },
    /// Hold N idle connections; the server's RSS per connection.
    Idle {
        /// Connections.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds to hold them after measuring.
        #[arg(long, default_value_t = 0)]
        hold: u64,
    },
    /// Run the Rust bench server (the runtime directly, no Python) until Ctrl-C.
    Serve {
        /// Bind address.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port.
        #[arg(long, default_value_t = 5101)]
        port: u16,
        /// Connection cap.
        #[arg(long, default_value_t = 100_000)]
        max_connections: usize,
        /// Join a cluster: this node's cluster port (on --host).
        #[arg(long)]
        cluster_port: Option<u16>,
        /// Cluster peers to dial, host:port (repeat the flag).
        #[arg(long = "cluster-peer")]
        cluster_peers: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let limit = raise_file_limit(200_000);
    let secret = cli.secret.clone().into_bytes();
    if let Command::Serve {
        host,
        port,
        max_connections,
        cluster_port,
        cluster_peers,
    } = &cli.command
    {
        let config = BenchServerConfig {
            host: host.clone(),
            port: *port,
            secret,
            max_connections: *max_connections,
            cluster_port: *cluster_port,
            cluster_peers: cluster_peers.clone(),
        };
        return match serve::start(&config).await {
            Ok(handle) => {
                println!(
                    "bench server on ws://{}/wse (pid {}, file limit {limit})",
                    handle.local_addr(),
                    std::process::id()
                );
                let app = (*handle).clone();
                serve::run(app, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
                handle.stop().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wse-loadgen serve: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(&cli, secret).await {
        Ok(result) => {
            let line = result.to_string();
            println!("RESULT {line}");
            if let Some(path) = &cli.out {
                use std::io::Write;
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{line}"));
                if let Err(e) = written {
                    eprintln!("wse-loadgen: cannot append to {path}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wse-loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli, secret: Vec<u8>) -> Result<Value, Box<dyn std::error::Error>> {
    let (addr, path) = parse_url(&cli.url)?;
    let common = Common {
        target: Arc::new(Target::new(addr, &path, secret, cli.sources)),
        users: cli.users,
        hatch_rate: cli.hatch_rate,
        report: cli.report.clone(),
        timeout: Duration::from_secs(cli.timeout),
    };
    let result: Result<Value, ScenarioError> = match cli.command {
        Command::Handshake {
            connections,
            concurrency,
        } => scenarios::handshake(&common, connections, concurrency).await,
        Command::Fanout {
            subscribers,
            messages,
            size,
            rate,
            ref sub_urls,
            cluster_settle_ms,
        } => {
            let mut subscriber_targets = Vec::new();
            for url in sub_urls {
                let (addr, path) = parse_url(url)?;
                subscriber_targets.push(Arc::new(Target::new(
                    addr,
                    &path,
                    common.target.secret.clone(),
                    cli.sources,
                )));
            }
            scenarios::fanout(
                &common,
                Fanout {
                    subscribers,
                    messages,
                    size,
                    rate,
                    subscriber_targets,
                    settle: Duration::from_millis(cluster_settle_ms),
                },
            )
            .await
        }
        Command::Inbound {
            connections,
            messages,
        } => scenarios::inbound(&common, connections, messages).await,
        Command::Rtt { connections, pings } => scenarios::rtt(&common, connections, pings).await,
        Command::Idle { connections, hold } => {
            scenarios::idle(&common, connections, Duration::from_secs(hold)).await
        }
        Command::Serve { .. } => unreachable!("handled in main"),
    };
    Ok(result?)
}

/// `ws://host:port/path` → the socket address and the path.
fn parse_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/wse".to_owned()),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    Ok((addr, path))
}
