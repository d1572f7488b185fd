//! The peer-link machine: one session over one byte stream to one peer (UPSTREAM §10.5, issue 11).
//!
//! Owns the HELLO exchange (magic and version checked by the codec, version and capabilities
//! negotiated here, self-connections refused), the heartbeat (PING every
//! [`LinkConfig::heartbeat_interval`], dead after [`LinkConfig::dead_after`] of silence, a
//! handshake deadline), the peer's interest ([`PeerInterest`]), whether the peer is draining
//! (D17), and the bounded outbound queue.
//!
//! Grammar (time is always an input):
//! - [`Link::dial`] queues our HELLO at once; [`Link::accept`] waits for the dialer's and queues
//!   ours in reply — unless the driver refuses the peer first ([`Link::handle_frame`] returns
//!   [`Inbound::Hello`] before anything is queued for an acceptor, so the driver can run its
//!   duplicate-link rule and drop the stream without answering, as the original does).
//! - The driver feeds every decoded frame to [`Link::handle_frame`] and acts on the returned
//!   [`Inbound`]; an `Err` ends the session (the caller closes the stream).
//! - The driver takes frames to write with [`Link::poll_transmit`], sleeps until
//!   [`Link::poll_timeout`] and calls [`Link::handle_timeout`].
//! - Routing: [`Link::route_msg`] (interest, DRAIN and capabilities honoured),
//!   [`Link::send_sub`] / [`Link::send_unsub`], [`Link::start_session`] (RESYNC and gossip right
//!   after the HELLO), [`Link::send_shutdown`] and [`Link::send_drain`].
//!
//! Negotiated capabilities are honoured on send: zstd only with `COMPRESSION`, trailers only
//! with `RECOVERY`, SUB/UNSUB/RESYNC only with `INTEREST_ROUTING` (without it the peer cannot
//! say what it wants, so every message is routed to it), presence only with `PRESENCE` and our
//! `PRESENCE_SYNC` (presence frames of a peer without the latter are skipped, not applied).
//!
//! Bounds: at most [`LinkConfig::queue_capacity`] data frames (MSG, presence) wait; a data frame
//! over it is refused ([`Routed::QueueFull`], the driver records it in the DLQ). Control frames
//! (PING/PONG/SUB/UNSUB/RESYNC/gossip) have their own bound ([`MAX_CONTROL_FRAMES`]); past it the
//! session ends with [`LinkError::Overloaded`] — a link that far behind is better rebuilt (the
//! new session starts with a full RESYNC) than allowed to lose an UNSUB or SUB.

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;

use super::frame::{Capabilities, PeerFrame, RecoveryTrailer, negotiate_version, resync_frames};
use super::interest::PeerInterest;
use crate::Instant;
use crate::cluster::frame::MAX_INSTANCE_ID_LEN;

/// Control frames that may wait in one link's queue before the session is abandoned.
pub const MAX_CONTROL_FRAMES: usize = 65_536;

/// Which side opened the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// We dialled; we speak first.
    Dialer,
    /// The peer dialled us.
    Acceptor,
}

/// A link's settings.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// This node's instance id (HELLO; compared with the peer's for self-connections).
    pub instance_id: String,
    /// What this node offers.
    pub capabilities: Capabilities,
    /// PING period (UPSTREAM: 5 s).
    pub heartbeat_interval: Duration,
    /// Silence after which the peer is dead (UPSTREAM: 15 s).
    pub dead_after: Duration,
    /// Time allowed for the HELLO exchange (UPSTREAM: 5 s).
    pub handshake_timeout: Duration,
    /// Data frames that may wait (UPSTREAM: 10,000).
    pub queue_capacity: usize,
}

impl LinkConfig {
    /// The original's numbers with every capability.
    pub fn new(instance_id: impl Into<String>) -> LinkConfig {
        LinkConfig {
            instance_id: instance_id.into(),
            capabilities: Capabilities::ALL,
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(5),
            queue_capacity: 10_000,
        }
    }
}

