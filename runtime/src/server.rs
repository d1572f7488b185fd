//! The server: accept loop, one task per connection driving its `wse-core` machine, one writer
//! per socket, and the [`ServerHandle`] applications call.
//!
//! Per connection there are exactly two tasks. The **reader** owns the read half and the
//! machine's timers: it decodes frames, feeds the machine and routes its outputs. The **writer**
//! owns the write half and nothing else: it drains a bounded queue of ready frames (up to
//! [`WRITE_BATCH`] per wake) with vectored writes, each write bounded by [`WRITE_TIMEOUT`]. Every
//! queued frame is counted against `max_outbound_queue_bytes`; a connection over budget is closed
//! with 1013 and nobody else waits for it. Once a connection is removed nothing more is emitted
//! for it (CONTRACT D10): its machine refuses commands and its tasks end within the close grace.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wse_core::auth::TopicAcl;
use wse_core::config::{ConfigError, ServerConfig};
use wse_core::conn::{ConnSettings, Connection, Event, Output, SendEventOutcome, close_code};
use wse_core::presence::{NodeId, PresenceLimits};
use wse_core::protocol::{self, Frame};
use wse_core::pubsub::SubscribeError;
use wse_core::recovery::{Epoch, RecoveryConfig, RecoveryStore};
use wse_core::{ConnId, Instant, WallClock};

use crate::http::{HttpRequest, HttpResponse, HttpService};
use crate::net::{Listener, TcpListener};
use crate::stats::{self, Counters, Stats, TopicCounts};
use crate::topics::Topics;
use crate::upgrade::{self, PlainRequest, Request, UpgradeRequest};
use crate::wsframe::{self, FrameDecoder, Inbound, Opcode};

mod cluster;
mod event_queue;
mod presence;
mod recovery;

pub use event_queue::{
    INBOUND_QUEUE_MAX_SIZE_MESSAGES, INBOUND_QUEUE_MIN_BYTES, inbound_queue_budget,
};
pub use presence::PresenceUpdateError;
pub use recovery::{History, RecoveryError, RecoveryOutcome, TopicRecovery};

/// Frames written per writer wake-up.
pub const WRITE_BATCH: usize = 256;
/// A socket write that makes no progress for this long ends the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The HTTP upgrade must complete within this (slowloris guard).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Sockets allowed in the upgrade phase at once; extra ones are dropped.
pub const MAX_PENDING_HANDSHAKES: usize = 512;
/// Frames a connection's queue holds at most (the byte budget usually binds first).
pub const MAX_QUEUED_FRAMES: usize = 65_536;
/// `Retry-After` seconds in the 503 sent at the connection cap.
pub const RETRY_AFTER_SECS: u32 = 5;
/// Smallest read a connection waits with: an idle connection holds only this much buffer.
const READ_MIN: usize = 512;
/// Largest read buffer the adaptive size grows to (a message larger than this still grows the
/// buffer as the decoder needs).
const READ_MAX: usize = 64 * 1024;

/// An application event, in order per connection: `Connect`/`AuthConnect`, then
/// `Msg`/`Raw`/`Bin`, then the `PresenceLeave`s its end caused, then `Disconnect`.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    /// Accepted without authentication; the raw `Cookie` header.
    Connect(ConnId, String),
    /// Authenticated; the token's `sub`, then the raw `Cookie` header (`""` if none).
    AuthConnect(ConnId, String, String),
    /// A JSON or msgpack message.
    Msg(ConnId, Value),
    /// Text that is not a JSON object.
    Raw(ConnId, String),
    /// Binary the server does not interpret.
    Bin(ConnId, Bytes),
    /// A user's first connection in a topic tracked presence (presence enabled).
    PresenceJoin {
        /// The topic.
        topic: String,
        /// The user (JWT `sub`).
        user_id: String,
        /// The user's presence data.
        data: Value,
    },
    /// A user's last connection in a topic left it (unsubscribe, disconnect, idle close).
    PresenceLeave {
        /// The topic.
        topic: String,
        /// The user.
        user_id: String,
        /// The last presence data shown.
        data: Value,
    },
    /// The connection is gone.
    Disconnect(ConnId),
}

/// Why [`ServerHandle::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; the field is named.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding the address failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running server: everything an application does with it (send, publish, subscribe,
/// presence, recovery, health) is on [`Server`], which it derefs to. Dropping the handle does
/// not stop the server; call [`ServerHandle::stop`].
#[derive(Debug)]
pub struct ServerHandle {
    server: Server,
    accept_task: JoinHandle<()>,
    local_addr: std::net::SocketAddr,
}

/// A cheap, cloneable reference to a running server's state and operations. The accept loop
/// hands one to the [`HttpService`] of each plain HTTP request.
#[derive(Clone, Debug)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::ops::Deref for ServerHandle {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

