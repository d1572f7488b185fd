//! Session tests: replay protection with virtual time, and key rotation end to end between a
//! server [`CryptoSession`] and a [`ClientCryptoSession`] over a real ECDH exchange.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_chacha::ChaCha20Rng;
use serde_json::{Value, json};

use super::keys::{EphemeralKeyPair, KeyExchangeError, SessionKey};
use super::record::{self, RecordError};
use super::rotation::{self, KEY_ROTATION, KEY_ROTATION_ACK, RotationError};
use super::session::*;
use super::testutil::rng;
use crate::time::Instant;

const HOUR: Duration = Duration::from_secs(3600);
const GRACE: Duration = Duration::from_secs(30);

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// Both sides after a real exchange at t = 0: (server, client, a copy of the first key).
fn exchange(
    r: &mut ChaCha20Rng,
    config: CryptoConfig,
    rotation: bool,
) -> (CryptoSession, ClientCryptoSession, SessionKey) {
    let server = EphemeralKeyPair::generate(r);
    let client = EphemeralKeyPair::generate(r);
    let at_server = server.derive_session_key(&client.public_key());
    let at_client = client.derive_session_key(&server.public_key());
    let first = at_client.clone();
    (
        CryptoSession::new(at_server, Instant::ZERO, config, rotation),
        ClientCryptoSession::new(at_client, config),
        first,
    )
}

fn message(t: &str, p: Value) -> Vec<u8> {
    serde_json::to_vec(&rotation::system_message(t, p)).unwrap()
}

/// Decrypts a frame and splits the system message into `t` and `p`.
fn open_message(plaintext: &[u8]) -> (String, Value) {
    let v: Value = serde_json::from_slice(plaintext).unwrap();
    (v["t"].as_str().unwrap().to_owned(), v["p"].clone())
}

/// Runs one whole rotation through both sides at `now`, the rotation messages encrypted as on
/// the wire.
fn rotate(
    server: &mut CryptoSession,
    client: &mut ClientCryptoSession,
    now: Instant,
    r: &mut ChaCha20Rng,
) {
    let payload = server.start_rotation(now, r).unwrap();
    let frame = server.encrypt(&message(KEY_ROTATION, payload), r);
    let (t, p) = open_message(&client.decrypt(now, &frame).unwrap());
    assert_eq!(t, KEY_ROTATION);
    let ack = client
        .handle_key_rotation(now, &p, r, |ack| message(KEY_ROTATION_ACK, ack))
        .unwrap();
    let (t, p) = open_message(&server.decrypt(now, &ack).unwrap());
    assert_eq!(t, KEY_ROTATION_ACK);
    server.handle_rotation_ack(now, &p).unwrap();
}

#[test]
fn a_replayed_frame_is_rejected_and_counted() {
    let r = &mut rng(1);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), false);
    let frame = client.encrypt(b"{\"t\":\"buy\"}", r);
    assert_eq!(server.decrypt(secs(1), &frame).unwrap(), b"{\"t\":\"buy\"}");
    assert_eq!(server.decrypt(secs(2), &frame), Err(RecordError::Replayed));
    assert_eq!(
        server.decrypt_record(secs(3), &frame[2..]),
        Err(RecordError::Replayed)
    );
    let s = server.stats();
    assert_eq!(
        (s.decrypted, s.rejected_replayed, s.rejected_auth),
        (1, 2, 0)
    );
}

#[test]
fn refused_frames_are_counted_by_reason() {
    let r = &mut rng(2);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), false);
    let mut forged = client.encrypt(b"x", r);
    forged[5] ^= 1;
    assert_eq!(
        server.decrypt(secs(0), &forged),
        Err(RecordError::AuthFailed)
    );
    assert_eq!(
        server.decrypt(secs(0), b"C:abc"),
        Err(RecordError::MissingPrefix)
    );
    assert_eq!(
        server.decrypt(secs(0), b"E:short"),
        Err(RecordError::TooShort { len: 7, min: 30 })
    );
    assert_eq!(
        server.decrypt_record(secs(0), b"short"),
        Err(RecordError::TooShort { len: 5, min: 28 })
    );
    let s = server.stats();
    assert_eq!(
        (s.rejected_auth, s.rejected_malformed, s.decrypted),
        (1, 3, 0)
    );
    // A forged frame takes no place in the replay cache: the authentic original still passes.
    forged[5] ^= 1;
    assert!(server.decrypt(secs(0), &forged).is_ok());
}

