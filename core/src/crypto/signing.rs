//! Message signing: an HMAC-SHA256 `sig` over the canonical envelope, with a timestamp and a
//! nonce (our format; the original server never signs, UPSTREAM §5, and the published client
//! ignores `sig`, so adding one breaks nothing).
//!
//! ## `sig`
//!
//! ```text
//! sig = "v1:" ts_ms ":" nonce_hex ":" mac_b64
//! mac = HMAC-SHA256(signing_key, "v1:" ts_ms ":" nonce_hex ":" ‖ canonical(envelope − sig))
//! ```
//!
//! - `ts_ms`: Unix time of signing in milliseconds, decimal ASCII without sign or leading zeros;
//! - `nonce_hex`: 16 random bytes as 32 lowercase hex digits;
//! - `mac_b64`: the 32-byte MAC in standard padded base64 (44 characters);
//! - `canonical(envelope − sig)`: the envelope object without its **top-level** `sig` member,
//!   written as compact JSON with the members of every object sorted by key (Unicode code point
//!   order, which is UTF-8 byte order), no whitespace, strings escaped as serde_json does (`"`,
//!   `\\` and control characters only; `\n`-style short escapes, otherwise `\u00XX` in lowercase;
//!   everything else literal UTF-8), numbers as serde_json writes them (integers in decimal,
//!   floats in shortest round-trip form). That is Python's
//!   `json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for every
//!   envelope without non-integer floats (Python writes some floats differently, e.g.
//!   `1e+21` for `1e21`). The sort is done here, explicitly: it does not depend on whether
//!   serde_json's `preserve_order` feature is on somewhere in the build.
//!
//! The prefix binds the version, the time and the nonce into the MAC; the rest of the input is
//! the canonical JSON, so the whole input is unambiguous.
//!
//! ## Keys
//!
//! [`SigningKey::from_session_key`]: HKDF-SHA256 from the connection's session key (no salt,
//! info [`SIGNING_KEY_INFO`], 32 bytes), so both ends of an encrypted connection share it and
//! it is never the encryption key itself; or [`SigningKey::from_shared_secret`], a configured
//! secret of at least [`MIN_SHARED_SECRET_LEN`] bytes.
//!
//! ## Verification
//!
//! [`verify`] checks the format, the MAC (in constant time), then the age: older than
//! `max_age` is refused, and so is a timestamp more than [`DEFAULT_MAX_FUTURE_SKEW`] ahead
//! ([`verify_with_skew`] chooses the skew). There is no nonce replay cache here: a verifier that
//! must refuse a second delivery of a still-fresh signed message keeps the nonces it has seen
//! for `max_age` (the timestamp bounds how long that is); the engine's own delivery paths
//! already deduplicate message ids.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::keys::{KEY_LEN, SessionKey, hkdf_sha256};
use crate::time::{WallClock, duration_micros};

/// HKDF `info` of the signing key derived from a session key.
pub const SIGNING_KEY_INFO: &[u8] = b"wse-signing/hmac-key";
/// Shortest configured shared secret (the HMAC-SHA256 output size).
pub const MIN_SHARED_SECRET_LEN: usize = 32;
/// The version tag at the start of every `sig`.
pub const SIG_VERSION: &str = "v1";
/// The envelope member that carries the signature.
pub const SIG_FIELD: &str = "sig";
/// Default tolerance for a signer's clock ahead of the verifier's.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(5);
/// Longest `sig` accepted for parsing (a valid one is at most 101 characters).
pub const MAX_SIG_LEN: usize = 128;

/// Bytes of the nonce in a `sig` (written as 32 hex digits).
pub const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;

/// Why signing could not be set up, or a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A configured shared secret is shorter than [`MIN_SHARED_SECRET_LEN`].
    #[error("signing secret has {len} bytes, at least {MIN_SHARED_SECRET_LEN} are required")]
    SecretTooShort {
        /// Bytes given.
        len: usize,
    },
    /// The envelope has no `sig`.
    #[error("envelope has no sig")]
    Missing,
    /// `sig` is not a string of the documented form.
    #[error("malformed sig: {0}")]
    Malformed(&'static str),
    /// `sig` has another version than [`SIG_VERSION`].
    #[error("unsupported sig version")]
    UnsupportedVersion,
    /// The MAC does not match: another key, or a changed envelope, time or nonce.
    #[error("signature does not match")]
    BadMac,
    /// Authentic but older than `max_age`.
    #[error("signature is {age_ms} ms old")]
    TooOld {
        /// Age at verification.
        age_ms: u64,
    },
    /// Authentic but dated further ahead of the verifier's clock than the allowed skew.
    #[error("signature is dated {ahead_ms} ms in the future")]
    FromFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
}