#[derive(Debug)]
struct Shared {
    settings: Arc<ConnSettings>,
    max_connections: usize,
    max_outbound_queue_bytes: usize,
    conns: Mutex<BTreeMap<ConnId, Arc<Peer>>>,
    /// Topic subscriptions, sharded by topic (lock order: a topic shard, then conns, then a
    /// machine — never conns while holding a machine except at registration, which takes no
    /// topic lock).
    registry: Topics,
    handshakes: Arc<Semaphore>,
    /// Bounded in events and in bytes (`event_queue.rs`).
    events: event_queue::EventSender,
    /// Taken out (`None`) once a callback consumes the events instead.
    events_rx: tokio::sync::Mutex<Option<event_queue::EventReceiver>>,
    counters: Counters,
    topic_counts: TopicCounts,
    seq: AtomicU64,
    rng: Mutex<ChaCha8Rng>,
    /// Monotonic origin of the core's `Instant`, and the wall clock at that origin: wall time
    /// is derived from tokio's clock so a simulated run stays virtual.
    origin: tokio::time::Instant,
    wall_origin_micros: u64,
    draining: AtomicBool,
    /// Started with a fixed seed (simulation): crypto seeds come from `rng`, not the OS.
    deterministic: bool,
    stopped: AtomicBool,
    recovery_enabled: bool,
    presence_enabled: bool,
    /// Recovery rings (`None` when recovery is off); see `recovery.rs` for the lock's role.
    recovery: Option<Mutex<RecoveryStore>>,
    /// Presence table (`None` when presence is off).
    presence: Option<Mutex<presence::Presence>>,
    /// Answers plain HTTP requests on the port, if set.
    http: Option<Arc<dyn HttpService>>,
    tasks: TaskTracker,
    /// Cancelled when a shutdown's grace is over: every remaining socket is dropped.
    cancel: CancellationToken,
    /// The mesh, once `connect_cluster` ran (`server/cluster.rs`).
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

/// A frame on its way to the writer, and whether it is charged to the connection's byte
/// budget (`false` for close frames and recovery replays, whose bytes are shared with the
/// recovery ring and bounded by `recovery_max_messages`).
type Queued = (Bytes, bool);

/// One connection as the rest of the server sees it.
#[derive(Debug)]
struct Peer {
    machine: Mutex<Connection>,
    /// Frames for the writer, each marked whether it counts against `pending_bytes`.
    queue: mpsc::Sender<Queued>,
    pending_bytes: Arc<AtomicUsize>,
    /// Wakes the reader when a command changed the machine's deadlines or ended it.
    wake: Notify,
    /// Set when the socket must be dropped now.
    terminated: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks is a bug already reported by that panic; the
    // data (a machine or a map) stays usable, so keep serving the other connections.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What [`ServerHandle::start_on_with`] takes besides the listener and the configuration.
/// The defaults are production's: no HTTP service, OS randomness, the system clock.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Answers the port's plain HTTP requests (else `426 Upgrade Required`).
    pub http: Option<Arc<dyn HttpService>>,
    /// Seeds every random choice of the server (connection and message ids, recovery epochs,
    /// the presence node id); `None` draws the seed from the OS.
    pub seed: Option<u64>,
    /// The wall-clock time at start; message timestamps are this plus the runtime's
    /// monotonic elapsed time. `None` reads the system clock once.
    pub wall_origin: Option<WallClock>,
}

impl ServerHandle {
    /// Validates `config`, binds `host:port`, and starts accepting. Returns once bound
    /// (CONTRACT D1): a bind failure is an error here, never only a log line.
    pub async fn start(config: &ServerConfig) -> Result<ServerHandle, StartError> {
        ServerHandle::start_with_http(config, None).await
    }

    /// [`ServerHandle::start`], with `http` answering the plain HTTP requests of the port (the
    /// `wse` binary's API); without one they get `426 Upgrade Required`.
    pub async fn start_with_http(
        config: &ServerConfig,
        http: Option<Arc<dyn HttpService>>,
    ) -> Result<ServerHandle, StartError> {
        let addr = format!("{}:{}", config.host, config.port);
        let settings = Arc::new(ConnSettings::from_config(config)?);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(ServerHandle::start_on_with_http(
            listener, config, settings, http,
        ))
    }

    /// Starts on an already-bound listener (the simulator passes its own).
    pub fn start_on<L: Listener>(
        listener: L,
        config: &ServerConfig,
        settings: Arc<ConnSettings>,
    ) -> ServerHandle {
        ServerHandle::start_on_with_http(listener, config, settings, None)
    }

    /// [`ServerHandle::start_on`] with an [`HttpService`].
    pub fn start_on_with_http<L: Listener>(
        listener: L,
        config: &ServerConfig,
        settings: Arc<ConnSettings>,
        http: Option<Arc<dyn HttpService>>,
    ) -> ServerHandle {
        let options = StartOptions {
            http,
            ..StartOptions::default()
        };
        ServerHandle::start_on_with(listener, config, settings, options)
    }

    /// The general form of every `start*`: an already-bound listener plus [`StartOptions`]
    /// (the simulator fixes the seed and the wall clock there, so a run replays exactly).
    pub fn start_on_with<L: Listener>(
        listener: L,
        config: &ServerConfig,
        settings: Arc<ConnSettings>,
        options: StartOptions,
    ) -> ServerHandle {
        let StartOptions {
            http,
            seed,
            wall_origin,
        } = options;
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let (tx, rx) = event_queue::channel(config.max_inbound_queue_size, config.max_message_size);
        let wall_origin_micros = wall_origin.map_or_else(
            || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            },
            WallClock::unix_micros,
        );
        // One seed for everything random in this server: ids, epochs, the presence node id.
        let mut seeder = ChaCha8Rng::seed_from_u64(seed.unwrap_or_else(|| OsRng.next_u64()));
        let rng_seed = seeder.next_u64();
        // The presence origin of this start: the wall clock is mixed in so a restart with the
        // same seed (a simulated bounce) is still a new origin.
        let node_id = seeder.next_u64() ^ wall_origin_micros;
        let shared = Arc::new(Shared {
            settings,
            max_connections: config.max_connections,
            max_outbound_queue_bytes: config.max_outbound_queue_bytes,
            conns: Mutex::new(BTreeMap::new()),
            registry: Topics::new(config.max_subscriptions_per_connection),
            handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            events: tx,
            events_rx: tokio::sync::Mutex::new(Some(rx)),
            counters: Counters::default(),
            topic_counts: TopicCounts::default(),
            seq: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(rng_seed)),
            origin: tokio::time::Instant::now(),
            wall_origin_micros,
            draining: AtomicBool::new(false),
            deterministic: seed.is_some(),
            stopped: AtomicBool::new(false),
            recovery_enabled: config.recovery_enabled,
            presence_enabled: config.presence_enabled,
            recovery: config.recovery_enabled.then(|| {
                Mutex::new(RecoveryStore::new(RecoveryConfig::from_server_config(
                    config,
                )))
            }),
            presence: config.presence_enabled.then(|| {
                let node = NodeId(node_id);
                let limits = PresenceLimits {
                    max_data_size: config.presence_max_data_size,
                    max_members: config.presence_max_members,
                };
                Mutex::new(presence::Presence::new(node, limits))
            }),
            http,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            cluster: std::sync::OnceLock::new(),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        if shared.recovery.is_some() {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(every(weak, recovery::EXPIRY_TICK, recovery::expire_rings));
        }
        if shared.presence.is_some() {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(every(weak, presence::GC_TICK, presence::collect_tombstones));
        }
        ServerHandle {
            server: Server { shared },
            accept_task,
            local_addr,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }
}

impl Server {
    /// Registered connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Ids of the registered connections, ascending.
    pub fn connections(&self) -> Vec<ConnId> {
        lock(&self.shared.conns).keys().copied().collect()
    }