#[test]
fn the_replay_cache_forgets_the_oldest_iv_first_at_its_bound() {
    let r = &mut rng(3);
    let config = CryptoConfig {
        replay_cache_capacity: 3,
        ..CryptoConfig::default()
    };
    let (mut server, mut client, _) = exchange(r, config, false);
    let frames: Vec<_> = (0..4).map(|i| client.encrypt(&[i], r)).collect();
    for f in &frames {
        assert!(server.decrypt(secs(1), f).is_ok());
    }
    assert_eq!(server.stats().replay_cache_evicted, 1);
    for f in &frames[1..] {
        assert_eq!(server.decrypt(secs(2), f), Err(RecordError::Replayed));
    }
    // The documented cost of the bound: the oldest frame, forgotten, is accepted again.
    assert!(server.decrypt(secs(2), &frames[0]).is_ok());
    assert_eq!(server.stats().replay_cache_evicted, 2);
}

#[test]
fn the_replay_cache_forgets_ivs_older_than_max_age() {
    let r = &mut rng(4);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), false);
    let frame = client.encrypt(b"late", r);
    assert!(server.decrypt(secs(10), &frame).is_ok());
    assert_eq!(
        server.decrypt(secs(309), &frame),
        Err(RecordError::Replayed)
    );
    assert!(
        server.decrypt(secs(310), &frame).is_ok(),
        "five minutes after acceptance"
    );
    assert_eq!(
        server.stats().replay_cache_evicted,
        0,
        "aged out, not evicted"
    );
}

#[test]
fn the_client_side_also_refuses_replays() {
    let r = &mut rng(5);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), false);
    let frame = server.encrypt(b"event", r);
    assert!(client.decrypt(secs(0), &frame).is_ok());
    assert_eq!(client.decrypt(secs(0), &frame), Err(RecordError::Replayed));
}

#[test]
fn rotation_end_to_end_keeps_in_flight_frames_for_the_grace_window() {
    let r = &mut rng(6);
    let (mut server, mut client, first) = exchange(r, CryptoConfig::default(), true);
    assert!(server.rotation_enabled());
    assert_eq!(server.poll_timeout(), Some(Instant::ZERO + HOUR));

    // The interval runs out: the server starts a rotation by itself.
    server.handle_timeout(secs(3599), r);
    assert_eq!(server.poll_output(), None, "not due yet");
    let t = secs(3600);
    server.handle_timeout(t, r);
    let Some(CryptoOutput::SendKeyRotation { payload }) = server.poll_output() else {
        panic!("rotation due");
    };
    assert_eq!(server.poll_output(), None);
    assert_eq!(payload["rotation_id"], json!(1));
    assert_eq!(server.pending_rotation(), Some(1));
    assert_eq!(
        server.poll_timeout(),
        None,
        "a pending rotation has no deadline"
    );

    // Frames the server sends before it sees the ack use the old key...
    let rotation_frame = server.encrypt(&message(KEY_ROTATION, payload), r);
    let in_flight_to_client = server.encrypt(b"old key, in flight", r);
    let late_to_client = server.encrypt(b"old key, delivered too late", r);
    // ...and so do the client's frames sent before it handles the rotation.
    let in_flight_to_server = client.encrypt(b"client, old key", r);
    let late_to_server = client.encrypt(b"client, old key, too late", r);

    let (_, p) = open_message(&client.decrypt(t, &rotation_frame).unwrap());
    let ack = client
        .handle_key_rotation(t, &p, r, |ack| message(KEY_ROTATION_ACK, ack))
        .unwrap();
    assert!(
        record::open(&first, &ack).is_ok(),
        "the ack travels under the old key, the only one the server can read it with"
    );
    let after_ack = client.encrypt(b"client, new key", r);
    assert_eq!(
        record::open(&first, &after_ack),
        Err(RecordError::AuthFailed)
    );

    // The server reads the ack and switches.
    let (t_ack, p) = open_message(&server.decrypt(t, &ack).unwrap());
    assert_eq!(t_ack, KEY_ROTATION_ACK);
    server.handle_rotation_ack(t, &p).unwrap();
    assert_eq!(server.pending_rotation(), None);
    assert!(server.in_grace());
    let new_to_client = server.encrypt(b"new key", r);
    assert_eq!(
        record::open(&first, &new_to_client),
        Err(RecordError::AuthFailed)
    );

    // Within the grace window everything decrypts, on both sides.
    let within = t + Duration::from_secs(29);
    assert_eq!(
        server.decrypt(within, &after_ack).unwrap(),
        b"client, new key"
    );
    assert_eq!(
        server.decrypt(within, &in_flight_to_server).unwrap(),
        b"client, old key"
    );
    assert_eq!(client.decrypt(within, &new_to_client).unwrap(), b"new key");
    assert_eq!(
        client.decrypt(within, &in_flight_to_client).unwrap(),
        b"old key, in flight"
    );
    assert_eq!(server.stats().decrypted_with_previous_key, 1);
    assert_eq!(client.stats().decrypted_with_previous_key, 1);

    // The grace window ends: old-key frames fail, even without a handle_timeout call.
    let after = t + GRACE;
    assert_eq!(
        server.decrypt(after, &late_to_server),
        Err(RecordError::AuthFailed)
    );
    assert_eq!(
        client.decrypt(after, &late_to_client),
        Err(RecordError::AuthFailed)
    );
    assert!(!server.in_grace() && !client.in_grace());

    // The next rotation is an interval after the switch.
    assert_eq!(server.poll_timeout(), Some(t + HOUR));
    let s = server.stats();
    assert_eq!((s.rotations_started, s.rotations_completed), (1, 1));
}

