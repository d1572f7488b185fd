//! The ECDH P-256 key exchange and the HKDF derivation of the AES-256-GCM session key
//! (UPSTREAM §4.1–§4.2).
//!
//! Each side generates an [`EphemeralKeyPair`] from the caller's CSPRNG, sends
//! [`EphemeralKeyPair::public_key_b64`] (standard, padded base64 of the 65-byte uncompressed SEC1
//! point), parses the peer's with [`parse_peer_public_key`] (uncompressed or compressed SEC1, at
//! most [`MAX_PUBLIC_KEY_B64_LEN`] characters) and calls
//! [`EphemeralKeyPair::derive_session_key`]: HKDF-SHA256 with no salt, the raw 32-byte shared
//! x-coordinate as input key material and the info string [`SESSION_KEY_INFO`], 32 bytes out.
//!
//! Secrets (the private scalar, the ECDH shared secret, the session key and its AES key
//! schedule) are zeroized on drop by the crates that hold them (`p256`, `aes-gcm` with its
//! `zeroize` feature, [`zeroize::Zeroizing`]); no `Debug` output contains secret bytes.

use std::fmt;

use aes_gcm::aead::KeyInit;
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF `info` of the AES-256-GCM session key (UPSTREAM §4.2; the code's value, not the README's).
pub const SESSION_KEY_INFO: &[u8] = b"wse-encryption/aes-gcm-key";
/// Length of an uncompressed SEC1 P-256 point (`04 ‖ X ‖ Y`).
pub const PUBLIC_KEY_LEN: usize = 65;
/// Length of a compressed SEC1 P-256 point (`02|03 ‖ X`).
pub const COMPRESSED_PUBLIC_KEY_LEN: usize = 33;
/// Length of a private scalar and of a session key.
pub const KEY_LEN: usize = 32;
/// Longest base64 text [`parse_peer_public_key`] decodes. A padded 65-byte key is 88 characters;
/// anything past this bound is refused before decoding, so a hostile `client_hello` cannot make
/// the server decode (or log) a large string.
pub const MAX_PUBLIC_KEY_B64_LEN: usize = 128;

/// Why a peer's public key (or a private scalar given to the Python helpers) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyExchangeError {
    /// The base64 text is longer than [`MAX_PUBLIC_KEY_B64_LEN`].
    #[error("public key text too long: {len} characters, at most {max}")]
    TooLong {
        /// Characters received.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not standard padded base64.
    #[error("public key is not valid base64")]
    Base64,
    /// Decoded to the SEC1 encoding of the point at infinity (`00`).
    #[error("public key is the identity point")]
    Identity,
    /// Decoded to a length that is neither 65 (uncompressed) nor 33 (compressed).
    #[error("public key has {len} bytes, expected 65 (uncompressed) or 33 (compressed) SEC1")]
    BadLength {
        /// Bytes decoded.
        len: usize,
    },
    /// The SEC1 tag byte does not match the length (`04` for 65 bytes, `02`/`03` for 33).
    #[error("public key has SEC1 tag {tag:#04x}, which does not fit its length {len}")]
    BadTag {
        /// The first byte.
        tag: u8,
        /// Bytes decoded.
        len: usize,
    },
    /// Well-formed SEC1, but the coordinates are not a point of P-256 (off the curve, or a
    /// coordinate not below the field prime).
    #[error("public key is not a point on P-256")]
    NotOnCurve,
    /// A private scalar that is not 32 bytes, zero, or not below the group order.
    #[error("private key is not a valid P-256 scalar")]
    BadPrivateScalar,
}

/// A peer's validated P-256 public key: on the curve, not the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(p256::PublicKey);