    /// Sends `text` verbatim as a text frame; unknown ids are ignored.
    pub fn send(&self, conn: ConnId, text: &str) {
        self.with_peer(conn, |shared, peer, m| {
            m.send_frame(Frame::text(text));
            shared.route(peer, m);
        });
    }

    /// Sends `data` verbatim as a binary frame; unknown ids are ignored.
    pub fn send_bytes(&self, conn: ConnId, data: &[u8]) {
        self.with_peer(conn, |shared, peer, m| {
            m.send_frame(Frame::Binary(Bytes::copy_from_slice(data)));
            shared.route(peer, m);
        });
    }

    /// Frames and queues an application event (dedup, rate limit, compression above
    /// `compression_threshold`, msgpack); returns the payload bytes queued, 0 when refused or
    /// when the id is unknown.
    pub fn send_event(
        &self,
        conn: ConnId,
        event: &Map<String, Value>,
        compression_threshold: usize,
    ) -> usize {
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        self.with_peer(conn, |shared, peer, m| {
            let (now, wall) = shared.now();
            let outcome = {
                let mut rng = lock(&shared.rng);
                m.send_event(now, wall, event, compression_threshold, seq, &mut *rng)
            };
            let counter = match outcome {
                SendEventOutcome::Queued(_) => Some(&shared.counters.messages_sent),
                // `wse_rate_limited_total` (UPSTREAM §6.1).
                SendEventOutcome::RateLimited => Some(&shared.counters.rate_limited),
                SendEventOutcome::Duplicate | SendEventOutcome::NotOpen => None,
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            shared.route(peer, m);
            outcome.bytes()
        })
        .unwrap_or(0)
    }

    /// Sends `text` to every connection as one text frame built once (category injected as
    /// UPSTREAM §2.2).
    pub fn broadcast_all(&self, text: &str) {
        let injected = protocol::inject_category(text);
        self.broadcast_frame(&Frame::text(injected.into_owned()));
    }

    /// Sends `data` to every connection as one binary frame built once.
    pub fn broadcast_all_bytes(&self, data: &[u8]) {
        self.broadcast_frame(&Frame::Binary(Bytes::copy_from_slice(data)));
    }

    fn broadcast_frame(&self, frame: &Frame) {
        let wire = wsframe::encode_core(frame);
        let peers: Vec<Arc<Peer>> = lock(&self.shared.conns).values().cloned().collect();
        for peer in peers {
            let mut m = lock(&peer.machine);
            if m.is_open() {
                let wire = Shared::personal(&mut m, &wire);
                self.shared.enqueue(&peer, &mut m, wire);
                self.shared.route(&peer, &mut m);
            }
        }
    }

    /// Subscribes a connection to `topics` (`*`/`?` make glob subscriptions), or with
    /// `queue_group` joins each topic's group for round-robin delivery instead. Topics the
    /// connection's ACL refuses are dropped silently, as are topics with control characters;
    /// unknown ids are ignored. At the `max_subscriptions_per_connection` limit:
    /// [`SubscribeError::LimitReached`]; otherwise the list is cut to the remaining budget.
    /// With `presence_data` (and presence enabled, and an authenticated connection) the user is
    /// tracked as present in every topic added. Returns the topics actually added.
    pub fn subscribe_connection(
        &self,
        conn: ConnId,
        topics: &[String],
        presence_data: Option<&Value>,
        queue_group: Option<&str>,
    ) -> Result<Vec<String>, SubscribeError> {
        let Some(acl) = self.with_peer(conn, |_, _, m| m.is_open().then(|| m.topic_acl().cloned()))
        else {
            return Ok(Vec::new());
        };
        let Some(acl) = acl else {
            return Ok(Vec::new());
        }; // closing: nothing to add
        let allowed: Vec<String> = topics
            .iter()
            .filter(|t| acl.as_ref().is_none_or(|a| a.allows_subscription(t)))
            .cloned()
            .collect();
        let added = self
            .shared
            .registry
            .subscribe(conn, &allowed, queue_group)?;
        if !lock(&self.shared.conns).contains_key(&conn) {
            // The connection ended meanwhile: leave no trace (D11).
            self.shared.registry.remove_connection(conn);
            return Ok(Vec::new());
        }
        if let Some(data) = presence_data {
            self.shared.track_presence(conn, &added, data);
        }
        Ok(added)
    }

    /// Unsubscribes from `topics`, or from everything (queue groups included) with `None`;
    /// presence in those topics ends too.
    pub fn unsubscribe_connection(&self, conn: ConnId, topics: Option<&[String]>) {
        self.shared.registry.unsubscribe(conn, topics);
        self.shared.untrack_presence(conn, topics);
    }

    /// Fan-out subscribers of exactly this topic key (queue members excluded).
    pub fn topic_subscriber_count(&self, topic: &str) -> usize {
        self.shared.registry.subscriber_count(topic)
    }

    /// `{group: members}` of a topic's queue groups.
    pub fn queue_group_info(&self, topic: &str) -> BTreeMap<String, usize> {
        self.shared.registry.queue_group_info(topic)
    }

    /// Replaces a connection's topic ACL (overrides the JWT claim's); unknown ids are ignored.
    pub fn set_topic_acl(&self, conn: ConnId, allow: Vec<String>, deny: Vec<String>) {
        self.with_peer(conn, |_, _, m| m.set_topic_acl(TopicAcl::new(allow, deny)));
    }

    /// Publishes `text` to a topic on this node: one text frame built once (category injected)
    /// to every exact subscriber, every glob subscriber whose pattern matches **and whose ACL
    /// allows this topic** (CONTRACT D9), and one eligible member of each queue group.
    ///
    /// Returns the recovery stamp `(epoch, offset)` the publication got, `None` when recovery
    /// is off.
    pub fn broadcast_local(&self, topic: &str, text: &str) -> Option<(Epoch, u64)> {
        let shared = &self.shared;
        shared
            .topic_counts
            .record(topic, |t| shared.registry.subscriber_count(t) > 0);
        shared.publish(topic, &protocol::inject_category(text), false)
    }

    /// Drain for a rolling restart: refuse new sockets from now on, close every connection
    /// with `code`/`reason` (clients reconnect elsewhere on 4300), and after `timeout` drop
    /// the ones that have not finished closing. Call [`ServerHandle::stop`] afterwards.
    pub async fn drain(&self, code: u16, reason: &str, timeout: Duration) {
        self.shared.begin_drain(code, reason);
        Arc::clone(&self.shared).finish_drain(timeout).await;
    }

    /// [`Server::drain`] without waiting: new sockets are refused and every connection
    /// is sent its close before this returns; a background task drops the stragglers after
    /// `timeout` (or ends at once when the server stops first).
    pub fn start_drain(&self, code: u16, reason: &str, timeout: Duration) {
        self.shared.begin_drain(code, reason);
        tokio::spawn(Arc::clone(&self.shared).finish_drain(timeout));
    }

    /// True once `drain` or `stop` began: new sockets are dropped before the upgrade.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst)
    }

