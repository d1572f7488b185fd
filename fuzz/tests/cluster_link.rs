//! Fuzz target: the peer-link machine (`wse_core::cluster::link::Link`) under arbitrary
//! sequences of received frames (valid or not for the state), timer firings, clock steps,
//! routing offers, interest changes, DRAIN, SHUTDOWN and writer polls.
//!
//! Input (typed): the role, the peer's capability bits, a small data-queue bound, and the
//! operations.
//!
//! Invariants after every step:
//!
//! - nothing panics; once a step returned an error (or the link closed), the link stays closed:
//!   every later frame is `Err(Closed)`, `poll_timeout` is `None`, nothing more is routed;
//! - before a valid HELLO the link writes at most its own HELLO (dialer) and nothing else, and
//!   routes nothing;
//! - at most `queue_capacity` data frames wait, whatever is offered; an offer over it is
//!   `QueueFull`, never silently lost;
//! - a MSG leaves compressed only if COMPRESSION was negotiated, with a trailer only if
//!   RECOVERY was; SUB/UNSUB/RESYNC leave only with INTEREST_ROUTING;
//! - after the peer's DRAIN, nothing new is routed to it;
//! - a PING received while established is answered by a PONG.

use std::time::Duration;

use bolero::TypeGenerator;
use wse_core::Instant;
use wse_core::cluster::frame::{Capabilities, PeerFrame, RecoveryTrailer};
use wse_core::cluster::link::{Inbound, Link, LinkConfig, Routed};
use wse_core::recovery::Epoch;

