//! The cluster mesh (UPSTREAM §10, issue 11): TCP (optionally mTLS) links to every peer, one
//! [`wse_core::cluster::Link`] machine per link, interest routing, and cross-node recovery
//! stamps.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`ClusterConfig`], [`ClusterError`], [`Cluster`]: start, route, stop, figures |
//! | `mesh.rs` | the registry of live links: exactly one per peer (D14), departed peers' interest, the DLQ |
//! | `session.rs` | one link's reader and writer tasks, the dial loops, the accept loop |
//! | [`tls`] | mTLS configuration (rustls with the ring provider) |
//!
//! The server owns a [`Cluster`] once `connect_cluster` ran and reaches it through the [`Node`]
//! trait in the other direction (delivery of routed messages, the local interest snapshot, the
//! clock), so the mesh knows nothing of connections and the server nothing of links.
//!
//! Lock order: the server's subscription lock (interest changes), or its recovery store
//! (publishing), then the mesh, then one link, then the DLQ. Nothing holds a link's lock while
//! delivering or while taking the mesh.

mod mesh;
mod session;
pub mod tls;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wse_core::cluster::membership::{Membership, MembershipConfig};
use wse_core::cluster::presence_sync::PresenceChunk;
use wse_core::cluster::{
    BackoffConfig, BreakerConfig, Capabilities, DeadLetter, DeadLetterQueue, LinkConfig,
    RecoveryTrailer,
};
use wse_core::presence::NodeId;
use wse_core::{Instant, WallClock};

use crate::net::{Connector, Listener};
use mesh::Mesh;
pub use tls::{ClusterTls, TlsError, TlsFiles};

/// Most live peer links (UPSTREAM §10.7 `MAX_CLUSTER_PEERS`).
pub const MAX_CLUSTER_PEERS: usize = 256;
/// Inbound sessions allowed in their handshake at once (UPSTREAM §10.1).
pub const MAX_INBOUND_HANDSHAKES: usize = 128;
/// One write of a link's writer gathers frames up to this size (UPSTREAM §10.2).
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// What this implementation offers in HELLO: the original's four bits and our presence CRDT
/// (`PRESENCE_SYNC`); presence is exchanged only with peers that have both presence bits.
pub const CAPABILITIES: Capabilities =
    Capabilities(Capabilities::ALL.0 | Capabilities::PRESENCE_SYNC.0);

/// What `connect_cluster` takes (UPSTREAM §10.10) plus the timings, which tests shorten.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Static peers (`host:port`), dialled and redialled forever; ignored when `seeds` is set.
    pub peers: Vec<String>,
    /// Seed addresses; require `cluster_addr`.
    pub seeds: Vec<String>,
    /// The address this node announces (`host:port`), also used to skip itself.
    pub cluster_addr: Option<String>,
    /// The dedicated port inbound peers connect to; `None`: this node only dials.
    pub cluster_port: Option<u16>,
    /// The host the cluster port binds (UPSTREAM: `0.0.0.0`).
    pub bind_host: String,
    /// mTLS files; `None`: plain TCP.
    pub tls: Option<TlsFiles>,
    /// Heartbeat, deadlines and queue bound of every link.
    pub link: LinkTimings,
    /// The per-peer circuit breaker.
    pub breaker: BreakerConfig,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
}

/// Link timings (UPSTREAM §10.5 values by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTimings {
    /// PING period.
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is dead.
    pub dead_after: Duration,
    /// TCP connect, TLS handshake and HELLO exchange, each.
    pub handshake_timeout: Duration,
    /// A socket write that makes no progress for this long ends the link.
    pub write_timeout: Duration,
    /// Data frames a link queues at most.
    pub queue_capacity: usize,
    /// Extra wait before the node with the higher instance id redials a peer it lost, so the
    /// lower one dials first and the two do not race (a race is resolved, but costs a link).
    pub higher_id_grace: Duration,
}

impl Default for LinkTimings {
    fn default() -> LinkTimings {
        LinkTimings {
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            queue_capacity: 10_000,
            higher_id_grace: Duration::from_secs(2),
        }
    }
}

impl ClusterConfig {
    /// Static peers, no TLS, no listener, default timings.
    pub fn new(peers: Vec<String>) -> ClusterConfig {
        ClusterConfig {
            peers,
            seeds: Vec::new(),
            cluster_addr: None,
            cluster_port: None,
            bind_host: "0.0.0.0".into(),
            tls: None,
            link: LinkTimings::default(),
            breaker: BreakerConfig::default(),
            backoff: BackoffConfig::default(),
        }
    }