impl PublicKey {
    /// Validates raw SEC1 bytes: 65-byte uncompressed or 33-byte compressed, nothing else.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyExchangeError> {
        let expected_tag_ok = match (bytes.len(), bytes.first()) {
            (1, Some(0)) => return Err(KeyExchangeError::Identity),
            (PUBLIC_KEY_LEN, Some(&tag)) => tag == 0x04,
            (COMPRESSED_PUBLIC_KEY_LEN, Some(&tag)) => tag == 0x02 || tag == 0x03,
            (len, _) => return Err(KeyExchangeError::BadLength { len }),
        };
        if !expected_tag_ok {
            return Err(KeyExchangeError::BadTag {
                tag: bytes[0],
                len: bytes.len(),
            });
        }
        p256::PublicKey::from_sec1_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyExchangeError::NotOnCurve)
    }

    /// The 65-byte uncompressed SEC1 encoding (`04 ‖ X ‖ Y`).
    pub fn to_uncompressed(&self) -> [u8; PUBLIC_KEY_LEN] {
        let point = self.0.to_encoded_point(false);
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The 33-byte compressed SEC1 encoding (`02|03 ‖ X`).
    pub fn to_compressed(&self) -> [u8; COMPRESSED_PUBLIC_KEY_LEN] {
        let point = self.0.to_encoded_point(true);
        let mut out = [0u8; COMPRESSED_PUBLIC_KEY_LEN];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// Standard padded base64 of the uncompressed encoding: the wire form.
    pub fn to_b64(&self) -> String {
        STANDARD.encode(self.to_uncompressed())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_b64()).finish()
    }
}

/// Parses the peer's `encryption_public_key` (UPSTREAM §4.1): standard padded base64 of a 65-byte
/// uncompressed or 33-byte compressed SEC1 P-256 point.
pub fn parse_peer_public_key(b64: &str) -> Result<PublicKey, KeyExchangeError> {
    if b64.len() > MAX_PUBLIC_KEY_B64_LEN {
        return Err(KeyExchangeError::TooLong {
            len: b64.len(),
            max: MAX_PUBLIC_KEY_B64_LEN,
        });
    }
    let bytes = STANDARD.decode(b64).map_err(|_| KeyExchangeError::Base64)?;
    PublicKey::from_sec1(&bytes)
}

/// One side's ephemeral P-256 key pair. The private scalar zeroizes on drop.
#[derive(Clone)]
pub struct EphemeralKeyPair {
    secret: p256::SecretKey,
    public: PublicKey,
}

impl EphemeralKeyPair {
    /// A fresh key pair from the caller's CSPRNG (the OS generator in production, a seeded
    /// ChaCha in simulation).
    pub fn generate(rng: &mut (impl CryptoRngCore + ?Sized)) -> Self {
        // `&mut R` is itself a CSPRNG, and a sized one, which is what `p256` asks for.
        let secret = p256::SecretKey::random(&mut &mut *rng);
        let public = PublicKey(secret.public_key());
        EphemeralKeyPair { secret, public }
    }

    /// The key pair of a given private scalar (32 big-endian bytes, `1 ≤ d < n`).
    pub fn from_private_scalar(scalar: &[u8]) -> Result<Self, KeyExchangeError> {
        // `from_slice` alone would also accept shorter big-endian encodings; the helpers do not.
        if scalar.len() != KEY_LEN {
            return Err(KeyExchangeError::BadPrivateScalar);
        }
        let secret =
            p256::SecretKey::from_slice(scalar).map_err(|_| KeyExchangeError::BadPrivateScalar)?;
        let public = PublicKey(secret.public_key());
        Ok(EphemeralKeyPair { secret, public })
    }

    /// The private scalar, 32 big-endian bytes (for the Python helper that returns it).
    pub fn private_scalar(&self) -> Zeroizing<[u8; KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(&self.secret.to_bytes());
        out
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Standard padded base64 of the 65-byte uncompressed public point: the value of
    /// `encryption_public_key` in `client_hello`/`server_hello` and of `public_key` in the
    /// rotation messages.
    pub fn public_key_b64(&self) -> String {
        self.public.to_b64()
    }

    /// ECDH with the peer's key, then HKDF-SHA256 (no salt, info [`SESSION_KEY_INFO`]) to the
    /// 32-byte AES-256-GCM key. Both sides get the same key.
    pub fn derive_session_key(&self, peer: &PublicKey) -> SessionKey {
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.0.as_affine());
        // `shared` (and its raw x-coordinate) zeroizes on drop.
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        hkdf_sha256(
            None,
            shared.raw_secret_bytes(),
            SESSION_KEY_INFO,
            &mut okm[..],
        );
        SessionKey::from_bytes(&okm)
    }
}