#[test]
fn grace_ends_at_poll_timeout_when_the_driver_calls_handle_timeout() {
    let r = &mut rng(7);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), true);
    let old = server.encrypt(b"old", r);
    rotate(&mut server, &mut client, secs(100), r);
    assert_eq!(client.poll_timeout(), Some(secs(130)));
    assert_eq!(
        server.poll_timeout(),
        Some(secs(130)),
        "grace end before the next rotation"
    );
    server.handle_timeout(secs(129), r);
    client.handle_timeout(secs(129));
    assert!(
        server.in_grace() && client.in_grace(),
        "early call is harmless"
    );
    server.handle_timeout(secs(130), r);
    client.handle_timeout(secs(130));
    server.handle_timeout(secs(130), r);
    assert!(!server.in_grace() && !client.in_grace());
    assert_eq!(server.poll_output(), None);
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(server.poll_timeout(), Some(secs(100) + HOUR));
    assert_eq!(
        client.decrypt(secs(131), &old),
        Err(RecordError::AuthFailed)
    );
}

#[test]
fn several_rotations_lose_nothing() {
    let r = &mut rng(8);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), true);
    for round in 1..=5u64 {
        let now = secs(round * 4000);
        let to_client: Vec<_> = (0..3).map(|i| server.encrypt(&[i], r)).collect();
        let to_server: Vec<_> = (0..3).map(|i| client.encrypt(&[i], r)).collect();
        rotate(&mut server, &mut client, now, r);
        for f in to_client {
            assert!(client.decrypt(now, &f).is_ok(), "round {round}");
        }
        for f in to_server {
            assert!(server.decrypt(now, &f).is_ok(), "round {round}");
        }
        let f = server.encrypt(b"after", r);
        assert!(client.decrypt(now, &f).is_ok());
    }
    assert_eq!(server.stats().rotations_completed, 5);
    assert_eq!(client.stats().rotations_completed, 5);
}

