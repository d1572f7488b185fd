//! The per-connection machine.
//!
//! One [`Connection`] per accepted WebSocket. It decides the handshake (Origin allow-list, JWT),
//! answers the protocol fast path (`client_hello` → `server_hello`, `ping` → `PONG`), keeps the
//! connection alive (server `ping` every `ping_interval`, close 4408 after `idle_timeout` without
//! inbound activity), limits inbound traffic (token bucket, `RATE_LIMITED`, close 4429 —
//! CONTRACT D2), frames `send_event` output (per-connection dedup window, outbound token bucket
//! with `rate_limit_warning`), and turns everything else into application [`Event`]s.
//!
//! ## Grammar
//!
//! - Construction: [`Connection::accept`] takes the handshake and immediately queues either the
//!   acceptance outputs (`server_ready` in JWT mode, then the connect event) or the rejection
//!   outputs (an `error` frame, then a close with 4401/4403).
//! - Inputs: `handle_text`, `handle_binary`, `handle_ws_ping`, `handle_ws_pong`,
//!   `handle_peer_close`, `handle_transport_closed`, `handle_timeout`.
//! - Commands: `send_event`, `send_frame`, `close`, `set_topic_acl`, `set_cluster_enabled`.
//! - Outputs: drain [`Connection::poll_output`] until `None` after every input or command. Outputs
//!   come out in the order they were produced; frames must be written in that order.
//! - Time: [`Connection::poll_timeout`] is the next deadline; `handle_timeout` is harmless early.
//!
//! ## Invariants
//!
//! - After a [`Output::Close`] (or a peer close) the machine emits no further frame or event
//!   (CONTRACT D10): inbound data is ignored and commands are refused.
//! - Once closing, a connection whose peer does not finish the close handshake within
//!   `close_grace` yields [`Output::Terminate`]: the driver drops the socket.
//! - All queues are bounded by what one input can produce (a handful of outputs); the driver
//!   drains them after every call.

mod settings;

pub use settings::{ConnSettings, Signing};

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::auth::{AuthError, TopicAcl};
use crate::crypto::rotation::{KEY_ROTATION, KEY_ROTATION_ACK, system_message};
use crate::crypto::signing::{NONCE_LEN, SIG_FIELD};
use crate::crypto::{
    CryptoOutput, CryptoSession, EphemeralKeyPair, RecordError, SigningKey, parse_peer_public_key,
    sign,
};
use crate::ids::ConnId;
use crate::limits::{DedupWindow, TokenBucket};
use crate::protocol::strip_legacy_prefix;
use crate::protocol::{
    self, BinaryInbound, ClientHello, ErrorCode, EventFormat, Frame, TextInbound,
};
use crate::rand::{Entropy, uuid_v7};
use crate::time::{Instant, WallClock};

/// WebSocket close codes this machine emits (CONTRACT §4).
pub mod close_code {
    /// Normal closure (application `disconnect()` default).
    pub const NORMAL: u16 = 1000;
    /// Server stopping.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Message too big (inbound frame or decompressed payload over `max_message_size`).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Slow consumer: outbound budget exceeded, try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Drain for a rolling restart.
    pub const DRAIN: u16 = 4300;
    /// Authentication failed.
    pub const AUTH_FAILED: u16 = 4401;
    /// Origin not in the allow-list.
    pub const ORIGIN_FORBIDDEN: u16 = 4403;
    /// No inbound activity for `idle_timeout`.
    pub const IDLE_TIMEOUT: u16 = 4408;
    /// Sustained inbound rate-limit abuse.
    pub const RATE_LIMITED: u16 = 4429;
}

/// What the handshake carried, as raw header bytes (never trusted to be UTF-8).
#[derive(Clone, Copy, Debug, Default)]
pub struct Handshake<'a> {
    /// The `Cookie` header.
    pub cookie: Option<&'a [u8]>,
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The raw query string (without `?`).
    pub query: Option<&'a str>,
}

/// An output the driver must act on.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Output {
    /// Write this frame to the socket (in order).
    Frame(Frame),
    /// Hand this event to the application.
    Event(Event),
    /// Send a Close frame with this code and reason, then stop writing data frames.
    Close {
        /// WebSocket close code (see [`close_code`]).
        code: u16,
        /// Close reason (≤ 123 bytes, truncated on a character boundary).
        reason: String,
    },
    /// Drop the socket now: the close handshake did not finish in time.
    Terminate,
}