#[derive(Debug, TypeGenerator)]
struct Input {
    dialer: bool,
    peer_caps: u8,
    queue: u8,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Op {
    /// A frame from the peer (see [`frame`]).
    Receive(Rx),
    /// Advance the clock by this many × 16 ms (0 to about 17 min) and fire the timer.
    Tick(u16),
    /// Offer a publication on topic `t<n % 4>`, stamped or not.
    Route(u8, bool),
    Sub(u8),
    Unsub(u8),
    Drain,
    Shutdown,
    /// The writer takes up to this many frames.
    Poll(u8),
    /// The driver ends the session.
    Close,
}

#[derive(Debug, TypeGenerator)]
enum Rx {
    Hello { version: u8, self_id: bool },
    Ping,
    Pong,
    Msg(u8, bool),
    Sub(u8),
    Unsub(u8),
    Resync(Vec<u8>, bool),
    Announce,
    PeerList(u8),
    Presence,
    Shutdown,
    Drain,
    Unknown(u8),
}

fn topic(n: u8) -> String {
    if n % 5 == 4 {
        "t*".into()
    } else {
        format!("t{}", n % 4)
    }
}

fn frame(rx: &Rx) -> PeerFrame {
    match rx {
        Rx::Hello { version, self_id } => PeerFrame::Hello {
            version: u16::from(*version % 3),
            instance_id: if *self_id { "me" } else { "peer" }.into(),
            capabilities: Capabilities::ALL,
        },
        Rx::Ping => PeerFrame::Ping,
        Rx::Pong => PeerFrame::Pong,
        Rx::Msg(t, stamped) => PeerFrame::Msg {
            topic: topic(*t),
            payload: "{}".into(),
            compressed: false,
            trailer: stamped.then_some(RecoveryTrailer {
                epoch: Epoch(1),
                offset: u64::from(*t),
            }),
        },
        Rx::Sub(t) => PeerFrame::Sub { topic: topic(*t) },
        Rx::Unsub(t) => PeerFrame::Unsub { topic: topic(*t) },
        Rx::Resync(ts, continuation) => PeerFrame::Resync {
            topics: ts.iter().take(8).map(|t| topic(*t)).collect(),
            continuation: *continuation,
        },
        Rx::Announce => PeerFrame::PeerAnnounce {
            addr: "10.0.0.9:9000".into(),
        },
        Rx::PeerList(n) => PeerFrame::PeerList {
            addrs: (0..*n % 4).map(|i| format!("10.0.0.{i}:9000")).collect(),
        },
        Rx::Presence => PeerFrame::PresenceFull { chunk: "{}".into() },
        Rx::Shutdown => PeerFrame::Shutdown,
        Rx::Drain => PeerFrame::Drain,
        Rx::Unknown(t) => PeerFrame::Unknown {
            msg_type: 0x0E | (t & 0xF0),
        },
    }
}

#[test]
fn cluster_link() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let mut cfg = LinkConfig::new("me");
        cfg.queue_capacity = usize::from(input.queue % 8) + 1;
        // What the runtime offers: the original's four bits and our presence CRDT.
        let ours = Capabilities::ALL | Capabilities::PRESENCE_SYNC;
        cfg.capabilities = ours;
        let capacity = cfg.queue_capacity;
        let mut now = Instant::from_secs(1);
        let mut link = if input.dialer {
            Link::dial(cfg, now)
        } else {
            Link::accept(cfg, now)
        };
        let offered = Capabilities(u32::from(input.peer_caps & 0x1F));
        // Below, `peer_caps` is what the link may use: the AND of both offers.
        let peer_caps = offered.negotiate(ours);
        let mut hello_seen = false;
        let mut data_waiting = 0usize;
        let mut closed = false;
        let mut drained = false;
        let mut sent_before_hello = 0usize;
        let mut pongs_owed = 0usize;
        for op in &input.ops {
            match op {
                Op::Receive(rx) => {
                    let mut f = frame(rx);
                    if let PeerFrame::Hello { capabilities, .. } = &mut f {
                        *capabilities = offered;
                    }
                    let is_ping = matches!(f, PeerFrame::Ping);
                    let got = link.handle_frame(f, now);
                    if closed {
                        assert!(got.is_err(), "a closed link accepted a frame");
                        continue;
                    }
                    match got {
                        Ok(Inbound::Hello(remote)) => {
                            assert!(!hello_seen, "a second HELLO was accepted");
                            hello_seen = true;
                            assert_eq!(remote.capabilities, peer_caps);
                            if link.start_session(&["t0".into()], None, &[]).is_err() {
                                closed = true;
                            }
                        }
                        Ok(Inbound::Drain) => drained = true,
                        Ok(Inbound::Shutdown) => closed = true,
                        Ok(Inbound::Msg { trailer, .. }) => {
                            if trailer.is_some() {
                                assert!(peer_caps.contains(Capabilities::RECOVERY));
                            }
                        }
                        Ok(_) => {
                            if is_ping {
                                pongs_owed += 1;
                            }
                        }
                        Err(_) => closed = true,
                    }
                }
                Op::Tick(ms) => {
                    now = now.saturating_add(Duration::from_millis(u64::from(*ms) * 16));
                    if link.handle_timeout(now).is_err() {
                        closed = true;
                    }
                }
                Op::Route(t, stamped) => {
                    let stamp = stamped.then_some(RecoveryTrailer {
                        epoch: Epoch(2),
                        offset: 0,
                    });
                    let routed = link.route_msg(&topic(*t), "{}", stamp);
                    if closed || !hello_seen || drained {
                        assert_eq!(routed, Routed::Skipped, "routed while it must not");
                    }
                    match routed {
                        Routed::Queued => data_waiting += 1,
                        Routed::QueueFull => assert_eq!(data_waiting, capacity),
                        Routed::Skipped => {}
                    }
                }
                Op::Sub(t) => {
                    if link.send_sub(&topic(*t)).is_err() {
                        closed = true;
                    }
                }
                Op::Unsub(t) => {
                    if link.send_unsub(&topic(*t)).is_err() {
                        closed = true;
                    }
                }
                Op::Drain => {
                    if link.send_drain().is_err() {
                        closed = true;
                    }
                }
                Op::Shutdown => {
                    link.send_shutdown();
                    closed = true;
                }
                Op::Poll(n) => {
                    for _ in 0..*n {
                        let Some(f) = link.poll_transmit() else {
                            break;
                        };
                        if !hello_seen {
                            sent_before_hello += 1;
                            assert!(
                                matches!(f, PeerFrame::Hello { .. } | PeerFrame::Shutdown),
                                "wrote {f:?} before the HELLO exchange"
                            );
                        }
                        match f {
                            PeerFrame::Msg {
                                compressed,
                                trailer,
                                ..
                            } => {
                                data_waiting -= 1;
                                assert!(
                                    !compressed || peer_caps.contains(Capabilities::COMPRESSION)
                                );
                                assert!(
                                    trailer.is_none() || peer_caps.contains(Capabilities::RECOVERY)
                                );
                            }
                            PeerFrame::Sub { .. }
                            | PeerFrame::Unsub { .. }
                            | PeerFrame::Resync { .. } => {
                                assert!(peer_caps.contains(Capabilities::INTEREST_ROUTING));
                            }
                            PeerFrame::Pong => pongs_owed = pongs_owed.saturating_sub(1),
                            _ => {}
                        }
                    }
                }
                Op::Close => {
                    let unsent = link.close();
                    assert_eq!(
                        unsent.len(),
                        data_waiting,
                        "close hands back every data frame"
                    );
                    data_waiting = 0;
                    closed = true;
                }
            }
            closed |= link.is_closed();
            if closed {
                assert!(link.is_closed());
                assert_eq!(link.poll_timeout(), None);
            }
            assert!(
                sent_before_hello <= 1,
                "more than the HELLO before the exchange"
            );
            assert!(data_waiting <= capacity);
        }
        // A PING received on a live link is answered (the PONG is queued, not lost).
        if !closed {
            let mut pongs = 0;
            while let Some(f) = link.poll_transmit() {
                if f == PeerFrame::Pong {
                    pongs += 1;
                }
            }
            assert_eq!(pongs, pongs_owed, "every PING answered");
        }
    });
}
