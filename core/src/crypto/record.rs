//! The `E:` record (UPSTREAM §4.3): `"E:"` ‖ IV (12 random bytes) ‖ AES-256-GCM ciphertext ‖
//! 16-byte tag, no associated data. The plaintext is the UTF-8 JSON message (for broadcasts the
//! exact stamped JSON string); this module does not look at it.
//!
//! [`seal`]/[`open`] work on whole binary frames (with the prefix); [`seal_raw`]/[`open_raw`] on
//! the record without it (`IV ‖ ciphertext ‖ tag`), the form of the Python helpers and of the
//! bytes `protocol::classify_binary` hands over for an `E:` frame. The `*_with_iv` forms take the
//! IV from the caller: for test vectors and the fuzz target's re-seal check, never for traffic
//! (reusing an IV under one key breaks GCM).
//!
//! `open` never panics on any input and allocates at most the input's length.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Nonce, Tag};
use rand_core::CryptoRngCore;

use super::keys::SessionKey;

/// Prefix of an encrypted binary frame.
pub const RECORD_PREFIX: &[u8] = b"E:";
/// Length of the random IV (GCM nonce) at the start of a record.
pub const IV_LEN: usize = 12;
/// Length of the GCM authentication tag at the end of a record.
pub const TAG_LEN: usize = 16;
/// Shortest record without the prefix: an IV and a tag around an empty ciphertext.
pub const MIN_RAW_LEN: usize = IV_LEN + TAG_LEN;
/// Shortest `E:` frame.
pub const MIN_FRAME_LEN: usize = RECORD_PREFIX.len() + MIN_RAW_LEN;

/// The 12-byte IV of a record.
pub type Iv = [u8; IV_LEN];

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The frame does not start with `E:`.
    #[error("not an E: frame")]
    MissingPrefix,
    /// Too short to hold an IV and a tag.
    #[error("record of {len} bytes is shorter than the minimum {min}")]
    TooShort {
        /// Bytes received (the frame with its prefix for [`open`], the record for [`open_raw`]).
        len: usize,
        /// The minimum for that form.
        min: usize,
    },
    /// The tag does not verify under the key(s) in use: wrong key, a changed byte, or a
    /// record sealed under a key whose grace window has ended.
    #[error("record failed authentication")]
    AuthFailed,
    /// Authentic, but its IV was already accepted in this session (CONTRACT D8).
    #[error("record replayed (IV already seen in this session)")]
    Replayed,
}

/// Seals `plaintext` into an `E:` frame under a fresh random IV from `rng`.
pub fn seal(
    key: &SessionKey,
    plaintext: &[u8],
    rng: &mut (impl CryptoRngCore + ?Sized),
) -> Vec<u8> {
    seal_with_iv(key, &random_iv(rng), plaintext)
}

/// Seals `plaintext` into an `E:` frame under the given IV. Tests and vectors only: an IV must
/// never be used twice under one key.
pub fn seal_with_iv(key: &SessionKey, iv: &Iv, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MIN_FRAME_LEN + plaintext.len());
    out.extend_from_slice(RECORD_PREFIX);
    seal_into(&mut out, key, iv, plaintext);
    out
}

/// Opens an `E:` frame: the IV and the plaintext.
pub fn open(key: &SessionKey, frame: &[u8]) -> Result<(Iv, Vec<u8>), RecordError> {
    let record = strip_prefix(frame)?;
    open_raw(key, record)
}

/// Seals into a record without the prefix (`IV ‖ ciphertext ‖ tag`), fresh random IV.
pub fn seal_raw(
    key: &SessionKey,
    plaintext: &[u8],
    rng: &mut (impl CryptoRngCore + ?Sized),
) -> Vec<u8> {
    seal_raw_with_iv(key, &random_iv(rng), plaintext)
}

/// Seals into a record without the prefix under the given IV. Tests and vectors only.
pub fn seal_raw_with_iv(key: &SessionKey, iv: &Iv, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MIN_RAW_LEN + plaintext.len());
    seal_into(&mut out, key, iv, plaintext);
    out
}

