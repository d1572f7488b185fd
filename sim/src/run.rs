//! One simulation: build the turmoil world from a [`Scenario`] and a seed, step it through the
//! fault phase, heal everything, let it settle, make the clients leave, and check.
//!
//! Hosts: `server<i>` runs the real runtime ([`ServerHandle::start_on_with`] on a
//! [`SimListener`]) with the standalone server's built-in client protocol ([`app::run`]) and a
//! publisher; `client<i>` runs the Rust client ([`wse_runtime::client`]) over a [`SimDialer`]
//! and records what its application receives. The fault timeline is applied between steps.
//!
//! Determinism: turmoil's RNG, the servers' and clients' seeds and every wall clock derive
//! from the seed; hosts are single-threaded runtimes with virtual time; every `select!` in the
//! runtime and the client is `biased`. Run one simulation per process (tokio task ids are
//! process-global): the CLI re-executes itself per seed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use wse_core::WallClock;
use wse_core::auth::encode_jwt;
use wse_core::client::{ClientConfig, Event, ReconnectPolicy, ReconnectStrategy};
use wse_core::cluster::{BackoffConfig, BreakerConfig, FrameEncoder, PeerFrame};
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_core::conn::ConnSettings;
use wse_runtime::client::{self, ClientOptions};
use wse_runtime::cluster::{ClusterConfig, LinkTimings};
use wse_runtime::server::{Server, ServerHandle, StartOptions};
use wse_runtime::standalone::app::{self, AppPolicy};

use crate::check::{self, Final, NodeView, Violation};
use crate::net::{SimConnector, SimDialer, SimListener, Throttles};
use crate::scenario::{Action, Scenario};
use crate::trace::{self, Entry, Record, Trace};

/// The port every server host listens on.
pub const PORT: u16 = 5007;
/// The port every server host's cluster listener is on (with more than one server).
pub const CLUSTER_PORT: u16 = 5008;
/// The HS256 secret of the simulated deployment.
const SECRET: &[u8] = b"wse-sim-secret-wse-sim-secret-0123456789";
/// 2026-01-01T00:00:00Z: the simulation's wall clock starts here, whatever the real date.
const EPOCH_SECS: u64 = 1_767_225_600;
/// How often a server host samples its budgets.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A bug planted on purpose, to prove a checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// client0 loses its 5th stamped message between the machine and the application.
    DropStamped,
    /// client0 delivers its 5th stamped message twice.
    DeliverTwice,
    /// One user stays in the presence of the first topic after every client left.
    GhostPresence,
    /// A rogue peer (it skips interest routing) sends server1 an MSG for a topic nobody there
    /// subscribes to, after interest has converged.
    Misroute,
    /// The first dead letter the origin records for a publication is lost before the trace.
    DlqDrop,
    /// A dead letter for a message never published appears in the origin's DLQ.
    DlqForge,
    /// The heal leaves the last two servers partitioned from each other (a node that can never
    /// link to one peer: the mesh stays incomplete).
    StuckPartition,
    /// The last server's presence view, read at the end of the settle phase, keeps a user
    /// nobody is connected as (a node that never forgot a dead origin's user).
    NodeGhost,
    /// watcher0 gets its first `presence_join` twice (a duplicate join event).
    DuplicateJoin,
    /// watcher0 misses its first `presence_leave` (a lost leave event).
    LostLeave,
}

impl Plant {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Plant::DropStamped => "drop-stamped",
            Plant::DeliverTwice => "deliver-twice",
            Plant::GhostPresence => "ghost-presence",
            Plant::Misroute => "misroute",
            Plant::DlqDrop => "dlq-drop",
            Plant::DlqForge => "dlq-forge",
            Plant::StuckPartition => "stuck-partition",
            Plant::NodeGhost => "node-ghost",
            Plant::DuplicateJoin => "duplicate-join",
            Plant::LostLeave => "lost-leave",
        }
    }
}

impl std::str::FromStr for Plant {
    type Err = String;
    fn from_str(s: &str) -> Result<Plant, String> {
        match s {
            "drop-stamped" => Ok(Plant::DropStamped),
            "deliver-twice" => Ok(Plant::DeliverTwice),
            "ghost-presence" => Ok(Plant::GhostPresence),
            "misroute" => Ok(Plant::Misroute),
            "dlq-drop" => Ok(Plant::DlqDrop),
            "dlq-forge" => Ok(Plant::DlqForge),
            "stuck-partition" => Ok(Plant::StuckPartition),
            "node-ghost" => Ok(Plant::NodeGhost),
            "duplicate-join" => Ok(Plant::DuplicateJoin),
            "lost-leave" => Ok(Plant::LostLeave),
            other => Err(format!(
                "unknown plant {other:?} (drop-stamped, deliver-twice, ghost-presence, misroute, dlq-drop, dlq-forge, stuck-partition, node-ghost, duplicate-join, lost-leave)"
            )),
        }
    }
}

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// A planted bug.
    pub plant: Option<Plant>,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Digest of the trace.
    pub digest: String,
    /// Broken invariants (empty: the run passed).
    pub violations: Vec<Violation>,
    /// The whole trace.
    pub entries: Vec<Entry>,
    /// Virtual time simulated.
    pub virtual_ms: u64,
}