    /// The addresses to dial: the seeds when given (UPSTREAM: `peers` is then ignored), else
    /// the static peers; this node's own `cluster_addr` and duplicates removed.
    pub fn dial_targets(&self) -> Vec<String> {
        let list = if self.seeds.is_empty() {
            &self.peers
        } else {
            &self.seeds
        };
        let mut out: Vec<String> = Vec::new();
        for a in list {
            if Some(a) != self.cluster_addr.as_ref() && !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// The static peers this node dials: none when seeds are given (UPSTREAM: `peers` is then
    /// ignored).
    pub fn peers_to_dial(&self) -> Vec<String> {
        if self.seeds.is_empty() {
            self.peers.clone()
        } else {
            Vec::new()
        }
    }

    /// The checks of UPSTREAM §10.10 that need no I/O.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if !self.seeds.is_empty() && self.cluster_addr.is_none() {
            return Err(ClusterError::SeedsNeedAddr);
        }
        for a in self.dial_targets().iter().chain(&self.cluster_addr) {
            if !is_host_port(a) {
                return Err(ClusterError::BadAddress(a.clone()));
            }
        }
        self.breaker
            .validate()
            .and(self.backoff.validate())
            .map_err(|e| ClusterError::Config(e.to_string()))
    }
}

/// `host:port` with a non-empty host and a port number (hostnames allowed, `[v6]:port` too).
fn is_host_port(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Why `connect_cluster` refused (messages as UPSTREAM §10.10).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `connect_cluster` before `start()`.
    #[error("Server not started")]
    NotStarted,
    /// A second `connect_cluster`.
    #[error("Cluster already connected")]
    AlreadyConnected,
    /// `seeds` without `cluster_addr`.
    #[error("seeds= requires cluster_addr= (the address other nodes reach this one at)")]
    SeedsNeedAddr,
    /// A peer, seed or cluster address that is not `host:port`.
    #[error("invalid cluster address {0:?}: expected host:port")]
    BadAddress(String),
    /// TLS files (partial set, unreadable, invalid).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `reload_cluster_tls` on a cluster without TLS.
    #[error("Cluster TLS not configured")]
    TlsNotConfigured,
    /// Breaker or backoff settings out of range.
    #[error("cluster config error: {0}")]
    Config(String),
    /// The cluster port could not be bound.
    #[error("cannot bind the cluster port {addr}: {source}")]
    Bind {
        /// `host:port`.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What the mesh needs from the server it belongs to.
pub trait Node: Send + Sync + 'static {
    /// Delivers a publication a peer routed here to the local subscribers (stored under its
    /// origin's stamp when it carries one and recovery is on).
    /// Returns false when no local subscriber had the topic (counted as
    /// [`ClusterCounters::messages_unwanted`]).
    fn deliver_routed(&self, topic: &str, payload: &str, trailer: Option<RecoveryTrailer>) -> bool;
    /// Calls `f` with every local subscription key (the RESYNC payload) and this node's
    /// presence entries as PresenceFull chunks, holding subscription and presence changes back
    /// until `f` returns (what reports them to the mesh runs after): a new link gets either the
    /// snapshot with a change in it, or the change after it.
    fn with_snapshot(&self, f: &mut dyn FnMut(&[String], &[String]));
    /// Merges a peer's presence entries (remote joins and leaves reach local subscribers).
    fn merge_presence(&self, chunk: PresenceChunk);
    /// Forgets a dead node's presence (its users leave, unless present elsewhere).
    fn forget_presence(&self, origin: NodeId);
    /// The clocks (virtual under simulation).
    fn now(&self) -> (Instant, WallClock);
}

/// One live link as `cluster_info()` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's announced address, else the dialled one, else its socket address.
    pub address: String,
    /// Its instance id.
    pub instance_id: String,
    /// The negotiated capability bits.
    pub capabilities: u32,
    /// When the link was established, Unix milliseconds.
    pub connected_at_ms: u64,
}

impl PeerInfo {
    /// The dict of UPSTREAM §7.8.
    pub fn to_json(&self) -> Value {
        json!({
            "address": self.address,
            "instance_id": self.instance_id,
            "capabilities": self.capabilities,
            "connected_at": self.connected_at_ms,
        })
    }
}

