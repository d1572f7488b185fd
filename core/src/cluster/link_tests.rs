use super::*;
use crate::cluster::frame::{FrameDecoder, FrameEncoder};
use crate::recovery::Epoch;

const T0: Instant = Instant::from_secs(100);

fn secs(s: u64) -> Instant {
    T0.saturating_add(Duration::from_secs(s))
}

fn cfg(id: &str) -> LinkConfig {
    LinkConfig::new(id)
}

/// Moves every queued frame of `from` through the real codec into `to`; returns what `to`
/// reported.
fn pump(from: &mut Link, to: &mut Link, now: Instant) -> Vec<Result<Inbound, LinkError>> {
    let mut enc = FrameEncoder::new();
    let mut bytes = Vec::new();
    while let Some(f) = from.poll_transmit() {
        enc.encode(&f, &mut bytes).expect("encodable");
    }
    let mut dec = FrameDecoder::new();
    assert_eq!(dec.push(&bytes), bytes.len());
    dec.map(|f| to.handle_frame(f.expect("decodable"), now))
        .collect()
}

/// A dialer `a` and an acceptor `b`, through HELLO and start_session on both sides.
fn pair(
    a_caps: Capabilities,
    b_caps: Capabilities,
    a_topics: &[&str],
    b_topics: &[&str],
) -> (Link, Link) {
    let mut a = Link::dial(
        LinkConfig {
            capabilities: a_caps,
            ..cfg("a")
        },
        T0,
    );
    let mut b = Link::accept(
        LinkConfig {
            capabilities: b_caps,
            ..cfg("b")
        },
        T0,
    );
    let got = pump(&mut a, &mut b, T0);
    assert!(matches!(got.as_slice(), [Ok(Inbound::Hello(r))] if r.instance_id == "a"));
    let bt: Vec<String> = b_topics.iter().map(|s| (*s).to_owned()).collect();
    b.start_session(&bt, Some("10.0.0.2:9000"), &[]).unwrap();
    let got = pump(&mut b, &mut a, T0);
    assert!(matches!(&got[0], Ok(Inbound::Hello(r)) if r.instance_id == "b"));
    let at: Vec<String> = a_topics.iter().map(|s| (*s).to_owned()).collect();
    a.start_session(&at, None, &[]).unwrap();
    pump(&mut a, &mut b, T0);
    (a, b)
}

#[test]
fn a_dialer_speaks_first_and_an_acceptor_answers_only_after_start_session() {
    let mut a = Link::dial(cfg("a"), T0);
    let mut b = Link::accept(cfg("b"), T0);
    assert_eq!(b.queued(), 0);
    let got = pump(&mut a, &mut b, T0);
    assert_eq!(
        got,
        vec![Ok(Inbound::Hello(Remote {
            instance_id: "a".into(),
            version: 1,
            capabilities: Capabilities::ALL
        }))]
    );
    // Registration may still refuse the peer: nothing is queued yet.
    assert_eq!(b.queued(), 0);
    b.start_session(&[], None, &[]).unwrap();
    assert!(matches!(b.poll_transmit(), Some(PeerFrame::Hello { .. })));
    assert_eq!(
        b.poll_transmit(),
        Some(PeerFrame::Resync {
            topics: vec![],
            continuation: false
        }),
        "an empty RESYNC is sent too: no send-everything window"
    );
}

#[test]
fn bad_hellos_end_the_session() {
    let cases: Vec<(PeerFrame, LinkError)> = vec![
        (PeerFrame::Ping, LinkError::ExpectedHello { got: 0x02 }),
        (
            PeerFrame::Hello {
                version: 0,
                instance_id: "x".into(),
                capabilities: Capabilities::ALL,
            },
            LinkError::Version { version: 0 },
        ),
        (
            PeerFrame::hello("b", Capabilities::ALL),
            LinkError::BadInstanceId {
                reason: "our own (self-connection)",
            },
        ),
        (
            PeerFrame::hello("", Capabilities::ALL),
            LinkError::BadInstanceId { reason: "empty" },
        ),
    ];
    for (frame, want) in cases {
        let mut b = Link::accept(cfg("b"), T0);
        assert_eq!(b.handle_frame(frame, T0), Err(want.clone()), "{want}");
        assert!(b.is_closed());
        assert_eq!(b.handle_frame(PeerFrame::Ping, T0), Err(LinkError::Closed));
    }
}

