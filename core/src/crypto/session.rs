//! Per-connection encryption state after the key exchange: [`CryptoSession`] (the server's side)
//! and [`ClientCryptoSession`] (the client's side, for tests and the Rust client).
//!
//! Both encrypt every outbound frame under the current key, decrypt inbound `E:` frames with
//! replay protection (`replay.rs`: a repeated IV is [`RecordError::Replayed`]) and keep the
//! previous key for a grace window after a rotation.
//!
//! ## Rotation (server's grammar)
//!
//! - Commands: [`CryptoSession::start_rotation`] (also started by `handle_timeout` when the
//!   interval has run out) returns the `key_rotation` payload; the driver sends it as an
//!   encrypted system message (`rotation::system_message`).
//! - Input: [`CryptoSession::handle_rotation_ack`] with the `p` of a `key_rotation_ack` that
//!   arrived **inside an `E:` record this session decrypted** (never a plaintext one). On success
//!   the new key encrypts everything from that moment, and the old key still decrypts for
//!   `rotation_grace`; on error nothing changes.
//! - Outputs: drain [`CryptoSession::poll_output`] after `handle_timeout`: the payloads of
//!   rotations the interval started.
//! - Time: [`CryptoSession::poll_timeout`] is the end of the grace window or the next
//!   rotation; `handle_timeout(now, rng)` fires what is due and is harmless early or twice.
//!   Decryption also checks the grace window itself, so a late `handle_timeout` never lets the
//!   old key decrypt past its end.
//!
//! A pending rotation never times out: the server keeps the current key until the ack comes.
//! Giving up would desynchronise a client whose ack is merely slow (it switches its sending key
//! when it sends the ack), and waiting costs one key pair. The next interval counts from the
//! switch.

use std::collections::VecDeque;
use std::time::Duration;

use rand_core::CryptoRngCore;
use serde_json::Value;

use super::keys::{EphemeralKeyPair, SessionKey};
use super::record::{self, RecordError};
use super::replay::ReplayCache;
use super::rotation::{self, RotationError};
use crate::time::Instant;

/// Default bound of the IV cache (CONTRACT D8).
pub const DEFAULT_REPLAY_CACHE_CAPACITY: usize = 10_000;
/// Largest allowed IV cache: about 5 MB per connection at worst, which is already a lot.
pub const MAX_REPLAY_CACHE_CAPACITY: usize = 100_000;
/// Default age at which an accepted IV is forgotten (CONTRACT D8).
pub const DEFAULT_REPLAY_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Default interval between key rotations.
pub const DEFAULT_ROTATION_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Default time the previous key still decrypts after a switch.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(30);

/// Settings of a session's replay protection and key rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CryptoConfig {
    /// IVs remembered at most; when full the oldest is forgotten first. 1 to
    /// [`MAX_REPLAY_CACHE_CAPACITY`], default [`DEFAULT_REPLAY_CACHE_CAPACITY`].
    pub replay_cache_capacity: usize,
    /// Age at which an IV is forgotten; above zero. Default [`DEFAULT_REPLAY_MAX_AGE`].
    pub replay_max_age: Duration,
    /// Time from a switch (or the session's start) to the next rotation; zero disables rotation.
    /// Default [`DEFAULT_ROTATION_INTERVAL`]. Server side only.
    pub rotation_interval: Duration,
    /// Time the previous key still decrypts after a switch; zero drops it at once. Below the
    /// interval. Default [`DEFAULT_ROTATION_GRACE`].
    pub rotation_grace: Duration,
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            replay_cache_capacity: DEFAULT_REPLAY_CACHE_CAPACITY,
            replay_max_age: DEFAULT_REPLAY_MAX_AGE,
            rotation_interval: DEFAULT_ROTATION_INTERVAL,
            rotation_grace: DEFAULT_ROTATION_GRACE,
        }
    }
}