impl Report {
    /// Counts of the trace's main records: publications, deliveries, reconnections, gaps,
    /// recoveries, NotRecovered notices.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &self.entries {
            let k = match &e.record {
                Record::Publish { .. } => "published",
                Record::Deliver { .. } => "delivered",
                Record::Ready {
                    reconnected: true, ..
                } => "reconnects",
                Record::Gap { .. } => "gaps",
                Record::Recovered { .. } => "recoveries",
                Record::NotRecovered { .. } => "not_recovered",
                Record::Encrypted { .. } => "key_exchanges",
                Record::KeyRotated { .. } => "key_rotations",
                Record::Fault(_) => "faults",
                Record::DeadLetter { .. } => "dead_letters",
                _ => continue,
            };
            *counts.entry(k).or_default() += 1;
        }
        counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What hosts and the step loop share.
struct World {
    scenario: Scenario,
    seed: u64,
    plant: Option<Plant>,
    trace: Trace,
    throttles: Throttles,
    /// Set when the clients must leave.
    finish: AtomicBool,
    /// The publisher's running number (continues across server incarnations).
    next_n: AtomicU64,
    server_incarnations: Vec<AtomicU32>,
    client_sessions: Vec<AtomicU32>,
    servers: Mutex<Vec<Option<ServerProbe>>>,
    /// Stamped deliveries seen per client (for the planted bugs).
    delivered: Vec<AtomicU64>,
    /// Each server host's address (to name a cluster peer known by its socket address).
    server_ips: Mutex<Vec<IpAddr>>,
    /// A dead letter was dropped or forged already (the DLQ plants act once).
    dlq_planted: AtomicBool,
    /// Each server's delay before its first start (seed joins in a random order).
    start_delay_ms: Vec<u64>,
    /// Set by a `leave` fault: the client closes and waits for a restart.
    leave: Vec<AtomicBool>,
    /// Set when the watchers must leave (after the clients did).
    watchers_finish: AtomicBool,
    /// The presence-event plants act once.
    presence_planted: AtomicBool,
}

impl World {
    fn clustered(&self) -> bool {
        self.scenario.topology.servers > 1
    }

    /// The server index behind a cluster address: `server<i>:<port>`, or `<ip>:<port>`.
    fn server_of(&self, addr: &str) -> Option<usize> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        if let Some(i) = host.strip_prefix("server").and_then(|i| i.parse().ok()) {
            return Some(i);
        }
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        lock(&self.server_ips).iter().position(|x| *x == ip)
    }
}

#[derive(Clone)]
struct ServerProbe {
    server: Server,
    tasks_baseline: usize,
    tasks_now: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Virtual milliseconds since the simulation started (inside a host).
fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn wall_now() -> WallClock {
    WallClock::from_unix_micros(EPOCH_SECS * 1_000_000 + now_ms() * 1_000)
}

fn server_config(s: &Scenario) -> ServerConfig {
    ServerConfig {
        host: "0.0.0.0".into(),
        port: PORT,
        jwt: Some(JwtSettings {
            secret: SECRET.to_vec(),
            algorithm: JwtAlgorithm::Hs256,
            ..JwtSettings::default()
        }),
        recovery_enabled: true,
        recovery_buffer_size: s.server.recovery_buffer_size,
        recovery_max_messages: s.server.recovery_max_messages,
        recovery_memory_budget: s.server.recovery_memory_budget,
        presence_enabled: s.server.presence,
        max_outbound_queue_bytes: s.server.max_outbound_queue_bytes,
        ping_interval_secs: s.server.ping_interval_secs,
        idle_timeout_secs: s.server.idle_timeout_secs,
        key_rotation_interval_secs: s.server.key_rotation_interval_secs,
        ..ServerConfig::default()
    }
}

/// Server `index`'s cluster: static peers (all others, or only the lower ones when one-sided),
/// timings shortened so links die and come back within a scenario.
fn cluster_config(s: &Scenario, index: usize) -> ClusterConfig {
    let peers = (0..s.topology.servers)
        .filter(|j| *j != index && (!s.cluster.one_sided || *j < index))
        .map(|j| format!("server{j}:{CLUSTER_PORT}"))
        .collect();
    let mut c = if s.cluster.seeds.is_empty() {
        ClusterConfig::new(peers)
    } else {
        // Seed joins: the same seed list on every node (a seed skips itself), no static peers.
        let mut c = ClusterConfig::new(Vec::new());
        c.seeds = s
            .cluster
            .seeds
            .iter()
            .map(|j| format!("server{j}:{CLUSTER_PORT}"))
            .collect();
        c
    };
    c.cluster_addr = Some(format!("server{index}:{CLUSTER_PORT}"));
    c.link = LinkTimings {
        heartbeat_interval: Duration::from_millis(500),
        dead_after: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(2),
        queue_capacity: 10_000,
        higher_id_grace: Duration::from_millis(300),
    };
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        ..BackoffConfig::default()
    };
    c.breaker = BreakerConfig {
        failure_threshold: s.cluster.breaker_failures,
        open_duration: Duration::from_millis(s.cluster.breaker_open_ms),
        half_open_attempts: 1,
        success_threshold: 1,
    };
    c
}

