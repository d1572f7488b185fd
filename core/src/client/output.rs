//! What the client machine hands its driver and its application.
//!
//! Owns [`Output`] (driver actions and application events, drained in order), [`Event`],
//! [`Delivered`], the observable [`State`], [`FailReason`], [`SendError`] and [`ClientStats`].

use std::time::Duration;

use crate::protocol::Envelope;
use crate::time::Instant;

/// One thing the driver must do, in production order.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Output {
    /// Open a new connection (dial + WebSocket handshake), then report
    /// [`Client::handle_connected`](super::Client::handle_connected) or
    /// [`Client::handle_connect_failed`](super::Client::handle_connect_failed).
    Connect,
    /// Write this text frame (in order).
    SendText(String),
    /// Write this binary frame (in order): an `E:` record once encryption is on.
    SendBinary(Vec<u8>),
    /// Send a Close frame with this code and reason and drop the socket. The machine already
    /// considers the connection gone: do not report this socket's end with `handle_closed`.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Hand this event to the application.
    Event(Event),
}

/// An application event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The session is usable: `client_hello` and the subscription were sent and the offline
    /// queue flushed.
    Ready {
        /// From `server_ready`; `None` when the ready timeout passed without one.
        connection_id: Option<String>,
        /// True from the second `Ready` on.
        reconnected: bool,
    },
    /// The connection ended (or a connect attempt failed).
    Disconnected {
        /// The close code received (or sent, for the idle timeout's 4000); `None` for a network
        /// error, EOF without a close frame, or a failed connect attempt.
        close: Option<u16>,
        /// When the next attempt starts; `None`: no reconnect (closed or failed).
        retry_in: Option<Duration>,
    },
    /// An application message, after the stamp or id dedup checks (boxed: an envelope is
    /// much larger than every other event).
    Message(Box<Delivered>),
    /// A binary frame without a `C:`, `M:` or `E:` prefix, as received.
    Binary(Vec<u8>),
    /// A stamped message arrived with something missing before it; it was dropped and a
    /// recovery request sent.
    Gap {
        /// The topic.
        topic: String,
        /// The offset that should have come (0 after an epoch change).
        expected: u64,
        /// The offset that came.
        got: u64,
    },
    /// The server replayed what was missed on a topic.
    Recovered {
        /// The topic.
        topic: String,
        /// Messages in the replay, as the server reports it.
        count: u64,
    },
    /// Messages on a topic are lost: the topic resumes after `(epoch, offset)` without them.
    /// From an ack (`recovered: false`) it is the server's position, and the cursor moved
    /// forward to at least it; from a request unanswered for `recovery_timeout` it is the
    /// offset just before the message the topic resumed from.
    NotRecovered {
        /// The topic.
        topic: String,
        /// The epoch; `None`: the server has no history of the topic (the position is
        /// forgotten).
        epoch: Option<u32>,
        /// The last offset covered by the notice.
        offset: u64,
    },
    /// The server acknowledged a `subscription_update`.
    SubscriptionAck {
        /// Topics the server subscribed.
        success_topics: Vec<String>,
        /// Topics the server refused (removed from the client's subscribed set).
        failed_topics: Vec<String>,
    },
    /// An `error` message from the server.
    ServerError {
        /// `p.code` (empty when absent).
        code: String,
        /// `p.message` (empty when absent).
        message: String,
    },
    /// The end-to-end key exchange completed on this connection: from now on every frame both
    /// ways is an `E:` record (keys rotate when the server starts a rotation).
    Encrypted,
    /// The server rotated this connection's key (the ack is on its way).
    KeyRotated,
    /// A malformed frame from the server; it was otherwise ignored.
    ProtocolError(String),
}

/// An application message as delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivered {
    /// The message (aliases applied, stamp parsed).
    pub envelope: Envelope,
}

/// Why the client stopped for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The server closed with an authentication or policy code (4401, 4403, 1008).
    Rejected {
        /// The close code.
        code: u16,
    },
    /// `max_attempts` reconnect attempts were made without reaching `Ready`.
    AttemptsExhausted {
        /// The attempts made.
        attempts: u32,
    },
}

/// Where the client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Constructed, not started.
    Idle,
    /// `Connect` emitted; waiting for the driver's report.
    Connecting,
    /// Connected; waiting for `server_ready` (or the ready timeout).
    AwaitingReady,
    /// The session is usable.
    Ready,
    /// Waiting to reconnect until this instant.
    Backoff {
        /// When `Connect` is emitted.
        until: Instant,
    },
    /// Closed by the application or by a normal server close; no reconnect.
    Closed,
    /// Stopped for good.
    Failed(FailReason),
}

impl State {
    /// `Closed` or `Failed`: the machine will emit nothing more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, State::Closed | State::Failed(_))
    }
}

/// Why [`Client::send`](super::Client::send) refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The client is closed or failed.
    #[error("the client is closed")]
    Closed,
    /// Not `Ready` and the offline queue is disabled (`offline_queue` = 0).
    #[error("not connected and the offline queue is disabled")]
    NotReady,
    /// The encoded message is larger than `max_frame_size`.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// `max_frame_size`.
        limit: usize,
    },
}

/// Counters of what the client dropped or did on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Stamped messages dropped as duplicates (offset at or behind the topic's cursor).
    pub stamp_duplicates: u64,
    /// Unstamped messages dropped as duplicates by `id`.
    pub id_duplicates: u64,
    /// Stamped messages dropped because something was missing before them (gaps, including
    /// those dropped while a recovery was already in flight).
    pub gap_drops: u64,
    /// Recovery requests sent for gaps.
    pub recovery_requests: u64,
    /// Recovery requests given up after `recovery_timeout` (each announced by `NotRecovered`).
    pub recovery_timeouts: u64,
    /// Queued messages dropped because the offline queue was full (oldest first).
    pub offline_dropped: u64,
    /// Stamped messages delivered untracked because `max_tracked_topics` was reached.
    pub untracked: u64,
    /// Malformed frames reported as `ProtocolError`.
    pub protocol_errors: u64,
}