/// A [`CryptoConfig`] value out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoConfigError {
    /// `replay_cache_capacity` is 0 or above [`MAX_REPLAY_CACHE_CAPACITY`].
    #[error("replay_cache_capacity must be 1..={MAX_REPLAY_CACHE_CAPACITY}, got {0}")]
    ReplayCacheCapacity(usize),
    /// `replay_max_age` is zero (replay protection would be off).
    #[error("replay_max_age must be above zero")]
    ReplayMaxAge,
    /// `rotation_grace` is not below a non-zero `rotation_interval`.
    #[error("rotation_grace must be below rotation_interval")]
    GraceNotBelowInterval,
}

impl CryptoConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), CryptoConfigError> {
        if !(1..=MAX_REPLAY_CACHE_CAPACITY).contains(&self.replay_cache_capacity) {
            return Err(CryptoConfigError::ReplayCacheCapacity(
                self.replay_cache_capacity,
            ));
        }
        if self.replay_max_age.is_zero() {
            return Err(CryptoConfigError::ReplayMaxAge);
        }
        if !self.rotation_interval.is_zero() && self.rotation_grace >= self.rotation_interval {
            return Err(CryptoConfigError::GraceNotBelowInterval);
        }
        Ok(())
    }
}

/// Counters of one session (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CryptoStats {
    /// Frames encrypted.
    pub encrypted: u64,
    /// Frames decrypted and accepted.
    pub decrypted: u64,
    /// Of those, decrypted with the previous key during a grace window.
    pub decrypted_with_previous_key: u64,
    /// Frames refused as malformed (no `E:` prefix, too short).
    pub rejected_malformed: u64,
    /// Frames refused because no key in use authenticated them.
    pub rejected_auth: u64,
    /// Authentic frames refused as replays.
    pub rejected_replayed: u64,
    /// IVs forgotten because the replay cache was full (before reaching their age).
    pub replay_cache_evicted: u64,
    /// IVs in the replay cache at the last time seen (a gauge, not a counter).
    pub replay_cache_entries: u64,
    /// Rotations started (server) or handled (client).
    pub rotations_started: u64,
    /// Switches to a new key.
    pub rotations_completed: u64,
    /// Rotation messages refused.
    pub rotation_messages_refused: u64,
}

/// An output of [`CryptoSession::poll_output`].
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum CryptoOutput {
    /// Send `{"c":"WSE","t":"key_rotation","p":payload,"v":1}` as an `E:` frame (encrypted with
    /// [`CryptoSession::encrypt`]).
    SendKeyRotation {
        /// The `p` object.
        payload: Value,
    },
}

/// The server's per-connection crypto state. See the module docs for the grammar.
#[derive(Debug)]
pub struct CryptoSession {
    config: CryptoConfig,
    keys: Keyring,
    rotation: Rotation,
    next_rotation_id: u64,
    outputs: VecDeque<CryptoOutput>,
}

#[derive(Debug)]
enum Rotation {
    /// Not negotiated, or the interval is zero.
    Off { reason: RotationError },
    /// Waiting for the interval.
    Idle { due: Instant },
    /// `key_rotation` sent, waiting for its ack.
    Pending { id: u64, pair: EphemeralKeyPair },
}

impl CryptoSession {
    /// The session right after the key exchange at `now`. `client_key_rotation`: the client
    /// announced `features.key_rotation`. The config should have passed
    /// [`CryptoConfig::validate`]; one that did not never panics (the cache capacity is clamped
    /// into range, a zero `replay_max_age` remembers nothing, a grace not below the interval
    /// delays each rotation to the end of the grace window).
    pub fn new(
        key: SessionKey,
        now: Instant,
        config: CryptoConfig,
        client_key_rotation: bool,
    ) -> Self {
        let rotation = if !client_key_rotation {
            Rotation::Off {
                reason: RotationError::NotNegotiated,
            }
        } else if config.rotation_interval.is_zero() {
            Rotation::Off {
                reason: RotationError::Disabled,
            }
        } else {
            Rotation::Idle {
                due: now + config.rotation_interval,
            }
        };
        CryptoSession {
            config,
            keys: Keyring::new(key, &config),
            rotation,
            next_rotation_id: 1,
            outputs: VecDeque::new(),
        }
    }

