//! The client machine: the published Python client's protocol (UPSTREAM §11.1) as a Sans-IO
//! state machine, for the Rust client, the load generator and the simulator.
//!
//! One [`Client`] per logical client across all its connections. It decides when to connect
//! and reconnect (backoff per [`ReconnectPolicy`]), runs the session handshake (`server_ready`
//! → `client_hello` → subscription with recovery positions → offline queue), keeps the session
//! alive (client `ping`, `PONG` replies, idle timeout), tracks each topic's recovery position
//! and turns inbound frames into application [`Event`]s after duplicate and gap checks.
//!
//! ## Grammar
//!
//! - Construction: [`Client::new`] with a [`ClientConfig`], the wall clock at `Instant::ZERO`
//!   and a seed (ids and jitter come from a `ChaCha8Rng` seeded with it).
//! - Inputs: `start`, `handle_connected`, `handle_connect_failed`, `handle_text`,
//!   `handle_binary`, `handle_closed`, `handle_timeout`.
//! - Commands: `subscribe`, `unsubscribe`, `send`, `close`.
//! - Outputs: drain [`Client::poll_output`] until `None` after every input or command, in
//!   order. [`Output::Connect`] asks for a new connection; [`Output::Close`] ends the current one
//!   (the driver then drops that socket without reporting it).
//! - Time: [`Client::poll_timeout`] is the one next deadline (ready timeout, ping, idle, end of
//!   backoff); `handle_timeout` is harmless early or twice. The dial/handshake timeout belongs
//!   to the driver, which reports it with `handle_connect_failed`.
//!
//! ## Session rules
//!
//! - Close codes (UPSTREAM §11.1): 1000/1001/1005 → `Closed`; 4401/4403/1008 → `Failed`;
//!   anything else, or a network error, → `Backoff` with `delay(n)`, `n` the reconnect attempts
//!   already made since the last `Ready`; `max_attempts` reached → `Failed`.
//! - Idle: no data frame (text or binary) from the server for `idle_timeout` → `Close` 4000
//!   "idle", then reconnect. Binary frames count too: our server sends `send_event` traffic as
//!   binary, and a busy binary stream is a live connection.
//! - Subscription requests always carry the positions the client has: every request for a set
//!   of topics is one `subscription_update` with `recover: true` and a `recovery` entry per
//!   topic that has a position; topics without one ride along in `topics`, so a server that
//!   answers per topic (UPSTREAM §8.5) subscribes them plainly. Unlike the Python client this
//!   does not wait for `server_ready` to advertise `features.recovery`: a server without
//!   recovery answers `recovered: false`, which only moves cursors forward.
//! - Stamped messages follow the rules in `cursor.rs`; a topic has at most one recovery request
//!   in flight; an unanswered one is given up after `recovery_timeout` with an explicit
//!   `NotRecovered`. `Recovered`/`NotRecovered` are emitted for acks of topics whose recovery
//!   was requested (or, for `NotRecovered`, that had a position); a `recovered: false` entry
//!   for a topic the client knew nothing about just sets its position — except after a
//!   reconnect: a topic the server had acknowledged before and that is resubscribed without a
//!   position (the server had no history for it then) gets a `NotRecovered` with the ack's
//!   position, or with no epoch when the ack has no entry, because what was published while
//!   the client was away cannot be asked for (found by `wse-sim`: otherwise that loss was
//!   silent).
//!   A gap seen before `Ready` is asked for at once (the connection is up); the subscription
//!   sent at `Ready` asks again for every position, so a replay may arrive twice — its second
//!   copy is dropped as duplicates.
//! - Unstamped messages with an `id` are deduplicated by `dedup.rs`'s window.
//! - Positions and the subscribed set survive reconnects; recovery requests in flight do not.
//!   A topic the server lists in `failed_topics` leaves the subscribed set.
//! - `seq` is the client's own counter, from 1, assigned when a message is built (so a message
//!   queued offline keeps the `seq`, `id` and `ts` of its `send()` call).
//!
//! ## Bounds
//!
//! Offline queue `offline_queue` messages (drop oldest, counted); dedup window `dedup_window`
//! ids for at most `dedup_max_age`, each at most 64 bytes or a digest; positions for
//! `max_tracked_topics` topics (further topics delivered untracked, counted); in-flight
//! recovery requests at most one per tracked topic; inbound frames and decompressed `C:`
//! payloads `max_frame_size` bytes; msgpack nesting 64. The output queue holds what one input
//! produced (at most the offline queue plus a few frames, or one batch's messages); the driver
//! drains it after every call. The subscribed set is the application's (from `topics` and
//! `subscribe`), never grown by the server.