#[test]
fn a_higher_version_is_spoken_as_ours_and_capabilities_are_anded() {
    let mut b = Link::accept(cfg("b"), T0);
    let got = b.handle_frame(
        PeerFrame::Hello {
            version: 7,
            instance_id: "a".into(),
            capabilities: Capabilities(0xFF),
        },
        T0,
    );
    assert_eq!(
        got,
        Ok(Inbound::Hello(Remote {
            instance_id: "a".into(),
            version: 1,
            capabilities: Capabilities::ALL
        }))
    );
}

#[test]
fn messages_go_only_to_peers_that_subscribed() {
    let (mut a, mut b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &["news", "px.*"]);
    assert_eq!(a.route_msg("news", "{}", None), Routed::Queued);
    assert_eq!(a.route_msg("px.eur", "{}", None), Routed::Queued);
    assert_eq!(a.route_msg("sports", "{}", None), Routed::Skipped);
    let got = pump(&mut a, &mut b, T0);
    let topics: Vec<_> = got
        .into_iter()
        .filter_map(|r| match r {
            Ok(Inbound::Msg { topic, .. }) => Some(topic),
            _ => None,
        })
        .collect();
    assert_eq!(topics, ["news", "px.eur"]);
    // UNSUB stops routing, SUB starts it.
    b.send_unsub("news").unwrap();
    b.send_sub("sports").unwrap();
    pump(&mut b, &mut a, T0);
    assert_eq!(a.route_msg("news", "{}", None), Routed::Skipped);
    assert_eq!(a.route_msg("sports", "{}", None), Routed::Queued);
}

#[test]
fn without_interest_routing_everything_is_routed_and_no_interest_frames_are_sent() {
    let no_routing = Capabilities::ALL & Capabilities(!Capabilities::INTEREST_ROUTING.0);
    let (mut a, mut b) = pair(Capabilities::ALL, no_routing, &["x"], &[]);
    assert_eq!(a.route_msg("anything", "{}", None), Routed::Queued);
    b.send_sub("t").unwrap();
    assert_eq!(b.queued(), 0);
    // A peer that sends interest frames anyway breaks the protocol.
    assert_eq!(
        a.handle_frame(PeerFrame::Sub { topic: "t".into() }, T0),
        Err(LinkError::Protocol(
            "interest frame without INTEREST_ROUTING"
        ))
    );
}

#[test]
fn compression_and_trailers_follow_the_negotiated_capabilities() {
    let stamp = Some(RecoveryTrailer {
        epoch: Epoch(7),
        offset: 3,
    });
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(1000));
    for (caps, compressed, trailer) in [
        (Capabilities::ALL, true, true),
        (Capabilities::INTEREST_ROUTING, false, false),
        (
            Capabilities::INTEREST_ROUTING | Capabilities::RECOVERY,
            false,
            true,
        ),
    ] {
        let (mut a, _b) = pair(Capabilities::ALL, caps, &[], &["t"]);
        assert_eq!(a.route_msg("t", &big, stamp), Routed::Queued);
        match a.poll_transmit() {
            Some(PeerFrame::Msg {
                compressed: c,
                trailer: tr,
                ..
            }) => {
                assert_eq!(c, compressed, "{caps:?}");
                assert_eq!(tr.is_some(), trailer, "{caps:?}");
            }
            other => panic!("expected MSG, got {other:?}"),
        }
    }
}

