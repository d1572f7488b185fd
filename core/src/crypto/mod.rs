//! End-to-end encryption and message signing, Sans-IO (UPSTREAM §4–§5, CONTRACT D7/D8; the
//! wire formats are specified in `docs/encryption.md`).
//!
//! Pure functions and small machines. Randomness (key pairs, IVs) comes from a
//! `rand_core::CryptoRngCore` the caller passes in: the OS generator in production, a seeded
//! ChaCha in tests and simulation, so a seed replays exactly. Time (replay-cache ages, the
//! rotation grace window and interval, signature age) is an input too.
//!
//! | module | owns |
//! |---|---|
//! | [`keys`] | ECDH P-256 key pairs, peer key parsing, HKDF-SHA256 session key |
//! | [`record`] | the `E:` record: AES-256-GCM seal/open, with and without the prefix |
//! | [`session`] | per-connection state: replay protection, key rotation (server and client sides) |
//! | [`rotation`] | the `key_rotation` / `key_rotation_ack` payloads (our extension) |
//! | [`signing`] | `sig`: HMAC-SHA256 over the canonical envelope, timestamp, nonce |
//! | [`python`] | the Python module-level helpers' exact semantics (UPSTREAM §4.5, §5) |
//!
//! Invariants: no function here panics on peer input; `Debug` never prints secret bytes; keys
//! zeroize on drop; bounded inputs (base64 keys, `sig` strings, the IV cache).
//!
//! A typical server connection:
//!
//! ```
//! use wse_core::crypto::{CryptoConfig, CryptoSession, EphemeralKeyPair, parse_peer_public_key};
//! use wse_core::Instant;
//! # use rand_core::SeedableRng;
//! # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! # let client = EphemeralKeyPair::generate(&mut rng);
//! # let client_hello_key = client.public_key_b64();
//! // client_hello.p.encryption_public_key → server_hello.p.encryption_public_key
//! let peer = parse_peer_public_key(&client_hello_key).expect("KEY_EXCHANGE_FAILED otherwise");
//! let server = EphemeralKeyPair::generate(&mut rng);
//! let server_hello_key = server.public_key_b64();
//! let mut session = CryptoSession::new(
//!     server.derive_session_key(&peer),
//!     Instant::ZERO,
//!     CryptoConfig::default(),
//!     false, // the client did not announce features.key_rotation
//! );
//! let frame = session.encrypt(br#"{"t":"hello"}"#, &mut rng);
//! assert!(frame.starts_with(b"E:"));
//! # let key = client.derive_session_key(&parse_peer_public_key(&server_hello_key).unwrap());
//! # assert_eq!(wse_core::crypto::open(&key, &frame).unwrap().1, br#"{"t":"hello"}"#);
//! ```

pub mod keys;
pub mod python;
pub mod record;
mod replay;
pub mod rotation;
pub mod session;
pub mod signing;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(test)]
mod vectors;

pub use keys::{EphemeralKeyPair, KeyExchangeError, PublicKey, SessionKey, parse_peer_public_key};
pub use record::{Iv, RecordError, open, open_raw, seal, seal_raw};
pub use rotation::RotationError;
pub use session::{
    ClientCryptoSession, CryptoConfig, CryptoConfigError, CryptoOutput, CryptoSession, CryptoStats,
};
pub use signing::{SignatureError, SigningKey, sign, verify};