/// Opens a record without the prefix: the IV and the plaintext.
pub fn open_raw(key: &SessionKey, record: &[u8]) -> Result<(Iv, Vec<u8>), RecordError> {
    let (iv, body) = split_raw(record)?;
    let plaintext = decrypt(key, &iv, body)?;
    Ok((iv, plaintext))
}

/// The record after `E:`, or why the frame is not one.
pub(crate) fn strip_prefix(frame: &[u8]) -> Result<&[u8], RecordError> {
    let record = frame
        .strip_prefix(RECORD_PREFIX)
        .ok_or(RecordError::MissingPrefix)?;
    if record.len() < MIN_RAW_LEN {
        return Err(RecordError::TooShort {
            len: frame.len(),
            min: MIN_FRAME_LEN,
        });
    }
    Ok(record)
}

/// The IV and `ciphertext ‖ tag` of a record without prefix.
pub(crate) fn split_raw(record: &[u8]) -> Result<(Iv, &[u8]), RecordError> {
    match record.split_first_chunk::<IV_LEN>() {
        Some((iv, body)) if body.len() >= TAG_LEN => Ok((*iv, body)),
        _ => Err(RecordError::TooShort {
            len: record.len(),
            min: MIN_RAW_LEN,
        }),
    }
}

/// Decrypts `ciphertext ‖ tag` (at least [`TAG_LEN`] bytes, checked by [`split_raw`]).
pub(crate) fn decrypt(key: &SessionKey, iv: &Iv, body: &[u8]) -> Result<Vec<u8>, RecordError> {
    let (ciphertext, tag) = body
        .split_last_chunk::<TAG_LEN>()
        .ok_or(RecordError::TooShort {
            len: IV_LEN + body.len(),
            min: MIN_RAW_LEN,
        })?;
    let mut buf = ciphertext.to_vec();
    key.cipher()
        .decrypt_in_place_detached(&Nonce::from(*iv), b"", &mut buf, &Tag::from(*tag))
        .map_err(|_| RecordError::AuthFailed)?;
    Ok(buf)
}

/// Appends `IV ‖ ciphertext ‖ tag` to `out`.
fn seal_into(out: &mut Vec<u8>, key: &SessionKey, iv: &Iv, plaintext: &[u8]) {
    out.extend_from_slice(iv);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key
        .cipher()
        .encrypt_in_place_detached(&Nonce::from(*iv), b"", &mut out[start..])
        .expect("invariant: a WebSocket message is far below AES-GCM's 64 GiB plaintext limit");
    out.extend_from_slice(&tag);
}