#[test]
fn a_received_trailer_is_dropped_when_recovery_was_not_negotiated() {
    let caps = Capabilities::INTEREST_ROUTING;
    let (_a, mut b) = pair(Capabilities::ALL, caps, &[], &[]);
    let got = b.handle_frame(
        PeerFrame::Msg {
            topic: "t".into(),
            payload: "{}".into(),
            compressed: false,
            trailer: Some(RecoveryTrailer {
                epoch: Epoch(1),
                offset: 0,
            }),
        },
        T0,
    );
    assert_eq!(
        got,
        Ok(Inbound::Msg {
            topic: "t".into(),
            payload: "{}".into(),
            trailer: None
        })
    );
}

#[test]
fn a_draining_peer_gets_no_new_routed_traffic() {
    let (mut a, mut b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &["t"]);
    b.send_drain().unwrap();
    let got = pump(&mut b, &mut a, T0);
    assert_eq!(got, vec![Ok(Inbound::Drain)]);
    assert!(a.is_remote_draining());
    assert_eq!(a.route_msg("t", "{}", None), Routed::Skipped);
}

#[test]
fn a_full_data_queue_refuses_messages_but_control_frames_still_pass() {
    let (a, _b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &["t"]);
    let mut a2 = Link::dial(
        LinkConfig {
            queue_capacity: 2,
            ..cfg("a")
        },
        T0,
    );
    // Re-run the handshake on a small-queue link.
    a2.handle_frame(PeerFrame::hello("b", Capabilities::ALL), T0)
        .unwrap();
    a2.start_session(&[], None, &[]).unwrap();
    a2.handle_frame(
        PeerFrame::Resync {
            topics: vec!["t".into()],
            continuation: false,
        },
        T0,
    )
    .unwrap();
    assert_eq!(a2.route_msg("t", "1", None), Routed::Queued);
    assert_eq!(a2.route_msg("t", "2", None), Routed::Queued);
    assert_eq!(a2.route_msg("t", "3", None), Routed::QueueFull);
    a2.send_sub("x").unwrap();
    a2.handle_frame(PeerFrame::Ping, T0).unwrap();
    // Closing hands back exactly the unwritten data frames.
    let unsent = a2.close();
    assert_eq!(unsent.len(), 2);
    assert!(a.is_established());
}