    /// Events waiting in the inbound queue.
    pub fn inbound_queue_depth(&self) -> usize {
        self.shared.events.max_capacity() - self.shared.events.capacity()
    }

    /// The keys of UPSTREAM §7.9.
    pub fn health_snapshot(&self) -> BTreeMap<&'static str, Value> {
        self.shared.stats(self.connection_count()).health()
    }

    /// Prometheus text exposition with the metric names of UPSTREAM §7.10.
    pub fn prometheus_metrics(&self) -> String {
        self.shared.stats(self.connection_count()).prometheus()
    }

    /// Closes a connection with `code` and `reason` (CONTRACT D5).
    pub fn disconnect(&self, conn: ConnId, code: u16, reason: &str) {
        self.with_peer(conn, |shared, peer, m| {
            let (now, _) = shared.now();
            m.close(now, code, reason);
            shared.route(peer, m);
        });
    }

    /// The next application event, waiting at most `timeout`. `None` on timeout, or always
    /// once [`Server::set_event_callback`] took the events.
    pub async fn next_event(&self, timeout: Duration) -> Option<ServerEvent> {
        let mut rx = self.shared.events_rx.lock().await;
        let rx = rx.as_mut()?;
        tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Up to `max` events: waits at most `timeout` for the first, then takes whatever else is
    /// already queued without waiting. Empty (after `timeout`) when nothing came, when `max` is
    /// 0, or once [`Server::set_event_callback`] took the events.
    pub async fn next_events(&self, max: usize, timeout: Duration) -> Vec<ServerEvent> {
        let mut batch = Vec::new();
        let mut rx = self.shared.events_rx.lock().await;
        match (rx.as_mut(), max > 0) {
            // `recv_many` waits for the first event only, then takes what is there.
            (Some(rx), true) => {
                let _ = tokio::time::timeout(timeout, rx.recv_many(&mut batch, max)).await;
            }
            // Nothing can arrive: still wait, so a polling loop does not spin.
            _ => tokio::time::sleep(timeout).await,
        }
        batch
    }

    /// The callback alternative to [`Server::next_event`]: from now on every event is
    /// passed to `callback`, in order, on one dedicated blocking thread (so the callback may
    /// block, e.g. on the GIL, without stalling the runtime; a slow callback fills the bounded
    /// queue and further events are dropped and counted, never buffered without limit). The
    /// thread ends once the server stopped and the queue is empty. Returns `false` if a
    /// callback was already installed.
    pub async fn set_event_callback(
        &self,
        mut callback: impl FnMut(ServerEvent) + Send + 'static,
    ) -> bool {
        let Some(mut rx) = self.shared.events_rx.lock().await.take() else {
            return false;
        };
        std::thread::Builder::new()
            .name("wse-events".into())
            .spawn(move || {
                while let Some(event) = rx.blocking_recv() {
                    callback(event);
                }
            })
            .is_ok()
    }

    /// Events dropped because the queue was full.
    pub fn inbound_dropped(&self) -> u64 {
        self.shared.counters.inbound_dropped.load(Ordering::Relaxed)
    }

    /// Connections closed for exceeding their outbound budget.
    pub fn slow_consumer_drops(&self) -> u64 {
        self.shared
            .counters
            .slow_consumer_drops
            .load(Ordering::Relaxed)
    }

    /// Every fan-out topic key (exact topics and glob patterns) with its subscriber count.
    pub fn topics(&self) -> Vec<(String, usize)> {
        self.shared.registry.topics()
    }

    /// The user (JWT `sub`) of a registered, authenticated connection.
    pub fn user_of(&self, conn: ConnId) -> Option<String> {
        self.with_peer(conn, |_, _, m| m.user().map(|u| u.user_id().to_owned()))
            .flatten()
    }

    /// The registered connections of `user`, ascending.
    pub fn connections_of_user(&self, user: &str) -> Vec<ConnId> {
        let peers: Vec<(ConnId, Arc<Peer>)> = lock(&self.shared.conns)
            .iter()
            .map(|(id, p)| (*id, Arc::clone(p)))
            .collect();
        peers
            .into_iter()
            .filter(|(_, p)| lock(&p.machine).user().is_some_and(|u| u.user_id() == user))
            .map(|(id, _)| id)
            .collect()
    }

    /// A registered connection's topic ACL: `None` for an unknown id, `Some(None)` when it has
    /// none (everything allowed).
    pub fn topic_acl(&self, conn: ConnId) -> Option<Option<TopicAcl>> {
        self.with_peer(conn, |_, _, m| m.topic_acl().cloned())
    }

    fn with_peer<R>(
        &self,
        conn: ConnId,
        f: impl FnOnce(&Shared, &Peer, &mut Connection) -> R,
    ) -> Option<R> {
        let peer = lock(&self.shared.conns).get(&conn).cloned()?;
        let mut m = lock(&peer.machine);
        Some(f(&self.shared, &peer, &mut m))
    }
}

impl ServerHandle {
    /// True while the server accepts connections: started and neither draining nor stopped.
    pub fn is_running(&self) -> bool {
        !self.is_draining() && !self.is_stopped()
    }

