//! Cross-implementation vectors: constants printed by `vectors.py` (Python's `cryptography`
//! 50.0.2 over OpenSSL, and the standard library's `hmac`/`hashlib`/`json`), pasted unchanged,
//! checked against our code in both directions.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::keys::{EphemeralKeyPair, PublicKey, SessionKey, parse_peer_public_key};
use super::python;
use super::record::{self, Iv};
use super::signing::{self, SIG_FIELD, SigningKey};
use super::testutil::{hex, hex_decode};
use crate::time::WallClock;
use py::*;

/// Output of `/work/venv-crypto/bin/python core/src/crypto/vectors.py`, as printed.
#[rustfmt::skip]
mod py {
    pub(super) const A_PRIVATE: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
    pub(super) const A_PUBLIC_B64: &str = "BFFcPW6545a5BNP+yn9U/c0MwemXvzddylFa0KbDtANfRTa+OlDzGPv5pUdZAqIhUCvvDVfgjFOyzApW8X2fk1Q=";
    pub(super) const A_PUBLIC_COMPRESSED: &str = "02515c3d6eb9e396b904d3feca7f54fdcd0cc1e997bf375dca515ad0a6c3b4035f";
    pub(super) const B_PRIVATE: &str = "2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40";
    pub(super) const B_PUBLIC_B64: &str = "BB8UAUa/sbJR+E9N2+DUzc/Xev2YSpUg41eUAh+DErue7JlaCLH6dwTfPcwLUKlmUmP7dxH5X5+KRJxQluR8iSs=";
    pub(super) const B_PUBLIC_COMPRESSED: &str = "031f140146bfb1b251f84f4ddbe0d4cdcfd77afd984a9520e35794021f8312bb9e";
    pub(super) const SHARED_X: &str = "4fe243908f378aa1c2a69538822e6ed908c3225d8692575507c649901245150a";
    pub(super) const SESSION_KEY: &str = "2cd9a92155ba1adc714385c95bf42fa6cee555987f3c4ec7c553e37c7dd57c3a";
    pub(super) const IV: &str = "000102030405060708090a0b";
    pub(super) const PLAINTEXT: &str = "{\"c\":\"U\",\"p\":{\"price\":101.5,\"sym\":\"ÅBC\"},\"t\":\"tick\",\"v\":1}";
    pub(super) const RECORD: &str = "000102030405060708090a0b3304ee37dbcf47efc36dfe8df5822414bda87fa6915ee2885ae625f1c2c7417a11ae1ca66efe600e7f9af5348b8864b7a832419849f2e879b7cf464df96c0f55bd3f6970cf6ba0362e0afb";
    pub(super) const SIGNING_KEY: &str = "f3a0f86db5586d13e1f95a3321f57190fafe715caaa33dc33a1316ee77e03df2";
    pub(super) const ENVELOPE: &str = "{\"t\": \"order_filled\", \"c\": \"U\", \"v\": 1, \"id\": \"0190a0b1-0000-7000-8000-000000000001\", \"p\": {\"qty\": 3, \"price\": -12, \"sym\": \"ÅBC\", \"tags\": [\"a\", \"b\\n\\\"c\\\"\\u0001\"], \"meta\": {\"z\": null, \"y\": true}}}";
    pub(super) const CANONICAL: &str = "{\"c\":\"U\",\"id\":\"0190a0b1-0000-7000-8000-000000000001\",\"p\":{\"meta\":{\"y\":true,\"z\":null},\"price\":-12,\"qty\":3,\"sym\":\"ÅBC\",\"tags\":[\"a\",\"b\\n\\\"c\\\"\\u0001\"]},\"t\":\"order_filled\",\"v\":1}";
    pub(super) const SIG_TS_MS: u64 = 1764000000123;
    pub(super) const SIG_NONCE: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
    pub(super) const SIG: &str = "v1:1764000000123:a0a1a2a3a4a5a6a7a8a9aaabacadaeaf:9UpPb3V1FBkNjQveXqvom3d6/YXWcYEeFb7tSu4u1GU=";
    pub(super) const HELPER_PAYLOAD: &str = "{\"event\":\"ping\",\"n\":1}";
    pub(super) const HELPER_SHA256: &str = "9239c422a41b555493841e492401a13c6081045f49bd7223f575c7e1f7d86f7f";
    pub(super) const HELPER_HMAC: &str = "e465288485146ac956e203b5bb8a99ddc2c0f8366c06c78ff7712fb6930ef650";
    pub(super) const HELPER_SIGN_MESSAGE: &str = "fdc3530b684aa7ed9edb586d11335c87915a8fa317490804f4f649c2ce825f74";
}

fn bytes32(h: &str) -> [u8; 32] {
    hex_decode(h).try_into().unwrap()
}

fn pair(private: &str) -> EphemeralKeyPair {
    EphemeralKeyPair::from_private_scalar(&hex_decode(private)).unwrap()
}