fn token(user: &str) -> String {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(user));
    claims.insert("exp".into(), Value::from(EPOCH_SECS + 30 * 86_400));
    encode_jwt(&claims, SECRET, JwtAlgorithm::Hs256, None).unwrap_or_default()
}

async fn server_host(world: Arc<World>, index: usize) -> turmoil::Result {
    let incarnation = world.server_incarnations[index].fetch_add(1, Ordering::SeqCst);
    if incarnation == 0 && world.start_delay_ms[index] > 0 {
        tokio::time::sleep(Duration::from_millis(world.start_delay_ms[index])).await;
        world
            .trace
            .push(now_ms(), Record::Note(format!("server{index} starts")));
    }
    let config = server_config(&world.scenario);
    let settings = Arc::new(ConnSettings::from_config(&config)?);
    let listener = SimListener::bind(PORT, world.throttles.clone()).await?;
    let seed = world.seed ^ ((index as u64 + 1) << 48) ^ (u64::from(incarnation) << 32);
    let handle = ServerHandle::start_on_with(
        listener,
        &config,
        settings,
        StartOptions {
            http: None,
            seed: Some(seed),
            wall_origin: Some(wall_now()),
        },
    );
    let server: Server = (*handle).clone();
    if world.clustered() {
        let cluster_listener = SimListener::bind(CLUSTER_PORT, Throttles::default()).await?;
        server.connect_cluster_on(
            cluster_config(&world.scenario, index),
            Some(cluster_listener),
            SimConnector,
        )?;
    }
    tokio::spawn(app::run(server.clone(), AppPolicy::default()));
    let mine: Vec<String> = world
        .scenario
        .published_topics()
        .into_iter()
        .filter(|t| world.scenario.cluster.origin(t) == index)
        .collect();
    if !mine.is_empty() {
        tokio::spawn(publisher(
            Arc::clone(&world),
            server.clone(),
            index,
            incarnation,
            mine,
        ));
    }
    if world.plant == Some(Plant::Misroute) && index == 0 && incarnation == 0 {
        tokio::spawn(rogue_peer(Arc::clone(&world)));
    }
    let tasks_now = Arc::new(AtomicU64::new(0));
    let tasks_baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    lock(&world.servers)[index] = Some(ServerProbe {
        server: server.clone(),
        tasks_baseline,
        tasks_now: Arc::clone(&tasks_now),
    });
    let budget = config.recovery_memory_budget as u64;
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let health = server.health_snapshot();
        let figure = |k: &str| health.get(k).and_then(Value::as_u64).unwrap_or(0);
        world.trace.push(
            now_ms(),
            Record::ServerSample {
                server: index,
                recovery_bytes: figure("recovery_total_bytes"),
                recovery_budget: budget,
                connections: figure("connections"),
            },
        );
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        tasks_now.store(alive as u64, Ordering::SeqCst);
        if world.clustered() {
            let f = server.cluster_figures();
            world.trace.push(
                now_ms(),
                Record::ClusterSample {
                    server: index,
                    incarnation,
                    peers: f.peers,
                    unwanted: f.messages_unwanted,
                    breaker_opened: f.breaker_opened,
                },
            );
            record_dead_letters(&world, &server, index, None);
        }
        // Keep the handle alive for as long as the host runs.
        let _ = &handle;
    }
}

