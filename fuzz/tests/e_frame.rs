//! Fuzz target: the `E:` record (`wse_core::crypto::record`) and a session's replay protection
//! (`wse_core::crypto::CryptoSession::decrypt`).
//!
//! Input layout: byte 0 even is **raw** mode, odd is **session** mode.
//!
//! - raw: the rest is a frame, opened under the fixed key [`KEY`] (the corpus holds real `E:`
//!   frames sealed under it, so mutations start from authentic records);
//! - session: byte 1 picks the replay cache's capacity ([`CAPACITIES`]), byte 2 its maximum
//!   age (1–16 s); then operations, each an opcode byte and an argument byte: `0` seal a fresh
//!   frame (plaintext: the argument repeated `argument % 64` times) and deliver it; `1`
//!   deliver again the frame `argument % sealed`; `2` advance the clock by `argument × 250 ms`;
//!   `3` deliver frame `argument % sealed` with one bit flipped (the bit chosen by the op
//!   count).
//!
//! Invariants:
//!
//! - `open` of any bytes either fails or returns an IV and plaintext that re-seal under that IV
//!   to exactly the same bytes (so nothing but a genuine record is ever accepted); the error is
//!   the precise one for the input's shape (`MissingPrefix` without `E:`, `TooShort` under 30
//!   bytes, else `AuthFailed`); `open_raw` and the Python helper agree with it;
//! - a session accepts a frame at most once while its IV is remembered, and exactly as a model
//!   of the documented cache says: a fresh frame is accepted; a repeat is `Replayed` iff its IV
//!   was accepted less than `max_age` ago and is among the last `capacity` accepted; a frame
//!   with a flipped bit is never accepted. The counters match the model's.
//!
//! Seeds (`tests/__fuzz__/e_frame/corpus/`): `raw_sealed_*` are `0x00` + a frame sealed under
//! [`KEY`] with Python's `cryptography` (`b"E:" + iv + AESGCM(KEY).encrypt(iv, msg, None)`),
//! `session_*` are operation sequences written by hand.

use std::collections::VecDeque;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use wse_core::Instant;
use wse_core::crypto::python::{HelperError, aes_gcm_decrypt};
use wse_core::crypto::record::{self, MIN_FRAME_LEN};
use wse_core::crypto::{CryptoConfig, CryptoSession, Iv, RecordError, SessionKey};

/// The fixed session key of this target (a test value).
const KEY: [u8; 32] = [0x5a; 32];

/// Replay cache capacities byte 1 chooses from: tiny ones so eviction happens in short inputs,
/// and the default.
const CAPACITIES: [usize; 6] = [1, 2, 3, 5, 8, 10_000];

#[test]
fn e_frame() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let Some((&mode, rest)) = bytes.split_first() else {
            return;
        };
        if mode % 2 == 0 {
            check_open(rest);
        } else {
            check_session(rest);
        }
    });
}

fn check_open(frame: &[u8]) {
    let key = SessionKey::from_bytes(&KEY);
    let got = record::open(&key, frame);
    match &got {
        Ok((iv, plaintext)) => assert_eq!(
            record::seal_with_iv(&key, iv, plaintext),
            frame,
            "accepted bytes that are not the record of their own plaintext"
        ),
        Err(RecordError::MissingPrefix) => assert!(!frame.starts_with(b"E:")),
        Err(RecordError::TooShort { len, min }) => {
            assert!(frame.starts_with(b"E:"));
            assert_eq!((*len, *min), (frame.len(), MIN_FRAME_LEN));
        }
        Err(RecordError::AuthFailed) => {
            assert!(frame.starts_with(b"E:") && frame.len() >= MIN_FRAME_LEN)
        }
        Err(RecordError::Replayed) => panic!("open has no replay state"),
    }
    let Some(raw) = frame.strip_prefix(b"E:") else {
        return;
    };
    let via_raw = record::open_raw(&key, raw);
    match (&got, &via_raw) {
        (Err(RecordError::TooShort { .. }), Err(RecordError::TooShort { len, .. })) => {
            assert_eq!(*len, raw.len())
        }
        _ => assert_eq!(via_raw, got, "open_raw differs from open"),
    }
    let helper = aes_gcm_decrypt(&KEY, raw);
    match (&got, helper) {
        (Ok((_, want)), Ok(plain)) => assert_eq!(&plain, want),
        (Err(RecordError::TooShort { .. }), Err(HelperError::DataTooShort { .. }))
        | (Err(RecordError::AuthFailed), Err(HelperError::AuthenticationFailed)) => {}
        (got, helper) => panic!("helper {helper:?}, record {got:?}"),
    }
}

