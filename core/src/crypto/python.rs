//! The Python module-level crypto helpers (UPSTREAM §4.5 and §5) as plain Rust functions: the
//! binding wraps each one and turns a [`HelperError`] into the exception
//! [`HelperError::python_exception`] names.
//!
//! | Python (`wse_server`) | here |
//! |---|---|
//! | `rust_ecdh_generate_keypair() -> (bytes32, bytes65)` | [`ecdh_generate_keypair`] |
//! | `rust_ecdh_derive_shared_secret(private, peer_public) -> bytes32` | [`ecdh_derive_shared_secret`] |
//! | `rust_aes_gcm_encrypt(key32, plaintext) -> IV‖ct‖tag` | [`aes_gcm_encrypt`] |
//! | `rust_aes_gcm_decrypt(key32, data) -> plaintext` | [`aes_gcm_decrypt`] |
//! | `rust_sign_message(payload_json, secret) -> hex` | [`sign_message`] |
//! | `rust_hmac_sha256(key, data) -> bytes32` | [`hmac_sha256`] |
//! | `rust_sha256(data) -> hex` | [`sha256_hex`] |
//!
//! Errors: `ValueError` for bad input (a key that is not 32 bytes, data shorter than 28 bytes,
//! a private scalar or peer point that is not valid P-256), `RuntimeError` when AES-GCM
//! authentication fails. The checks run in that order (key, length, then authentication), so
//! a short input with a wrong key is a `ValueError`, as upstream.

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use super::keys::{
    EphemeralKeyPair, KEY_LEN, KeyExchangeError, PUBLIC_KEY_LEN, PublicKey, SessionKey,
};
use super::record::{self, MIN_RAW_LEN};

/// The Python exception a [`HelperError`] becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PythonException {
    /// `ValueError`: the caller passed bad input.
    ValueError,
    /// `RuntimeError`: the operation failed on well-formed input (authentication).
    RuntimeError,
}

/// Why a helper failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    /// The AES key is not 32 bytes.
    #[error("key must be 32 bytes, got {len}")]
    KeyLength {
        /// Bytes given.
        len: usize,
    },
    /// The data to decrypt is shorter than IV + tag.
    #[error("data must be at least {min} bytes (IV + tag), got {len}")]
    DataTooShort {
        /// Bytes given.
        len: usize,
        /// [`MIN_RAW_LEN`].
        min: usize,
    },
    /// The private key is not a 32-byte scalar in `1..n`.
    #[error("invalid private key: {0}")]
    BadPrivateKey(KeyExchangeError),
    /// The peer's public key is not a 65- or 33-byte SEC1 point of P-256.
    #[error("invalid peer public key: {0}")]
    BadPublicKey(KeyExchangeError),
    /// AES-GCM authentication failed (wrong key or tampered data).
    #[error("decryption failed: authentication tag mismatch")]
    AuthenticationFailed,
}

impl HelperError {
    /// The exception the binding raises.
    pub fn python_exception(&self) -> PythonException {
        match self {
            HelperError::AuthenticationFailed => PythonException::RuntimeError,
            HelperError::KeyLength { .. }
            | HelperError::DataTooShort { .. }
            | HelperError::BadPrivateKey(_)
            | HelperError::BadPublicKey(_) => PythonException::ValueError,
        }
    }
}

/// `rust_ecdh_generate_keypair()`: a fresh private scalar (32 bytes, big-endian) and its public
/// key (65-byte uncompressed SEC1). The returned scalar is a plain copy (Python gets `bytes`):
/// the caller owns clearing it.
pub fn ecdh_generate_keypair(
    rng: &mut (impl CryptoRngCore + ?Sized),
) -> ([u8; KEY_LEN], [u8; PUBLIC_KEY_LEN]) {
    let pair = EphemeralKeyPair::generate(rng);
    (*pair.private_scalar(), pair.public_key().to_uncompressed())
}

/// `rust_ecdh_derive_shared_secret(private, peer_public)`: ECDH, then HKDF-SHA256 (no salt,
/// info `wse-encryption/aes-gcm-key`) — the 32-byte AES key, not the raw shared secret.
/// `peer_public` is raw SEC1, uncompressed (65) or compressed (33).
pub fn ecdh_derive_shared_secret(
    private: &[u8],
    peer_public: &[u8],
) -> Result<[u8; KEY_LEN], HelperError> {
    let pair =
        EphemeralKeyPair::from_private_scalar(private).map_err(HelperError::BadPrivateKey)?;
    let peer = PublicKey::from_sec1(peer_public).map_err(HelperError::BadPublicKey)?;
    Ok(*pair.derive_session_key(&peer).expose_bytes())
}

/// `rust_aes_gcm_encrypt(key, plaintext)`: `IV(12, random) ‖ ciphertext ‖ tag(16)`, no AAD.
pub fn aes_gcm_encrypt(
    key: &[u8],
    plaintext: &[u8],
    rng: &mut (impl CryptoRngCore + ?Sized),
) -> Result<Vec<u8>, HelperError> {
    Ok(record::seal_raw(&session_key(key)?, plaintext, rng))
}