#[test]
fn heartbeat_pings_at_once_then_every_interval_and_silence_kills() {
    let (mut a, _b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &[]);
    while a.poll_transmit().is_some() {}
    assert_eq!(a.poll_timeout(), Some(T0));
    a.handle_timeout(T0).unwrap();
    assert_eq!(a.poll_transmit(), Some(PeerFrame::Ping));
    assert_eq!(a.poll_timeout(), Some(secs(5)));
    a.handle_timeout(secs(5)).unwrap();
    assert_eq!(a.poll_transmit(), Some(PeerFrame::Ping));
    // Any frame counts as liveness.
    a.handle_frame(PeerFrame::Pong, secs(9)).unwrap();
    a.handle_timeout(secs(15)).unwrap();
    assert_eq!(a.poll_timeout(), Some(secs(20)));
    assert_eq!(a.handle_timeout(secs(24)), Err(LinkError::Dead));
    assert!(a.is_closed());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn a_stall_does_not_burst_pings() {
    let (mut a, _b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &[]);
    while a.poll_transmit().is_some() {}
    a.handle_frame(PeerFrame::Pong, secs(12)).unwrap();
    a.handle_timeout(secs(12)).unwrap();
    assert_eq!(a.poll_transmit(), Some(PeerFrame::Ping));
    assert_eq!(a.poll_transmit(), None);
    assert_eq!(a.poll_timeout(), Some(secs(15)));
}

#[test]
fn no_hello_within_the_handshake_timeout_ends_the_session() {
    let mut b = Link::accept(cfg("b"), T0);
    assert_eq!(b.poll_timeout(), Some(secs(5)));
    b.handle_timeout(secs(4)).unwrap();
    assert_eq!(b.handle_timeout(secs(5)), Err(LinkError::HandshakeTimeout));
}

#[test]
fn ping_is_answered_and_shutdown_ends_the_session() {
    let (mut a, mut b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &[]);
    while a.poll_transmit().is_some() {}
    assert_eq!(a.handle_frame(PeerFrame::Ping, T0), Ok(Inbound::Nothing));
    assert_eq!(a.poll_transmit(), Some(PeerFrame::Pong));
    b.send_shutdown();
    assert!(b.is_closed());
    let got = pump(&mut b, &mut a, T0);
    assert_eq!(got.last(), Some(&Ok(Inbound::Shutdown)));
    assert!(a.is_closed());
}

#[test]
fn start_session_sends_gossip_and_presence_needs_its_capability() {
    let mut b = Link::accept(cfg("b"), T0);
    b.handle_frame(PeerFrame::hello("a", Capabilities::INTEREST_ROUTING), T0)
        .unwrap();
    b.start_session(
        &["t".into()],
        Some("10.0.0.2:9000"),
        &["10.0.0.3:9000".into()],
    )
    .unwrap();
    let frames: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert_eq!(
        frames[1..],
        [
            PeerFrame::Resync {
                topics: vec!["t".into()],
                continuation: false
            },
            PeerFrame::PeerAnnounce {
                addr: "10.0.0.2:9000".into()
            },
            PeerFrame::PeerList {
                addrs: vec!["10.0.0.3:9000".into()]
            },
        ]
    );
    assert_eq!(
        b.route_presence(PeerFrame::PresenceFull { chunk: "{}".into() }),
        Routed::Skipped
    );
    assert_eq!(
        b.handle_frame(PeerFrame::PresenceFull { chunk: "{}".into() }, T0),
        Err(LinkError::Protocol("presence frame without PRESENCE"))
    );
}

#[test]
fn a_second_hello_is_a_protocol_error() {
    let (mut a, _b) = pair(Capabilities::ALL, Capabilities::ALL, &[], &[]);
    assert_eq!(
        a.handle_frame(PeerFrame::hello("b", Capabilities::ALL), T0),
        Err(LinkError::Protocol("second HELLO"))
    );
}

#[test]
fn an_assumed_interest_routes_until_the_peers_resync_replaces_it() {
    let mut a = Link::dial(cfg("a"), T0);
    a.handle_frame(PeerFrame::hello("b", Capabilities::ALL), T0)
        .unwrap();
    let mut before = PeerInterest::new();
    before.subscribe("t");
    a.assume_interest(before);
    a.start_session(&[], None, &[]).unwrap();
    assert_eq!(a.route_msg("t", "{}", None), Routed::Queued);
    a.handle_frame(
        PeerFrame::Resync {
            topics: vec!["u".into()],
            continuation: false,
        },
        T0,
    )
    .unwrap();
    assert_eq!(a.route_msg("t", "{}", None), Routed::Skipped);
    assert_eq!(a.route_msg("u", "{}", None), Routed::Queued);
}

#[test]
fn presence_travels_only_when_both_sides_speak_the_crdt() {
    let sync = Capabilities::PRESENCE | Capabilities::PRESENCE_SYNC;
    let chunk = || PeerFrame::PresenceFull { chunk: "{}".into() };
    for (peer, routed, received) in [
        (
            Capabilities::ALL | sync,
            Routed::Queued,
            Inbound::Presence(chunk()),
        ),
        (Capabilities::ALL, Routed::Skipped, Inbound::Nothing),
    ] {
        let mut a = Link::dial(
            LinkConfig {
                capabilities: Capabilities::ALL | sync,
                ..cfg("a")
            },
            T0,
        );
        a.handle_frame(PeerFrame::hello("b", peer), T0).unwrap();
        assert_eq!(a.route_presence(chunk()), routed, "{peer:?}");
        assert_eq!(a.handle_frame(chunk(), T0), Ok(received), "{peer:?}");
    }
}