fn random_iv(rng: &mut (impl CryptoRngCore + ?Sized)) -> Iv {
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);
    iv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::{hex, hex_decode, rng};

    fn key(byte: u8) -> SessionKey {
        SessionKey::from_bytes(&[byte; 32])
    }

    /// AES-256 vectors of McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)" (the
    /// submission NIST SP 800-38D is based on), appendix B, test cases 13, 14 and 15 (no AAD),
    /// typed in from the paper.
    #[test]
    fn aes_256_gcm_matches_the_gcm_specification_test_cases_13_to_15() {
        let zero_key = SessionKey::from_bytes(&[0; 32]);
        let zero_iv = [0u8; 12];
        // Test case 13: empty plaintext, only the tag.
        assert_eq!(
            hex(&seal_raw_with_iv(&zero_key, &zero_iv, b"")),
            format!("{}530f8afbc74536b9a963b4f1c4cb738b", hex(&zero_iv))
        );
        // Test case 14: one zero block.
        assert_eq!(
            hex(&seal_raw_with_iv(&zero_key, &zero_iv, &[0; 16])),
            format!(
                "{}cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
                hex(&zero_iv)
            )
        );
        // Test case 15: four blocks.
        let k: [u8; 32] =
            hex_decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
                .try_into()
                .unwrap();
        let iv: Iv = hex_decode("cafebabefacedbaddecaf888").try_into().unwrap();
        let p = hex_decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        );
        let c_and_t = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                       8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad\
                       b094dac5d93471bdec1a502270e3cc6c";
        let sealed = seal_raw_with_iv(&SessionKey::from_bytes(&k), &iv, &p);
        assert_eq!(hex(&sealed), format!("cafebabefacedbaddecaf888{c_and_t}"));
        assert_eq!(open_raw(&SessionKey::from_bytes(&k), &sealed), Ok((iv, p)));
    }

    #[test]
    fn seal_then_open_round_trips_with_prefix_and_without() {
        let mut r = rng(1);
        let k = key(7);
        for plaintext in [
            &b""[..],
            b"{}",
            br#"{"c":"WSE","t":"chat","p":{"text":"hi"}}"#,
        ] {
            let frame = seal(&k, plaintext, &mut r);
            assert_eq!(&frame[..2], b"E:");
            assert_eq!(frame.len(), MIN_FRAME_LEN + plaintext.len());
            let (iv, got) = open(&k, &frame).unwrap();
            assert_eq!(got, plaintext);
            assert_eq!(&frame[2..14], &iv);
            assert_eq!(
                seal_with_iv(&k, &iv, plaintext),
                frame,
                "same IV, same bytes"
            );
            let raw = seal_raw(&k, plaintext, &mut r);
            assert_eq!(open_raw(&k, &raw).unwrap().1, plaintext);
            assert_eq!(open_raw(&k, &frame[2..]), open(&k, &frame));
        }
    }

    #[test]
    fn fresh_ivs_differ_between_seals() {
        let mut r = rng(2);
        let a = seal(&key(1), b"x", &mut r);
        let b = seal(&key(1), b"x", &mut r);
        assert_ne!(a[2..14], b[2..14]);
    }

    #[test]
    fn every_truncation_is_refused() {
        let k = key(3);
        let frame = seal(&k, b"a message of some length", &mut rng(3));
        for len in 0..frame.len() {
            let got = open(&k, &frame[..len]);
            let want = if len < 2 {
                RecordError::MissingPrefix
            } else if len < MIN_FRAME_LEN {
                RecordError::TooShort {
                    len,
                    min: MIN_FRAME_LEN,
                }
            } else {
                RecordError::AuthFailed
            };
            assert_eq!(got, Err(want), "truncated to {len}");
            if len >= 2 {
                let raw = &frame[2..len];
                let want_raw = if raw.len() < MIN_RAW_LEN {
                    RecordError::TooShort {
                        len: raw.len(),
                        min: MIN_RAW_LEN,
                    }
                } else {
                    RecordError::AuthFailed
                };
                assert_eq!(
                    open_raw(&k, raw),
                    Err(want_raw),
                    "raw truncated to {}",
                    raw.len()
                );
            }
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let k = key(4);
        let frame = seal(&k, b"flip me", &mut rng(4));
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[byte] ^= 1 << bit;
                let got = open(&k, &bad);
                let want = if byte < 2 {
                    RecordError::MissingPrefix
                } else {
                    RecordError::AuthFailed
                };
                assert_eq!(got, Err(want), "bit {bit} of byte {byte}");
            }
        }
    }

    #[test]
    fn the_wrong_key_is_refused() {
        let frame = seal(&key(5), b"secret", &mut rng(5));
        assert_eq!(open(&key(6), &frame), Err(RecordError::AuthFailed));
    }

    #[test]
    fn a_frame_without_the_prefix_is_refused() {
        let k = key(8);
        let raw = seal_raw(&k, b"hello", &mut rng(8));
        assert_eq!(open(&k, &raw), Err(RecordError::MissingPrefix));
        assert_eq!(open(&k, b"C:"), Err(RecordError::MissingPrefix));
    }
}