/// The peer as its HELLO described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Its instance id.
    pub instance_id: String,
    /// The version both speak.
    pub version: u16,
    /// The negotiated (AND) capabilities.
    pub capabilities: Capabilities,
}

/// What a received frame means for the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// The HELLO arrived and was valid: the driver registers the link (or drops it) and then
    /// calls [`Link::start_session`].
    Hello(Remote),
    /// A routed publication to deliver locally.
    Msg {
        /// Its topic.
        topic: String,
        /// The application text (category injected, not stamped).
        payload: String,
        /// Its origin identity, when the peer negotiated recovery.
        trailer: Option<RecoveryTrailer>,
    },
    /// The peer's own cluster address (PeerAnnounce).
    Announce(String),
    /// Addresses the peer knows (PeerList).
    Peers(Vec<String>),
    /// A presence frame (PresenceUpdate or PresenceFull) for the presence layer.
    Presence(PeerFrame),
    /// The peer says it is stopping; the session is over.
    Shutdown,
    /// The peer is draining: nothing new is routed to it from now on.
    Drain,
    /// Handled inside the link (PING, PONG, SUB, UNSUB, RESYNC) or skipped.
    Nothing,
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LinkError {
    /// The first frame was not a HELLO.
    #[error("expected HELLO, got frame type {got:#04x}")]
    ExpectedHello {
        /// The type received.
        got: u8,
    },
    /// The peer's version is not one we speak (0).
    #[error("unsupported cluster protocol version {version}")]
    Version {
        /// The version it announced.
        version: u16,
    },
    /// The peer has our instance id (we dialled ourselves) or an empty or overlong one.
    #[error("bad instance id in HELLO: {reason}")]
    BadInstanceId {
        /// What was wrong.
        reason: &'static str,
    },
    /// A second HELLO, or a frame type the negotiated capabilities exclude.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// No HELLO within the handshake timeout.
    #[error("no HELLO within the handshake timeout")]
    HandshakeTimeout,
    /// Nothing received for [`LinkConfig::dead_after`].
    #[error("peer silent for longer than the heartbeat timeout")]
    Dead,
    /// More than [`MAX_CONTROL_FRAMES`] control frames waiting.
    #[error("peer link overloaded: control queue full")]
    Overloaded,
    /// The session was already over.
    #[error("link closed")]
    Closed,
}

/// The outcome of offering a publication to a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed {
    /// Queued.
    Queued,
    /// The peer does not want the topic, is draining, or the session is not established.
    Skipped,
    /// The data queue is full: the driver records a dead letter.
    QueueFull,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitingHello,
    Established,
    Closed,
}

/// One peer session (see the module doc).
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    role: Role,
    state: State,
    remote: Option<Remote>,
    started: Instant,
    last_received: Instant,
    next_ping: Instant,
    interest: PeerInterest,
    remote_draining: bool,
    queue: VecDeque<PeerFrame>,
    data_frames: usize,
}

impl Link {
    /// A session we opened: our HELLO is queued.
    pub fn dial(config: LinkConfig, now: Instant) -> Link {
        let mut link = Link::new(config, Role::Dialer, now);
        link.push_hello();
        link
    }

    /// A session the peer opened: waiting for its HELLO.
    pub fn accept(config: LinkConfig, now: Instant) -> Link {
        Link::new(config, Role::Acceptor, now)
    }

    fn new(config: LinkConfig, role: Role, now: Instant) -> Link {
        Link {
            config,
            role,
            state: State::AwaitingHello,
            remote: None,
            started: now,
            last_received: now,
            next_ping: now,
            interest: PeerInterest::new(),
            remote_draining: false,
            queue: VecDeque::new(),
            data_frames: 0,
        }
    }

    fn push_hello(&mut self) {
        self.queue.push_back(PeerFrame::hello(
            self.config.instance_id.clone(),
            self.config.capabilities,
        ));
    }

    /// Which side opened the stream.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer, once its HELLO was accepted.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// True between a valid HELLO and the end of the session.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// True once the session ended (error, SHUTDOWN received, or [`Link::close`]).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True after the peer sent DRAIN.
    pub fn is_remote_draining(&self) -> bool {
        self.remote_draining
    }