/// Publishes one numbered message to each of this server's topics every round; never ends (a
/// host's task count must not change when it is done). In a cluster it publishes with
/// `broadcast`, and around each publication records which peers it is linked to (when that
/// changed) and the dead letters the publication made — in the same synchronous step, so the
/// DLQ checker knows exactly what the origin knew.
async fn publisher(
    world: Arc<World>,
    server: Server,
    index: usize,
    incarnation: u32,
    topics: Vec<String>,
) {
    let w = &world.scenario.workload;
    let pad = "x".repeat(w.payload_bytes);
    let clustered = world.clustered();
    let mut linked: Option<BTreeSet<(usize, String)>> = None;
    // Rounds are numbered slots from `publish_from_ms`; a restarted server resumes at the
    // first slot not yet due.
    let mut slot = now_ms()
        .saturating_sub(w.publish_from_ms)
        .div_ceil(w.publish_every_ms);
    loop {
        let due = w.publish_from_ms + slot * w.publish_every_ms;
        if due > w.publish_until_ms {
            break;
        }
        let now = now_ms();
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
        slot += 1;
        for topic in &topics {
            let n = world.next_n.fetch_add(1, Ordering::SeqCst);
            let text = json!({"t": "tick", "p": {"n": n, "pad": pad}}).to_string();
            if !clustered {
                if let Some((epoch, offset)) = server.broadcast_local(topic, &text) {
                    world.trace.push(
                        now_ms(),
                        Record::Publish {
                            topic: topic.clone(),
                            epoch: epoch.0,
                            offset,
                            n,
                        },
                    );
                }
                continue;
            }
            let now_linked: BTreeSet<(usize, String)> = server
                .cluster_info()
                .into_iter()
                .filter_map(|p| Some((world.server_of(&p.address)?, p.instance_id)))
                .collect();
            if linked.as_ref() != Some(&now_linked) {
                world.trace.push(
                    now_ms(),
                    Record::Links {
                        server: index,
                        incarnation,
                        linked: now_linked.iter().map(|(j, _)| *j).collect(),
                        instances: now_linked.iter().map(|(_, id)| id.clone()).collect(),
                    },
                );
                linked = Some(now_linked);
            }
            if let Some((epoch, offset)) = server.broadcast(topic, &text) {
                world.trace.push(
                    now_ms(),
                    Record::Publish {
                        topic: topic.clone(),
                        epoch: epoch.0,
                        offset,
                        n,
                    },
                );
            }
            record_dead_letters(&world, &server, index, Some(n));
        }
    }
    std::future::pending::<()>().await;
}

/// Drains `server`'s DLQ into the trace. `routed`: the number of the publication just
/// broadcast (entries for it were made by that very `route`).
fn record_dead_letters(world: &World, server: &Server, index: usize, routed: Option<u64>) {
    for d in server.get_cluster_dlq_entries() {
        let n = serde_json::from_str::<Value>(&d.payload)
            .ok()
            .and_then(|v| v.get("p")?.get("n")?.as_u64())
            .unwrap_or(u64::MAX);
        let record = Record::DeadLetter {
            server: index,
            topic: d.topic.clone(),
            n,
            peer: world.server_of(&d.peer),
            reason: d.reason.as_str().to_owned(),
            routed: routed == Some(n),
        };
        match world.plant {
            Some(Plant::DlqDrop)
                if routed == Some(n) && !world.dlq_planted.swap(true, Ordering::SeqCst) =>
            {
                continue;
            }
            Some(Plant::DlqForge) if !world.dlq_planted.swap(true, Ordering::SeqCst) => {
                world.trace.push(
                    now_ms(),
                    Record::DeadLetter {
                        server: index,
                        topic: d.topic.clone(),
                        n: n.wrapping_add(1 << 40),
                        peer: world.server_of(&d.peer),
                        reason: d.reason.as_str().to_owned(),
                        routed: false,
                    },
                );
            }
            _ => {}
        }
        world.trace.push(now_ms(), record);
    }
}

/// The `misroute` plant: a peer that ignores interest routing joins server1's mesh once
/// interest has converged and sends it an MSG for a topic nobody subscribes to, then leaves.
async fn rogue_peer(world: Arc<World>) {
    let t = &world.scenario.timing;
    let at = t.heal_at_ms + t.settle_ms.saturating_sub(1_500);
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
    let addr = format!("server1:{CLUSTER_PORT}");
    let connect = wse_runtime::net::Connector::connect(&SimConnector, &addr);
    let Ok(mut stream) = connect.await else {
        return;
    };
    let mut bytes = Vec::new();
    let mut encoder = FrameEncoder::new();
    let frames = [
        PeerFrame::hello("rogue-peer", wse_runtime::cluster::CAPABILITIES),
        PeerFrame::Msg {
            topic: "nobody.subscribes".into(),
            payload: json!({"t": "tick", "p": {"n": u64::MAX}}).to_string(),
            compressed: false,
            trailer: None,
        },
    ];
    for f in &frames {
        let _ = encoder.encode(f, &mut bytes);
    }
    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, &bytes).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn client_config(s: &Scenario, index: usize) -> ClientConfig {
    let c = &s.client;
    ClientConfig {
        topics: s.topics_of(index),
        presence: s.server.presence.then(|| json!({"status": "online"})),
        reconnect: ReconnectPolicy {
            strategy: ReconnectStrategy::Exponential,
            base: Duration::from_millis(c.reconnect_base_ms),
            max: Duration::from_millis(c.reconnect_max_ms),
            ..ReconnectPolicy::default()
        },
        ping_interval: Duration::from_millis(c.ping_interval_ms),
        idle_timeout: Duration::from_millis(c.idle_timeout_ms),
        ready_timeout: Duration::from_secs(2),
        encryption: c.encryption,
        ..ClientConfig::default()
    }
}