mod config;
mod cursor;
mod dedup;
mod inbound;
mod output;
mod reconnect;
mod wire;

pub use config::ClientConfig;
pub use cursor::Position;
pub use output::{ClientStats, Delivered, Event, FailReason, Output, SendError, State};
pub use reconnect::{ABSOLUTE_MAX_DELAY, ADAPTIVE_FLOOR_MAX, ReconnectPolicy, ReconnectStrategy};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use rand_core::SeedableRng;
use serde_json::Value;

use crate::config::ConfigError;
use crate::crypto::{ClientCryptoSession, EphemeralKeyPair};
use crate::rand::Entropy;
use crate::time::{Instant, WallClock};
use dedup::IdWindow;
use wire::Outgoing;

/// Close code the client sends when the server has been silent for `idle_timeout`.
pub const IDLE_CLOSE_CODE: u16 = 4000;
/// Close reason sent with [`IDLE_CLOSE_CODE`].
pub const IDLE_CLOSE_REASON: &str = "idle";
/// Close code of [`Client::close`].
pub const NORMAL_CLOSE_CODE: u16 = 1000;

/// Where the client is; each phase owns its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting,
    AwaitingReady {
        ready_deadline: Instant,
        last_rx: Instant,
    },
    Ready {
        next_ping: Instant,
        last_rx: Instant,
    },
    Backoff {
        until: Instant,
    },
    Closed,
    Failed(FailReason),
}

/// The client state machine. See the module docs for the grammar and the rules.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    wall_origin: WallClock,
    rng: ChaCha8Rng,
    phase: Phase,
    outputs: VecDeque<Output>,
    subscribed: BTreeSet<String>,
    positions: BTreeMap<String, Position>,
    /// Topics with a recovery request in flight, and when it was sent.
    recovering: BTreeMap<String, Instant>,
    /// Topics the server has acknowledged at least once (a subset of `subscribed`).
    confirmed: BTreeSet<String>,
    /// Topics resubscribed after a reconnect without a position: whatever was published while
    /// the client was away cannot be asked for, so the ack must announce the loss.
    resyncing: BTreeSet<String>,
    dedup: IdWindow,
    /// Encoded messages waiting for `Ready`.
    offline: VecDeque<String>,
    /// The last `seq` used.
    seq: i64,
    connection_id: Option<String>,
    /// Reconnect attempts scheduled since the last `Ready`.
    reconnect_attempts: u32,
    ever_ready: bool,
    /// This connection's E2E session, once `server_hello` accepted our key.
    crypto: Option<ClientCryptoSession>,
    /// Our key pair for this connection's exchange, until `server_hello` answers.
    pending_key: Option<EphemeralKeyPair>,
    /// The CSPRNG for key pairs and IVs ([`Client::set_crypto_seed`]).
    crypto_rng: Option<ChaCha20Rng>,
    stats: ClientStats,
}

impl Client {
    /// A client in `Idle`. `wall_origin` is the wall clock at `Instant::ZERO` (wall time is
    /// `wall_origin + now`); `seed` seeds the generator of message ids and backoff jitter.
    pub fn new(
        config: ClientConfig,
        wall_origin: WallClock,
        seed: u64,
    ) -> Result<Client, ConfigError> {
        config.validate()?;
        let subscribed = config.topics.iter().cloned().collect();
        let dedup = IdWindow::new(config.dedup_window, config.dedup_max_age);
        Ok(Client {
            wall_origin,
            rng: ChaCha8Rng::seed_from_u64(seed),
            phase: Phase::Idle,
            outputs: VecDeque::new(),
            subscribed,
            positions: BTreeMap::new(),
            recovering: BTreeMap::new(),
            confirmed: BTreeSet::new(),
            resyncing: BTreeSet::new(),
            dedup,
            offline: VecDeque::new(),
            seq: 0,
            connection_id: None,
            reconnect_attempts: 0,
            ever_ready: false,
            crypto: None,
            pending_key: None,
            crypto_rng: None,
            stats: ClientStats::default(),
            config,
        })
    }

    // ----- queries -------------------------------------------------------------------------