/// An application event (the drain tuples of UPSTREAM §7.4).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A connection accepted without authentication; the raw `Cookie` header (`""` if none).
    Connect {
        /// The raw cookie header, lossily decoded.
        cookies: String,
    },
    /// A connection authenticated by JWT.
    AuthConnect {
        /// The token's `sub`.
        user_id: String,
        /// The raw cookie header, lossily decoded (callback-mode applications receive it, as
        /// the original's `on_connect` does).
        cookies: String,
    },
    /// A JSON (or msgpack) message.
    Msg(Value),
    /// Text that is not a JSON object; the original text.
    Raw(String),
    /// A binary frame the server does not interpret.
    Bin(Bytes),
}

/// The result of [`Connection::send_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendEventOutcome {
    /// Queued; the payload length in bytes.
    Queued(usize),
    /// The event's `id` was sent to this connection recently (dedup window).
    Duplicate,
    /// The outbound token bucket is empty.
    RateLimited,
    /// The connection is closing or closed.
    NotOpen,
}

impl SendEventOutcome {
    /// Bytes queued, 0 when nothing was (the Python API's return value).
    pub fn bytes(self) -> usize {
        match self {
            SendEventOutcome::Queued(n) => n,
            _ => 0,
        }
    }
}

/// Counters kept per connection; the driver aggregates them into server metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Inbound data messages accepted.
    pub messages_received: u64,
    /// Inbound data bytes (all data frames, accepted or not).
    pub bytes_received: u64,
    /// Inbound messages dropped by the inbound rate limit.
    pub inbound_rate_limited: u64,
    /// `send_event` calls refused by the outbound bucket.
    pub outbound_rate_limited: u64,
    /// `send_event` calls refused as duplicates.
    pub duplicates: u64,
    /// Inbound `E:` frames dropped: no session key, or the record did not authenticate.
    pub undecryptable: u64,
    /// Inbound `E:` frames dropped because their IV was already used in this session
    /// (CONTRACT D8: a captured frame replayed).
    pub replayed: u64,
    /// `key_rotation_ack` messages refused (wrong id, bad key, nothing pending).
    pub rotation_refused: u64,
    /// Events of a signed type sent unsigned (no shared secret, not encrypted).
    pub unsigned: u64,
}

/// Where the connection is in its life. Each phase owns its data.
/// A connection's CSPRNG, built from its seed on first use: a ChaCha20 generator is about
/// 300 bytes with its block buffer, and most connections never draw from it.
enum LazyRng {
    Unseeded,
    Seed([u8; 32]),
    Ready(Box<ChaCha20Rng>),
}

impl std::fmt::Debug for LazyRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed: it is key material.
        f.write_str(match self {
            LazyRng::Unseeded => "LazyRng::Unseeded",
            LazyRng::Seed(_) => "LazyRng::Seed(..)",
            LazyRng::Ready(_) => "LazyRng::Ready(..)",
        })
    }
}

