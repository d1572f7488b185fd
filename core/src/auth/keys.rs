//! Key material: parses the configured secrets and PEMs once, strictly, so a wrong key fails at
//! construction with the field named instead of failing every handshake later.
//!
//! jsonwebtoken's own PEM loaders accept more than they can use (an RSA private key where a
//! public one is expected, an EC key on any curve for ES256); here each key is parsed with the
//! algorithm's own crate (`rsa`, `p256`) and then handed to jsonwebtoken in the exact form its
//! verifier expects.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _, EncodeRsaPublicKey as _};
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use sha2::Digest as _;

use crate::config::JwtAlgorithm;

/// Shortest accepted HS256 secret, in bytes (the original's rule; RFC 7518 §3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The jsonwebtoken name of an algorithm we accept.
pub(crate) fn jwt_alg(alg: JwtAlgorithm) -> jsonwebtoken::Algorithm {
    match alg {
        JwtAlgorithm::Hs256 => jsonwebtoken::Algorithm::HS256,
        JwtAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        JwtAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
    }
}

/// The verification key for `alg`: an HS256 secret of at least 32 bytes, or a PEM public key
/// (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RS256). The error is the reason, without the field.
pub(crate) fn verifying_key(bytes: &[u8], alg: JwtAlgorithm) -> Result<DecodingKey, String> {
    match alg {
        JwtAlgorithm::Hs256 => {
            check_secret_len(bytes)?;
            Ok(DecodingKey::from_secret(bytes))
        }
        JwtAlgorithm::Rs256 => {
            let pem = pem_text(bytes)?;
            let key = rsa::RsaPublicKey::from_public_key_pem(pem)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
                .map_err(|_| "not a PEM RSA public key".to_owned())?;
            let der = key
                .to_pkcs1_der()
                .map_err(|e| format!("RSA public key: {e}"))?;
            Ok(DecodingKey::from_rsa_der(der.as_bytes()))
        }
        JwtAlgorithm::Es256 => {
            let pem = pem_text(bytes)?;
            let key = p256::PublicKey::from_public_key_pem(pem)
                .map_err(|_| "not a PEM P-256 public key".to_owned())?;
            Ok(DecodingKey::from_ec_der(
                key.to_encoded_point(false).as_bytes(),
            ))
        }
    }
}

/// A key that can sign JWTs.
pub(crate) enum SigningKey {
    /// HS256 and ES256 sign deterministically through jsonwebtoken.
    Deterministic(EncodingKey),
    /// RS256 is signed here: jsonwebtoken would blind with the OS generator.
    Rsa {
        signer: Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>,
        /// Seeds the blinding generator together with the message (see [`SigningKey::sign`]).
        pem: Vec<u8>,
    },
}

/// The signing key for `alg`: an HS256 secret of at least 32 bytes, or a PEM private key
/// (PKCS#8 `PRIVATE KEY`; for RS256 also PKCS#1 `RSA PRIVATE KEY`).
pub(crate) fn signing_key(bytes: &[u8], alg: JwtAlgorithm) -> Result<SigningKey, String> {
    match alg {
        JwtAlgorithm::Hs256 => {
            check_secret_len(bytes)?;
            Ok(SigningKey::Deterministic(EncodingKey::from_secret(bytes)))
        }
        JwtAlgorithm::Rs256 => {
            let pem = pem_text(bytes)?;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
                .map_err(|_| "not a PEM RSA private key".to_owned())?;
            let signer = Box::new(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key));
            Ok(SigningKey::Rsa {
                signer,
                pem: bytes.to_vec(),
            })
        }
        JwtAlgorithm::Es256 => {
            let pem = pem_text(bytes)?;
            p256::SecretKey::from_pkcs8_pem(pem)
                .map_err(|_| "not a PKCS#8 PEM P-256 private key".to_owned())?;
            let key = EncodingKey::from_ec_pem(bytes)
                .map_err(|e| format!("P-256 private key rejected by the signer: {e}"))?;
            Ok(SigningKey::Deterministic(key))
        }
    }
}

impl SigningKey {
    /// The base64url signature of `message` under `alg`.
    ///
    /// RSA PKCS#1 v1.5 signatures are deterministic; randomness only blinds the private-key
    /// operation against timing attacks. The blinding generator is seeded from a hash of the
    /// private key and the message (the RFC 6979 idea): unpredictable to anyone without the
    /// key, and no OS randomness is drawn, as the core requires.
    pub(crate) fn sign(&self, message: &[u8], alg: JwtAlgorithm) -> Result<String, String> {
        match self {
            SigningKey::Deterministic(key) => {
                jsonwebtoken::crypto::sign(message, key, jwt_alg(alg)).map_err(|e| e.to_string())
            }
            SigningKey::Rsa { signer, pem } => {
                let seed: [u8; 32] = sha2::Sha256::new()
                    .chain_update(b"wse-jwt-rs256-blinding\0")
                    .chain_update(pem)
                    .chain_update(message)
                    .finalize()
                    .into();
                let mut rng = ChaCha20Rng::from_seed(seed);
                let sig = signer
                    .try_sign_with_rng(&mut rng, message)
                    .map_err(|e| e.to_string())?;
                Ok(URL_SAFE_NO_PAD.encode(sig.to_bytes()))
            }
        }
    }
}

fn check_secret_len(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < MIN_HS256_SECRET_BYTES {
        return Err(format!(
            "HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes, got {}",
            bytes.len()
        ));
    }
    Ok(())
}

fn pem_text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "PEM is not UTF-8 text".to_owned())
}