/// An HMAC-SHA256 signing key. Zeroizes on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct SigningKey(Zeroizing<Vec<u8>>);

impl SigningKey {
    /// The signing key of an encrypted connection: HKDF-SHA256 of its session key (no salt,
    /// info [`SIGNING_KEY_INFO`], 32 bytes).
    pub fn from_session_key(key: &SessionKey) -> Self {
        let mut out = Zeroizing::new(vec![0u8; KEY_LEN]);
        hkdf_sha256(None, key.expose_bytes(), SIGNING_KEY_INFO, &mut out);
        SigningKey(out)
    }

    /// A configured shared secret, used as the HMAC key as is.
    pub fn from_shared_secret(secret: &[u8]) -> Result<Self, SignatureError> {
        if secret.len() < MIN_SHARED_SECRET_LEN {
            return Err(SignatureError::SecretTooShort { len: secret.len() });
        }
        Ok(SigningKey(Zeroizing::new(secret.to_vec())))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("invariant: HMAC takes keys of any length")
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The `sig` of `envelope` (any `sig` member already in it is left out of the MAC), signed at
/// `wall` with `nonce` (16 random bytes from the caller's CSPRNG). Put it in the envelope as
/// `"sig"`.
pub fn sign(
    key: &SigningKey,
    envelope: &Map<String, Value>,
    wall: WallClock,
    nonce: [u8; NONCE_LEN],
) -> String {
    let prefix = format!("{SIG_VERSION}:{}:{}:", wall.unix_millis(), hex(&nonce));
    let mac = mac_of(key, &prefix, envelope);
    format!("{prefix}{}", STANDARD.encode(mac))
}

/// Verifies `envelope["sig"]` at `now`: format, MAC, at most `max_age` old, at most
/// [`DEFAULT_MAX_FUTURE_SKEW`] ahead.
pub fn verify(
    key: &SigningKey,
    envelope: &Map<String, Value>,
    now: WallClock,
    max_age: Duration,
) -> Result<(), SignatureError> {
    verify_with_skew(key, envelope, now, max_age, DEFAULT_MAX_FUTURE_SKEW)
}

/// [`verify`] with an explicit tolerance for the signer's clock being ahead.
pub fn verify_with_skew(
    key: &SigningKey,
    envelope: &Map<String, Value>,
    now: WallClock,
    max_age: Duration,
    max_future_skew: Duration,
) -> Result<(), SignatureError> {
    let sig = envelope.get(SIG_FIELD).ok_or(SignatureError::Missing)?;
    let sig = sig
        .as_str()
        .ok_or(SignatureError::Malformed("sig is not a string"))?;
    let parsed = parse_sig(sig)?;
    let mut mac = key.mac();
    mac.update(parsed.prefix.as_bytes());
    mac.update(&canonical_without_sig(envelope));
    mac.verify_slice(&parsed.mac)
        .map_err(|_| SignatureError::BadMac)?;
    let now_ms = now.unix_millis();
    if parsed.ts_ms > now_ms {
        let ahead_ms = parsed.ts_ms - now_ms;
        if ahead_ms > millis(max_future_skew) {
            return Err(SignatureError::FromFuture { ahead_ms });
        }
    } else {
        let age_ms = now_ms - parsed.ts_ms;
        if age_ms > millis(max_age) {
            return Err(SignatureError::TooOld { age_ms });
        }
    }
    Ok(())
}

/// The canonical serialisation of a JSON value (see the module docs).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

/// The parts of a well-formed `sig`.
struct ParsedSig<'a> {
    /// `v1:<ts>:<nonce>:`, exactly as received.
    prefix: &'a str,
    ts_ms: u64,
    mac: [u8; MAC_LEN],
}

fn parse_sig(sig: &str) -> Result<ParsedSig<'_>, SignatureError> {
    if sig.len() > MAX_SIG_LEN {
        return Err(SignatureError::Malformed("sig too long"));
    }
    let mut parts = sig.splitn(4, ':');
    let (Some(version), Some(ts), Some(nonce), Some(mac)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SignatureError::Malformed("sig does not have four parts"));
    };
    if version != SIG_VERSION {
        return Err(SignatureError::UnsupportedVersion);
    }
    let canonical_decimal = !ts.is_empty()
        && ts.bytes().all(|b| b.is_ascii_digit())
        && (ts == "0" || !ts.starts_with('0'));
    let ts_ms = canonical_decimal
        .then(|| ts.parse::<u64>().ok())
        .flatten()
        .ok_or(SignatureError::Malformed("timestamp is not a decimal u64"))?;
    if nonce.len() != 2 * NONCE_LEN
        || !nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(SignatureError::Malformed(
            "nonce is not 32 lowercase hex digits",
        ));
    }
    let mac = STANDARD
        .decode(mac)
        .ok()
        .and_then(|m| <[u8; MAC_LEN]>::try_from(m).ok())
        .ok_or(SignatureError::Malformed("mac is not base64 of 32 bytes"))?;
    let prefix_len = version.len() + ts.len() + nonce.len() + 3;
    Ok(ParsedSig {
        prefix: &sig[..prefix_len],
        ts_ms,
        mac,
    })
}