/// `rust_aes_gcm_decrypt(key, data)`: the plaintext of `IV ‖ ciphertext ‖ tag`.
pub fn aes_gcm_decrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, HelperError> {
    let key = session_key(key)?;
    if data.len() < MIN_RAW_LEN {
        return Err(HelperError::DataTooShort {
            len: data.len(),
            min: MIN_RAW_LEN,
        });
    }
    // Past the length check, authentication is the only way left to fail.
    record::open_raw(&key, data)
        .map(|(_, plaintext)| plaintext)
        .map_err(|_| HelperError::AuthenticationFailed)
}

/// `rust_sign_message(payload_json, secret)`: `hex(HMAC-SHA256(secret, hex(SHA-256(payload_json))))`
/// (the hex digest's ASCII is the HMAC input), lowercase hex.
pub fn sign_message(payload_json: &str, secret: &[u8]) -> String {
    let digest_hex = sha256_hex(payload_json.as_bytes());
    hex(&hmac_sha256(secret, digest_hex.as_bytes()))
}

/// `rust_hmac_sha256(key, data)`: the 32 raw bytes.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("invariant: HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `rust_sha256(data)`: lowercase hex of the SHA-256 digest.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn session_key(key: &[u8]) -> Result<SessionKey, HelperError> {
    let key: &[u8; KEY_LEN] = key
        .try_into()
        .map_err(|_| HelperError::KeyLength { len: key.len() })?;
    Ok(SessionKey::from_bytes(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testutil::rng;

    #[test]
    fn generated_pairs_agree_on_the_derived_key() {
        let mut r = rng(1);
        let (a_priv, a_pub) = ecdh_generate_keypair(&mut r);
        let (b_priv, b_pub) = ecdh_generate_keypair(&mut r);
        assert_eq!(a_pub[0], 0x04);
        let ab = ecdh_derive_shared_secret(&a_priv, &b_pub).unwrap();
        let ba = ecdh_derive_shared_secret(&b_priv, &a_pub).unwrap();
        assert_eq!(ab, ba);
        let compressed = PublicKey::from_sec1(&b_pub).unwrap().to_compressed();
        assert_eq!(ecdh_derive_shared_secret(&a_priv, &compressed).unwrap(), ab);
    }

    #[test]
    fn bad_scalars_and_points_are_value_errors() {
        let (private, public) = ecdh_generate_keypair(&mut rng(2));
        let cases = [
            (
                ecdh_derive_shared_secret(&[0u8; 32], &public),
                HelperError::BadPrivateKey(KeyExchangeError::BadPrivateScalar),
            ),
            (
                ecdh_derive_shared_secret(&private[..31], &public),
                HelperError::BadPrivateKey(KeyExchangeError::BadPrivateScalar),
            ),
            (
                ecdh_derive_shared_secret(&private, &public[..64]),
                HelperError::BadPublicKey(KeyExchangeError::BadLength { len: 64 }),
            ),
            (
                ecdh_derive_shared_secret(&private, &[4u8; 65]),
                HelperError::BadPublicKey(KeyExchangeError::NotOnCurve),
            ),
            (
                ecdh_derive_shared_secret(&private, &[0u8]),
                HelperError::BadPublicKey(KeyExchangeError::Identity),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
            assert_eq!(want.python_exception(), PythonException::ValueError);
        }
    }

    #[test]
    fn aes_helpers_round_trip_and_distinguish_bad_input_from_auth_failure() {
        let mut r = rng(3);
        let key = [9u8; 32];
        let data = aes_gcm_encrypt(&key, b"payload", &mut r).unwrap();
        assert_eq!(data.len(), 28 + 7);
        assert_eq!(aes_gcm_decrypt(&key, &data).unwrap(), b"payload");

        let value_errors = [
            aes_gcm_encrypt(&key[..16], b"x", &mut r).unwrap_err(),
            aes_gcm_decrypt(&[9u8; 33], &data).unwrap_err(),
            aes_gcm_decrypt(&key, &data[..27]).unwrap_err(),
            aes_gcm_decrypt(&key[..1], &data[..3]).unwrap_err(),
        ];
        assert_eq!(
            value_errors,
            [
                HelperError::KeyLength { len: 16 },
                HelperError::KeyLength { len: 33 },
                HelperError::DataTooShort { len: 27, min: 28 },
                HelperError::KeyLength { len: 1 },
            ]
        );
        assert!(
            value_errors
                .iter()
                .all(|e| e.python_exception() == PythonException::ValueError)
        );

        let mut tampered = data.clone();
        tampered[20] ^= 0x80;
        for bad in [
            aes_gcm_decrypt(&key, &tampered),
            aes_gcm_decrypt(&[8u8; 32], &data),
            aes_gcm_decrypt(&key, &data[..28]),
        ] {
            let e = bad.unwrap_err();
            assert_eq!(e, HelperError::AuthenticationFailed);
            assert_eq!(e.python_exception(), PythonException::RuntimeError);
        }
    }

    /// Digests typed in from FIPS 180-2 appendix B.1 ("abc") and RFC 4231 test case 2.
    #[test]
    fn hash_helpers_match_published_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign_message("{}", b"Jefe"),
            hex(&hmac_sha256(b"Jefe", sha256_hex(b"{}").as_bytes()))
        );
    }
}