impl LazyRng {
    /// The generator (the same stream as if it had been built at seeding), `None` unseeded.
    fn get(&mut self) -> Option<&mut ChaCha20Rng> {
        if let LazyRng::Seed(seed) = *self {
            *self = LazyRng::Ready(Box::new(ChaCha20Rng::from_seed(seed)));
        }
        match self {
            LazyRng::Ready(rng) => Some(rng),
            LazyRng::Unseeded | LazyRng::Seed(_) => None,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Open(Box<Open>),
    /// We sent (or were asked to send) a Close; waiting for the peer until `deadline`.
    Closing {
        deadline: Instant,
    },
    Closed,
}

#[derive(Debug)]
struct Open {
    /// Present iff the connection was authenticated by JWT.
    user: Option<AuthedUser>,
    last_activity: Instant,
    next_ping: Instant,
    inbound: TokenBucket,
    /// Start of the current run of refused inbound messages: a run ends once a whole
    /// `ABUSE_QUIET` passes without a refusal.
    over_limit_since: Option<Instant>,
    last_refused: Instant,
    last_inbound_limit_error: Option<Instant>,
    /// Created on the first `send_event` (as the original does).
    outbound: Option<TokenBucket>,
    last_outbound_limit_notice: Option<Instant>,
    dedup: DedupWindow<String>,
}

/// Proof that a connection authenticated: only [`Connection::accept`] builds one, from validated
/// claims.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthedUser {
    user_id: String,
    topic_acl: Option<TopicAcl>,
}

impl AuthedUser {
    /// The token's `sub`.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

/// The per-connection state machine. See the module docs for the grammar.
#[derive(Debug)]
pub struct Connection {
    id: ConnId,
    settings: std::sync::Arc<ConnSettings>,
    msgpack: bool,
    cluster_enabled: bool,
    /// An ACL set by the application for an unauthenticated connection (`set_topic_acl`).
    app_acl: Option<TopicAcl>,
    phase: Phase,
    outputs: VecDeque<Output>,
    stats: ConnStats,
    /// The E2E session once the key exchange happened (UPSTREAM §4.1, once per connection).
    /// Boxed: most connections never encrypt, and every byte here is per connection.
    crypto: Option<Box<CryptoSession>>,
    /// The CSPRNG for this connection's ECDH key, IVs and signature nonces, seeded by the
    /// driver ([`Connection::set_crypto_seed`]); without it, encryption requests are refused.
    crypto_rng: LazyRng,
    /// The signing key derived from the session key of the exchange (used for configured event
    /// types when no shared secret is configured; a rotation does not change it).
    session_signing: Option<SigningKey>,
}

/// Longest close reason a control frame can carry.
const MAX_CLOSE_REASON: usize = 123;
/// At most one `RATE_LIMITED` error (inbound or outbound) and one warning per connection per
/// second, as the original does for `send_event`.
const NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// A run of inbound refusals ends after this long without one (CONTRACT D2 grace accounting).
const ABUSE_QUIET: Duration = Duration::from_secs(1);
/// `rate_limit_warning` is sent when fewer than this share of the outbound bucket is left.
const WARNING_PERCENT: u64 = 20;

impl Connection {
    /// Decides a freshly upgraded connection and queues the first outputs.
    ///
    /// Order of checks: Origin (CONTRACT D3: `error` `ORIGIN_FORBIDDEN`, close 4403), then JWT
    /// when configured (`AUTH_REQUIRED`/`AUTH_FAILED`, close 4401). On success, JWT mode queues
    /// `server_ready` (always the very first frame) and an [`Event::AuthConnect`]; no-JWT mode
    /// queues only [`Event::Connect`].
    pub fn accept(
        settings: std::sync::Arc<ConnSettings>,
        handshake: &Handshake<'_>,
        now: Instant,
        wall: WallClock,
        rng: &mut (impl Entropy + ?Sized),
    ) -> Connection {
        let id = ConnId::from_uuid(uuid_v7(wall, rng));
        let msgpack = handshake
            .query
            .is_some_and(|q| q.contains("format=msgpack"));
        let mut conn = Connection {
            id,
            msgpack,
            cluster_enabled: false,
            app_acl: None,
            phase: Phase::Closed,
            outputs: VecDeque::new(),
            stats: ConnStats::default(),
            settings,
            crypto: None,
            crypto_rng: LazyRng::Unseeded,
            session_signing: None,
        };
        if !conn.settings.origins.allows(handshake.origin) {
            conn.push_frame(Frame::text(protocol::error_frame(
                ErrorCode::OriginForbidden,
                "Origin not allowed",
                wall,
            )));
            conn.enter_closing(now, close_code::ORIGIN_FORBIDDEN, "Origin not allowed");
            return conn;
        }
        let user = match &conn.settings.jwt {
            None => None,
            Some(validator) => {
                match validator.authenticate(handshake.cookie, handshake.authorization, wall) {
                    Ok(claims) => Some(AuthedUser {
                        user_id: claims.sub,
                        topic_acl: claims.topic_acl,
                    }),
                    Err(err) => {
                        conn.reject_auth(&err, wall, now);
                        return conn;
                    }
                }
            }
        };
        let cookies = handshake
            .cookie
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        match &user {
            Some(u) => {
                let ready = protocol::server_ready(&protocol::ServerReady {
                    conn_id: &id.to_string(),
                    user_id: u.user_id(),
                    recovery: conn.settings.recovery_enabled,
                    message_id: uuid_v7(wall, rng),
                    wall,
                });
                conn.push_frame(Frame::text(ready));
                conn.push_event(Event::AuthConnect {
                    user_id: u.user_id.clone(),
                    cookies,
                });
            }
            None => {
                conn.push_event(Event::Connect { cookies });
            }
        }
        conn.phase = Phase::Open(Box::new(conn.open_state(user, now)));
        conn
    }