#[test]
fn a_refused_ack_leaves_the_old_key_in_use_and_the_rotation_pending() {
    let r = &mut rng(9);
    let (mut server, _client, first) = exchange(r, CryptoConfig::default(), true);
    let payload = server.start_rotation(secs(1), r).unwrap();
    let id = payload["rotation_id"].as_u64().unwrap();
    let good_key = EphemeralKeyPair::generate(r).public_key_b64();
    let refused = [
        (
            json!({"rotation_id": id + 1, "public_key": good_key}),
            RotationError::WrongRotationId {
                expected: id,
                got: id + 1,
            },
        ),
        (
            json!({"rotation_id": id, "public_key": "AAAA"}),
            RotationError::BadPublicKey(KeyExchangeError::BadLength { len: 3 }),
        ),
        (
            json!({"rotation_id": id, "public_key": STANDARD.encode([4u8; 65])}),
            RotationError::BadPublicKey(KeyExchangeError::NotOnCurve),
        ),
        (
            json!({"rotation_id": id}),
            RotationError::Malformed("public_key is not a string"),
        ),
        (
            json!("ack"),
            RotationError::Malformed("payload is not an object"),
        ),
    ];
    for (ack, want) in refused {
        assert_eq!(
            server.handle_rotation_ack(secs(2), &ack),
            Err(want),
            "{ack}"
        );
        assert_eq!(server.pending_rotation(), Some(id));
        assert!(!server.in_grace());
        let f = server.encrypt(b"still the old key", r);
        assert_eq!(record::open(&first, &f).unwrap().1, b"still the old key");
    }
    assert_eq!(server.stats().rotation_messages_refused, 5);
    assert_eq!(server.stats().rotations_completed, 0);
    // The right ack still completes the rotation.
    let ok = rotation::key_rotation_ack_payload(id, &good_key);
    assert_eq!(server.handle_rotation_ack(secs(3), &ok), Ok(()));
    // A duplicate of it is refused: nothing is pending any more.
    assert_eq!(
        server.handle_rotation_ack(secs(3), &ok),
        Err(RotationError::NotPending)
    );
}

#[test]
fn a_refused_key_rotation_leaves_the_client_keys_unchanged() {
    let r = &mut rng(10);
    let (mut server, mut client, first) = exchange(r, CryptoConfig::default(), true);
    rotate(&mut server, &mut client, secs(1), r);
    let stale = rotation::key_rotation_payload(1, &EphemeralKeyPair::generate(r).public_key_b64());
    let mut called = false;
    assert_eq!(
        client.handle_key_rotation(secs(2), &stale, r, |_| {
            called = true;
            Vec::new()
        }),
        Err(RotationError::StaleRotationId { last: 1, got: 1 })
    );
    assert!(!called, "no ack is built for a refused rotation");
    let bad = json!({"rotation_id": 2, "public_key": 5});
    assert!(
        client
            .handle_key_rotation(secs(2), &bad, r, |_| Vec::new())
            .is_err()
    );
    assert_eq!(client.stats().rotation_messages_refused, 2);
    let f = client.encrypt(b"x", r);
    assert!(
        server.decrypt(secs(2), &f).is_ok(),
        "client still on the key the server has"
    );
    assert_eq!(record::open(&first, &f), Err(RecordError::AuthFailed));
}

#[test]
fn rotation_interval_zero_never_rotates() {
    let r = &mut rng(11);
    let config = CryptoConfig {
        rotation_interval: Duration::ZERO,
        ..CryptoConfig::default()
    };
    assert_eq!(config.validate(), Ok(()));
    let (mut server, _, _) = exchange(r, config, true);
    assert!(!server.rotation_enabled());
    assert_eq!(server.poll_timeout(), None);
    for s in [0, 3600, 86_400 * 365] {
        server.handle_timeout(secs(s), r);
        assert_eq!(server.poll_output(), None);
    }
    assert_eq!(
        server.start_rotation(secs(1), r),
        Err(RotationError::Disabled)
    );
    assert_eq!(server.stats().rotations_started, 0);
}

#[test]
fn rotation_is_off_unless_the_client_announced_it() {
    let r = &mut rng(12);
    let (mut server, _, _) = exchange(r, CryptoConfig::default(), false);
    assert!(!server.rotation_enabled());
    assert_eq!(server.poll_timeout(), None);
    server.handle_timeout(secs(7200), r);
    assert_eq!(server.poll_output(), None);
    assert_eq!(
        server.start_rotation(secs(1), r),
        Err(RotationError::NotNegotiated)
    );
    let ack =
        rotation::key_rotation_ack_payload(1, &EphemeralKeyPair::generate(r).public_key_b64());
    assert_eq!(
        server.handle_rotation_ack(secs(1), &ack),
        Err(RotationError::NotNegotiated)
    );
}