/// Cluster traffic counters (health keys and metrics).
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// MSG frames queued to peers.
    pub messages_sent: std::sync::atomic::AtomicU64,
    /// MSG frames received and delivered locally.
    pub messages_delivered: std::sync::atomic::AtomicU64,
    /// Messages a peer could not take (each also a DLQ entry).
    pub messages_dropped: std::sync::atomic::AtomicU64,
    /// Bytes written to peers.
    pub bytes_sent: std::sync::atomic::AtomicU64,
    /// Bytes read from peers.
    pub bytes_received: std::sync::atomic::AtomicU64,
    /// Redials after an established link ended.
    pub reconnects: std::sync::atomic::AtomicU64,
    /// Frames of unknown types skipped.
    pub unknown_message_types: std::sync::atomic::AtomicU64,
    /// Peer incarnations declared dead (silent past the heartbeat timeout, or restarted).
    pub dead_peers: std::sync::atomic::AtomicU64,
    /// MSG frames received for a topic no local subscriber had (in flight across an UNSUB,
    /// or routed against the interest this node announced).
    pub messages_unwanted: std::sync::atomic::AtomicU64,
    /// Times a dial loop's circuit breaker opened.
    pub breaker_opened: std::sync::atomic::AtomicU64,
}

/// A figure-by-figure view for health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterFigures {
    /// Live links.
    pub peers: usize,
    /// See [`ClusterCounters`].
    pub messages_sent: u64,
    /// See [`ClusterCounters`].
    pub messages_delivered: u64,
    /// See [`ClusterCounters`].
    pub messages_dropped: u64,
    /// See [`ClusterCounters`].
    pub bytes_sent: u64,
    /// See [`ClusterCounters`].
    pub bytes_received: u64,
    /// See [`ClusterCounters`].
    pub reconnects: u64,
    /// See [`ClusterCounters`].
    pub unknown_message_types: u64,
    /// See [`ClusterCounters`].
    pub messages_unwanted: u64,
    /// See [`ClusterCounters`].
    pub breaker_opened: u64,
    /// Entries in the dead-letter queue.
    pub dlq_size: usize,
    /// See [`ClusterCounters`].
    pub dead_peers: u64,
    /// Nodes with a live link (membership's view).
    pub members: usize,
    /// Nodes whose link ended, not yet declared dead.
    pub suspects: usize,
}

/// A running mesh (cheap to clone).
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

/// Starts a dial loop for an address (built where the connector's type is known).
type DialSpawner = Box<dyn Fn(Arc<Inner>, String) + Send + Sync>;