    /// True if rotation is on for this connection: announce `features.key_rotation: true` in
    /// `server_hello` exactly then.
    pub fn rotation_enabled(&self) -> bool {
        !matches!(self.rotation, Rotation::Off { .. })
    }

    /// The id of the rotation waiting for its ack.
    pub fn pending_rotation(&self) -> Option<u64> {
        match self.rotation {
            Rotation::Pending { id, .. } => Some(id),
            _ => None,
        }
    }

    /// True while the previous key still decrypts (at the last time seen).
    pub fn in_grace(&self) -> bool {
        self.keys.previous.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> CryptoStats {
        self.keys.stats()
    }

    /// An `E:` frame of `plaintext` under the current key and a fresh IV.
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        rng: &mut (impl CryptoRngCore + ?Sized),
    ) -> Vec<u8> {
        self.keys.encrypt(plaintext, rng)
    }

    /// Opens an inbound `E:` frame (with its prefix): the plaintext, or why it was refused.
    pub fn decrypt(&mut self, now: Instant, frame: &[u8]) -> Result<Vec<u8>, RecordError> {
        self.keys.decrypt(now, frame)
    }

    /// Opens the record after `E:` (what `protocol::classify_binary` hands over).
    pub fn decrypt_record(&mut self, now: Instant, record: &[u8]) -> Result<Vec<u8>, RecordError> {
        self.keys.decrypt_record(now, record)
    }

    /// Starts a rotation: a fresh key pair and the `key_rotation` payload to send (encrypted,
    /// under the current key). Refused when rotation is off, a rotation is pending, or the
    /// previous key's grace window is open.
    pub fn start_rotation(
        &mut self,
        now: Instant,
        rng: &mut (impl CryptoRngCore + ?Sized),
    ) -> Result<Value, RotationError> {
        self.keys.expire_previous(now);
        match self.rotation {
            Rotation::Off { reason } => return Err(reason),
            Rotation::Pending { .. } => return Err(RotationError::Busy),
            Rotation::Idle { .. } if self.keys.previous.is_some() => {
                return Err(RotationError::Busy);
            }
            Rotation::Idle { .. } => {}
        }
        let id = self.next_rotation_id;
        self.next_rotation_id += 1;
        let pair = EphemeralKeyPair::generate(rng);
        let payload = rotation::key_rotation_payload(id, &pair.public_key_b64());
        self.rotation = Rotation::Pending { id, pair };
        self.keys.stats.rotations_started += 1;
        Ok(payload)
    }

    /// Handles the `p` of a `key_rotation_ack` that arrived inside an `E:` record: on success
    /// the new key is in use for sending from now on, and the old one decrypts until
    /// `now + rotation_grace`. On error nothing changes (the current key stays in use and a
    /// pending rotation stays pending).
    pub fn handle_rotation_ack(
        &mut self,
        now: Instant,
        payload: &Value,
    ) -> Result<(), RotationError> {
        let result = self.apply_ack(now, payload);
        if result.is_err() {
            self.keys.stats.rotation_messages_refused += 1;
        }
        result
    }

    fn apply_ack(&mut self, now: Instant, payload: &Value) -> Result<(), RotationError> {
        let Rotation::Pending { id, pair } = &self.rotation else {
            return Err(match self.rotation {
                Rotation::Off { reason } => reason,
                _ => RotationError::NotPending,
            });
        };
        let (got, client_key) = rotation::parse_payload(payload)?;
        if got != *id {
            return Err(RotationError::WrongRotationId { expected: *id, got });
        }
        let new_key = pair.derive_session_key(&client_key);
        self.keys.switch(now, new_key, self.config.rotation_grace);
        self.rotation = Rotation::Idle {
            due: now + self.config.rotation_interval,
        };
        Ok(())
    }