#[test]
fn a_rotation_cannot_start_while_one_is_pending_or_in_grace() {
    let r = &mut rng(13);
    let (mut server, mut client, _) = exchange(r, CryptoConfig::default(), true);
    let payload = server.start_rotation(secs(1), r).unwrap();
    assert_eq!(server.start_rotation(secs(2), r), Err(RotationError::Busy));
    let ack = client
        .handle_key_rotation(secs(3), &payload, r, |a| message(KEY_ROTATION_ACK, a))
        .unwrap();
    let (_, p) = open_message(&server.decrypt(secs(10), &ack).unwrap());
    server.handle_rotation_ack(secs(10), &p).unwrap();
    assert_eq!(
        server.start_rotation(secs(39), r),
        Err(RotationError::Busy),
        "grace until 40"
    );
    let payload = server.start_rotation(secs(40), r).unwrap();
    assert_eq!(
        payload["rotation_id"],
        json!(2),
        "ids count up per connection"
    );
}

#[test]
fn zero_grace_drops_the_old_key_at_the_switch() {
    let r = &mut rng(14);
    let config = CryptoConfig {
        rotation_grace: Duration::ZERO,
        ..CryptoConfig::default()
    };
    let (mut server, mut client, _) = exchange(r, config, true);
    let old = server.encrypt(b"old", r);
    rotate(&mut server, &mut client, secs(5), r);
    assert!(!client.in_grace());
    assert_eq!(client.decrypt(secs(5), &old), Err(RecordError::AuthFailed));
}

#[test]
fn config_validation_names_the_bad_field() {
    let d = CryptoConfig::default();
    assert_eq!(d.validate(), Ok(()));
    assert_eq!(
        (
            d.replay_cache_capacity,
            d.replay_max_age,
            d.rotation_interval,
            d.rotation_grace
        ),
        (10_000, Duration::from_secs(300), HOUR, GRACE)
    );
    let bad = [
        (
            CryptoConfig {
                replay_cache_capacity: 0,
                ..d
            },
            CryptoConfigError::ReplayCacheCapacity(0),
        ),
        (
            CryptoConfig {
                replay_cache_capacity: 100_001,
                ..d
            },
            CryptoConfigError::ReplayCacheCapacity(100_001),
        ),
        (
            CryptoConfig {
                replay_max_age: Duration::ZERO,
                ..d
            },
            CryptoConfigError::ReplayMaxAge,
        ),
        (
            CryptoConfig {
                rotation_grace: HOUR,
                ..d
            },
            CryptoConfigError::GraceNotBelowInterval,
        ),
    ];
    for (config, want) in bad {
        assert_eq!(config.validate(), Err(want));
    }
}

#[test]
fn session_debug_output_shows_no_key_bytes() {
    let r = &mut rng(15);
    let (mut server, client, first) = exchange(r, CryptoConfig::default(), true);
    server.start_rotation(secs(1), r).unwrap();
    let secret = first.expose_bytes();
    for dbg in [format!("{server:?}"), format!("{client:?}")] {
        assert!(dbg.contains("SessionKey(<redacted>)"), "{dbg}");
        for rendering in [
            super::testutil::hex(secret),
            STANDARD.encode(secret),
            format!("{secret:?}"),
        ] {
            assert!(!dbg.contains(&rendering), "{dbg}");
        }
    }
}

#[test]
fn an_invalid_grace_delays_the_next_rotation_to_the_end_of_the_window() {
    let r = &mut rng(16);
    let config = CryptoConfig {
        rotation_interval: Duration::from_secs(10),
        rotation_grace: GRACE,
        ..CryptoConfig::default()
    };
    assert_eq!(
        config.validate(),
        Err(CryptoConfigError::GraceNotBelowInterval)
    );
    let (mut server, mut client, _) = exchange(r, config, true);
    rotate(&mut server, &mut client, secs(10), r);
    assert_eq!(
        server.poll_timeout(),
        Some(secs(40)),
        "not the interval's 20 s: no busy loop"
    );
    server.handle_timeout(secs(20), r);
    assert_eq!(server.poll_output(), None);
    server.handle_timeout(secs(40), r);
    assert!(matches!(
        server.poll_output(),
        Some(CryptoOutput::SendKeyRotation { .. })
    ));
}