/// The documented replay cache, written the obvious way.
struct Model {
    capacity: usize,
    max_age: Duration,
    accepted: VecDeque<(Instant, Iv)>,
}

impl Model {
    /// True if a frame with this IV is fresh at `now` (and remembers it).
    fn accept(&mut self, now: Instant, iv: Iv) -> bool {
        self.accepted.retain(|(at, _)| now - *at < self.max_age);
        if self.accepted.iter().any(|(_, seen)| *seen == iv) {
            return false;
        }
        if self.accepted.len() == self.capacity {
            self.accepted.pop_front();
        }
        self.accepted.push_back((now, iv));
        true
    }
}

fn check_session(input: &[u8]) {
    let [capacity, age, ops @ ..] = input else {
        return;
    };
    let config = CryptoConfig {
        replay_cache_capacity: CAPACITIES[usize::from(*capacity) % CAPACITIES.len()],
        replay_max_age: Duration::from_secs(u64::from(age % 16) + 1),
        ..CryptoConfig::default()
    };
    config.validate().expect("valid by construction");
    let key = SessionKey::from_bytes(&KEY);
    let mut session = CryptoSession::new(key.clone(), Instant::ZERO, config, false);
    let mut model = Model {
        capacity: config.replay_cache_capacity,
        max_age: config.replay_max_age,
        accepted: VecDeque::new(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut now = Instant::ZERO;
    let mut sealed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let (mut accepted, mut replayed, mut forged) = (0u64, 0u64, 0u64);
    for (step, op) in ops.chunks_exact(2).enumerate() {
        let (code, arg) = (op[0] % 4, op[1]);
        match code {
            0 => {
                let plaintext = vec![arg; usize::from(arg % 64)];
                let frame = record::seal(&key, &plaintext, &mut rng);
                let iv: Iv = frame[2..14].try_into().expect("12-byte IV");
                assert!(model.accept(now, iv), "fresh IV collided");
                assert_eq!(session.decrypt(now, &frame), Ok(plaintext.clone()));
                accepted += 1;
                sealed.push((frame, plaintext));
            }
            1 | 3 if sealed.is_empty() => {}
            1 => {
                let (frame, plaintext) = &sealed[usize::from(arg) % sealed.len()];
                let iv: Iv = frame[2..14].try_into().expect("12-byte IV");
                let got = session.decrypt(now, frame);
                if model.accept(now, iv) {
                    assert_eq!(got.as_ref(), Ok(plaintext), "forgotten IV accepted again");
                    accepted += 1;
                } else {
                    assert_eq!(got, Err(RecordError::Replayed), "remembered IV");
                    replayed += 1;
                }
            }
            2 => now = now + Duration::from_millis(250 * u64::from(arg)),
            _ => {
                let (frame, _) = &sealed[usize::from(arg) % sealed.len()];
                let mut bad = frame.clone();
                let bit = step % (bad.len() * 8);
                bad[bit / 8] ^= 1 << (bit % 8);
                let got = session.decrypt(now, &bad);
                assert!(got.is_err(), "a flipped bit was accepted");
                if bit >= 16 {
                    assert_eq!(got, Err(RecordError::AuthFailed));
                    forged += 1;
                }
            }
        }
        let stats = session.stats();
        assert_eq!(
            (
                stats.decrypted,
                stats.rejected_replayed,
                stats.rejected_auth
            ),
            (accepted, replayed, forged)
        );
        assert!(stats.replay_cache_entries <= config.replay_cache_capacity as u64);
    }
}