struct Inner {
    instance_id: String,
    spawn_dial: DialSpawner,
    config: ClusterConfig,
    tls: Option<ClusterTls>,
    node: Weak<dyn Node>,
    mesh: Mutex<Mesh>,
    dlq: Mutex<DeadLetterQueue>,
    counters: ClusterCounters,
    /// Notified when a link is registered or ends, and when a peer announces its address.
    changed: Notify,
    cancel: CancellationToken,
    tasks: TaskTracker,
    rng: Mutex<ChaCha8Rng>,
    inbound_handshakes: Arc<Semaphore>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance_id", &self.instance_id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cluster {
    /// Starts the mesh: the accept loop on `listener` (if any) and one dial loop per target.
    /// `config` must have passed [`ClusterConfig::validate`]; `tls` is the loaded
    /// `config.tls`. `seed` drives the backoff jitter.
    pub fn start<L: Listener, C: Connector>(
        config: ClusterConfig,
        tls: Option<ClusterTls>,
        instance_id: String,
        node: Weak<dyn Node>,
        listener: Option<L>,
        connector: C,
        seed: u64,
    ) -> Cluster {
        let connector = Arc::new(connector);
        let spawn_dial: DialSpawner = Box::new(move |inner: Arc<Inner>, addr: String| {
            let task = session::dial_loop(Arc::clone(&inner), Arc::clone(&connector), addr);
            inner.tasks.spawn(task);
        });
        let membership = Membership::new(
            MembershipConfig {
                dead_after: config.link.dead_after,
                ..MembershipConfig::default()
            },
            config.cluster_addr.clone(),
            &config.peers_to_dial(),
            &config.seeds,
        );
        let inner = Arc::new(Inner {
            instance_id,
            spawn_dial,
            tls,
            node,
            mesh: Mutex::new(Mesh::new(membership)),
            dlq: Mutex::new(DeadLetterQueue::default()),
            counters: ClusterCounters::default(),
            changed: Notify::new(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            inbound_handshakes: Arc::new(Semaphore::new(MAX_INBOUND_HANDSHAKES)),
            config,
        });
        if let Some(listener) = listener {
            inner
                .tasks
                .spawn(session::accept_loop(Arc::clone(&inner), listener));
        }
        for addr in lock(&inner.mesh).membership().addresses() {
            (inner.spawn_dial)(Arc::clone(&inner), addr);
        }
        inner
            .tasks
            .spawn(session::membership_loop(Arc::clone(&inner)));
        Cluster { inner }
    }

    /// This node's instance id.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Sends a local publication to every peer that wants it (interest, DRAIN and capabilities
    /// honoured), with its recovery stamp. Peers that could not take it — full queue, or a
    /// departed peer that had wanted the topic — get a DLQ entry.
    pub fn route(&self, topic: &str, payload: &str, stamp: Option<RecoveryTrailer>) {
        self.inner.route(topic, payload, stamp);
    }

    /// Sends this node's changed presence entries (PresenceFull chunks) to every peer that
    /// speaks presence. A peer whose queue cannot take them loses its link (the next one starts
    /// with the full state), so no peer silently misses a leave.
    pub fn route_presence(&self, chunks: &[String]) {
        self.inner.route_presence(chunks);
    }

    /// Local interest changed: `first` keys got their first subscriber, `last` lost their last.
    pub fn interest_changed(&self, first: &[String], last: &[String]) {
        self.inner.interest_changed(first, last);
    }

    /// This node drains (D17): every peer stops routing new traffic to it.
    pub fn drain(&self) {
        self.inner.drain();
    }

    /// Graceful stop: SHUTDOWN to every peer, up to `grace` for the links to flush and close,
    /// then every task ends.
    pub async fn stop(&self, grace: Duration) {
        self.inner.stop(grace).await;
    }

    /// True while at least one link is established.
    pub fn connected(&self) -> bool {
        self.peers_count() > 0
    }

    /// Live links (inbound and outbound).
    pub fn peers_count(&self) -> usize {
        lock(&self.inner.mesh).len()
    }

    /// Live links a publication on `topic` would be routed to now (interest converged, not
    /// draining).
    pub fn routes(&self, topic: &str) -> usize {
        lock(&self.inner.mesh).routes(topic)
    }

    /// The live links, by instance id.
    pub fn info(&self) -> Vec<PeerInfo> {
        lock(&self.inner.mesh).info()
    }

    /// Takes every dead letter (`get_cluster_dlq_entries` drains).
    pub fn take_dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.inner.dlq).drain()
    }

    /// Re-reads the TLS files for future handshakes.
    pub fn reload_tls(&self, files: &TlsFiles) -> Result<(), ClusterError> {
        match &self.inner.tls {
            Some(tls) => tls.reload(files).map_err(ClusterError::from),
            None => Err(ClusterError::TlsNotConfigured),
        }
    }

    /// Counters and gauges for health and metrics.
    pub fn figures(&self) -> ClusterFigures {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.counters;
        let (members, suspects) = {
            let mesh = lock(&self.inner.mesh);
            (mesh.membership().alive(), mesh.membership().suspects())
        };
        ClusterFigures {
            peers: self.peers_count(),
            messages_sent: c.messages_sent.load(Relaxed),
            messages_delivered: c.messages_delivered.load(Relaxed),
            messages_dropped: c.messages_dropped.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            unknown_message_types: c.unknown_message_types.load(Relaxed),
            messages_unwanted: c.messages_unwanted.load(Relaxed),
            breaker_opened: c.breaker_opened.load(Relaxed),
            dlq_size: lock(&self.inner.dlq).len(),
            dead_peers: c.dead_peers.load(Relaxed),
            members,
            suspects,
        }
    }

    /// True when a link to the node with this instance id is live.
    pub fn is_linked_to(&self, instance_id: &str) -> bool {
        lock(&self.inner.mesh).is_linked(instance_id)
    }
}

impl Inner {
    fn now(&self) -> (Instant, WallClock) {
        self.node
            .upgrade()
            .map_or((Instant::ZERO, WallClock::UNIX_EPOCH), |n| n.now())
    }

    fn link_config(&self) -> LinkConfig {
        let t = &self.config.link;
        LinkConfig {
            instance_id: self.instance_id.clone(),
            capabilities: CAPABILITIES,
            heartbeat_interval: t.heartbeat_interval,
            dead_after: t.dead_after,
            handshake_timeout: t.handshake_timeout,
            queue_capacity: t.queue_capacity,
        }
    }
}
