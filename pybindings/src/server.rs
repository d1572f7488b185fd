//! `RustWSEServer`: the original Python server class (UPSTREAM §7.2–§7.10) on a `wse-runtime`
//! server.
//!
//! Each started server owns a multi-thread tokio runtime (threads `wse-tokio-rt`) and a
//! [`ServerHandle`]. Events reach Python one of two ways, fixed at `start()`:
//! - **drain mode** (`enable_drain_mode()` before `start()`): they stay in the bounded inbound
//!   queue; `drain_inbound` waits for the first with the GIL released, then converts the whole
//!   batch under one GIL hold;
//! - otherwise a dedicated thread hands each to the `set_callbacks` callables (looked up per
//!   event, so callbacks set after `start()` take effect); with no callbacks they are dropped.
//!
//! Locking rule (no GIL deadlock): none of our locks is ever held while taking the GIL, and
//! every wait (start, stop, drain_inbound, get_connections) happens with the GIL released.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use wse_core::ConnId;
use wse_core::config::{JwtSettings, ServerConfig};
use wse_core::conn::ConnSettings;
use wse_core::pubsub::SubscribeError;
use wse_runtime::cluster::{ClusterConfig, ClusterError, ClusterTls, TlsFiles};
use wse_runtime::server::{
    RecoveryError, RecoveryOutcome, ServerEvent, ServerHandle, StartError, TopicRecovery,
};
use wse_runtime::stats;

use crate::convert::{to_json, to_json_map, to_py};
use crate::functions::parse_algorithm;

/// How long `stop()` lets the runtime finish its last tasks after the server shut down.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Running {
    rt: tokio::runtime::Runtime,
    handle: ServerHandle,
}

#[derive(Debug)]
struct Callbacks {
    on_connect: Py<PyAny>,
    on_message: Py<PyAny>,
    on_disconnect: Py<PyAny>,
}

type SharedCallbacks = Arc<RwLock<Option<Arc<Callbacks>>>>;

/// The WSE WebSocket server, embeddable in a Python process.
///
/// Construction validates every option (`ValueError` names the parameter; negative numbers
/// raise `OverflowError`) and does not bind. `start()` binds before it returns and raises
/// `OSError` when it cannot (a busy port, say). Events reach Python through
/// `drain_inbound()` (after `enable_drain_mode()`) or the `set_callbacks()` callables.
#[pyclass(module = "wse_server._wse_accel", name = "RustWSEServer", subclass)]
#[derive(Debug)]
pub struct RustWseServer {
    config: ServerConfig,
    drain_mode: AtomicBool,
    callbacks: SharedCallbacks,
    running: RwLock<Option<Arc<Running>>>,
    /// Serialises start and stop (taken only with the GIL released).
    lifecycle: Mutex<()>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(PoisonError::into_inner).clone()
}

fn not_running() -> PyErr {
    PyRuntimeError::new_err("Not running")
}

/// Parses a connection id; `None` for a string that cannot name a connection.
fn parse_conn_id(id: &str) -> Option<ConnId> {
    ConnId::from_str(id).ok()
}

fn optional_bytes(v: Option<Vec<u8>>) -> Option<Vec<u8>> {
    v.filter(|b| !b.is_empty())
}

