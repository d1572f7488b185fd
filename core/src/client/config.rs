//! The client's configuration: every limit with the published Python client's default.
//!
//! Owns [`ClientConfig`] and its validation. Each field documents its bound and what happens
//! when the bound is reached; [`ClientConfig::validate`] rejects values the machine cannot run
//! with (a zero ping interval would make the ping timer spin, a zero dedup window would dedup
//! nothing) and names the field at fault.

use std::time::Duration;

use super::reconnect::ReconnectPolicy;
use crate::config::ConfigError;

/// Configuration of a [`Client`](super::Client). `Default` is the Python client's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Topics subscribed on the first connect (with any added by `subscribe` before it).
    pub topics: Vec<String>,
    /// Backoff between reconnect attempts.
    pub reconnect: ReconnectPolicy,
    /// Client `ping` every this long while `Ready` (15 s).
    pub ping_interval: Duration,
    /// No frame from the server for this long → close 4000 "idle" and reconnect (40 s).
    pub idle_timeout: Duration,
    /// How long to wait for `server_ready` before proceeding anyway (10 s).
    pub ready_timeout: Duration,
    /// Ids remembered for dedup of unstamped messages (10 000; the oldest is forgotten first).
    pub dedup_window: usize,
    /// An id is forgotten this long after it was seen (300 s).
    pub dedup_max_age: Duration,
    /// Messages `send()` queues while not `Ready` (1000; when full the oldest is dropped and
    /// counted). 0 disables the queue: `send()` then fails while not `Ready`.
    pub offline_queue: usize,
    /// Largest inbound frame, largest decompressed `C:` payload and largest outbound message,
    /// in bytes (1 MiB, the Python client's `max_size`).
    pub max_frame_size: usize,
    /// `client_version` announced in `client_hello`.
    pub client_version: String,
    /// Topics whose position is tracked (10 000). A stamped message on a further topic is
    /// delivered untracked (no duplicate or gap detection) and counted.
    pub max_tracked_topics: usize,
    /// A recovery request unanswered for this long is given up at the topic's next gap: the
    /// client announces the loss (`NotRecovered`) and resumes from that message (10 s). Without
    /// this, a server that never acknowledges would stall the topic forever.
    pub recovery_timeout: Duration,
    /// Presence data sent with every subscribe request as `p.presence` (`None`: no presence).
    /// Our extension, answered by the standalone server's built-in protocol (the published
    /// clients never send it; an embedding application may read it from the event).
    pub presence: Option<serde_json::Value>,
    /// Ask for end-to-end encryption in `client_hello` (ECDH P-256, `docs/encryption.md`),
    /// announcing `features.key_rotation` too. Needs [`super::Client::set_crypto_seed`].
    pub encryption: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            topics: Vec::new(),
            reconnect: ReconnectPolicy::default(),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(40),
            ready_timeout: Duration::from_secs(10),
            dedup_window: 10_000,
            dedup_max_age: Duration::from_secs(300),
            offline_queue: 1000,
            max_frame_size: 1 << 20,
            client_version: concat!("wse-core/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_tracked_topics: 10_000,
            recovery_timeout: Duration::from_secs(10),
            presence: None,
            encryption: false,
        }
    }
}

impl ClientConfig {
    /// Checks every field, the reconnect policy included.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
            ("dedup_max_age", self.dedup_max_age),
            ("recovery_timeout", self.recovery_timeout),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be greater than 0"));
            }
        }
        let nonzero = [
            ("dedup_window", self.dedup_window),
            ("max_frame_size", self.max_frame_size),
            ("max_tracked_topics", self.max_tracked_topics),
        ];
        for (field, value) in nonzero {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        self.reconnect.validate()
    }
}