    /// True once [`ServerHandle::stop`] (or `shutdown`) began; a drained server is not stopped.
    pub fn is_stopped(&self) -> bool {
        self.server.shared.stopped.load(Ordering::SeqCst) || self.accept_task.is_finished()
    }

    /// Stops: refuses new sockets, closes every connection with `code`/`reason`, waits up to
    /// `timeout` for them to finish, then drops whatever is left. `stop()` is
    /// `shutdown(1001, "server shutting down", 2 s)`; a drain uses 4300.
    pub async fn shutdown(&self, code: u16, reason: &str, timeout: Duration) {
        self.server.shared.stopped.store(true, Ordering::SeqCst);
        self.server.shared.draining.store(true, Ordering::SeqCst);
        self.accept_task.abort();
        if let Some(cluster) = self.server.shared.cluster.get() {
            // SHUTDOWN to every peer first: they stop routing here while clients close.
            cluster.stop(timeout.min(Duration::from_secs(1))).await;
        }
        self.server.shared.close_all(code, reason);
        self.server.shared.tasks.close();
        if tokio::time::timeout(timeout, self.server.shared.tasks.wait())
            .await
            .is_err()
        {
            // Handshakes, rejected sockets still closing, and peers that never answered.
            self.server.shared.cancel.cancel();
            self.server.shared.tasks.wait().await;
        }
    }

    /// `stop()`: close 1001 "server shutting down", flush for up to 2 s, end every task.
    pub async fn stop(&self) {
        self.shutdown(
            close_code::GOING_AWAY,
            "server shutting down",
            Duration::from_secs(2),
        )
        .await;
    }
}

impl Shared {
    fn now(&self) -> (Instant, WallClock) {
        let elapsed = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        (
            Instant::from_micros(elapsed),
            WallClock::from_unix_micros(self.wall_origin_micros.saturating_add(elapsed)),
        )
    }

    /// 32 bytes for a connection's cryptographic generator: from the OS in production, from the
    /// server's seeded generator when [`StartOptions::seed`] is set (simulation replays).
    fn crypto_seed(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        if self.deterministic {
            lock(&self.rng).fill_bytes(&mut seed);
        } else {
            OsRng.fill_bytes(&mut seed);
        }
        seed
    }

    /// `wire` (a server frame built once for many recipients) as this connection must get it:
    /// the same shared bytes, or, on an encrypted connection, its payload sealed as `E:` (one
    /// AES pass per encrypted recipient, CONTRACT D7).
    fn personal(m: &mut Connection, wire: &Bytes) -> Bytes {
        if !m.is_encrypted() {
            return wire.clone();
        }
        match wsframe::server_frame_payload(wire).and_then(|p| m.seal(&p)) {
            Some(sealed) => wsframe::encode_core(&sealed),
            None => wire.clone(),
        }
    }

    /// Queues `wire` for the writer, counting it against the byte budget. Over budget (or a
    /// full queue) the connection is closed with 1013.
    fn enqueue(&self, peer: &Peer, m: &mut Connection, wire: Bytes) {
        let len = wire.len();
        let pending = peer.pending_bytes.fetch_add(len, Ordering::AcqRel) + len;
        let over = self.max_outbound_queue_bytes != 0 && pending > self.max_outbound_queue_bytes;
        if !over && peer.queue.try_send((wire, true)).is_ok() {
            self.counters
                .bytes_sent
                .fetch_add(len as u64, Ordering::Relaxed);
        } else {
            peer.pending_bytes.fetch_sub(len, Ordering::AcqRel);
            self.counters
                .slow_consumer_drops
                .fetch_add(1, Ordering::Relaxed);
            let (now, _) = self.now();
            m.close(now, close_code::TRY_AGAIN_LATER, "Slow consumer");
        }
    }

    /// Queues a recovery replay frame without charging it to the byte budget (the bytes are
    /// the ring's own, already counted by the recovery memory budget). A full frame queue
    /// still closes the connection with 1013.
    fn enqueue_replay(&self, peer: &Peer, m: &mut Connection, wire: &Bytes) {
        let wire = Shared::personal(m, wire);
        let len = wire.len() as u64;
        if peer.queue.try_send((wire, false)).is_ok() {
            self.counters.bytes_sent.fetch_add(len, Ordering::Relaxed);
        } else {
            self.counters
                .slow_consumer_drops
                .fetch_add(1, Ordering::Relaxed);
            let (now, _) = self.now();
            m.close(now, close_code::TRY_AGAIN_LATER, "Slow consumer");
        }
    }