    /// When the last frame from the peer arrived (the session's start before any).
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// What the peer asked for.
    pub fn interest(&self) -> &PeerInterest {
        &self.interest
    }

    /// Frames waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The negotiated capabilities (none before the HELLO).
    pub fn capabilities(&self) -> Capabilities {
        self.remote
            .as_ref()
            .map_or(Capabilities::NONE, |r| r.capabilities)
    }

    /// Feeds one decoded frame (see the module doc).
    pub fn handle_frame(&mut self, frame: PeerFrame, now: Instant) -> Result<Inbound, LinkError> {
        match self.state {
            State::Closed => return Err(LinkError::Closed),
            State::AwaitingHello => return self.handle_hello(frame, now),
            State::Established => {}
        }
        self.last_received = self.last_received.max(now);
        if !matches!(frame, PeerFrame::Resync { .. }) {
            self.interest.close_resync();
        }
        let caps = self.capabilities();
        let routing = caps.contains(Capabilities::INTEREST_ROUTING);
        let inbound = match frame {
            PeerFrame::Hello { .. } => return self.fail(LinkError::Protocol("second HELLO")),
            PeerFrame::Ping => {
                self.push_control(PeerFrame::Pong)?;
                Inbound::Nothing
            }
            PeerFrame::Pong | PeerFrame::Unknown { .. } => Inbound::Nothing,
            PeerFrame::Msg {
                topic,
                payload,
                trailer,
                ..
            } => {
                // A trailer on a link without RECOVERY is not ours to trust: deliver unstamped.
                let trailer = trailer.filter(|_| caps.contains(Capabilities::RECOVERY));
                Inbound::Msg {
                    topic,
                    payload,
                    trailer,
                }
            }
            PeerFrame::Sub { topic } if routing => {
                self.interest.subscribe(&topic);
                Inbound::Nothing
            }
            PeerFrame::Unsub { topic } if routing => {
                self.interest.unsubscribe(&topic);
                Inbound::Nothing
            }
            PeerFrame::Resync {
                topics,
                continuation,
            } if routing => {
                if !self.interest.resync(&topics, continuation) {
                    return self.fail(LinkError::Protocol("RESYNC continuation out of sequence"));
                }
                Inbound::Nothing
            }
            PeerFrame::Sub { .. } | PeerFrame::Unsub { .. } | PeerFrame::Resync { .. } => {
                return self.fail(LinkError::Protocol(
                    "interest frame without INTEREST_ROUTING",
                ));
            }
            PeerFrame::PeerAnnounce { addr } => Inbound::Announce(addr),
            PeerFrame::PeerList { addrs } => Inbound::Peers(addrs),
            f @ (PeerFrame::PresenceUpdate { .. } | PeerFrame::PresenceFull { .. }) => {
                if !caps.contains(Capabilities::PRESENCE) {
                    return self.fail(LinkError::Protocol("presence frame without PRESENCE"));
                }
                if caps.contains(Capabilities::PRESENCE_SYNC) {
                    Inbound::Presence(f)
                } else {
                    // The original's sentinel presence: not applied (docs/cluster.md).
                    Inbound::Nothing
                }
            }
            PeerFrame::Shutdown => {
                self.state = State::Closed;
                Inbound::Shutdown
            }
            PeerFrame::Drain => {
                self.remote_draining = true;
                Inbound::Drain
            }
        };
        Ok(inbound)
    }

