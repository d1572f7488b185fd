//! Property tests: records round-trip for any plaintext, and no input makes `open` or a
//! session's `decrypt` panic or accept a frame twice.

use proptest::prelude::*;

use super::keys::SessionKey;
use super::record::{self, MIN_FRAME_LEN, RecordError};
use super::session::{CryptoConfig, CryptoSession};
use super::testutil::rng;
use crate::time::Instant;

fn key() -> SessionKey {
    SessionKey::from_bytes(&[0x42; 32])
}

proptest! {
    #[test]
    fn seal_then_open_round_trips_any_plaintext(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in any::<u64>(),
    ) {
        let k = key();
        let frame = record::seal(&k, &plaintext, &mut rng(seed));
        prop_assert_eq!(frame.len(), MIN_FRAME_LEN + plaintext.len());
        let (iv, got) = record::open(&k, &frame).unwrap();
        prop_assert_eq!(&got, &plaintext);
        prop_assert_eq!(record::seal_with_iv(&k, &iv, &plaintext), frame);
        let raw = record::seal_raw(&k, &plaintext, &mut rng(seed));
        prop_assert_eq!(record::open_raw(&k, &raw).unwrap().1, plaintext);
    }

    #[test]
    fn open_never_panics_and_only_authenticates_what_was_sealed(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        with_prefix in any::<bool>(),
    ) {
        let frame = if with_prefix { [b"E:".as_slice(), &bytes].concat() } else { bytes };
        match record::open(&key(), &frame) {
            // Forging a GCM tag by chance is a 2^-128 event: treat success as a finding.
            Ok((iv, plaintext)) => prop_assert_eq!(&record::seal_with_iv(&key(), &iv, &plaintext), &frame),
            Err(RecordError::MissingPrefix) => prop_assert!(!frame.starts_with(b"E:")),
            Err(RecordError::TooShort { len, min }) => prop_assert!(len == frame.len() && len < min),
            Err(RecordError::AuthFailed) => prop_assert!(frame.len() >= MIN_FRAME_LEN),
            Err(RecordError::Replayed) => prop_assert!(false, "open has no replay state"),
        }
        let _ = record::open_raw(&key(), &frame);
    }

    #[test]
    fn a_session_accepts_each_sealed_frame_exactly_once(
        order in proptest::collection::vec(0usize..8, 1..40),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let frames: Vec<_> = (0..8u8).map(|i| record::seal(&key(), &[i], &mut r)).collect();
        let mut session = CryptoSession::new(key(), Instant::ZERO, CryptoConfig::default(), false);
        let mut accepted = [false; 8];
        for (step, &i) in order.iter().enumerate() {
            let got = session.decrypt(Instant::from_millis(step as u64), &frames[i]);
            if accepted[i] {
                prop_assert_eq!(got, Err(RecordError::Replayed));
            } else {
                prop_assert_eq!(got, Ok(vec![i as u8]));
                accepted[i] = true;
            }
        }
    }
}