    /// Acts on every output the machine has queued, in order.
    fn route(&self, peer: &Peer, m: &mut Connection) {
        let id = m.id();
        while let Some(out) = m.poll_output() {
            match out {
                Output::Frame(frame) => self.enqueue(peer, m, wsframe::encode_core(&frame)),
                Output::Event(event) => self.emit(match event {
                    Event::Connect { cookies } => ServerEvent::Connect(id, cookies),
                    Event::AuthConnect { user_id, cookies } => {
                        ServerEvent::AuthConnect(id, user_id, cookies)
                    }
                    Event::Msg(v) => ServerEvent::Msg(id, v),
                    Event::Raw(s) => ServerEvent::Raw(id, s),
                    Event::Bin(b) => ServerEvent::Bin(id, b),
                }),
                Output::Close { code, reason } => {
                    // Control frames bypass the byte budget; a full queue means the peer is
                    // not reading at all, so drop it.
                    let wire = wsframe::encode_close(code, &reason);
                    if peer.queue.try_send((wire, false)).is_err() {
                        peer.terminated.store(true, Ordering::SeqCst);
                    }
                    peer.wake.notify_one();
                }
                Output::Terminate => {
                    peer.terminated.store(true, Ordering::SeqCst);
                    peer.wake.notify_one();
                }
            }
        }
    }

    /// Sends one pre-framed message to a topic: every exact subscriber, every glob subscriber
    /// whose pattern matches and whose ACL allows this topic (CONTRACT D9), and one eligible
    /// member of each queue group.
    fn deliver(&self, topic: &str, wire: &Bytes) {
        let peer_of = |c: ConnId| lock(&self.conns).get(&c).cloned();
        let targets = self.registry.publish_targets(
            topic,
            |c| {
                peer_of(c).is_some_and(|p| {
                    let open = lock(&p.machine).is_open();
                    let budget = self.max_outbound_queue_bytes;
                    open && (budget == 0 || p.pending_bytes.load(Ordering::Acquire) < budget)
                })
            },
            |c, t| {
                peer_of(c).is_some_and(|p| {
                    lock(&p.machine)
                        .topic_acl()
                        .is_none_or(|acl| acl.allows_topic(t))
                })
            },
        );
        if targets.queue_misses > 0 {
            self.counters
                .slow_consumer_drops
                .fetch_add(targets.queue_misses as u64, Ordering::Relaxed);
        }
        for c in targets.fanout.into_iter().chain(targets.queue) {
            if let Some(peer) = peer_of(c) {
                let mut m = lock(&peer.machine);
                if m.is_open() {
                    let wire = Shared::personal(&mut m, wire);
                    self.enqueue(&peer, &mut m, wire);
                    self.route(&peer, &mut m);
                }
            }
        }
    }

    fn begin_drain(&self, code: u16, reason: &str) {
        self.draining.store(true, Ordering::SeqCst);
        if let Some(cluster) = self.cluster.get() {
            cluster.drain();
        }
        self.close_all(code, reason);
    }

    /// Waits up to `timeout` for the drained connections to finish closing, then drops the
    /// rest. Ends early if the server is shut down meanwhile.
    async fn finish_drain(self: Arc<Self>, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !lock(&self.conns).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        for peer in lock(&self.conns).values() {
            peer.terminated.store(true, Ordering::SeqCst);
            peer.wake.notify_one();
        }
    }

    fn stats(&self, connections: usize) -> Stats<'_> {
        let (recovery_topics, recovery_bytes) = self.recovery_figures();
        let (presence_topics, presence_users) = self.presence_figures().unwrap_or_default();
        Stats {
            counters: &self.counters,
            connections,
            queue_depth: self.events.max_capacity() - self.events.capacity(),
            uptime_secs: self.origin.elapsed().as_secs_f64(),
            topics: self.registry.topic_count(),
            recovery_enabled: self.recovery_enabled,
            presence_enabled: self.presence_enabled,
            top_topics: self.topic_counts.top(stats::TOP_TOPICS_SHOWN),
            recovery_topics,
            recovery_bytes,
            presence_topics,
            presence_users,
            cluster: self
                .cluster
                .get()
                .map_or_else(Default::default, crate::cluster::Cluster::figures),
        }
    }

    /// Starts closing every registered connection with `code` and `reason`.
    fn close_all(&self, code: u16, reason: &str) {
        let peers: Vec<Arc<Peer>> = lock(&self.conns).values().cloned().collect();
        let (now, _) = self.now();
        for peer in &peers {
            let mut m = lock(&peer.machine);
            m.close(now, code, reason);
            self.route(peer, &mut m);
        }
    }