// PyO3 extracts Python lists and optional strings into owned values.
#[allow(clippy::needless_pass_by_value)]
#[pymethods]
impl RustWseServer {
    /// Creates a server (does not bind). Parameters and defaults are the original's; the
    /// keyword-only additions are `allowed_origins` (Origin allow-list; default: the
    /// comma-separated `ALLOWED_ORIGINS` environment variable, unset = no check),
    /// `inbound_rate_capacity` / `inbound_rate_refill` (per-connection inbound token bucket,
    /// refill 0 disables it), `inbound_rate_grace_ms` (how long a connection may stay over the
    /// inbound limit before close 4429) and `send_dedup_window` (`send_event` ids remembered
    /// per connection), and `key_rotation_interval` (seconds between E2E key rotations with
    /// clients that negotiate them, 0 disables; `docs/encryption.md`), `signed_event_types` and
    /// `signing_secret` (`send_event` of those types carries `sig`; without a secret only
    /// encrypted connections sign, with a session-derived key).
    #[new]
    #[pyo3(signature = (
        host, port, max_connections = 1000, jwt_secret = None, jwt_issuer = None,
        jwt_audience = None, jwt_cookie_name = None, jwt_previous_secret = None,
        jwt_key_id = None, jwt_algorithm = None, jwt_private_key = None,
        max_inbound_queue_size = 131_072, recovery_enabled = false, recovery_buffer_size = 128,
        recovery_ttl = 300, recovery_max_messages = 500, recovery_memory_budget = 268_435_456,
        presence_enabled = false, presence_max_data_size = 4096, presence_max_members = 0,
        rate_limit_capacity = 100_000.0, rate_limit_refill = 10_000.0,
        max_message_size = 1_048_576, ping_interval = 25, idle_timeout = 60,
        max_outbound_queue_bytes = 16_777_216, max_subscriptions_per_connection = 0,
        *, allowed_origins = None, inbound_rate_capacity = 100_000.0,
        inbound_rate_refill = 10_000.0, inbound_rate_grace_ms = 5_000,
        send_dedup_window = 4096, key_rotation_interval = 3600, signed_event_types = None,
        signing_secret = None
    ))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn new(
        host: String,
        port: u16,
        max_connections: usize,
        jwt_secret: Option<Vec<u8>>,
        jwt_issuer: Option<String>,
        jwt_audience: Option<String>,
        jwt_cookie_name: Option<String>,
        jwt_previous_secret: Option<Vec<u8>>,
        jwt_key_id: Option<String>,
        jwt_algorithm: Option<String>,
        jwt_private_key: Option<Vec<u8>>,
        max_inbound_queue_size: usize,
        recovery_enabled: bool,
        recovery_buffer_size: usize,
        recovery_ttl: u64,
        recovery_max_messages: usize,
        recovery_memory_budget: usize,
        presence_enabled: bool,
        presence_max_data_size: usize,
        presence_max_members: usize,
        rate_limit_capacity: f64,
        rate_limit_refill: f64,
        max_message_size: usize,
        ping_interval: u64,
        idle_timeout: u64,
        max_outbound_queue_bytes: usize,
        max_subscriptions_per_connection: usize,
        allowed_origins: Option<Vec<String>>,
        inbound_rate_capacity: f64,
        inbound_rate_refill: f64,
        inbound_rate_grace_ms: u64,
        send_dedup_window: usize,
        key_rotation_interval: u64,
        signed_event_types: Option<Vec<String>>,
        signing_secret: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let algorithm = jwt_algorithm
            .as_deref()
            .map(parse_algorithm)
            .transpose()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "Unsupported jwt_algorithm: {}. Supported: HS256, RS256, ES256",
                    jwt_algorithm.as_deref().unwrap_or_default()
                ))
            })?
            .unwrap_or_default();
        let jwt = jwt_secret.map(|secret| JwtSettings {
            secret,
            algorithm,
            issuer: jwt_issuer,
            audience: jwt_audience,
            cookie_name: jwt_cookie_name,
            previous_secret: optional_bytes(jwt_previous_secret),
            key_id: jwt_key_id,
            private_key: optional_bytes(jwt_private_key),
        });
        let allowed_origins = match allowed_origins {
            Some(list) => list,
            None => std::env::var("ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let config = ServerConfig {
            host,
            port,
            max_connections,
            jwt,
            max_inbound_queue_size,
            recovery_enabled,
            recovery_buffer_size,
            recovery_ttl_secs: recovery_ttl,
            recovery_max_messages,
            recovery_memory_budget,
            presence_enabled,
            presence_max_data_size,
            presence_max_members,
            rate_limit_capacity,
            rate_limit_refill,
            max_message_size,
            ping_interval_secs: ping_interval,
            idle_timeout_secs: idle_timeout,
            max_outbound_queue_bytes,
            max_subscriptions_per_connection,
            allowed_origins,
            inbound_rate_capacity,
            inbound_rate_refill,
            inbound_rate_grace_ms,
            send_dedup_window,
            key_rotation_interval_secs: key_rotation_interval,
            signed_event_types: signed_event_types.unwrap_or_default(),
            signing_secret,
        };
        ConnSettings::from_config(&config).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(RustWseServer {
            config,
            drain_mode: AtomicBool::new(false),
            callbacks: Arc::new(RwLock::new(None)),
            running: RwLock::new(None),
            lifecycle: Mutex::new(()),
        })
    }

    // ---- lifecycle ------------------------------------------------------------------------

    /// Binds and starts serving; returns once the socket is bound (`is_running()` is then
    /// true). Raises `RuntimeError("Server is already running")` if started, `OSError` if the
    /// address cannot be bound. A stopped server can be started again.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let drain_mode = self.drain_mode.load(Ordering::SeqCst);
        py.detach(|| {
            let _lifecycle = self
                .lifecycle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if read(&self.running).is_some() {
                return Err(PyRuntimeError::new_err("Server is already running"));
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("wse-tokio-rt")
                .build()
                .map_err(|e| PyOSError::new_err(format!("cannot start the runtime: {e}")))?;
            let handle = rt
                .block_on(ServerHandle::start(&self.config))
                .map_err(|e| match e {
                    StartError::Config(c) => PyValueError::new_err(c.to_string()),
                    StartError::Bind { addr, source } => {
                        os_error(&format!("cannot bind {addr}: {source}"), &source)
                    }
                })?;
            if !drain_mode {
                let callbacks = Arc::clone(&self.callbacks);
                rt.block_on(handle.set_event_callback(move |ev| dispatch(&callbacks, &ev)));
            }
            *self.running.write().unwrap_or_else(PoisonError::into_inner) =
                Some(Arc::new(Running { rt, handle }));
            Ok(())
        })
    }

    /// Stops: closes every connection with 1001 "server shutting down", lets them flush for up
    /// to 2 s, then ends every task. A no-op when not running.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| {
            let _lifecycle = self
                .lifecycle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(running) = self
                .running
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            else {
                return;
            };
            running.rt.block_on(running.handle.stop());
            // Another thread may still hold the runtime for a moment (a drain_inbound wait);
            // it then drops it on return.
            if let Ok(Running { rt, handle }) = Arc::try_unwrap(running) {
                drop(handle);
                rt.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
            }
        });
    }

    /// Drain for a rolling restart: from now on new sockets are refused, every client is sent
    /// Close(`close_code`, `close_reason`) (clients reconnect elsewhere on 4300), and after
    /// `timeout` seconds the connections still open are dropped. Returns at once; call
    /// `stop()` afterwards. `RuntimeError("Not running")` if not started.
    #[pyo3(signature = (close_code = 4300, close_reason = "", timeout = 30))]
    fn drain(&self, close_code: u16, close_reason: &str, timeout: u64) -> PyResult<()> {
        let running = self.running()?;
        let _rt = running.rt.enter();
        running
            .handle
            .start_drain(close_code, close_reason, Duration::from_secs(timeout));
        Ok(())
    }

    /// True from a successful `start()` until `stop()` (also while draining).
    fn is_running(&self) -> bool {
        read(&self.running).is_some_and(|r| !r.handle.is_stopped())
    }

    /// Keeps events in the inbound queue for `drain_inbound()` instead of calling callbacks.
    /// Call it before `start()`: the mode is fixed when the server starts.
    fn enable_drain_mode(&self) {
        self.drain_mode.store(true, Ordering::SeqCst);
    }

    /// Installs the callback-mode handlers: `on_connect(conn_id, cookies)`,
    /// `on_message(conn_id, dict | str | bytes)`, `on_disconnect(conn_id)`. They run on one
    /// dedicated thread, in event order; an exception is printed and the next event goes on.
    /// Ignored in drain mode. `RuntimeError("All callbacks must be callable")` otherwise.
    fn set_callbacks(
        &self,
        on_connect: Bound<'_, PyAny>,
        on_message: Bound<'_, PyAny>,
        on_disconnect: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if !(on_connect.is_callable() && on_message.is_callable() && on_disconnect.is_callable()) {
            return Err(PyRuntimeError::new_err("All callbacks must be callable"));
        }
        let callbacks = Callbacks {
            on_connect: on_connect.unbind(),
            on_message: on_message.unbind(),
            on_disconnect: on_disconnect.unbind(),
        };
        *self
            .callbacks
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(callbacks));
        Ok(())
    }

    // ---- events ---------------------------------------------------------------------------

    /// Waits up to `timeout_ms` (GIL released) for the first event, then takes up to
    /// `max_count` in all without waiting, and returns them as tuples
    /// `(kind, conn_id, value)`: `("connect", id, cookies)`, `("auth_connect", id, user_id)`,
    /// `("msg", id, dict)`, `("raw", id, str)`, `("bin", id, bytes)`,
    /// `("disconnect", id, None)`. `[]` on timeout (or when not running).
    #[pyo3(signature = (max_count = 256, timeout_ms = 50))]
    fn drain_inbound<'py>(
        &self,
        py: Python<'py>,
        max_count: usize,
        timeout_ms: u64,
    ) -> PyResult<Bound<'py, PyList>> {
        let timeout = Duration::from_millis(timeout_ms);
        let batch = py.detach(|| match read(&self.running) {
            Some(r) => r.rt.block_on(r.handle.next_events(max_count, timeout)),
            None => {
                std::thread::sleep(timeout);
                Vec::new()
            }
        });
        let list = PyList::empty(py);
        for event in &batch {
            list.append(event_tuple(py, event)?)?;
        }
        Ok(list)
    }

    /// Events dropped because the inbound queue was full.
    fn inbound_dropped_count(&self) -> u64 {
        read(&self.running).map_or(0, |r| r.handle.inbound_dropped())
    }

    /// Events waiting in the inbound queue.
    fn inbound_queue_depth(&self) -> usize {
        read(&self.running).map_or(0, |r| r.handle.inbound_queue_depth())
    }

    // ---- sending --------------------------------------------------------------------------

    /// Sends `data` to one connection as a text frame, verbatim. Unknown ids are ignored.
    fn send(&self, conn_id: &str, data: &str) -> PyResult<()> {
        let running = self.running()?;
        if let Some(id) = parse_conn_id(conn_id) {
            running.handle.send(id, data);
        }
        Ok(())
    }

    /// Sends `data` to one connection as a binary frame, verbatim. Unknown ids are ignored.
    fn send_bytes(&self, conn_id: &str, data: &[u8]) -> PyResult<()> {
        let running = self.running()?;
        if let Some(id) = parse_conn_id(conn_id) {
            running.handle.send_bytes(id, data);
        }
        Ok(())
    }

    /// Frames an event for one connection: dedup by `id`, the outbound rate limit, the
    /// envelope (`t` → `c` category, `v: 1`, `id`/`seq`/`ts` added when absent), then JSON,
    /// `C:` zlib above `compression_threshold` bytes, or `M:` msgpack on a msgpack connection.
    /// Returns the payload bytes queued; 0 when deduplicated, rate-limited, or when the
    /// connection does not exist (the original returns the size even then).
    #[pyo3(signature = (conn_id, event, compression_threshold = 1024))]
    fn send_event(
        &self,
        conn_id: &str,
        event: &Bound<'_, PyAny>,
        compression_threshold: usize,
    ) -> PyResult<usize> {
        let running = self.running()?;
        let event = to_json_map(event)?;
        Ok(parse_conn_id(conn_id).map_or(0, |id| {
            running.handle.send_event(id, &event, compression_threshold)
        }))
    }

    /// Sends `data` to every connection as one text frame built once (category injected).
    fn broadcast_all(&self, data: &str) -> PyResult<()> {
        self.running()?.handle.broadcast_all(data);
        Ok(())
    }

    /// Sends `data` to every connection as one binary frame built once.
    fn broadcast_all_bytes(&self, data: &[u8]) -> PyResult<()> {
        self.running()?.handle.broadcast_all_bytes(data);
        Ok(())
    }

    /// Publishes `data` to a topic on this node: exact and matching glob subscribers (ACL
    /// checked at delivery) and one member of each queue group.
    fn broadcast_local(&self, topic: &str, data: &str) -> PyResult<()> {
        self.running()?.handle.broadcast_local(topic, data);
        Ok(())
    }

    /// Publishes `data` to a topic: on this node as `broadcast_local` does, and, once
    /// `connect_cluster` ran, to every peer with subscribers for the topic. Does not raise
    /// when the server is stopped: the message is then dropped.
    fn broadcast(&self, topic: &str, data: &str) {
        if let Some(r) = read(&self.running) {
            r.handle.broadcast(topic, data);
        }
    }

    // ---- cluster --------------------------------------------------------------------------

    /// Joins the cluster mesh: dials every address in `peers` (`host:port`, redialled forever)
    /// or, with `seeds`, the seeds instead (then `cluster_addr`, the `host:port` other nodes
    /// reach this one at, is required, and peers learn of each other through them). With
    /// `cluster_port` this node also accepts peers on that port (bound on 0.0.0.0). mTLS with
    /// `tls_cert`, `tls_key` and `tls_ca` (PEM paths; all three or none; without them the
    /// `WSE_CLUSTER_TLS_CERT` / `_KEY` / `_CA` environment variables, all three or none):
    /// both sides present a certificate chaining to the CA. Call once, after `start()`.
    /// `RuntimeError` for "Server not started", "Cluster already connected", seeds without
    /// `cluster_addr`, an address that is not `host:port`, partial or unusable TLS files;
    /// `OSError` when the cluster port cannot be bound.
    #[pyo3(signature = (
        peers, tls_cert = None, tls_key = None, tls_ca = None, cluster_port = None,
        seeds = None, cluster_addr = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn connect_cluster(
        &self,
        py: Python<'_>,
        peers: Vec<String>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        tls_ca: Option<PathBuf>,
        cluster_port: Option<u16>,
        seeds: Option<Vec<String>>,
        cluster_addr: Option<String>,
    ) -> PyResult<()> {
        // The checks come in the original's order: already connected, seeds, TLS, started.
        let running = read(&self.running).filter(|r| !r.handle.is_stopped());
        // Checked before binding, so a second call reports this and not a busy port.
        if running
            .as_ref()
            .is_some_and(|r| r.handle.cluster().is_some())
        {
            return Err(cluster_error(&ClusterError::AlreadyConnected));
        }
        // The original refuses `seeds=[]` without `cluster_addr` too.
        if seeds.is_some() && cluster_addr.is_none() {
            return Err(cluster_error(&ClusterError::SeedsNeedAddr));
        }
        let tls = if tls_cert.is_some() || tls_key.is_some() || tls_ca.is_some() {
            TlsFiles::from_parts(tls_cert, tls_key, tls_ca)
        } else {
            TlsFiles::from_env(|name| std::env::var(name).ok())
        }
        .map_err(|e| cluster_error(&e.into()))?;
        let Some(running) = running else {
            // Unusable files are reported before "not started", as by the original.
            if let Some(files) = &tls {
                ClusterTls::load(files).map_err(|e| cluster_error(&e.into()))?;
            }
            return Err(cluster_error(&ClusterError::NotStarted));
        };
        let mut config = ClusterConfig::new(peers);
        config.seeds = seeds.unwrap_or_default();
        config.cluster_addr = cluster_addr;
        config.cluster_port = cluster_port;
        config.tls = tls;
        py.detach(|| running.rt.block_on(running.handle.connect_cluster(config)))
            .map_err(|e| cluster_error(&e))
    }

    /// True while at least one peer link is up (False before `connect_cluster` and once
    /// stopped).
    fn cluster_connected(&self) -> bool {
        read(&self.running).is_some_and(|r| r.handle.cluster_connected())
    }

    /// Live peer links (0 before `connect_cluster` and once stopped).
    fn cluster_peers_count(&self) -> usize {
        read(&self.running).map_or(0, |r| r.handle.cluster_peers_count())
    }

    /// One dict per live peer link: `{"address": str, "instance_id": str, "capabilities":
    /// int, "connected_at": int}` (`connected_at` in Unix milliseconds). `[]` without a
    /// cluster.
    fn cluster_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let info = read(&self.running)
            .map_or_else(|| serde_json::json!([]), |r| r.handle.cluster_info_json());
        to_py(py, &info)
    }

    /// Loads new mTLS files (PEM paths) for the links made from now on; live links keep
    /// theirs. `RuntimeError("Cluster TLS not configured")` when the cluster was joined
    /// without TLS (or not joined, or the server is stopped); `RuntimeError("TLS config error:
    /// ...")` naming a file that is missing or unusable, the current files then stay in use.
    fn reload_cluster_tls(
        &self,
        py: Python<'_>,
        cert_path: PathBuf,
        key_path: PathBuf,
        ca_path: PathBuf,
    ) -> PyResult<()> {
        let Some(running) = read(&self.running) else {
            return Err(cluster_error(&ClusterError::TlsNotConfigured));
        };
        let files = TlsFiles {
            cert: cert_path,
            key: key_path,
            ca: ca_path,
        };
        py.detach(|| running.handle.reload_cluster_tls(&files))
            .map_err(|e| cluster_error(&e))
    }

    /// Takes (and so empties) the cluster dead-letter queue: publications a peer with
    /// subscribers never got, as `{"topic": str, "payload": str, "peer_addr": str, "error":
    /// str}` in the order they were lost. `error` is "peer channel closed" for a peer that
    /// went away, "peer queue full" for one too slow to take it, or another reason.
    fn get_cluster_dlq_entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let Some(running) = read(&self.running) else {
            return Ok(list);
        };
        for letter in running.handle.get_cluster_dlq_entries() {
            let d = PyDict::new(py);
            d.set_item("topic", &letter.topic)?;
            d.set_item("payload", &*letter.payload)?;
            d.set_item("peer_addr", &letter.peer)?;
            d.set_item("error", letter.reason.as_str())?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Not in the original: how many live peers a `broadcast` on `topic` would be routed to
    /// now, i.e. linked peers with a subscriber for it (exact or glob). Once a client on
    /// another node subscribed, this becomes non-zero when that interest has reached this
    /// node; tests and applications wait on it instead of sleeping. 0 without a cluster.
    fn cluster_routes(&self, topic: &str) -> usize {
        read(&self.running).map_or(0, |r| r.handle.cluster_routes(topic))
    }

    // ---- connections, topics, ACL, queue groups -------------------------------------------

    /// Registered connections.
    fn get_connection_count(&self) -> usize {
        read(&self.running).map_or(0, |r| r.handle.connection_count())
    }

    /// Ids of the registered connections.
    fn get_connections(&self) -> PyResult<Vec<String>> {
        let running = self.running()?;
        Ok(running
            .handle
            .connections()
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    /// Closes a connection with `code` (default 1000) and `reason`; its `disconnect` event
    /// follows once the close completes. Unknown ids are ignored.
    #[pyo3(signature = (conn_id, code = 1000, reason = ""))]
    fn disconnect(&self, conn_id: &str, code: u16, reason: &str) -> PyResult<()> {
        if !is_sendable_close_code(code) {
            return Err(PyValueError::new_err(format!(
                "code: {code} cannot be sent in a Close frame (use 1000, 1001, 1002, 1003, \
                 1007-1014 or 3000-4999)"
            )));
        }
        if reason.len() > 123 {
            return Err(PyValueError::new_err(
                "reason: longer than 123 bytes (the Close frame limit)",
            ));
        }
        let running = self.running()?;
        if let Some(id) = parse_conn_id(conn_id) {
            running.handle.disconnect(id, code, reason);
        }
        Ok(())
    }

    /// Replaces a connection's topic ACL (also one from the JWT `wse_topics` claim): `deny`
    /// wins, an empty `allow` allows everything; `*` and `?` globs. Checked when subscribing,
    /// and at delivery for glob subscriptions.
    #[pyo3(signature = (conn_id, allow = None, deny = None))]
    fn set_topic_acl(&self, conn_id: &str, allow: Option<Vec<String>>, deny: Option<Vec<String>>) {
        if let (Some(r), Some(id)) = (read(&self.running), parse_conn_id(conn_id)) {
            r.handle
                .set_topic_acl(id, allow.unwrap_or_default(), deny.unwrap_or_default());
        }
    }

    /// Subscribes a connection to `topics` (`*`/`?` make glob subscriptions), or with
    /// `queue_group` joins each topic's group for round-robin delivery instead. Topics the
    /// ACL refuses or that contain control characters are dropped; at
    /// `max_subscriptions_per_connection` a `RuntimeError`, below it the list is cut to the
    /// remaining budget. Unknown ids (and a stopped server) are ignored. With `presence_data`
    /// (presence enabled, JWT-authenticated connection) the user is tracked as present in each
    /// topic added: the first connection of a user makes a `presence_join`.
    #[pyo3(signature = (conn_id, topics, presence_data = None, queue_group = None))]
    fn subscribe_connection(
        &self,
        conn_id: &str,
        topics: Vec<String>,
        presence_data: Option<&Bound<'_, PyAny>>,
        queue_group: Option<&str>,
    ) -> PyResult<()> {
        let data = presence_data.map(to_json).transpose()?;
        let (Some(r), Some(id)) = (read(&self.running), parse_conn_id(conn_id)) else {
            return Ok(());
        };
        r.handle
            .subscribe_connection(id, &topics, data.as_ref(), queue_group)
            .map(drop)
            .map_err(|e| subscribe_error(conn_id, &e))
    }

    /// Subscribes (no presence, no queue group) and, with `recover=True` and both `epoch` (8
    /// hex digits) and `offset` (the last offset the client has), replays what the connection
    /// missed in each topic. The same position is used for every topic: call once per topic
    /// when the client sent one position per topic. Returns `{"recovered": bool, "topics":
    /// {topic: {"epoch": str | None, "offset": int, "recoverable": bool, "recovered": bool,
    /// "count": int}}}`; `recovered` is true only when every topic was recovered. A topic the
    /// ACL refuses is reported as having nothing. `RuntimeError` for a bad epoch, at the
    /// subscription limit, or for `recover=True` when not running.
    #[pyo3(signature = (conn_id, topics, recover = false, epoch = None, offset = None))]
    fn subscribe_with_recovery<'py>(
        &self,
        py: Python<'py>,
        conn_id: &str,
        topics: Vec<String>,
        recover: bool,
        epoch: Option<&str>,
        offset: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let running = if recover {
            Some(self.running()?)
        } else {
            read(&self.running)
        };
        let id = parse_conn_id(conn_id);
        let outcome = match (&running, id) {
            (Some(r), Some(id)) => r
                .handle
                .subscribe_with_recovery(id, &topics, recover, epoch, offset)
                .map_err(|e| match e {
                    RecoveryError::InvalidEpoch(e) => PyRuntimeError::new_err(e.to_string()),
                    RecoveryError::Subscribe(e) => subscribe_error(conn_id, &e),
                })?,
            _ => {
                if let Some(e) = epoch.filter(|_| recover) {
                    e.parse::<wse_core::recovery::Epoch>()
                        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
                }
                RecoveryOutcome {
                    recovered: false,
                    topics: topics
                        .iter()
                        .map(|t| (t.clone(), TopicRecovery::NOTHING))
                        .collect(),
                }
            }
        };
        let per_topic = PyDict::new(py);
        for (topic, t) in &outcome.topics {
            let d = PyDict::new(py);
            d.set_item("epoch", t.epoch.map(|e| e.to_string()))?;
            d.set_item("offset", t.offset)?;
            d.set_item("recoverable", t.recoverable)?;
            d.set_item("recovered", t.recovered)?;
            d.set_item("count", t.count)?;
            per_topic.set_item(topic, d)?;
        }
        let result = PyDict::new(py);
        result.set_item("recovered", outcome.recovered)?;
        result.set_item("topics", per_topic)?;
        Ok(result)
    }

    /// Unsubscribes a connection from `topics`, or from everything (queue groups included)
    /// when `topics` is None.
    #[pyo3(signature = (conn_id, topics = None))]
    fn unsubscribe_connection(&self, conn_id: &str, topics: Option<Vec<String>>) {
        if let (Some(r), Some(id)) = (read(&self.running), parse_conn_id(conn_id)) {
            r.handle.unsubscribe_connection(id, topics.as_deref());
        }
    }

    /// Fan-out subscribers of exactly this topic key (queue-group members not counted).
    fn get_topic_subscriber_count(&self, topic: &str) -> usize {
        read(&self.running).map_or(0, |r| r.handle.topic_subscriber_count(topic))
    }

    /// `{group: member_count}` for the topic's queue groups.
    fn get_queue_group_info<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        if let Some(r) = read(&self.running) {
            for (group, members) in r.handle.queue_group_info(topic) {
                dict.set_item(group, members)?;
            }
        }
        Ok(dict)
    }

    // ---- presence -------------------------------------------------------------------------

    /// The users present in `topic`: `{user_id: {"data": ..., "connections": int}}` (empty when
    /// presence is off or the server is not running).
    fn presence<'py>(&self, py: Python<'py>, topic: &str) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        if let Some(r) = read(&self.running) {
            for (user, p) in r.handle.presence(topic) {
                let entry = PyDict::new(py);
                entry.set_item("data", to_py(py, &p.data)?)?;
                entry.set_item("connections", p.connections)?;
                dict.set_item(user, entry)?;
            }
        }
        Ok(dict)
    }

    /// `{"num_users": int, "num_connections": int}` of `topic` (zeros when presence is off).
    fn presence_stats<'py>(&self, py: Python<'py>, topic: &str) -> PyResult<Bound<'py, PyDict>> {
        let stats = read(&self.running)
            .map(|r| r.handle.presence_stats(topic))
            .unwrap_or_default();
        let dict = PyDict::new(py);
        dict.set_item("num_users", stats.num_users)?;
        dict.set_item("num_connections", stats.num_connections)?;
        Ok(dict)
    }

    /// Replaces the connection's presence data in every topic where it has presence and sends
    /// `presence_update` there. A no-op when presence is off; `RuntimeError` when the data is
    /// over `presence_max_data_size` or the connection has no presence.
    fn update_presence(&self, conn_id: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.config.presence_enabled {
            return Ok(());
        }
        let data = to_json(data)?;
        let refused = || {
            PyRuntimeError::new_err(
                "Failed to update presence data (size limit or unknown connection)",
            )
        };
        let (Some(r), Some(id)) = (read(&self.running), parse_conn_id(conn_id)) else {
            return Err(refused());
        };
        r.handle.update_presence(id, data).map_err(|_| refused())
    }

    // ---- health ---------------------------------------------------------------------------

    /// Health figures (keys of the original: connections, queue, cluster, recovery, presence,
    /// `uptime_secs`); zeros when not running.
    fn health_snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = match read(&self.running) {
            Some(r) => r.handle.health_snapshot(),
            None => stats::stopped_health_snapshot(
                self.config.recovery_enabled,
                self.config.presence_enabled,
            ),
        };
        let dict = PyDict::new(py);
        for (key, value) in &snapshot {
            dict.set_item(key, to_py(py, value)?)?;
        }
        Ok(dict)
    }

    /// Prometheus text exposition (`# HELP`/`# TYPE` lines, `wse_*` metric names).
    fn prometheus_metrics(&self) -> String {
        read(&self.running).map_or_else(stats::stopped_prometheus_metrics, |r| {
            r.handle.prometheus_metrics()
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "RustWSEServer(host={:?}, port={}, running={})",
            self.config.host,
            self.config.port,
            self.is_running()
        )
    }
}