    fn open_state(&self, user: Option<AuthedUser>, now: Instant) -> Open {
        let s = &self.settings;
        let inbound = if s.inbound_rate_refill > 0.0 {
            TokenBucket::new(s.inbound_rate_capacity, s.inbound_rate_refill, now)
        } else {
            TokenBucket::disabled()
        };
        Open {
            user,
            last_activity: now,
            next_ping: now + s.ping_interval,
            inbound,
            over_limit_since: None,
            last_refused: now,
            last_inbound_limit_error: None,
            outbound: None,
            last_outbound_limit_notice: None,
            dedup: DedupWindow::new(s.send_dedup_window),
        }
    }

    fn reject_auth(&mut self, err: &AuthError, wall: WallClock, now: Instant) {
        let code = match err {
            AuthError::Missing => ErrorCode::AuthRequired,
            _ => ErrorCode::AuthFailed,
        };
        self.push_frame(Frame::text(protocol::error_frame(
            code,
            err.client_message(),
            wall,
        )));
        self.enter_closing(now, close_code::AUTH_FAILED, "Authentication failed");
    }

    // ----- getters -------------------------------------------------------------------------

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The authenticated user, if the connection was accepted by JWT.
    pub fn user(&self) -> Option<&AuthedUser> {
        match &self.phase {
            Phase::Open(open) => open.user.as_ref(),
            _ => None,
        }
    }

    /// The topic ACL in force: the application's (`set_topic_acl`) if set, else the JWT claim's.
    pub fn topic_acl(&self) -> Option<&TopicAcl> {
        self.app_acl
            .as_ref()
            .or_else(|| self.user().and_then(|u| u.topic_acl.as_ref()))
    }

    /// True if the URL asked for msgpack (`format=msgpack` anywhere in the query).
    pub fn is_msgpack(&self) -> bool {
        self.msgpack
    }

    /// True while the connection accepts traffic (not closing, not closed).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// True once the transport is gone.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    // ----- outputs and time ----------------------------------------------------------------