    /// The next output; drain until `None` after `handle_timeout`.
    pub fn poll_output(&mut self) -> Option<CryptoOutput> {
        self.outputs.pop_front()
    }

    /// The next instant at which [`CryptoSession::handle_timeout`] has work: the end of the
    /// grace window or the next rotation.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace_end = self.keys.poll_timeout();
        let rotation = match self.rotation {
            // A rotation cannot start while a grace window is open: never ask for a wake-up
            // before it could.
            Rotation::Idle { due } => Some(grace_end.map_or(due, |end| due.max(end))),
            Rotation::Off { .. } | Rotation::Pending { .. } => None,
        };
        match (grace_end, rotation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drops the previous key once its grace window is over, and starts a rotation when the
    /// interval has run out (its payload comes out of [`CryptoSession::poll_output`]).
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut (impl CryptoRngCore + ?Sized)) {
        self.keys.expire_previous(now);
        let Rotation::Idle { due } = self.rotation else {
            return;
        };
        if now < due {
            return;
        }
        // Only `Busy` can refuse here: a grace window still open, which a valid config rules
        // out (the grace is shorter than the interval); `poll_timeout` then asks again at the
        // end of the window.
        if let Ok(payload) = self.start_rotation(now, rng) {
            self.outputs
                .push_back(CryptoOutput::SendKeyRotation { payload });
        }
    }
}

/// The client's per-connection crypto state: encryption and replay protection like the
/// server's, and the client's half of rotation.
#[derive(Debug)]
pub struct ClientCryptoSession {
    config: CryptoConfig,
    keys: Keyring,
    last_rotation_id: u64,
}

impl ClientCryptoSession {
    /// The session right after the key exchange (`rotation_interval` is not used: the server
    /// decides when to rotate).
    pub fn new(key: SessionKey, config: CryptoConfig) -> Self {
        ClientCryptoSession {
            config,
            keys: Keyring::new(key, &config),
            last_rotation_id: 0,
        }
    }

    /// Counters.
    pub fn stats(&self) -> CryptoStats {
        self.keys.stats()
    }

    /// True while the previous key still decrypts (at the last time seen).
    pub fn in_grace(&self) -> bool {
        self.keys.previous.is_some()
    }

    /// An `E:` frame of `plaintext` under the current key.
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        rng: &mut (impl CryptoRngCore + ?Sized),
    ) -> Vec<u8> {
        self.keys.encrypt(plaintext, rng)
    }

    /// Opens an inbound `E:` frame.
    pub fn decrypt(&mut self, now: Instant, frame: &[u8]) -> Result<Vec<u8>, RecordError> {
        self.keys.decrypt(now, frame)
    }

    /// Handles the `p` of a `key_rotation` that arrived inside an `E:` record. On success returns
    /// the `E:` frame to send: `build_ack(ack_payload)` (the whole ack message as bytes, e.g.
    /// `rotation::system_message(KEY_ROTATION_ACK, p)` serialised) sealed under the **old** key,
    /// the only one the server can read it with. From the return on, the new key encrypts and
    /// the old one still decrypts for `rotation_grace` (the server's frames sent before it saw
    /// the ack). On error nothing changes.
    pub fn handle_key_rotation(
        &mut self,
        now: Instant,
        payload: &Value,
        rng: &mut (impl CryptoRngCore + ?Sized),
        build_ack: impl FnOnce(Value) -> Vec<u8>,
    ) -> Result<Vec<u8>, RotationError> {
        let parsed = rotation::parse_payload(payload).and_then(|(id, server_key)| {
            if id <= self.last_rotation_id {
                Err(RotationError::StaleRotationId {
                    last: self.last_rotation_id,
                    got: id,
                })
            } else {
                Ok((id, server_key))
            }
        });
        let (id, server_key) = match parsed {
            Ok(ok) => ok,
            Err(e) => {
                self.keys.stats.rotation_messages_refused += 1;
                return Err(e);
            }
        };
        let pair = EphemeralKeyPair::generate(rng);
        let ack = rotation::key_rotation_ack_payload(id, &pair.public_key_b64());
        let frame = self.keys.encrypt(&build_ack(ack), rng);
        self.keys.stats.rotations_started += 1;
        self.keys.switch(
            now,
            pair.derive_session_key(&server_key),
            self.config.rotation_grace,
        );
        self.last_rotation_id = id;
        Ok(frame)
    }

    /// The end of the grace window.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.keys.poll_timeout()
    }

    /// Drops the previous key once its grace window is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.keys.expire_previous(now);
    }
}