#[test]
fn public_keys_match_python_cryptography() {
    for (private, b64, compressed) in [
        (A_PRIVATE, A_PUBLIC_B64, A_PUBLIC_COMPRESSED),
        (B_PRIVATE, B_PUBLIC_B64, B_PUBLIC_COMPRESSED),
    ] {
        let ours = pair(private);
        assert_eq!(ours.public_key_b64(), b64);
        assert_eq!(hex(&ours.public_key().to_compressed()), compressed);
        assert_eq!(parse_peer_public_key(b64).unwrap(), ours.public_key());
        assert_eq!(
            PublicKey::from_sec1(&hex_decode(compressed)).unwrap(),
            ours.public_key()
        );
    }
}

#[test]
fn session_key_matches_python_cryptography_from_either_side_and_either_encoding() {
    let a = pair(A_PRIVATE);
    let b = pair(B_PRIVATE);
    let b_pub = parse_peer_public_key(B_PUBLIC_B64).unwrap();
    let a_pub = PublicKey::from_sec1(&hex_decode(A_PUBLIC_COMPRESSED)).unwrap();
    assert_eq!(
        hex(a.derive_session_key(&b_pub).expose_bytes()),
        SESSION_KEY
    );
    assert_eq!(
        hex(b.derive_session_key(&a_pub).expose_bytes()),
        SESSION_KEY
    );
    // The Python helper, with raw SEC1 bytes in both encodings.
    let b_raw = STANDARD.decode(B_PUBLIC_B64).unwrap();
    for peer in [b_raw, hex_decode(B_PUBLIC_COMPRESSED)] {
        assert_eq!(
            hex(&python::ecdh_derive_shared_secret(&hex_decode(A_PRIVATE), &peer).unwrap()),
            SESSION_KEY
        );
    }
    // HKDF itself, from their raw shared x-coordinate.
    let mut okm = [0u8; 32];
    super::keys::hkdf_sha256(
        None,
        &hex_decode(SHARED_X),
        super::keys::SESSION_KEY_INFO,
        &mut okm,
    );
    assert_eq!(hex(&okm), SESSION_KEY);
}

#[test]
fn aes_gcm_records_match_python_cryptography_both_ways() {
    let key = SessionKey::from_bytes(&bytes32(SESSION_KEY));
    let iv: Iv = hex_decode(IV).try_into().unwrap();
    let theirs = hex_decode(RECORD);
    // We decrypt theirs...
    assert_eq!(
        record::open_raw(&key, &theirs).unwrap(),
        (iv, PLAINTEXT.as_bytes().to_vec())
    );
    let frame = [b"E:".as_slice(), &theirs].concat();
    assert_eq!(record::open(&key, &frame).unwrap().1, PLAINTEXT.as_bytes());
    assert_eq!(
        python::aes_gcm_decrypt(&bytes32(SESSION_KEY), &theirs).unwrap(),
        PLAINTEXT.as_bytes()
    );
    // ...and ours under the same IV is the same bytes, so they decrypt ours.
    assert_eq!(
        hex(&record::seal_raw_with_iv(&key, &iv, PLAINTEXT.as_bytes())),
        RECORD
    );
    assert_eq!(record::seal_with_iv(&key, &iv, PLAINTEXT.as_bytes()), frame);
}

#[test]
fn signatures_match_python_hmac_over_python_canonical_json() {
    let session = SessionKey::from_bytes(&bytes32(SESSION_KEY));
    let key = SigningKey::from_session_key(&session);
    let envelope: Map<String, Value> = serde_json::from_str(ENVELOPE).unwrap();
    let canonical = signing::canonical_json(&Value::Object(envelope.clone()));
    assert_eq!(String::from_utf8(canonical).unwrap(), CANONICAL);
    let nonce: [u8; 16] = hex_decode(SIG_NONCE).try_into().unwrap();
    let wall = WallClock::from_unix_millis(SIG_TS_MS);
    // Ours equals theirs...
    assert_eq!(signing::sign(&key, &envelope, wall, nonce), SIG);
    // ...and theirs verifies with ours.
    let mut signed = envelope;
    signed.insert(SIG_FIELD.into(), Value::from(SIG));
    assert_eq!(
        signing::verify(&key, &signed, wall, Duration::from_secs(60)),
        Ok(())
    );
    let from_secret = SigningKey::from_shared_secret(&hex_decode(SIGNING_KEY)).unwrap();
    assert_eq!(
        signing::sign(&from_secret, &signed, wall, nonce),
        SIG,
        "HKDF gave their key"
    );
}

#[test]
fn upstream_hash_helpers_match_python_hashlib_and_hmac() {
    let payload = HELPER_PAYLOAD.as_bytes();
    assert_eq!(python::sha256_hex(payload), HELPER_SHA256);
    assert_eq!(
        hex(&python::hmac_sha256(b"secret-key", payload)),
        HELPER_HMAC
    );
    assert_eq!(
        python::sign_message(HELPER_PAYLOAD, b"secret-key"),
        HELPER_SIGN_MESSAGE
    );
}