fn mac_of(key: &SigningKey, prefix: &str, envelope: &Map<String, Value>) -> [u8; MAC_LEN] {
    let mut mac = key.mac();
    mac.update(prefix.as_bytes());
    mac.update(&canonical_without_sig(envelope));
    mac.finalize().into_bytes().into()
}

/// The canonical object of `envelope` without its top-level `sig`.
fn canonical_without_sig(envelope: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    write_object(
        envelope.iter().filter(|(k, _)| k.as_str() != SIG_FIELD),
        &mut out,
    );
    out
}

/// Recursion depth is that of the value: values parsed by serde_json are at most 128 deep (its
/// parser's limit), and the engine's own envelopes are shallow.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map.iter(), out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_object<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    let mut members: Vec<_> = members.collect();
    members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_scalar(&Value::String(key.clone()), out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value)
        .expect("invariant: a JSON scalar serialises into a Vec");
}

fn millis(d: Duration) -> u64 {
    duration_micros(d) / 1_000
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: WallClock = WallClock::from_unix_millis(1_764_000_000_123);
    const NONCE: [u8; 16] = [0xa5; 16];

    fn key() -> SigningKey {
        SigningKey::from_shared_secret(&[7u8; 32]).unwrap()
    }

    fn envelope() -> Map<String, Value> {
        match json!({"t": "order_filled", "p": {"id": 7, "qty": [1, 2.5], "note": "é\n\"x\""}, "c": "U", "v": 1})
        {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn signed(env: &Map<String, Value>) -> Map<String, Value> {
        let mut env = env.clone();
        let sig = sign(&key(), &env, T0, NONCE);
        env.insert(SIG_FIELD.into(), Value::from(sig));
        env
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let env = signed(&envelope());
        assert_eq!(verify(&key(), &env, T0, Duration::from_secs(60)), Ok(()));
        let sig = env[SIG_FIELD].as_str().unwrap();
        assert!(
            sig.starts_with("v1:1764000000123:a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5:"),
            "{sig}"
        );
        // "v1:" + 13 digits + ":" + 32 hex + ":" + 44 base64.
        assert_eq!(sig.len(), 94);
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_level_and_is_compact() {
        let v =
            json!({"b": 1, "a": {"z": [true, null, {"y": 1, "x": "\u{1}é/"}], "m": -2}, "A": 0.5});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"A":0.5,"a":{"m":-2,"z":[true,null,{"x":"\u0001é/","y":1}]},"b":1}"#
        );
    }

    #[test]
    fn any_change_to_the_envelope_breaks_the_signature() {
        let good = signed(&envelope());
        let mut changes: Vec<Map<String, Value>> = Vec::new();
        let mut m = good.clone();
        m.insert("t".into(), "order_cancelled".into());
        changes.push(m);
        let mut m = good.clone();
        m["p"]["id"] = json!(8);
        changes.push(m);
        let mut m = good.clone();
        m["p"]["qty"] = json!([1, 2.0]);
        changes.push(m);
        let mut m = good.clone();
        m.insert("extra".into(), Value::Null);
        changes.push(m);
        let mut m = good.clone();
        m.remove("v");
        changes.push(m);
        let mut m = good.clone();
        m["p"]["sig"] = json!("nested sig members are signed");
        changes.push(m);
        for m in changes {
            assert_eq!(
                verify(&key(), &m, T0, Duration::from_secs(60)),
                Err(SignatureError::BadMac),
                "{m:?}"
            );
        }
        let other = SigningKey::from_shared_secret(&[8u8; 32]).unwrap();
        assert_eq!(
            verify(&other, &good, T0, Duration::from_secs(60)),
            Err(SignatureError::BadMac)
        );
    }

    #[test]
    fn a_changed_timestamp_or_nonce_breaks_the_signature() {
        let good = signed(&envelope());
        let sig = good[SIG_FIELD].as_str().unwrap().to_owned();
        for bad in [
            sig.replace(":1764000000123:", ":1764000000124:"),
            sig.replacen("a5a5", "a5a4", 1),
        ] {
            let mut m = good.clone();
            m.insert(SIG_FIELD.into(), bad.into());
            assert_eq!(
                verify(&key(), &m, T0, Duration::from_secs(60)),
                Err(SignatureError::BadMac)
            );
        }
    }

    #[test]
    fn key_order_of_the_input_does_not_matter() {
        let mut reversed = Map::new();
        for (k, v) in envelope().into_iter().rev() {
            reversed.insert(k, v);
        }
        assert_eq!(
            sign(&key(), &reversed, T0, NONCE),
            sign(&key(), &envelope(), T0, NONCE)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let env = signed(&envelope());
        let max_age = Duration::from_secs(60);
        let at = |ms: u64| WallClock::from_unix_millis(1_764_000_000_123 + ms);
        assert_eq!(verify(&key(), &env, at(60_000), max_age), Ok(()));
        assert_eq!(
            verify(&key(), &env, at(60_001), max_age),
            Err(SignatureError::TooOld { age_ms: 60_001 })
        );
        let before = |ms: u64| WallClock::from_unix_millis(1_764_000_000_123 - ms);
        assert_eq!(verify(&key(), &env, before(5_000), max_age), Ok(()));
        assert_eq!(
            verify(&key(), &env, before(5_001), max_age),
            Err(SignatureError::FromFuture { ahead_ms: 5_001 })
        );
        assert_eq!(
            verify_with_skew(&key(), &env, before(5_001), max_age, Duration::ZERO),
            Err(SignatureError::FromFuture { ahead_ms: 5_001 })
        );
        assert_eq!(
            verify_with_skew(&key(), &env, T0, max_age, Duration::ZERO),
            Ok(())
        );
    }

    #[test]
    fn malformed_sigs_are_refused_before_any_mac() {
        let env = envelope();
        let good = signed(&env)[SIG_FIELD].as_str().unwrap().to_owned();
        let mac = good.rsplit(':').next().unwrap().to_owned();
        let cases: Vec<(Value, SignatureError)> = vec![
            (json!(1), SignatureError::Malformed("sig is not a string")),
            (
                json!("x".repeat(129)),
                SignatureError::Malformed("sig too long"),
            ),
            (
                json!("v1:1:2"),
                SignatureError::Malformed("sig does not have four parts"),
            ),
            (
                json!(good.replacen("v1", "v2", 1)),
                SignatureError::UnsupportedVersion,
            ),
            (
                json!(format!("v1::{}:{mac}", "a5".repeat(16))),
                SignatureError::Malformed("timestamp is not a decimal u64"),
            ),
            (
                json!(format!("v1:+1:{}:{mac}", "a5".repeat(16))),
                SignatureError::Malformed("timestamp is not a decimal u64"),
            ),
            (
                json!(format!("v1:01:{}:{mac}", "a5".repeat(16))),
                SignatureError::Malformed("timestamp is not a decimal u64"),
            ),
            (
                json!(format!("v1:99999999999999999999:{}:{mac}", "a5".repeat(16))),
                SignatureError::Malformed("timestamp is not a decimal u64"),
            ),
            (
                json!(format!("v1:1:{}:{mac}", "A5".repeat(16))),
                SignatureError::Malformed("nonce is not 32 lowercase hex digits"),
            ),
            (
                json!(format!("v1:1:{}:{mac}", "a5".repeat(15))),
                SignatureError::Malformed("nonce is not 32 lowercase hex digits"),
            ),
            (
                json!(format!("v1:1:{}:AAAA", "a5".repeat(16))),
                SignatureError::Malformed("mac is not base64 of 32 bytes"),
            ),
            (
                json!(format!("v1:1:{}:{mac}:", "a5".repeat(16))),
                SignatureError::Malformed("mac is not base64 of 32 bytes"),
            ),
        ];
        for (sig, want) in cases {
            let mut m = env.clone();
            m.insert(SIG_FIELD.into(), sig.clone());
            assert_eq!(
                verify(&key(), &m, T0, Duration::from_secs(60)),
                Err(want),
                "{sig}"
            );
        }
        assert_eq!(
            verify(&key(), &env, T0, Duration::from_secs(60)),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn signing_keys_come_from_the_session_key_or_a_long_enough_secret() {
        assert_eq!(
            SigningKey::from_shared_secret(&[1u8; 31]).err(),
            Some(SignatureError::SecretTooShort { len: 31 })
        );
        let session = SessionKey::from_bytes(&[3u8; 32]);
        let derived = SigningKey::from_session_key(&session);
        assert_ne!(
            &derived.0[..],
            &session.expose_bytes()[..],
            "never the encryption key itself"
        );
        assert_eq!(derived.0.len(), 32);
        assert_eq!(format!("{derived:?}"), "SigningKey(<redacted>)");
        let env = envelope();
        let sig = sign(&derived, &env, T0, NONCE);
        let mut m = env.clone();
        m.insert(SIG_FIELD.into(), sig.into());
        let same = SigningKey::from_session_key(&SessionKey::from_bytes(&[3u8; 32]));
        assert_eq!(verify(&same, &m, T0, Duration::from_secs(1)), Ok(()));
    }
}