    /// Where the client is.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle => State::Idle,
            Phase::Connecting => State::Connecting,
            Phase::AwaitingReady { .. } => State::AwaitingReady,
            Phase::Ready { .. } => State::Ready,
            Phase::Backoff { until } => State::Backoff { until },
            Phase::Closed => State::Closed,
            Phase::Failed(reason) => State::Failed(reason),
        }
    }

    /// Each tracked topic's last accepted position.
    pub fn positions(&self) -> &BTreeMap<String, Position> {
        &self.positions
    }

    /// The subscribed topics, in order.
    pub fn subscribed(&self) -> impl Iterator<Item = &str> {
        self.subscribed.iter().map(String::as_str)
    }

    /// The connection id from the current session's `server_ready`.
    pub fn connection_id(&self) -> Option<&str> {
        self.connection_id.as_deref()
    }

    /// Topics with a recovery request in flight.
    pub fn recovering(&self) -> impl Iterator<Item = &str> {
        self.recovering.keys().map(String::as_str)
    }

    /// Messages waiting in the offline queue.
    pub fn offline_len(&self) -> usize {
        self.offline.len()
    }

    /// Reconnect attempts scheduled since the client was last `Ready`.
    pub fn reconnect_attempts(&self) -> u32 {
        self.reconnect_attempts
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    // ----- outputs and time ----------------------------------------------------------------

    /// The next output, in production order; drain until `None` after every call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next instant at which [`Client::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout;
        match self.phase {
            Phase::AwaitingReady {
                ready_deadline,
                last_rx,
            } => Some(ready_deadline.min(last_rx + idle)),
            Phase::Ready { next_ping, last_rx } => Some(next_ping.min(last_rx + idle)),
            Phase::Backoff { until } => Some(until),
            Phase::Idle | Phase::Connecting | Phase::Closed | Phase::Failed(_) => None,
        }
    }

    /// Fires what is due at `now`: idle close, ready timeout, ping, end of backoff.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::AwaitingReady {
                ready_deadline,
                last_rx,
            } => {
                if now >= last_rx + self.config.idle_timeout {
                    self.idle_close(now);
                } else if now >= ready_deadline {
                    self.become_ready(now, last_rx);
                }
            }
            Phase::Ready { next_ping, last_rx } => {
                if now >= last_rx + self.config.idle_timeout {
                    self.idle_close(now);
                } else if now >= next_ping {
                    // Skip missed periods instead of bursting pings after a stall.
                    let mut next = next_ping;
                    while next <= now {
                        next = next + self.config.ping_interval;
                    }
                    self.phase = Phase::Ready {
                        next_ping: next,
                        last_rx,
                    };
                    let ping = wire::ping(self.wall(now));
                    self.push_text(ping);
                }
            }
            Phase::Backoff { until } => {
                if now >= until {
                    self.phase = Phase::Connecting;
                    self.outputs.push_back(Output::Connect);
                }
            }
            Phase::Idle | Phase::Connecting | Phase::Closed | Phase::Failed(_) => {}
        }
    }

    // ----- inputs --------------------------------------------------------------------------

    /// Starts connecting: emits [`Output::Connect`]. Also restarts a closed or failed client
    /// (the reconnect count starts again); ignored while running.
    pub fn start(&mut self, _now: Instant) {
        if matches!(self.phase, Phase::Idle | Phase::Closed | Phase::Failed(_)) {
            self.reconnect_attempts = 0;
            self.phase = Phase::Connecting;
            self.outputs.push_back(Output::Connect);
        }
    }

    /// Seeds the generator for the E2E key pairs and IVs: 32 bytes from the OS in
    /// production, from the seed in simulation. Without it `encryption` is not requested.
    pub fn set_crypto_seed(&mut self, seed: [u8; 32]) {
        self.crypto_rng = Some(ChaCha20Rng::from_seed(seed));
    }

    /// Whether this connection's traffic is end-to-end encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.crypto.is_some()
    }

    /// The socket is open and the WebSocket handshake done: wait for `server_ready`.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.phase == Phase::Connecting {
            self.connection_id = None;
            // Every connection does its own exchange (UPSTREAM §4.1).
            self.crypto = None;
            self.pending_key = None;
            self.phase = Phase::AwaitingReady {
                ready_deadline: now + self.config.ready_timeout,
                last_rx: now,
            };
        }
    }

    /// The dial or the WebSocket handshake failed: back off (or fail, past `max_attempts`).
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if self.phase == Phase::Connecting {
            self.connection_lost(now, None);
        }
    }

    /// The connection ended: `Some(code)` when a close frame came, `None` for a network error
    /// or EOF without one. Applies the close-code policy (module docs). Ignored when the
    /// machine has no connection (for example after it emitted [`Output::Close`]).
    pub fn handle_closed(&mut self, now: Instant, close: Option<u16>) {
        if !matches!(
            self.phase,
            Phase::Connecting | Phase::AwaitingReady { .. } | Phase::Ready { .. }
        ) {
            return;
        }
        match close {
            Some(1000 | 1001 | 1005) => self.stop(Phase::Closed, close),
            Some(code @ (4401 | 4403 | 1008)) => {
                self.stop(Phase::Failed(FailReason::Rejected { code }), close);
            }
            _ => self.connection_lost(now, close),
        }
    }

    // ----- commands ------------------------------------------------------------------------

    /// Adds topics to the subscribed set; while `Ready`, sends one `subscription_update` for
    /// those not already subscribed (with the positions the client has for them). Before that,
    /// they are subscribed at the next `Ready`.
    pub fn subscribe(&mut self, now: Instant, topics: &[String]) {
        let fresh: BTreeSet<String> = topics
            .iter()
            .filter(|t| !self.subscribed.contains(*t))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return;
        }
        self.subscribed.extend(fresh.iter().cloned());
        if matches!(self.phase, Phase::Ready { .. }) {
            self.send_subscription(now, &fresh);
        }
    }

    /// Removes topics from the subscribed set (and forgets their positions); while `Ready`,
    /// sends one `subscription_update` unsubscribe for those that were subscribed.
    pub fn unsubscribe(&mut self, now: Instant, topics: &[String]) {
        let gone: BTreeSet<String> = topics
            .iter()
            .filter(|t| self.subscribed.contains(*t))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        for topic in &gone {
            self.subscribed.remove(topic);
            self.positions.remove(topic);
            self.recovering.remove(topic);
            self.confirmed.remove(topic);
            self.resyncing.remove(topic);
        }
        if matches!(self.phase, Phase::Ready { .. }) {
            let payload = wire::unsubscribe_payload(gone.iter().map(String::as_str));
            let text = self.envelope(now, "subscription_update", payload, None);
            self.push_text(text);
        }
    }

    /// Sends an application message `{"t": event_type, "p": payload}` in the client envelope.
    /// While not `Ready` it is queued (oldest dropped when `offline_queue` is full) and sent
    /// after the next `Ready`'s handshake.
    pub fn send(
        &mut self,
        now: Instant,
        event_type: &str,
        payload: Value,
    ) -> Result<(), SendError> {
        if matches!(self.phase, Phase::Closed | Phase::Failed(_)) {
            return Err(SendError::Closed);
        }
        let ready = matches!(self.phase, Phase::Ready { .. });
        if !ready && self.config.offline_queue == 0 {
            return Err(SendError::NotReady);
        }
        let text = self.envelope(now, event_type, payload, None);
        if text.len() > self.config.max_frame_size {
            return Err(SendError::TooLarge {
                size: text.len(),
                limit: self.config.max_frame_size,
            });
        }
        if ready {
            self.push_text(text);
        } else {
            if self.offline.len() >= self.config.offline_queue {
                self.offline.pop_front();
                self.stats.offline_dropped += 1;
            }
            self.offline.push_back(text);
        }
        Ok(())
    }

    /// Closes for good: [`Output::Close`] 1000 if connected, then `Closed` (no reconnect).
    /// `start` runs the client again.
    pub fn close(&mut self, _now: Instant) {
        match self.phase {
            Phase::Connecting | Phase::AwaitingReady { .. } | Phase::Ready { .. } => {
                self.outputs.push_back(Output::Close {
                    code: NORMAL_CLOSE_CODE,
                    reason: String::new(),
                });
                self.stop(Phase::Closed, Some(NORMAL_CLOSE_CODE));
            }
            Phase::Idle | Phase::Backoff { .. } => {
                self.recovering.clear();
                self.phase = Phase::Closed;
            }
            Phase::Closed | Phase::Failed(_) => {}
        }
    }

    // ----- internals -----------------------------------------------------------------------

    /// Wall time at `now`.
    fn wall(&self, now: Instant) -> WallClock {
        WallClock::from_unix_micros(
            self.wall_origin
                .unix_micros()
                .saturating_add(now.as_micros()),
        )
    }

    /// A UUIDv4 from the machine's generator.
    fn uuid_v4(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// An outbound envelope with the next `seq`.
    fn envelope(
        &mut self,
        now: Instant,
        event_type: &str,
        payload: Value,
        priority: Option<i64>,
    ) -> String {
        self.seq = self.seq.saturating_add(1);
        let id = self.uuid_v4();
        wire::envelope(Outgoing {
            event_type,
            payload,
            id,
            seq: self.seq,
            wall: self.wall(now),
            priority,
        })
    }

    /// `server_ready` arrived or the ready timeout passed: hello, subscription, offline queue,
    /// then the `Ready` event.
    fn become_ready(&mut self, now: Instant, last_rx: Instant) {
        let key = match (self.config.encryption, self.crypto_rng.as_mut()) {
            (true, Some(rng)) => {
                let pair = EphemeralKeyPair::generate(rng);
                let b64 = pair.public_key_b64();
                self.pending_key = Some(pair);
                Some(b64)
            }
            _ => None,
        };
        let hello = wire::client_hello_payload(
            &self.config.client_version,
            self.connection_id.as_deref(),
            key.as_deref(),
        );
        let text = self.envelope(now, "client_hello", hello, Some(wire::HELLO_PRIORITY));
        // The hello itself travels in plaintext (the key does not exist yet).
        self.outputs.push_back(Output::SendText(text));
        if !self.subscribed.is_empty() {
            if self.ever_ready {
                self.resyncing = self
                    .subscribed
                    .iter()
                    .filter(|t| self.confirmed.contains(*t) && !self.positions.contains_key(*t))
                    .cloned()
                    .collect();
            }
            let all = self.subscribed.clone();
            self.send_subscription(now, &all);
        }
        self.outputs
            .extend(self.offline.drain(..).map(Output::SendText)); // before the key: plain
        self.outputs.push_back(Output::Event(Event::Ready {
            connection_id: self.connection_id.clone(),
            reconnected: self.ever_ready,
        }));
        self.ever_ready = true;
        self.reconnect_attempts = 0;
        self.phase = Phase::Ready {
            next_ping: now + self.config.ping_interval,
            last_rx,
        };
    }

    /// One subscribe request for `topics`, carrying the positions of those that have one
    /// (which are then marked in flight).
    fn send_subscription(&mut self, now: Instant, topics: &BTreeSet<String>) {
        let recovery: BTreeMap<&str, Position> = topics
            .iter()
            .filter_map(|t| self.positions.get(t).map(|p| (t.as_str(), *p)))
            .collect();
        for topic in recovery.keys() {
            self.recovering.insert((*topic).to_owned(), now);
        }
        let mut payload = wire::subscribe_payload(topics.iter().map(String::as_str), &recovery);
        if let (Some(data), Value::Object(p)) = (&self.config.presence, &mut payload) {
            p.insert("presence".into(), data.clone());
        }
        let text = self.envelope(now, "subscription_update", payload, None);
        self.push_text(text);
    }

    /// Queues an outgoing message: an `E:` record once the exchange happened, else text.
    pub(super) fn push_text(&mut self, text: String) {
        match (self.crypto.as_mut(), self.crypto_rng.as_mut()) {
            (Some(session), Some(rng)) => {
                let frame = session.encrypt(text.as_bytes(), rng);
                self.outputs.push_back(Output::SendBinary(frame));
            }
            _ => self.outputs.push_back(Output::SendText(text)),
        }
    }

    /// The connection (or the attempt) is gone without a terminal code: back off, or fail
    /// once `max_attempts` is reached.
    fn connection_lost(&mut self, now: Instant, close: Option<u16>) {
        self.recovering.clear();
        self.resyncing.clear();
        self.connection_id = None;
        if let Some(max) = self.config.reconnect.max_attempts
            && self.reconnect_attempts >= max
        {
            let reason = FailReason::AttemptsExhausted {
                attempts: self.reconnect_attempts,
            };
            self.stop(Phase::Failed(reason), close);
            return;
        }
        let delay = self
            .config
            .reconnect
            .delay(self.reconnect_attempts, &mut self.rng);
        self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
        self.phase = Phase::Backoff { until: now + delay };
        self.push_event(Event::Disconnected {
            close,
            retry_in: Some(delay),
        });
    }

    /// Ends the session without reconnecting.
    fn stop(&mut self, phase: Phase, close: Option<u16>) {
        self.recovering.clear();
        self.resyncing.clear();
        self.connection_id = None;
        self.phase = phase;
        self.push_event(Event::Disconnected {
            close,
            retry_in: None,
        });
    }

    fn idle_close(&mut self, now: Instant) {
        self.outputs.push_back(Output::Close {
            code: IDLE_CLOSE_CODE,
            reason: IDLE_CLOSE_REASON.to_owned(),
        });
        self.connection_lost(now, Some(IDLE_CLOSE_CODE));
    }

    fn push_event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn protocol_error(&mut self, reason: impl Into<String>) {
        self.stats.protocol_errors += 1;
        self.push_event(Event::ProtocolError(reason.into()));
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