async fn client_host(world: Arc<World>, index: usize) -> turmoil::Result {
    let session = world.client_sessions[index].fetch_add(1, Ordering::SeqCst);
    world.leave[index].store(false, Ordering::SeqCst);
    let mut options = ClientOptions::new(format!("ws://server0:{PORT}/wse"));
    options.token = Some(token(&world.scenario.user_of(index)));
    options.seed = Some(world.seed ^ ((index as u64 + 1) << 40) ^ u64::from(session));
    options.wall_origin = Some(wall_now());
    options.connect_timeout = Duration::from_secs(2);
    let s = &world.scenario;
    let hosts = (0..s.topology.servers)
        .map(|i| format!("server{i}"))
        .collect();
    let dialer = SimDialer::failover(hosts, s.home_of(index), PORT);
    let mut handle = client::spawn(dialer.clone(), options, client_config(s, index))?;
    let mut closing = false;
    loop {
        let event = tokio::select! {
            biased;
            e = handle.next_event() => e,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if !closing && world.finish.load(Ordering::SeqCst) {
                    closing = true;
                    handle.close();
                }
                if !closing && world.leave[index].load(Ordering::SeqCst) {
                    closing = true;
                    world.trace.push(now_ms(), Record::Leave { client: index, session });
                    handle.close();
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        record(&world, index, session, dialer.connected_to(), event);
    }
    handle.join().await;
    if !world.finish.load(Ordering::SeqCst) {
        // Left: stay away until a bounce starts a new session (the host keeps running).
        std::future::pending::<()>().await;
    }
    Ok(())
}

/// Watcher `index`: connected to server `index` only, subscribed to the presence topic
/// without presence of its own; records the presence frames it receives (node `index`'s view
/// of joins and leaves) and, when its subscription is acknowledged, the node's view then.
async fn watcher_host(world: Arc<World>, index: usize) -> turmoil::Result {
    let s = &world.scenario;
    let Some(p) = &s.presence else {
        return Ok(());
    };
    let topic = p.topic.clone();
    let mut options = ClientOptions::new(format!("ws://server{index}:{PORT}/wse"));
    options.token = Some(token(&format!("watcher{index}")));
    options.seed = Some(world.seed ^ ((index as u64 + 1) << 36) ^ 0x77);
    options.wall_origin = Some(wall_now());
    options.connect_timeout = Duration::from_secs(2);
    let config = ClientConfig {
        topics: vec![topic.clone()],
        presence: None,
        ..client_config(s, 0)
    };
    let dialer = SimDialer::new(format!("server{index}"), PORT);
    let mut handle = client::spawn(dialer, options, config)?;
    let mut closing = false;
    let mut acked = false;
    loop {
        let event = tokio::select! {
            biased;
            e = handle.next_event() => e,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if !closing && world.watchers_finish.load(Ordering::SeqCst) {
                    closing = true;
                    handle.close();
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let at = now_ms();
        match event {
            Event::SubscriptionAck { .. } if !acked => {
                acked = true;
                let present = lock(&world.servers)[index].as_ref().map(|probe| {
                    probe
                        .server
                        .presence(&topic)
                        .into_keys()
                        .collect::<Vec<_>>()
                });
                world.trace.push(
                    at,
                    Record::WatcherReady {
                        watcher: index,
                        present,
                    },
                );
            }
            Event::Disconnected { .. } => {
                if acked {
                    world.trace.push(at, Record::WatcherDown { watcher: index });
                }
                acked = false;
            }
            Event::Message(d) if acked => {
                let env = &d.envelope;
                let join = match env.t.as_deref() {
                    Some("presence_join") => true,
                    Some("presence_leave") => false,
                    _ => continue,
                };
                let Some(user) = env
                    .p
                    .as_ref()
                    .and_then(|p| p.get("user_id"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                let rec = Record::PresenceEvent {
                    watcher: index,
                    join,
                    user: user.to_owned(),
                };
                if index == 0 {
                    match world.plant {
                        Some(Plant::DuplicateJoin)
                            if join && !world.presence_planted.swap(true, Ordering::SeqCst) =>
                        {
                            world.trace.push(at, rec.clone());
                        }
                        Some(Plant::LostLeave)
                            if !join && !world.presence_planted.swap(true, Ordering::SeqCst) =>
                        {
                            continue;
                        }
                        _ => {}
                    }
                }
                world.trace.push(at, rec);
            }
            _ => {}
        }
    }
    handle.join().await;
    std::future::pending::<()>().await;
    Ok(())
}

fn record(world: &World, client: usize, session: u32, server: usize, event: Event) {
    let at = now_ms();
    let rec = match event {
        Event::Message(delivered) => {
            let env = &delivered.envelope;
            let Some(stamp) = &env.stamp else { return };
            let n = env
                .p
                .as_ref()
                .and_then(|p| p.get("n"))
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let record = Record::Deliver {
                client,
                session,
                topic: stamp.topic.clone(),
                epoch: stamp.epoch,
                offset: stamp.offset,
                n,
            };
            let k = world.delivered[client].fetch_add(1, Ordering::SeqCst) + 1;
            match world.plant {
                Some(Plant::DropStamped) if client == 0 && k == 5 => return,
                Some(Plant::DeliverTwice) if client == 0 && k == 5 => {
                    world.trace.push(at, record.clone());
                }
                _ => {}
            }
            record
        }
        Event::NotRecovered {
            topic,
            epoch,
            offset,
        } => Record::NotRecovered {
            client,
            session,
            topic,
            epoch,
            offset,
        },
        Event::Recovered { topic, count } => Record::Recovered {
            client,
            session,
            topic,
            count,
        },
        Event::Gap {
            topic,
            expected,
            got,
        } => Record::Gap {
            client,
            session,
            topic,
            expected,
            got,
        },
        Event::Ready { reconnected, .. } => Record::Ready {
            client,
            session,
            reconnected,
            server,
        },
        Event::Disconnected { close, .. } => Record::Disconnected {
            client,
            session,
            close,
        },
        Event::ServerError { code, message } => {
            Record::Note(format!("client{client} server error {code}: {message}"))
        }
        Event::ProtocolError(detail) => Record::ProtocolError {
            client,
            session,
            detail,
        },
        Event::Encrypted => Record::Encrypted { client, session },
        Event::KeyRotated => Record::KeyRotated { client, session },
        Event::SubscriptionAck {
            success_topics,
            failed_topics,
        } => Record::Note(format!(
            "client{client} subscription ack: ok {success_topics:?} failed {failed_topics:?}"
        )),
        Event::Binary(_) => return,
    };
    world.trace.push(at, rec);
}

/// Each server's first-start delay: `0..start_spread_ms`, drawn from the seed.
fn start_delays(s: &Scenario, seed: u64) -> Vec<u64> {
    let mut x = seed ^ 0x7374_6172_745f_6f72;
    (0..s.topology.servers)
        .map(|_| {
            // SplitMix64.
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % s.cluster.start_spread_ms.max(1)
        })
        .collect()
}

/// Runs `scenario` with `options.seed` in this process (one simulation per process); a
/// `[chaos]` timeline is drawn from the seed first.
pub fn run(scenario: &Scenario, options: &RunOptions) -> Report {
    let expanded = scenario.expand(options.seed);
    let s = &expanded;
    let end_ms = s.timing.heal_at_ms + s.timing.settle_ms + s.timing.drain_ms;
    let world = Arc::new(World {
        scenario: s.clone(),
        seed: options.seed,
        plant: options.plant,
        trace: Trace::default(),
        throttles: Throttles::default(),
        finish: AtomicBool::new(false),
        next_n: AtomicU64::new(0),
        server_incarnations: (0..s.topology.servers).map(|_| AtomicU32::new(0)).collect(),
        client_sessions: (0..s.topology.clients).map(|_| AtomicU32::new(0)).collect(),
        servers: Mutex::new(vec![None; s.topology.servers]),
        delivered: (0..s.topology.clients).map(|_| AtomicU64::new(0)).collect(),
        server_ips: Mutex::new(Vec::new()),
        dlq_planted: AtomicBool::new(false),
        start_delay_ms: start_delays(s, options.seed),
        leave: (0..s.topology.clients)
            .map(|_| AtomicBool::new(false))
            .collect(),
        watchers_finish: AtomicBool::new(false),
        presence_planted: AtomicBool::new(false),
    });
    let mut sim = turmoil::Builder::new()
        .rng_seed(options.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(Duration::from_millis(end_ms + 60_000))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .build();
    for i in 0..s.topology.servers {
        let w = Arc::clone(&world);
        sim.host(format!("server{i}"), move || server_host(Arc::clone(&w), i));
    }
    for i in 0..s.topology.clients {
        let w = Arc::clone(&world);
        sim.host(format!("client{i}"), move || client_host(Arc::clone(&w), i));
    }
    for i in 0..s.watchers() {
        let w = Arc::clone(&world);
        sim.host(format!("watcher{i}"), move || {
            watcher_host(Arc::clone(&w), i)
        });
    }
    *lock(&world.server_ips) = (0..s.topology.servers)
        .map(|i| sim.lookup(format!("server{i}")))
        .collect();

    let mut faults = s.faults.clone();
    faults.sort_by_key(|f| f.at_ms);
    let mut faults = faults.into_iter().peekable();
    let mut violations = Vec::new();
    let mut crashed: BTreeSet<String> = BTreeSet::new();
    let mut healed = false;
    let mut fin = Final {
        presence_enabled: s.server.presence,
        // Each live cluster link keeps up to two tasks on a node (a session and its writer);
        // with seed joins the dial loops of the addresses learned by gossip come on top.
        tasks_allowance: if s.cluster.seeds.is_empty() { 2 } else { 3 } * (s.topology.servers - 1),
        ..Final::default()
    };
    if s.cluster.start_spread_ms > 0 {
        let mut order: Vec<(u64, usize)> = world.start_delay_ms.iter().copied().zip(0..).collect();
        order.sort_unstable();
        world.trace.push(
            0,
            Record::Note(format!("start order (delay ms, server): {order:?}")),
        );
    }
    let settle_end = s.timing.heal_at_ms + s.timing.settle_ms;
    let mut settled = false;
    loop {
        let now = u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX);
        while let Some(f) = faults.next_if(|f| f.at_ms <= now) {
            apply(&mut sim, &world, &mut crashed, &f.action);
            world
                .trace
                .push(now, Record::Fault(format!("{:?}", f.action)));
        }
        if !healed && now >= s.timing.heal_at_ms {
            healed = true;
            heal(&mut sim, &world, &mut crashed);
            world.trace.push(now, Record::Fault("heal".into()));
        }
        if !settled && now >= settle_end {
            settled = true;
            for i in 0..s.topology.clients {
                if sim.is_host_running(format!("client{i}")) {
                    fin.live_clients.insert(i);
                }
            }
            fin.presence_settled = presence_of(&world, s);
            fin.views = node_views(&world, s);
            if options.plant == Some(Plant::NodeGhost)
                && let Some(v) = fin.views.last_mut()
            {
                v.presence.insert("ghost".into(), 1);
            }
            world.finish.store(true, Ordering::SeqCst);
        }
        if settled
            && !world.watchers_finish.load(Ordering::SeqCst)
            && now >= settle_end + s.timing.drain_ms / 2
        {
            fin.presence_after_nodes = node_views(&world, s)
                .into_iter()
                .map(|v| (v.server, v.presence.into_keys().collect()))
                .collect();
            world.watchers_finish.store(true, Ordering::SeqCst);
        }
        if now >= end_ms {
            break;
        }
        if let Err(e) = sim.step() {
            violations.push(Violation {
                checker: "host",
                detail: format!("a host failed at {now} ms: {e}"),
            });
            break;
        }
    }
    for (i, sessions) in world.client_sessions.iter().enumerate() {
        let n = sessions.load(Ordering::SeqCst);
        if n > 0 {
            fin.last_session.insert(i, n - 1);
        }
    }
    fin.presence_after = presence_of(&world, s);
    if options.plant == Some(Plant::GhostPresence)
        && let Some(topic) = s.workload.topics.first()
    {
        fin.presence_after
            .entry(topic.clone())
            .or_default()
            .insert(s.user_of(0));
    }
    if let Some(probe) = lock(&world.servers)[0].clone() {
        fin.connections_after = probe.server.connection_count();
        fin.slow_consumer_drops = probe.server.slow_consumer_drops();
        fin.tasks_baseline = Some(probe.tasks_baseline);
        fin.tasks_after = Some(probe.tasks_now.load(Ordering::SeqCst) as usize);
    }
    world.trace.push(
        end_ms,
        Record::Note(format!(
            "server0 at the end: {} connections, {:?} tasks ({:?} when started), {} slow-consumer closes",
            fin.connections_after, fin.tasks_after, fin.tasks_baseline, fin.slow_consumer_drops
        )),
    );
    let entries = world.trace.entries();
    violations.extend(check::check(s, &entries, &fin));
    for v in &violations {
        world
            .trace
            .push(end_ms, Record::Note(format!("{}: {}", v.checker, v.detail)));
    }
    let entries = world.trace.entries();
    Report {
        scenario: s.name.clone(),
        seed: options.seed,
        digest: trace::digest(&entries),
        violations,
        entries,
        virtual_ms: end_ms,
    }
}

/// Every live node's membership and presence view (of the presence topic).
fn node_views(world: &World, s: &Scenario) -> Vec<NodeView> {
    let topic = s.presence.as_ref().map(|p| p.topic.clone());
    lock(&world.servers)
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.as_ref()?)))
        .map(|(server, p)| {
            let f = p.server.cluster_figures();
            NodeView {
                server,
                instance: p
                    .server
                    .cluster()
                    .map(|c| c.instance_id().to_owned())
                    .unwrap_or_default(),
                linked: p
                    .server
                    .cluster_info()
                    .into_iter()
                    .map(|i| i.instance_id)
                    .collect(),
                members: f.members,
                suspects: f.suspects,
                presence: topic
                    .as_deref()
                    .map(|t| {
                        p.server
                            .presence(t)
                            .into_iter()
                            .map(|(u, v)| (u, v.connections))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn presence_of(world: &World, s: &Scenario) -> BTreeMap<String, BTreeSet<String>> {
    let servers = lock(&world.servers);
    let mut out = BTreeMap::new();
    for topic in &s.workload.topics {
        let users: BTreeSet<String> = servers
            .iter()
            .flatten()
            .flat_map(|p| p.server.presence(topic).into_keys())
            .collect();
        out.insert(topic.clone(), users);
    }
    out
}

fn apply(sim: &mut turmoil::Sim<'_>, world: &World, crashed: &mut BTreeSet<String>, a: &Action) {
    match a {
        Action::Partition { a, b } => sim.partition(a.as_str(), b.as_str()),
        Action::PartitionOneway { from, to } => sim.partition_oneway(from.as_str(), to.as_str()),
        Action::Repair { a, b } => sim.repair(a.as_str(), b.as_str()),
        Action::RepairOneway { from, to } => sim.repair_oneway(from.as_str(), to.as_str()),
        Action::Hold { a, b } => sim.hold(a.as_str(), b.as_str()),
        Action::Release { a, b } => sim.release(a.as_str(), b.as_str()),
        Action::Latency {
            a,
            b,
            ms,
            jitter_ms,
        } => {
            sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(*ms));
            sim.set_link_max_message_latency(
                a.as_str(),
                b.as_str(),
                Duration::from_millis(ms + jitter_ms),
            );
        }
        Action::Loss { a, b, rate } => sim.set_link_fail_rate(a.as_str(), b.as_str(), *rate),
        Action::Throttle {
            client,
            bytes_per_sec,
        } => world
            .throttles
            .set(sim.lookup(client.as_str()), *bytes_per_sec),
        Action::Unthrottle { client } => world.throttles.clear(sim.lookup(client.as_str())),
        Action::Crash { host } => {
            if crashed.insert(host.clone()) {
                if host.starts_with("server") {
                    forget_server(world, host);
                }
                sim.crash(host.as_str());
            }
        }
        Action::Bounce { host } => {
            crashed.remove(host);
            if host.starts_with("server") {
                forget_server(world, host);
            }
            sim.bounce(host.as_str());
        }
        Action::Leave { host } => {
            if let Some(i) = host
                .strip_prefix("client")
                .and_then(|i| i.parse::<usize>().ok())
                && !crashed.contains(host)
            {
                world.leave[i].store(true, Ordering::SeqCst);
                // Restarted by a bounce, or by the heal.
                crashed.insert(host.clone());
            }
        }
    }
}

fn forget_server(world: &World, host: &str) {
    if let Some(i) = host
        .strip_prefix("server")
        .and_then(|i| i.parse::<usize>().ok())
    {
        if let Some(slot) = lock(&world.servers).get_mut(i) {
            *slot = None;
        }
    }
}

/// Undoes every fault: links repaired, released, back to normal latency and no loss, no
/// throttles, crashed hosts restarted.
/// Undoes every link fault between `a` and `b`: partitions both ways, holds, latency, loss.
fn heal_link(sim: &mut turmoil::Sim<'_>, a: &str, b: &str) {
    sim.repair(a, b);
    sim.repair_oneway(a, b);
    sim.repair_oneway(b, a);
    sim.release(a, b);
    sim.set_link_latency(a, b, Duration::from_millis(1));
    sim.set_link_fail_rate(a, b, 0.0);
}

fn heal(sim: &mut turmoil::Sim<'_>, world: &World, crashed: &mut BTreeSet<String>) {
    let s = &world.scenario;
    let servers: Vec<String> = (0..s.topology.servers)
        .map(|i| format!("server{i}"))
        .collect();
    let clients: Vec<String> = (0..s.topology.clients)
        .map(|i| format!("client{i}"))
        .collect();
    for (i, a) in servers.iter().enumerate() {
        for b in &servers[i + 1..] {
            heal_link(sim, a, b);
        }
    }
    for server in &servers {
        for client in &clients {
            heal_link(sim, server, client);
        }
    }
    world.throttles.clear_all();
    if world.plant == Some(Plant::StuckPartition) && servers.len() >= 2 {
        let (a, b) = (&servers[servers.len() - 2], &servers[servers.len() - 1]);
        sim.partition(a.as_str(), b.as_str());
    }
    for host in std::mem::take(crashed) {
        if host.starts_with("server") {
            forget_server(world, &host);
        }
        sim.bounce(host.as_str());
    }
}

/// Wall-clock seconds a run took (for the CLI's report; never part of the trace).
pub fn wall_seconds(start: SystemTime) -> f64 {
    start.elapsed().map_or(0.0, |d| d.as_secs_f64())
}