    fn emit(&self, event: ServerEvent) {
        if let ServerEvent::Msg(..) | ServerEvent::Raw(..) | ServerEvent::Bin(..) = event {
            self.counters
                .messages_received
                .fetch_add(1, Ordering::Relaxed);
        }
        if !self.events.try_send(event) {
            self.counters
                .inbound_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `work` every `period` until the server is dropped or stopped (holding it only while
/// `work` runs).
async fn every(shared: std::sync::Weak<Shared>, period: Duration, work: fn(&Shared)) {
    loop {
        tokio::time::sleep(period).await;
        match shared.upgrade() {
            Some(s) if !s.stopped.load(Ordering::SeqCst) => work(&s),
            _ => return,
        }
    }
}

async fn accept_loop<L: Listener>(mut listener: L, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            // Transient accept errors (EMFILE, aborted handshakes): back off briefly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.draining.load(Ordering::SeqCst) {
            continue; // dropped before the upgrade
        }
        let Ok(permit) = Arc::clone(&shared.handshakes).try_acquire_owned() else {
            continue; // too many handshakes in flight: drop, like the original
        };
        let task_shared = Arc::clone(&shared);
        let task = async move {
            // Boxed: the handshake's state (request parsing, the HTTP API) lives on the heap
            // only while it runs, so it does not size the task of every long-lived connection.
            let handshake = Box::pin(handshake(stream, &task_shared));
            let upgraded = tokio::select! {
                biased;
                () = task_shared.cancel.cancelled() => return,
                up = tokio::time::timeout(UPGRADE_TIMEOUT, handshake) => up,
            };
            drop(permit);
            if let Ok(Some((stream, leftover, peer, rx))) = upgraded {
                serve(stream, leftover, peer, rx, task_shared).await;
            }
        };
        shared.tasks.spawn(task);
    }
}

type Upgraded<S> = (S, BytesMut, Arc<Peer>, mpsc::Receiver<Queued>);

/// Reads the upgrade request, answers it, and registers the connection if the machine accepts
/// it. `None`: the socket is done (refused, rejected, or gone).
async fn handshake<S>(mut stream: S, shared: &Arc<Shared>) -> Option<Upgraded<S>>
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    let (request, head_len): (UpgradeRequest, usize) = loop {
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
        match upgrade::parse_any(&buf) {
            Ok(Some((Request::Upgrade(request), n))) => break (request, n),
            Ok(Some((Request::Plain(head), n))) => {
                buf.advance(n);
                serve_http(stream, head, buf, shared).await;
                return None;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = stream.write_all(&e.response()).await;
                return None;
            }
        }
    };
    buf.advance(head_len);
    if lock(&shared.conns).len() >= shared.max_connections {
        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream
            .write_all(&upgrade::service_unavailable(RETRY_AFTER_SECS))
            .await;
        return None;
    }
    stream.write_all(&request.accept_response()).await.ok()?;

    let (now, wall) = shared.now();
    let mut machine = {
        let mut rng = lock(&shared.rng);
        Connection::accept(
            Arc::clone(&shared.settings),
            &request.handshake(),
            now,
            wall,
            &mut *rng,
        )
    };
    machine.set_crypto_seed(shared.crypto_seed());
    // `server_hello` says `features.cluster` once this node is in a cluster.
    machine.set_cluster_enabled(shared.cluster.get().is_some());
    let (tx, rx) = mpsc::channel(MAX_QUEUED_FRAMES);
    let peer_is_open = machine.is_open();
    let id = machine.id();
    if !peer_is_open {
        shared
            .counters
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
    }
    let peer = Arc::new(Peer {
        machine: Mutex::new(machine),
        queue: tx,
        pending_bytes: Arc::new(AtomicUsize::new(0)),
        wake: Notify::new(),
        terminated: AtomicBool::new(false),
    });
    // Register and route the first outputs (server_ready, the connect event, or the rejection)
    // while holding the machine: a broadcast that finds the new connection waits for this lock,
    // so server_ready is always first on the wire and the connect event precedes any other.
    {
        let mut m = lock(&peer.machine);
        if peer_is_open {
            let mut conns = lock(&shared.conns);
            if conns.len() >= shared.max_connections {
                drop(conns);
                shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                while m.poll_output().is_some() {} // not accepted after all: no server_ready
                m.close(now, close_code::TRY_AGAIN_LATER, "Server at capacity");
            } else {
                conns.insert(id, Arc::clone(&peer));
                shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
        shared.route(&peer, &mut m);
    }
    Some((stream, buf, peer, rx))
}

/// Answers one plain HTTP request (body bounded by the service) and closes; without a service,
/// 426 as for any request that is not a WebSocket upgrade.
async fn serve_http<S>(mut stream: S, head: PlainRequest, mut buf: BytesMut, shared: &Arc<Shared>)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let Some(service) = shared.http.clone() else {
        let _ = stream
            .write_all(&upgrade::UpgradeError::NotWebSocket.response())
            .await;
        return;
    };
    if head.content_length > service.max_body_bytes() {
        let too_big = HttpResponse::error(413, "body_too_large", "request body too large");
        let _ = stream.write_all(&too_big.to_wire()).await;
        return;
    }
    while buf.len() < head.content_length {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    let request = HttpRequest {
        method: head.method,
        path: head.path,
        query: head.query,
        headers: head.headers,
        body: buf.split_to(head.content_length).freeze(),
    };
    let server = Server {
        shared: Arc::clone(shared),
    };
    let response = service.call(server, request).await;
    let _ = stream.write_all(&response.to_wire()).await;
    let _ = stream.shutdown().await;
}

/// Runs a connection until it ends, then cleans up and emits `Disconnect` (for registered
/// connections), strictly after every other event of the connection.
async fn serve<S>(
    stream: S,
    mut buf: BytesMut,
    peer: Arc<Peer>,
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
) where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let writer = tokio::spawn(write_loop(wr, rx, Arc::clone(&peer.pending_bytes)));
    let mut decoder = FrameDecoder::new(shared.settings.max_message_size);
    // The read size adapts: it doubles while reads fill it (a busy client) and halves when
    // they use less than a quarter, between READ_MIN and READ_MAX. An emptied buffer is given
    // back, so tens of thousands of idle connections hold READ_MIN each, not the high-water.
    let mut read_size = READ_MIN;
    // Frames already read with the upgrade request.
    let mut fed = feed(&shared, &peer, &mut decoder, &mut buf);
    let mut ended = fed == Fed::Ended;
    if buf.is_empty() {
        buf = BytesMut::new(); // the upgrade's buffer; reads size their own
    }
    while !ended && !peer.terminated.load(Ordering::SeqCst) {
        let deadline = lock(&peer.machine).poll_timeout();
        let Some(deadline) = deadline else { break };
        let sleep_until = shared.origin + Duration::from_micros(deadline.as_micros());
        // Inbound back-pressure (event_queue.rs): while the application's queue is full, the
        // socket is not read and TCP slows the client down. Timers and wakes still run.
        let room_freed = shared.events.room_freed();
        let room = shared.events.has_room();
        if room && fed == Fed::Paused {
            // Frames read before the queue filled come first, before any new read.
            fed = feed(&shared, &peer, &mut decoder, &mut buf);
            ended = fed == Fed::Ended;
            continue;
        }
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => peer.terminated.store(true, Ordering::SeqCst),
            () = peer.wake.notified() => {}
            () = room_freed, if !room => {}
            read = read_some(&mut rd, &mut buf, read_size), if room => match read {
                Ok(0) | Err(_) => {
                    let (now, _) = shared.now();
                    lock(&peer.machine).handle_transport_closed(now);
                    ended = true;
                }
                Ok(n) => {
                    shared.counters.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                    read_size = next_read_size(read_size, n);
                    fed = feed(&shared, &peer, &mut decoder, &mut buf);
                    ended = fed == Fed::Ended;
                    if buf.is_empty() && buf.capacity() > read_size {
                        buf = BytesMut::new();
                    }
                }
            },
            () = tokio::time::sleep_until(sleep_until) => {
                let (now, wall) = shared.now();
                let mut m = lock(&peer.machine);
                m.handle_timeout(now, wall);
                shared.route(&peer, &mut m);
            }
        }
    }
    let id = lock(&peer.machine).id();
    let was_registered = lock(&shared.conns).remove(&id).is_some();
    // After the removal: a concurrent `track_presence` either ran before (and is undone here)
    // or sees the connection gone (presence.rs).
    shared.untrack_presence(id, None);
    shared.registry.remove_connection(id);
    if peer.terminated.load(Ordering::SeqCst) {
        writer.abort();
    }
    // The writer ends once every sender is gone (the map entry was the long-lived one) or,
    // for a stuck socket, at its write timeout.
    drop(peer);
    let _ = writer.await;
    if was_registered {
        shared.emit(ServerEvent::Disconnect(id));
    }
}

/// Reads once into `buf`, with at least `size` bytes of room.
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    size: usize,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < size / 2 {
        buf.reserve(size);
    }
    rd.read_buf(buf).await
}

/// The next read size after a read of `n` bytes with `size` asked.
fn next_read_size(size: usize, n: usize) -> usize {
    if n >= size {
        (size * 2).min(READ_MAX)
    } else if n < size / 4 {
        (size / 2).max(READ_MIN)
    } else {
        size
    }
}

/// How [`feed`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fed {
    /// Every complete frame was handled: read more.
    All,
    /// The application's event queue is full: frames wait in the buffer (back-pressure).
    Paused,
    /// The connection is over (peer Close, framing error).
    Ended,
}

