//! The server's side of the cluster: `connect_cluster`, `broadcast`, the cluster queries, and
//! the [`Node`] view the mesh uses to deliver routed messages (see `crate::cluster`).

use std::sync::Arc;

use serde_json::Value;
use wse_core::cluster::presence_sync::PresenceChunk;
use wse_core::cluster::{DeadLetter, RecoveryTrailer};
use wse_core::presence::NodeId;
use wse_core::rand::uuid_v7;
use wse_core::{Instant, WallClock};

use super::{Server, Shared, lock};
use crate::cluster::{
    Cluster, ClusterConfig, ClusterError, ClusterFigures, ClusterTls, Node, PeerInfo, TlsFiles,
};
use crate::net::{Connector, Listener, TcpConnector, TcpListener};

impl Node for Shared {
    fn deliver_routed(&self, topic: &str, payload: &str, trailer: Option<RecoveryTrailer>) -> bool {
        // Cheap checks first; the key scan runs only for a message nobody here takes exactly.
        let wanted = self.registry.subscriber_count(topic) > 0
            || !self.registry.queue_group_info(topic).is_empty()
            || self
                .registry
                .interest_keys()
                .iter()
                .any(|k| wse_core::glob::is_glob(k) && wse_core::glob::glob_match(k, topic));
        if !self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            Shared::deliver_routed(self, topic, payload, trailer);
        }
        wanted
    }

    fn with_snapshot(&self, f: &mut dyn FnMut(&[String], &[String])) {
        match &self.presence {
            Some(presence) => {
                let p = lock(presence);
                let chunks = p.own_chunks();
                self.registry.with_interest_keys(|keys| f(keys, &chunks));
            }
            None => self.registry.with_interest_keys(|keys| f(keys, &[])),
        }
    }

    fn merge_presence(&self, chunk: PresenceChunk) {
        self.merge_remote_presence(chunk);
    }

    fn forget_presence(&self, origin: NodeId) {
        self.forget_remote_presence(origin);
    }

    fn now(&self) -> (Instant, WallClock) {
        Shared::now(self)
    }
}

impl Server {
    /// Joins the cluster (UPSTREAM §10.10): binds `config.cluster_port` (if any) on
    /// `config.bind_host`, loads the TLS files (if any), and starts dialling. Errors:
    /// [`ClusterError`] (already connected, seeds without `cluster_addr`, bad addresses, TLS,
    /// bind).
    pub async fn connect_cluster(&self, config: ClusterConfig) -> Result<(), ClusterError> {
        let listener = match config.cluster_port {
            Some(port) => {
                let addr = format!("{}:{port}", config.bind_host);
                let l = TcpListener::bind(&addr)
                    .await
                    .map_err(|source| ClusterError::Bind { addr, source })?;
                Some(l)
            }
            None => None,
        };
        self.connect_cluster_on(config, listener, TcpConnector)
    }

    /// [`Server::connect_cluster`] over a given listener and connector (the simulator's).
    pub fn connect_cluster_on<L: Listener, C: Connector>(
        &self,
        config: ClusterConfig,
        listener: Option<L>,
        connector: C,
    ) -> Result<(), ClusterError> {
        let shared = &self.shared;
        if shared.cluster.get().is_some() {
            return Err(ClusterError::AlreadyConnected);
        }
        if shared.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ClusterError::NotStarted);
        }
        config.validate()?;
        let tls = config.tls.as_ref().map(ClusterTls::load).transpose()?;
        let (_, wall) = shared.now();
        let (instance_id, seed) = {
            let mut rng = lock(&shared.rng);
            let id = uuid_v7(wall, &mut *rng).to_string();
            (id, rand_core::RngCore::next_u64(&mut *rng))
        };
        let node: std::sync::Weak<dyn Node> = Arc::downgrade(shared) as _;
        let cluster = Cluster::start(config, tls, instance_id, node, listener, connector, seed);
        if shared.cluster.set(cluster.clone()).is_err() {
            // Lost a race with another connect_cluster: this one never registered anything.
            return Err(ClusterError::AlreadyConnected);
        }
        // Connections already open answer their next `client_hello` with `features.cluster`.
        let peers: Vec<_> = lock(&shared.conns).values().cloned().collect();
        for peer in peers {
            lock(&peer.machine).set_cluster_enabled(true);
        }
        let weak = Arc::downgrade(shared);
        shared
            .registry
            .set_observer(Arc::new(move |first: &[String], last: &[String]| {
                if let Some(c) = weak.upgrade().and_then(|s| s.cluster.get().cloned()) {
                    c.interest_changed(first, last);
                }
            }));
        Ok(())
    }

    /// Publishes to `topic` on this node ([`Server::broadcast_local`]) and routes it to every
    /// peer with subscribers for it, under the same recovery stamp.
    pub fn broadcast(&self, topic: &str, text: &str) -> Option<(wse_core::recovery::Epoch, u64)> {
        let shared = &self.shared;
        shared
            .topic_counts
            .record(topic, |t| shared.registry.subscriber_count(t) > 0);
        shared.publish(topic, &wse_core::protocol::inject_category(text), true)
    }

    /// The mesh, once connected.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.shared.cluster.get()
    }

    /// True while at least one peer link is established.
    pub fn cluster_connected(&self) -> bool {
        self.cluster().is_some_and(Cluster::connected)
    }

    /// Live peer links.
    pub fn cluster_peers_count(&self) -> usize {
        self.cluster().map_or(0, Cluster::peers_count)
    }

    /// Live peers a publication on `topic` would be routed to now.
    pub fn cluster_routes(&self, topic: &str) -> usize {
        self.cluster().map_or(0, |c| c.routes(topic))
    }

    /// One entry per live link (UPSTREAM §7.8 keys via [`PeerInfo::to_json`]).
    pub fn cluster_info(&self) -> Vec<PeerInfo> {
        self.cluster().map_or_else(Vec::new, Cluster::info)
    }

    /// `cluster_info()` as the list of dicts of UPSTREAM §7.8.
    pub fn cluster_info_json(&self) -> Value {
        Value::Array(self.cluster_info().iter().map(PeerInfo::to_json).collect())
    }

    /// Swaps the TLS configuration for future handshakes.
    pub fn reload_cluster_tls(&self, files: &TlsFiles) -> Result<(), ClusterError> {
        match self.cluster() {
            Some(c) => c.reload_tls(files),
            None => Err(ClusterError::TlsNotConfigured),
        }
    }

    /// Drains the dead-letter queue.
    pub fn get_cluster_dlq_entries(&self) -> Vec<DeadLetter> {
        self.cluster()
            .map_or_else(Vec::new, Cluster::take_dead_letters)
    }

    /// Cluster figures for health and metrics (zeros before `connect_cluster`).
    pub fn cluster_figures(&self) -> ClusterFigures {
        self.cluster()
            .map_or_else(ClusterFigures::default, Cluster::figures)
    }
}