    fn handle_hello(&mut self, frame: PeerFrame, now: Instant) -> Result<Inbound, LinkError> {
        let PeerFrame::Hello {
            version,
            instance_id,
            capabilities,
        } = frame
        else {
            return self.fail(LinkError::ExpectedHello {
                got: frame.type_byte(),
            });
        };
        let Some(version) = negotiate_version(version) else {
            return self.fail(LinkError::Version { version });
        };
        let reason = if instance_id.is_empty() {
            Some("empty")
        } else if instance_id.len() > MAX_INSTANCE_ID_LEN {
            Some("longer than 256 bytes")
        } else if instance_id == self.config.instance_id {
            Some("our own (self-connection)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return self.fail(LinkError::BadInstanceId { reason });
        }
        let remote = Remote {
            instance_id,
            version,
            capabilities: self.config.capabilities.negotiate(capabilities),
        };
        self.remote = Some(remote.clone());
        self.state = State::Established;
        self.last_received = now;
        // The first PING goes out at once (UPSTREAM §10.5), then every interval.
        self.next_ping = now;
        Ok(Inbound::Hello(remote))
    }

    /// Right after a registered HELLO: an acceptor's HELLO, then a full RESYNC of `local_topics`
    /// (always, even empty — so the peer never has a "send everything" window), our address,
    /// the addresses we know.
    pub fn start_session(
        &mut self,
        local_topics: &[String],
        announce: Option<&str>,
        known_peers: &[String],
    ) -> Result<(), LinkError> {
        if self.state != State::Established {
            return Err(LinkError::Closed);
        }
        if self.role == Role::Acceptor {
            self.push_hello();
        }
        if self.capabilities().contains(Capabilities::INTEREST_ROUTING) {
            // Topics the codec refuses (empty, with '\n') cannot be routed by name anyway.
            let topics: Vec<&String> = local_topics
                .iter()
                .filter(|t| !t.is_empty() && !t.contains('\n'))
                .collect();
            let frames =
                resync_frames(&topics).map_err(|_| LinkError::Protocol("RESYNC not encodable"))?;
            for f in frames {
                self.push_control(f)?;
            }
        }
        if let Some(addr) = announce {
            self.push_control(PeerFrame::PeerAnnounce {
                addr: addr.to_owned(),
            })?;
        }
        if !known_peers.is_empty() {
            let addrs = known_peers
                .iter()
                .take(super::frame::MAX_PEER_LIST)
                .cloned()
                .collect();
            self.push_control(PeerFrame::PeerList { addrs })?;
        }
        Ok(())
    }

    /// Until the peer's own RESYNC arrives, route as if it still wanted what it wanted on its
    /// previous link: a reconnecting peer then misses nothing published between the HELLO and
    /// its RESYNC, which replaces this assumption when it comes.
    pub fn assume_interest(&mut self, interest: PeerInterest) {
        self.interest = interest;
    }

    /// Offers a publication. Routed when the session is established, the peer is not draining
    /// and wants the topic (or cannot say, without interest routing). Compressed when
    /// `COMPRESSION` was negotiated, with the trailer when `RECOVERY` was.
    pub fn route_msg(
        &mut self,
        topic: &str,
        payload: &str,
        stamp: Option<RecoveryTrailer>,
    ) -> Routed {
        if !self.wants(topic) {
            return Routed::Skipped;
        }
        let caps = self.capabilities();
        self.push_data(PeerFrame::Msg {
            topic: topic.to_owned(),
            payload: payload.to_owned(),
            compressed: caps.contains(Capabilities::COMPRESSION),
            trailer: stamp.filter(|_| caps.contains(Capabilities::RECOVERY)),
        })
    }

    /// True when a publication on `topic` would be routed to this peer now.
    pub fn wants(&self, topic: &str) -> bool {
        if self.state != State::Established || self.remote_draining {
            return false;
        }
        !self.capabilities().contains(Capabilities::INTEREST_ROUTING)
            || self.interest.matches(topic)
    }

    /// Offers a presence frame: queued only when `PRESENCE` and `PRESENCE_SYNC` were
    /// negotiated.
    pub fn route_presence(&mut self, frame: PeerFrame) -> Routed {
        let sync = Capabilities::PRESENCE | Capabilities::PRESENCE_SYNC;
        if self.state != State::Established || !self.capabilities().contains(sync) {
            return Routed::Skipped;
        }
        self.push_data(frame)
    }

    /// A local topic key got its first subscriber.
    pub fn send_sub(&mut self, key: &str) -> Result<(), LinkError> {
        self.send_interest(PeerFrame::Sub {
            topic: key.to_owned(),
        })
    }

    /// A local topic key lost its last subscriber.
    pub fn send_unsub(&mut self, key: &str) -> Result<(), LinkError> {
        self.send_interest(PeerFrame::Unsub {
            topic: key.to_owned(),
        })
    }

    fn send_interest(&mut self, frame: PeerFrame) -> Result<(), LinkError> {
        if self.state != State::Established
            || !self.capabilities().contains(Capabilities::INTEREST_ROUTING)
        {
            return Ok(());
        }
        self.push_control(frame)
    }

    /// Passes newly learned addresses on (gossip); at most 256 per frame, the rest in more.
    pub fn send_peer_list(&mut self, addrs: &[String]) -> Result<(), LinkError> {
        if self.state != State::Established {
            return Ok(());
        }
        for chunk in addrs.chunks(super::frame::MAX_PEER_LIST) {
            self.push_control(PeerFrame::PeerList {
                addrs: chunk.to_vec(),
            })?;
        }
        Ok(())
    }

    /// This node drains (D17): the peer stops routing new traffic to us.
    pub fn send_drain(&mut self) -> Result<(), LinkError> {
        if self.state != State::Established {
            return Ok(());
        }
        self.push_control(PeerFrame::Drain)
    }

    /// This node stops: SHUTDOWN is the last frame queued; the session counts as over.
    pub fn send_shutdown(&mut self) {
        if self.state == State::Established {
            // Past every bound on purpose: it is the last frame this link will ever queue.
            self.queue.push_back(PeerFrame::Shutdown);
        }
        self.state = State::Closed;
    }

    /// The next frame to write.
    pub fn poll_transmit(&mut self) -> Option<PeerFrame> {
        let f = self.queue.pop_front()?;
        if is_data(&f) {
            self.data_frames -= 1;
        }
        Some(f)
    }

    /// When [`Link::handle_timeout`] is due next (`None` once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::AwaitingHello => {
                Some(self.started.saturating_add(self.config.handshake_timeout))
            }
            State::Established => Some(
                self.next_ping
                    .min(self.last_received.saturating_add(self.config.dead_after)),
            ),
        }
    }

    /// Heartbeat and deadlines: `Err` ends the session.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), LinkError> {
        match self.state {
            State::Closed => Err(LinkError::Closed),
            State::AwaitingHello => {
                if now >= self.started.saturating_add(self.config.handshake_timeout) {
                    return self.fail(LinkError::HandshakeTimeout);
                }
                Ok(())
            }
            State::Established => {
                if now >= self.last_received.saturating_add(self.config.dead_after) {
                    return self.fail(LinkError::Dead);
                }
                if now >= self.next_ping {
                    self.push_control(PeerFrame::Ping)?;
                    // Skip missed periods rather than burst PINGs after a stall.
                    while self.next_ping <= now {
                        self.next_ping = self
                            .next_ping
                            .saturating_add(self.config.heartbeat_interval);
                    }
                }
                Ok(())
            }
        }
    }

    /// Ends the session from the driver's side; returns the data frames that were never written
    /// (for the DLQ).
    pub fn close(&mut self) -> Vec<PeerFrame> {
        self.state = State::Closed;
        self.data_frames = 0;
        self.queue.drain(..).filter(is_data).collect()
    }

    fn push_data(&mut self, frame: PeerFrame) -> Routed {
        if self.data_frames >= self.config.queue_capacity {
            return Routed::QueueFull;
        }
        self.data_frames += 1;
        self.queue.push_back(frame);
        Routed::Queued
    }

    fn push_control(&mut self, frame: PeerFrame) -> Result<(), LinkError> {
        if self.queue.len() - self.data_frames >= MAX_CONTROL_FRAMES {
            return self.fail(LinkError::Overloaded);
        }
        self.queue.push_back(frame);
        Ok(())
    }

    fn fail<T>(&mut self, e: LinkError) -> Result<T, LinkError> {
        self.state = State::Closed;
        Err(e)
    }
}

fn is_data(f: &PeerFrame) -> bool {
    matches!(
        f,
        PeerFrame::Msg { .. } | PeerFrame::PresenceUpdate { .. } | PeerFrame::PresenceFull { .. }
    )
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