impl RustWseServer {
    /// The running server, or `RuntimeError("Not running")`.
    fn running(&self) -> PyResult<Arc<Running>> {
        read(&self.running)
            .filter(|r| !r.handle.is_stopped())
            .ok_or_else(not_running)
    }
}

/// `OSError(errno, msg)` for an I/O error that carries an errno, else `OSError(msg)`.
fn os_error(msg: &str, source: &std::io::Error) -> PyErr {
    match source.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, msg.to_owned())),
        None => PyOSError::new_err(msg.to_owned()),
    }
}

/// The exception for a cluster error: `OSError` when the cluster port cannot be bound,
/// `RuntimeError` with the error's message otherwise.
fn cluster_error(e: &ClusterError) -> PyErr {
    match e {
        ClusterError::Bind { source, .. } => os_error(&e.to_string(), source),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// Close codes an endpoint may put on the wire (RFC 6455 §7.4).
fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn subscribe_error(conn_id: &str, e: &SubscribeError) -> PyErr {
    match e {
        SubscribeError::LimitReached { limit } => PyRuntimeError::new_err(format!(
            "Connection {conn_id} reached max subscriptions ({limit})"
        )),
    }
}

fn presence_payload<'py>(
    py: Python<'py>,
    topic: &str,
    user_id: &str,
    data: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    let dict = PyDict::new(py);
    dict.set_item("topic", topic)?;
    dict.set_item("user_id", user_id)?;
    dict.set_item("data", to_py(py, data)?)?;
    Ok(dict.into_any())
}

fn event_tuple<'py>(py: Python<'py>, event: &ServerEvent) -> PyResult<Bound<'py, PyTuple>> {
    let none = || py.None().into_bound(py);
    let (kind, id, value): (&str, Option<String>, Bound<'py, PyAny>) = match event {
        ServerEvent::Connect(id, cookies) => (
            "connect",
            Some(id.to_string()),
            PyString::new(py, cookies).into_any(),
        ),
        ServerEvent::AuthConnect(id, user, _) => (
            "auth_connect",
            Some(id.to_string()),
            PyString::new(py, user).into_any(),
        ),
        ServerEvent::Msg(id, v) => ("msg", Some(id.to_string()), to_py(py, v)?),
        ServerEvent::Raw(id, text) => (
            "raw",
            Some(id.to_string()),
            PyString::new(py, text).into_any(),
        ),
        ServerEvent::Bin(id, data) => (
            "bin",
            Some(id.to_string()),
            PyBytes::new(py, data).into_any(),
        ),
        ServerEvent::PresenceJoin {
            topic,
            user_id,
            data,
        } => (
            "presence_join",
            None,
            presence_payload(py, topic, user_id, data)?,
        ),
        ServerEvent::PresenceLeave {
            topic,
            user_id,
            data,
        } => (
            "presence_leave",
            None,
            presence_payload(py, topic, user_id, data)?,
        ),
        ServerEvent::Disconnect(id) => ("disconnect", Some(id.to_string()), none()),
    };
    PyTuple::new(
        py,
        [
            PyString::new(py, kind).into_any(),
            id.into_pyobject(py)?.into_any(),
            value,
        ],
    )
}