/// Decodes the complete frames in `buf` into the machine, one at a time, and stops early while
/// the application's event queue has no room (so a frame is never read only to be dropped).
fn feed(shared: &Shared, peer: &Peer, decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Fed {
    loop {
        if !shared.events.has_room() {
            return Fed::Paused;
        }
        let decoded = decoder.decode(buf);
        let (now, wall) = shared.now();
        let mut m = lock(&peer.machine);
        let alive = match decoded {
            Ok(None) => return Fed::All,
            Ok(Some(Inbound::Text(t))) => {
                m.handle_text(now, wall, &t);
                true
            }
            Ok(Some(Inbound::Binary(b))) => {
                let before = m.stats();
                m.handle_binary(now, wall, &b);
                let after = m.stats();
                let c = &shared.counters;
                c.e2e_replayed
                    .fetch_add(after.replayed - before.replayed, Ordering::Relaxed);
                c.e2e_undecryptable.fetch_add(
                    after.undecryptable - before.undecryptable,
                    Ordering::Relaxed,
                );
                true
            }
            Ok(Some(Inbound::Ping(p))) => {
                m.handle_ws_ping(now);
                if m.is_open() {
                    // The one writer answers the Ping like any other frame.
                    shared.enqueue(peer, &mut m, wsframe::encode(Opcode::Pong, &p));
                }
                true
            }
            Ok(Some(Inbound::Pong(_))) => {
                m.handle_ws_pong(now);
                true
            }
            Ok(Some(Inbound::Close(_))) => {
                if m.is_open() {
                    // Echo the close (RFC 6455 §5.5.1) before the socket goes.
                    let _ = peer
                        .queue
                        .try_send((wsframe::encode_close(close_code::NORMAL, ""), false));
                }
                m.handle_peer_close(now);
                false
            }
            Err(e) => {
                m.close(now, e.close_code(), &e.to_string());
                shared.route(peer, &mut m);
                m.handle_transport_closed(now);
                false
            }
        };
        shared.route(peer, &mut m);
        if !alive {
            return Fed::Ended;
        }
    }
}

/// The one writer of a socket: drains up to [`WRITE_BATCH`] frames per wake with vectored
/// writes; every write must progress within [`WRITE_TIMEOUT`].
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Queued>,
    pending: Arc<AtomicUsize>,
) {
    // Grown on first use: an idle connection holds no batch memory.
    let mut queued: Vec<Queued> = Vec::new();
    let mut batch: Vec<Bytes> = Vec::new();
    while rx.recv_many(&mut queued, WRITE_BATCH).await > 0 {
        let charged: usize = queued
            .iter()
            .filter(|(_, charged)| *charged)
            .map(|(b, _)| b.len())
            .sum();
        batch.extend(queued.drain(..).map(|(b, _)| b));
        match tokio::time::timeout(WRITE_TIMEOUT, write_all_vectored(&mut wr, &mut batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        pending.fetch_sub(
            charged.min(pending.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        batch.clear();
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.shutdown()).await;
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    wr: &mut W,
    frames: &mut [Bytes],
) -> std::io::Result<()> {
    let mut first = 0;
    while first < frames.len() {
        let slices: Vec<IoSlice<'_>> = frames[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < frames.len() && written >= frames[first].len() {
            written -= frames[first].len();
            first += 1;
        }
        if written > 0 {
            frames[first].advance(written);
        }
    }
    wr.flush().await
}