    /// The next output, in production order; drain until `None` after every call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next instant at which [`Connection::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Open(open) => {
                let own = open
                    .next_ping
                    .min(open.last_activity + self.settings.idle_timeout);
                let crypto = self.crypto.as_deref().and_then(CryptoSession::poll_timeout);
                Some(crypto.map_or(own, |c| c.min(own)))
            }
            Phase::Closing { deadline } => Some(*deadline),
            Phase::Closed => None,
        }
    }

    /// Fires what is due at `now`: server ping, idle close, close-handshake expiry.
    pub fn handle_timeout(&mut self, now: Instant, wall: WallClock) {
        match &mut self.phase {
            Phase::Open(open) => {
                if now >= open.last_activity + self.settings.idle_timeout {
                    self.begin_close(now, close_code::IDLE_TIMEOUT, "Idle timeout");
                    return;
                }
                if now >= open.next_ping {
                    // Skip missed periods instead of bursting pings after a stall.
                    let interval = self.settings.ping_interval;
                    while open.next_ping <= now {
                        open.next_ping = open.next_ping + interval;
                    }
                    self.push_plain(Frame::text(protocol::server_ping(wall)));
                }
                self.crypto_timers(now);
            }
            Phase::Closing { deadline } => {
                if now >= *deadline {
                    self.phase = Phase::Closed;
                    self.outputs.push_back(Output::Terminate);
                }
            }
            Phase::Closed => {}
        }
    }

    // ----- inputs --------------------------------------------------------------------------

    /// An inbound text frame.
    pub fn handle_text(&mut self, now: Instant, wall: WallClock, text: &str) {
        if !self.admit(now, text.len()) {
            return;
        }
        self.dispatch_text(now, wall, text, None);
    }

    /// An inbound binary frame.
    pub fn handle_binary(&mut self, now: Instant, wall: WallClock, data: &[u8]) {
        if !self.admit(now, data.len()) {
            return;
        }
        match protocol::classify_binary(data, self.msgpack, self.settings.max_message_size) {
            Ok(BinaryInbound::Encrypted(record)) => self.handle_encrypted(now, wall, record),
            Ok(BinaryInbound::Text(text)) => self.dispatch_text(now, wall, &text, Some(data)),
            Ok(BinaryInbound::Msg(value)) => self.push_event(Event::Msg(value)),
            Ok(BinaryInbound::Bin) => self.push_event(Event::Bin(Bytes::copy_from_slice(data))),
            Err(protocol::InboundError::DecompressedTooLarge { .. }) => {
                self.begin_close(now, close_code::MESSAGE_TOO_BIG, "Message too big");
            }
        }
    }

    /// An `E:` record: decrypted and handled like the same text in plaintext (the fast path
    /// included, CONTRACT D7). Without a key, on an authentication failure or on a replayed IV
    /// (CONTRACT D8) it is dropped and counted, as the original drops undecryptable frames.
    fn handle_encrypted(&mut self, now: Instant, wall: WallClock, record: &[u8]) {
        let Some(session) = self.crypto.as_mut() else {
            self.stats.undecryptable += 1;
            return;
        };
        match session.decrypt_record(now, record) {
            Ok(plain) => match String::from_utf8(plain) {
                Ok(text) if self.rotation_ack(now, &text) => {}
                Ok(text) => self.dispatch_text(now, wall, &text, None),
                Err(e) => self.push_event(Event::Bin(Bytes::from(e.into_bytes()))),
            },
            Err(RecordError::Replayed) => self.stats.replayed += 1,
            Err(_) => self.stats.undecryptable += 1,
        }
    }

    /// A WebSocket Ping control frame (the transport answers it); counts as activity.
    pub fn handle_ws_ping(&mut self, now: Instant) {
        self.touch(now);
    }

    /// A WebSocket Pong control frame; counts as activity.
    pub fn handle_ws_pong(&mut self, now: Instant) {
        self.touch(now);
    }

    /// The peer sent a Close frame (the transport replies); the connection is over.
    pub fn handle_peer_close(&mut self, _now: Instant) {
        self.phase = Phase::Closed;
    }

    /// The socket is gone (EOF, reset, write failure).
    pub fn handle_transport_closed(&mut self, _now: Instant) {
        self.phase = Phase::Closed;
    }

    // ----- commands ------------------------------------------------------------------------

    /// Frames an application event for this connection (UPSTREAM §6.1, §6.2, §7.5): dedup by
    /// string `id` within this connection's window, then the outbound token bucket
    /// (`RATE_LIMITED` when empty, `rate_limit_warning` under 20 %, each at most once a second),
    /// then the envelope (`c`, `id`, `seq`, `ts`, `v`) and the binary payload (`C:` above
    /// `compression_threshold`, `M:` on msgpack connections).
    pub fn send_event(
        &mut self,
        now: Instant,
        wall: WallClock,
        event: &Map<String, Value>,
        compression_threshold: usize,
        seq: u64,
        rng: &mut (impl Entropy + ?Sized),
    ) -> SendEventOutcome {
        let settings = std::sync::Arc::clone(&self.settings);
        let Phase::Open(open) = &mut self.phase else {
            return SendEventOutcome::NotOpen;
        };
        if let Some(Value::String(id)) = event.get("id")
            && !open.dedup.insert(id.clone())
        {
            self.stats.duplicates += 1;
            return SendEventOutcome::Duplicate;
        }
        let bucket = open.outbound.get_or_insert_with(|| {
            TokenBucket::new(
                settings.rate_limit_capacity,
                settings.rate_limit_refill,
                now,
            )
        });
        let due = |last: Option<Instant>| last.is_none_or(|t| now >= t + NOTICE_INTERVAL);
        if bucket.available(now) < 1 {
            self.stats.outbound_rate_limited += 1;
            if due(open.last_outbound_limit_notice) {
                open.last_outbound_limit_notice = Some(now);
                self.push_frame(Frame::text(protocol::rate_limited_error()));
            }
            return SendEventOutcome::RateLimited;
        }
        let mut warning = None;
        if bucket.below_percent(now, WARNING_PERCENT) && due(open.last_outbound_limit_notice) {
            open.last_outbound_limit_notice = Some(now);
            let limit = bucket.capacity();
            let remaining = bucket.available(now);
            warning = Some(protocol::rate_limit_warning(
                limit.saturating_sub(remaining),
                limit,
                remaining,
            ));
        }
        let took = bucket.try_take(now);
        debug_assert!(
            took,
            "a whole token was available a moment ago at the same instant"
        );
        if let Some(w) = warning {
            self.push_frame(Frame::text(w));
        }
        let mut envelope =
            protocol::build_event_envelope(event, || uuid_v7(wall, rng).to_string(), seq, wall);
        self.sign_if_configured(&mut envelope, wall);
        // Encrypted connections get `E:` of the JSON text, never compressed or msgpack: both
        // published clients expect UTF-8 JSON after decryption (UPSTREAM §3.3).
        let encrypted = self.crypto.is_some();
        let payload = protocol::encode_event(
            &envelope,
            EventFormat {
                msgpack: self.msgpack && !encrypted,
                compression_threshold: if encrypted { 0 } else { compression_threshold },
            },
        );
        let len = payload.len();
        self.push_frame(Frame::Binary(payload));
        SendEventOutcome::Queued(len)
    }

    /// Queues an application frame (`send`, `send_bytes`, broadcasts) unless the connection is
    /// closing or closed; returns whether it was queued.
    pub fn send_frame(&mut self, frame: Frame) -> bool {
        if !self.is_open() {
            return false;
        }
        self.push_frame(frame);
        true
    }

    /// Starts a server-side close with `code` and `reason` (disconnect, drain, stop, slow
    /// consumer). Harmless when already closing or closed.
    pub fn close(&mut self, now: Instant, code: u16, reason: &str) {
        self.begin_close(now, code, reason);
    }

    /// Replaces the connection's topic ACL (`set_topic_acl`), overriding the JWT claim's.
    pub fn set_topic_acl(&mut self, acl: TopicAcl) {
        self.app_acl = Some(acl);
    }

    /// Seeds this connection's cryptographic generator (ECDH key, AES-GCM IVs). The driver
    /// passes 32 bytes from the OS generator in production, from the seed in simulation; until
    /// it is called, a client asking for encryption gets `KEY_EXCHANGE_FAILED`.
    pub fn set_crypto_seed(&mut self, seed: [u8; 32]) {
        self.crypto_rng = LazyRng::Seed(seed);
    }

    /// Whether the E2E key exchange happened: every data frame to this connection is then an
    /// `E:` record (CONTRACT D7).
    pub fn is_encrypted(&self) -> bool {
        self.crypto.is_some()
    }

    /// Seals `payload` for this connection as an `E:` binary frame, `None` when the connection
    /// is not encrypted (the caller then sends its shared plaintext frame). For frames built
    /// once and shared by many recipients (broadcasts, replays): one AES pass per encrypted
    /// recipient, none for the others.
    pub fn seal(&mut self, payload: &[u8]) -> Option<Frame> {
        let (session, rng) = (self.crypto.as_mut()?, self.crypto_rng.get()?);
        Some(Frame::Binary(Bytes::from(session.encrypt(payload, rng))))
    }

    /// Whether `server_hello` advertises `features.cluster` (true once the node joined one).
    pub fn set_cluster_enabled(&mut self, enabled: bool) {
        self.cluster_enabled = enabled;
    }

    // ----- internals -----------------------------------------------------------------------

    /// Common entry of every inbound data frame: activity, size limit, inbound rate limit.
    /// Returns whether the frame should be processed.
    fn admit(&mut self, now: Instant, len: usize) -> bool {
        let settings = std::sync::Arc::clone(&self.settings);
        let Phase::Open(open) = &mut self.phase else {
            return false;
        };
        open.last_activity = now;
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(len as u64);
        if len > settings.max_message_size {
            self.begin_close(now, close_code::MESSAGE_TOO_BIG, "Message too big");
            return false;
        }
        if open.inbound.try_take(now) {
            self.stats.messages_received += 1;
            return true;
        }
        self.stats.inbound_rate_limited += 1;
        // A client that backs off for ABUSE_QUIET starts afresh; one that keeps getting refused
        // (even if the refill lets a message through now and then) is still over the limit.
        let quiet = now.saturating_duration_since(open.last_refused) >= ABUSE_QUIET;
        if open.over_limit_since.is_none() || quiet {
            open.over_limit_since = Some(now);
        }
        open.last_refused = now;
        let since = open.over_limit_since.unwrap_or(now);
        if now.saturating_duration_since(since) >= settings.inbound_rate_grace {
            self.begin_close(now, close_code::RATE_LIMITED, "Rate limit exceeded");
            return false;
        }
        if open
            .last_inbound_limit_error
            .is_none_or(|t| now >= t + NOTICE_INTERVAL)
        {
            open.last_inbound_limit_error = Some(now);
            self.push_frame(Frame::text(protocol::rate_limited_error()));
        }
        false
    }

    fn touch(&mut self, now: Instant) {
        if let Phase::Open(open) = &mut self.phase {
            open.last_activity = open.last_activity.max(now);
        }
    }

    /// Text (direct, or decompressed from `C:`): fast path, else an event. `original` is the
    /// binary frame the text came from, delivered as `bin` when the text is not JSON.
    fn dispatch_text(
        &mut self,
        now: Instant,
        wall: WallClock,
        text: &str,
        original: Option<&[u8]>,
    ) {
        match protocol::classify_text(text) {
            TextInbound::ClientHello(hello) => self.answer_hello(now, &hello, wall),
            TextInbound::Ping { client_timestamp } => {
                let server_ms = i64::try_from(wall.unix_millis()).unwrap_or(i64::MAX);
                // Exempt from encryption (CONTRACT D7): the clients' heartbeat reads it plain.
                self.push_plain(Frame::text(protocol::pong(client_timestamp, server_ms)));
            }
            TextInbound::Pong => {}
            TextInbound::Msg(value) => self.push_event(Event::Msg(value)),
            TextInbound::Raw => match original {
                None => self.push_event(Event::Raw(text.to_owned())),
                Some(bytes) => self.push_event(Event::Bin(Bytes::copy_from_slice(bytes))),
            },
        }
    }

    fn answer_hello(&mut self, now: Instant, hello: &ClientHello, wall: WallClock) {
        // The ECDH exchange (UPSTREAM §4.1): once per connection; a repeated hello after it
        // reports `encryption: false` and carries no key. A bad key gets KEY_EXCHANGE_FAILED
        // and a plain hello. The hello itself always travels in plaintext.
        let mut server_key = None;
        if hello.wants_encryption && self.crypto.is_none() && self.is_open() {
            match self.key_exchange(
                now,
                hello.encryption_public_key.as_deref(),
                hello.key_rotation,
            ) {
                Ok(key) => server_key = Some(key),
                Err(detail) => {
                    self.push_plain(Frame::text(protocol::key_exchange_failed(&detail)));
                }
            }
        }
        let s = &self.settings;
        let hello = protocol::server_hello(&protocol::ServerHello {
            conn_id: &self.id.to_string(),
            encryption_public_key: server_key.as_deref(),
            encryption: server_key.is_some(),
            key_rotation: server_key.is_some()
                && self
                    .crypto
                    .as_deref()
                    .is_some_and(CryptoSession::rotation_enabled),
            cluster: self.cluster_enabled,
            recovery: s.recovery_enabled,
            max_message_size: s.max_message_size as u64,
            rate_limit_capacity: clamp_i64(s.rate_limit_capacity),
            rate_limit_refill: clamp_i64(s.rate_limit_refill),
            ping_interval_ms: u64::try_from(s.ping_interval.as_millis()).unwrap_or(u64::MAX),
            client_protocol_version: hello.protocol_version,
            server_version: s.server_version,
            wall,
        });
        self.push_plain(Frame::text(hello));
    }

    /// Adds `sig` to an event of a configured type (`docs/encryption.md` §6): with the shared
    /// secret, else with the session-derived key on an encrypted connection, else unsigned.
    fn sign_if_configured(&mut self, envelope: &mut Map<String, Value>, wall: WallClock) {
        let settings = std::sync::Arc::clone(&self.settings);
        let signing = &settings.signing;
        let wanted = envelope
            .get("t")
            .and_then(Value::as_str)
            .is_some_and(|t| signing.event_types.contains(t));
        if !wanted {
            return;
        }
        let (Some(key), Some(rng)) = (
            signing.shared.as_ref().or(self.session_signing.as_ref()),
            self.crypto_rng.get(),
        ) else {
            self.stats.unsigned += 1;
            return;
        };
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        envelope.remove(SIG_FIELD);
        let sig = sign(key, envelope, wall, nonce);
        envelope.insert(SIG_FIELD.to_owned(), Value::String(sig));
    }

    /// Runs the session's timers (rotation interval, end of a grace window) and sends a
    /// `key_rotation` it starts, sealed under the key in use.
    fn crypto_timers(&mut self, now: Instant) {
        let (Some(session), Some(rng)) = (self.crypto.as_mut(), self.crypto_rng.get()) else {
            return;
        };
        session.handle_timeout(now, rng);
        let mut messages = Vec::new();
        while let Some(out) = session.poll_output() {
            match out {
                CryptoOutput::SendKeyRotation { payload } => {
                    messages.push(system_message(KEY_ROTATION, payload).to_string());
                }
            }
        }
        for text in messages {
            self.push_frame(Frame::text(text));
        }
    }

    /// A decrypted `key_rotation_ack` (our extension, `docs/encryption.md` §5): handled here,
    /// never an application event. `false` when `text` is something else.
    fn rotation_ack(&mut self, now: Instant, text: &str) -> bool {
        if !text.contains(KEY_ROTATION_ACK) {
            return false;
        }
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(strip_legacy_prefix(text))
        else {
            return false;
        };
        if msg.get("t").and_then(Value::as_str) != Some(KEY_ROTATION_ACK) {
            return false;
        }
        if let (Some(session), Some(p)) = (self.crypto.as_mut(), msg.get("p")) {
            if session.handle_rotation_ack(now, p).is_err() {
                self.stats.rotation_refused += 1;
            }
        } else {
            self.stats.rotation_refused += 1;
        }
        true
    }

    /// Derives the session key from the client's public key; returns ours (base64) or the
    /// reason for `KEY_EXCHANGE_FAILED`.
    fn key_exchange(
        &mut self,
        now: Instant,
        client_key: Option<&str>,
        rotation: bool,
    ) -> Result<String, String> {
        let client_key = client_key.ok_or("client_hello has no encryption_public_key")?;
        let rng = self
            .crypto_rng
            .get()
            .ok_or("encryption is not available on this server")?;
        let peer = parse_peer_public_key(client_key).map_err(|e| e.to_string())?;
        let ours = EphemeralKeyPair::generate(rng);
        let key = ours.derive_session_key(&peer);
        self.session_signing = Some(SigningKey::from_session_key(&key));
        // Rotation only with clients that announce it, and only when the interval is not 0.
        self.crypto = Some(Box::new(CryptoSession::new(
            key,
            now,
            self.settings.crypto,
            rotation,
        )));
        Ok(ours.public_key_b64())
    }

    /// Starts closing an open connection; harmless when already closing or closed.
    fn begin_close(&mut self, now: Instant, code: u16, reason: &str) {
        if self.is_open() {
            self.enter_closing(now, code, reason);
        }
    }

    fn enter_closing(&mut self, now: Instant, code: u16, reason: &str) {
        self.outputs.push_back(Output::Close {
            code,
            reason: truncate_reason(reason),
        });
        self.phase = Phase::Closing {
            deadline: now + self.settings.close_grace,
        };
    }

    /// Queues a data frame: sealed as `E:` once the connection is encrypted (CONTRACT D7).
    fn push_frame(&mut self, frame: Frame) {
        let frame = self.seal(frame.payload()).unwrap_or(frame);
        self.outputs.push_back(Output::Frame(frame));
    }

    /// Queues a frame exempt from encryption (CONTRACT D7): `server_hello`, `PONG`, the server
    /// `ping`, and errors about the key exchange itself.
    fn push_plain(&mut self, frame: Frame) {
        self.outputs.push_back(Output::Frame(frame));
    }

    fn push_event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }
}

fn clamp_i64(v: f64) -> i64 {
    // Saturating float→int cast; the config keeps these finite and ≥ 0.
    v as i64
}

fn truncate_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests;