/// Runs on the event thread: hands one event to the current callbacks (dropped without).
fn dispatch(callbacks: &SharedCallbacks, event: &ServerEvent) {
    let Some(cb) = read(callbacks) else {
        return;
    };
    // `None` when the interpreter is finalizing: nobody is left to call.
    let _ = Python::try_attach(|py| {
        let result = match event {
            ServerEvent::Connect(id, cookies) | ServerEvent::AuthConnect(id, _, cookies) => cb
                .on_connect
                .call1(py, (id.to_string(), cookies.as_str()))
                .map(drop),
            ServerEvent::Msg(id, v) => to_py(py, v)
                .and_then(|value| cb.on_message.call1(py, (id.to_string(), value)))
                .map(drop),
            ServerEvent::Raw(id, text) => cb
                .on_message
                .call1(py, (id.to_string(), text.as_str()))
                .map(drop),
            ServerEvent::Bin(id, data) => cb
                .on_message
                .call1(py, (id.to_string(), PyBytes::new(py, data)))
                .map(drop),
            ServerEvent::Disconnect(id) => cb.on_disconnect.call1(py, (id.to_string(),)).map(drop),
            // Callback mode has no presence callbacks (as the original); presence still works
            // over the wire and through `presence()`.
            ServerEvent::PresenceJoin { .. } | ServerEvent::PresenceLeave { .. } => Ok(()),
        };
        if let Err(err) = result {
            err.display(py);
        }
    });
}