/// The keys of one side and its replay cache: what both sessions share.
#[derive(Debug)]
struct Keyring {
    current: SessionKey,
    previous: Option<(SessionKey, Instant)>,
    replay: ReplayCache,
    stats: CryptoStats,
}

impl Keyring {
    fn new(key: SessionKey, config: &CryptoConfig) -> Self {
        let capacity = config
            .replay_cache_capacity
            .clamp(1, MAX_REPLAY_CACHE_CAPACITY);
        Keyring {
            current: key,
            previous: None,
            replay: ReplayCache::new(capacity, config.replay_max_age),
            stats: CryptoStats::default(),
        }
    }

    fn stats(&self) -> CryptoStats {
        CryptoStats {
            replay_cache_evicted: self.replay.evicted(),
            replay_cache_entries: u64::try_from(self.replay.len()).unwrap_or(u64::MAX),
            ..self.stats
        }
    }

    fn encrypt(&mut self, plaintext: &[u8], rng: &mut (impl CryptoRngCore + ?Sized)) -> Vec<u8> {
        self.stats.encrypted += 1;
        record::seal(&self.current, plaintext, rng)
    }

    fn decrypt(&mut self, now: Instant, frame: &[u8]) -> Result<Vec<u8>, RecordError> {
        match record::strip_prefix(frame) {
            Ok(body) => self.decrypt_record(now, body),
            Err(e) => {
                self.stats.rejected_malformed += 1;
                Err(e)
            }
        }
    }

    fn decrypt_record(&mut self, now: Instant, rec: &[u8]) -> Result<Vec<u8>, RecordError> {
        self.expire_previous(now);
        let (iv, body) = match record::split_raw(rec) {
            Ok(split) => split,
            Err(e) => {
                self.stats.rejected_malformed += 1;
                return Err(e);
            }
        };
        // Authenticate first: only authentic records may take a place in the replay cache.
        let (plaintext, with_previous) = match record::decrypt(&self.current, &iv, body) {
            Ok(p) => (p, false),
            Err(_) => match &self.previous {
                Some((old, _)) => match record::decrypt(old, &iv, body) {
                    Ok(p) => (p, true),
                    Err(e) => return Err(self.auth_failed(e)),
                },
                None => return Err(self.auth_failed(RecordError::AuthFailed)),
            },
        };
        if !self.replay.check_and_insert(now, iv) {
            self.stats.rejected_replayed += 1;
            return Err(RecordError::Replayed);
        }
        self.stats.decrypted += 1;
        self.stats.decrypted_with_previous_key += u64::from(with_previous);
        Ok(plaintext)
    }

    fn auth_failed(&mut self, e: RecordError) -> RecordError {
        self.stats.rejected_auth += 1;
        e
    }

    /// The new key encrypts from now on; the old one decrypts until `now + grace`.
    fn switch(&mut self, now: Instant, new_key: SessionKey, grace: Duration) {
        let old = std::mem::replace(&mut self.current, new_key);
        self.previous = (!grace.is_zero()).then(|| (old, now + grace));
        self.stats.rotations_completed += 1;
    }

    fn expire_previous(&mut self, now: Instant) {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.previous = None;
        }
        self.replay.prune(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.previous.as_ref().map(|(_, until)| *until)
    }
}