impl fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A 32-byte AES-256-GCM key with its prepared cipher. Zeroizes on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct SessionKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
}

impl SessionKey {
    /// A session key from raw bytes (derived elsewhere, or a test vector).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        SessionKey {
            bytes: Zeroizing::new(*bytes),
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*bytes)),
        }
    }

    /// The raw key bytes. Named so that every use is visible in review: only the Python helper
    /// that returns the key and the signing-key derivation need them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// HKDF-SHA256 (RFC 5869) extract-then-expand into `out`. `salt: None` is the RFC default (a
/// hash-length string of zeros).
///
/// # Panics
///
/// If `out` is longer than 255 × 32 bytes (a caller bug: every use here asks for 32).
pub(crate) fn hkdf_sha256(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out)
        .expect("invariant: HKDF-SHA256 output at most 8160 bytes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::{hex, hex_decode, rng};

    /// RFC 5869 appendix A.1 (test case 1, SHA-256), typed in from the RFC.
    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf_sha256(Some(&salt), &ikm, &info, &mut okm);
        assert_eq!(
            hex(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
             34007208d5b887185865"
        );
    }

    /// RFC 5869 appendix A.3 (test case 3: no salt, empty info): the "no salt" path the session
    /// key uses.
    #[test]
    fn hkdf_without_salt_matches_rfc5869_test_case_3() {
        let mut okm = [0u8; 42];
        hkdf_sha256(None, &[0x0b; 22], b"", &mut okm);
        assert_eq!(
            hex(&okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
             9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn both_sides_derive_the_same_session_key() {
        let mut r = rng(1);
        let server = EphemeralKeyPair::generate(&mut r);
        let client = EphemeralKeyPair::generate(&mut r);
        let at_server =
            server.derive_session_key(&parse_peer_public_key(&client.public_key_b64()).unwrap());
        let at_client =
            client.derive_session_key(&parse_peer_public_key(&server.public_key_b64()).unwrap());
        assert_eq!(at_server.expose_bytes(), at_client.expose_bytes());
        let third = EphemeralKeyPair::generate(&mut r);
        assert_ne!(
            third
                .derive_session_key(&client.public_key())
                .expose_bytes(),
            at_server.expose_bytes(),
            "a different pair gives a different key"
        );
    }

    #[test]
    fn compressed_and_uncompressed_peer_keys_give_the_same_session_key() {
        let mut r = rng(2);
        let server = EphemeralKeyPair::generate(&mut r);
        let client = EphemeralKeyPair::generate(&mut r);
        let compressed = STANDARD.encode(client.public_key().to_compressed());
        let uncompressed = client.public_key_b64();
        assert_eq!(
            STANDARD.decode(&uncompressed).unwrap().len(),
            PUBLIC_KEY_LEN
        );
        assert_eq!(
            parse_peer_public_key(&compressed).unwrap(),
            parse_peer_public_key(&uncompressed).unwrap()
        );
        assert_eq!(
            server
                .derive_session_key(&parse_peer_public_key(&compressed).unwrap())
                .expose_bytes(),
            server
                .derive_session_key(&parse_peer_public_key(&uncompressed).unwrap())
                .expose_bytes()
        );
    }

    #[test]
    fn generation_is_reproducible_from_the_seed() {
        let a = EphemeralKeyPair::generate(&mut rng(9));
        let b = EphemeralKeyPair::generate(&mut rng(9));
        assert_eq!(a.public_key_b64(), b.public_key_b64());
        assert_eq!(*a.private_scalar(), *b.private_scalar());
        let again = EphemeralKeyPair::from_private_scalar(&a.private_scalar()[..]).unwrap();
        assert_eq!(again.public_key(), a.public_key());
    }

    #[test]
    fn malformed_peer_keys_are_refused_with_precise_errors() {
        let good = EphemeralKeyPair::generate(&mut rng(3))
            .public_key()
            .to_uncompressed();
        let mut off_curve = good;
        off_curve[64] ^= 1;
        let mut bad_tag = good;
        bad_tag[0] = 0x02;
        let mut compressed_bad_tag = EphemeralKeyPair::generate(&mut rng(3))
            .public_key()
            .to_compressed();
        compressed_bad_tag[0] = 0x04;
        // x = p (the field prime) is not a valid coordinate.
        let mut x_is_p = [0u8; 33];
        x_is_p[0] = 0x02;
        x_is_p[1..].copy_from_slice(&hex_decode(
            "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        ));
        let cases: Vec<(String, KeyExchangeError)> = vec![
            (
                "A".repeat(129),
                KeyExchangeError::TooLong { len: 129, max: 128 },
            ),
            ("not base64!".into(), KeyExchangeError::Base64),
            // Unpadded standard base64 is not the wire form.
            (
                STANDARD.encode(good).trim_end_matches('=').into(),
                KeyExchangeError::Base64,
            ),
            (
                base64::engine::general_purpose::URL_SAFE.encode([0xfb; 65]),
                KeyExchangeError::Base64,
            ),
            (String::new(), KeyExchangeError::BadLength { len: 0 }),
            (STANDARD.encode([0u8]), KeyExchangeError::Identity),
            (
                STANDARD.encode([4u8; 64]),
                KeyExchangeError::BadLength { len: 64 },
            ),
            (
                STANDARD.encode([4u8; 66]),
                KeyExchangeError::BadLength { len: 66 },
            ),
            (
                STANDARD.encode(bad_tag),
                KeyExchangeError::BadTag { tag: 2, len: 65 },
            ),
            (
                STANDARD.encode(compressed_bad_tag),
                KeyExchangeError::BadTag { tag: 4, len: 33 },
            ),
            (STANDARD.encode(off_curve), KeyExchangeError::NotOnCurve),
            (STANDARD.encode([4u8; 65]), KeyExchangeError::NotOnCurve),
            (STANDARD.encode(x_is_p), KeyExchangeError::NotOnCurve),
        ];
        for (input, want) in cases {
            assert_eq!(parse_peer_public_key(&input), Err(want), "input {input:?}");
        }
        assert!(parse_peer_public_key(&STANDARD.encode(good)).is_ok());
    }

    #[test]
    fn bad_private_scalars_are_refused() {
        let n = hex_decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        for scalar in [
            vec![0u8; 32],
            n,
            vec![0xff; 32],
            vec![1u8; 31],
            vec![1u8; 33],
        ] {
            assert_eq!(
                EphemeralKeyPair::from_private_scalar(&scalar).err(),
                Some(KeyExchangeError::BadPrivateScalar),
                "{scalar:02x?}"
            );
        }
        let mut one = [0u8; 32];
        one[31] = 1;
        let g = EphemeralKeyPair::from_private_scalar(&one).unwrap();
        assert_eq!(
            hex(&g.public_key().to_compressed()),
            "036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "1·G is the P-256 generator"
        );
    }

    #[test]
    fn debug_output_never_contains_secret_bytes() {
        let pair = EphemeralKeyPair::generate(&mut rng(4));
        let key = pair.derive_session_key(&EphemeralKeyPair::generate(&mut rng(5)).public_key());
        let pair_dbg = format!("{pair:?}");
        let key_dbg = format!("{key:?}");
        assert_eq!(key_dbg, "SessionKey(<redacted>)");
        for secret in [&pair.private_scalar()[..], &key.expose_bytes()[..]] {
            for rendering in [hex(secret), STANDARD.encode(secret), format!("{secret:?}")] {
                assert!(!pair_dbg.contains(&rendering) && !key_dbg.contains(&rendering));
            }
        }
        assert!(pair_dbg.contains(&pair.public_key_b64()), "{pair_dbg}");
    }
}
