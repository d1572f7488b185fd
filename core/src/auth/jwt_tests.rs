//! Tests of [`super`]: every key is generated here from a fixed seed, never read from disk.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng as _;
use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{Map, Value, json};

use super::*;
use crate::auth::{JwtEncodeError, TopicAcl};

const NOW_SECS: u64 = 1_700_000_000;
const HS_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const HS_PREVIOUS: &[u8] = b"previous-secret-previous-secret-!";
const HS_OTHER: &[u8] = b"some-other-secret-some-other-secr";

fn now() -> WallClock {
    WallClock::from_unix_micros(NOW_SECS * 1_000_000)
}

/// A PEM key pair: (private PKCS#8, public SPKI).
struct Pair {
    private: Vec<u8>,
    public: Vec<u8>,
}

fn rsa_pair(seed: u64) -> Pair {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    Pair {
        private: key
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
        public: key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .into_bytes(),
    }
}

fn ec_pair(seed: u64) -> Pair {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key = p256::SecretKey::random(&mut rng);
    Pair {
        private: key
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
        public: key
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .into_bytes(),
    }
}

/// RSA key generation is slow: two keys shared by every test.
fn rsa_keys() -> &'static (Pair, Pair) {
    static KEYS: OnceLock<(Pair, Pair)> = OnceLock::new();
    KEYS.get_or_init(|| (rsa_pair(1), rsa_pair(2)))
}

fn ec_keys() -> &'static (Pair, Pair) {
    static KEYS: OnceLock<(Pair, Pair)> = OnceLock::new();
    KEYS.get_or_init(|| (ec_pair(1), ec_pair(2)))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Standard valid claims with `extra` merged over them.
fn claims_with(extra: Value) -> Map<String, Value> {
    let mut m = obj(json!({"sub": "user-1", "exp": NOW_SECS + 3600}));
    m.extend(obj(extra));
    m
}

fn hs_token(claims: &Map<String, Value>) -> String {
    encode_jwt(claims, HS_KEY, JwtAlgorithm::Hs256, None).unwrap()
}

fn hs_settings() -> JwtSettings {
    JwtSettings {
        secret: HS_KEY.to_vec(),
        ..Default::default()
    }
}

fn hs_validator(edit: impl FnOnce(&mut JwtSettings)) -> JwtValidator {
    let mut s = hs_settings();
    edit(&mut s);
    JwtValidator::new(&s).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn validator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<JwtValidator>();
}

#[test]
fn round_trips_for_every_algorithm() {
    let (rsa, _) = rsa_keys();
    let (ec, _) = ec_keys();
    let cases = [
        (JwtAlgorithm::Hs256, HS_KEY, HS_KEY),
        (JwtAlgorithm::Rs256, &rsa.private[..], &rsa.public[..]),
        (JwtAlgorithm::Es256, &ec.private[..], &ec.public[..]),
    ];
    let claims = claims_with(json!({"role": "admin", "n": [1, 2]}));
    for (alg, private, public) in cases {
        let token = encode_jwt(&claims, private, alg, Some("k1")).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.typ.as_deref(), header.kid.as_deref()),
            (Some("JWT"), Some("k1"))
        );
        let settings = JwtSettings {
            secret: public.to_vec(),
            algorithm: alg,
            key_id: Some("k1".into()),
            private_key: (alg != JwtAlgorithm::Hs256).then(|| private.to_vec()),
            ..Default::default()
        };
        let got = JwtValidator::new(&settings)
            .unwrap()
            .validate(&token, now())
            .unwrap();
        assert_eq!(got.sub, "user-1", "{alg}");
        assert_eq!(got.claims, claims, "{alg}");
        assert_eq!(got.topic_acl, None);
    }
}

#[test]
fn encoding_is_deterministic_for_every_algorithm() {
    let (rsa, _) = rsa_keys();
    let (ec, _) = ec_keys();
    let claims = claims_with(json!({}));
    for (alg, key) in [
        (JwtAlgorithm::Hs256, HS_KEY),
        (JwtAlgorithm::Rs256, &rsa.private[..]),
        (JwtAlgorithm::Es256, &ec.private[..]),
    ] {
        let a = encode_jwt(&claims, key, alg, None).unwrap();
        assert_eq!(a, encode_jwt(&claims, key, alg, None).unwrap(), "{alg}");
    }
}

#[test]
fn rs256_accepts_pkcs1_keys_too() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let private = key
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap()
        .as_bytes()
        .to_vec();
    let public = key
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap()
        .into_bytes();
    let token = encode_jwt(&claims_with(json!({})), &private, JwtAlgorithm::Rs256, None).unwrap();
    let s = JwtSettings {
        secret: public,
        algorithm: JwtAlgorithm::Rs256,
        ..Default::default()
    };
    assert!(
        JwtValidator::new(&s)
            .unwrap()
            .validate(&token, now())
            .is_ok()
    );
}

#[test]
fn time_claims_table() {
    let v = hs_validator(|_| {});
    let n = NOW_SECS;
    let cases: Vec<(Value, Result<(), AuthError>)> = vec![
        (json!({"exp": n - 30}), Ok(())),
        (json!({"exp": n - 31}), Err(AuthError::Expired)),
        (json!({"exp": n}), Ok(())),
        (json!({"exp": 0}), Err(AuthError::Expired)),
        (json!({"exp": u64::MAX}), Ok(())),
        (json!({"exp": (n - 30) as f64 + 0.4}), Ok(())),
        (
            json!({"exp": (n - 31) as f64 + 0.4}),
            Err(AuthError::Expired),
        ),
        (json!({"exp": 1e300}), Err(AuthError::BadTimeClaim("exp"))),
        (json!({"exp": -5}), Err(AuthError::BadTimeClaim("exp"))),
        (
            json!({"exp": "9999999999"}),
            Err(AuthError::BadTimeClaim("exp")),
        ),
        (json!({"exp": [1]}), Err(AuthError::BadTimeClaim("exp"))),
        (json!({"exp": null}), Err(AuthError::MissingExpiry)),
        (json!({"nbf": n + 30}), Ok(())),
        (json!({"nbf": n + 31}), Err(AuthError::NotYetValid)),
        (json!({"nbf": 0}), Ok(())),
        (json!({"nbf": "soon"}), Err(AuthError::BadTimeClaim("nbf"))),
        (json!({"iat": n + 30}), Ok(())),
        (json!({"iat": n + 31}), Err(AuthError::IssuedInFuture)),
        (json!({"iat": n - 86_400}), Ok(())),
        (json!({"iat": true}), Err(AuthError::BadTimeClaim("iat"))),
        // exp is checked before nbf and iat.
        (
            json!({"exp": n - 31, "nbf": n + 31, "iat": n + 31}),
            Err(AuthError::Expired),
        ),
    ];
    for (extra, want) in cases {
        let got = v
            .validate(&hs_token(&claims_with(extra.clone())), now())
            .map(|_| ());
        assert_eq!(got, want, "claims {extra}");
    }
}

#[test]
fn missing_exp_is_rejected() {
    let mut c = claims_with(json!({}));
    c.remove("exp");
    let got = hs_validator(|_| {}).validate(&hs_token(&c), now());
    assert_eq!(got.unwrap_err(), AuthError::MissingExpiry);
}

#[test]
fn the_clock_is_the_input_not_the_system_clock() {
    // A token that expired in 2023 is valid at a `now` in 2023 and rejected a day later.
    let v = hs_validator(|_| {});
    let token = hs_token(&claims_with(json!({"exp": NOW_SECS})));
    assert!(v.validate(&token, now()).is_ok());
    let later = WallClock::from_unix_micros((NOW_SECS + 86_400) * 1_000_000);
    assert_eq!(v.validate(&token, later).unwrap_err(), AuthError::Expired);
}

#[test]
fn issuer_and_audience_table() {
    let configured = hs_validator(|s| {
        s.issuer = Some("auth.example".into());
        s.audience = Some("wse".into());
    });
    let open = hs_validator(|s| {
        s.issuer = Some(String::new());
        s.audience = Some(String::new());
    });
    let ok = json!({"iss": "auth.example", "aud": "wse"});
    type Outcome = Result<(), AuthError>;
    let cases: Vec<(Value, Outcome, Outcome)> = vec![
        (ok.clone(), Ok(()), Ok(())),
        (
            json!({"iss": "auth.example", "aud": ["x", "wse"]}),
            Ok(()),
            Ok(()),
        ),
        (json!({"aud": "wse"}), Err(AuthError::MissingIssuer), Ok(())),
        (
            json!({"iss": "auth.example"}),
            Err(AuthError::MissingAudience),
            Ok(()),
        ),
        (
            json!({"iss": "evil", "aud": "wse"}),
            Err(AuthError::BadIssuer),
            Ok(()),
        ),
        (
            json!({"iss": ["auth.example"], "aud": "wse"}),
            Err(AuthError::BadIssuer),
            Ok(()),
        ),
        (
            json!({"iss": "auth.example", "aud": "other"}),
            Err(AuthError::BadAudience),
            Ok(()),
        ),
        (
            json!({"iss": "auth.example", "aud": ["x", 1]}),
            Err(AuthError::BadAudience),
            Ok(()),
        ),
        (
            json!({"iss": "auth.example", "aud": 7}),
            Err(AuthError::BadAudience),
            Ok(()),
        ),
        (
            json!({"iss": null, "aud": "wse"}),
            Err(AuthError::MissingIssuer),
            Ok(()),
        ),
    ];
    for (extra, want_configured, want_open) in cases {
        let token = hs_token(&claims_with(extra.clone()));
        assert_eq!(
            configured.validate(&token, now()).map(|_| ()),
            want_configured,
            "{extra}"
        );
        assert_eq!(
            open.validate(&token, now()).map(|_| ()),
            want_open,
            "{extra}"
        );
    }
}

#[test]
fn subject_must_be_a_non_empty_string() {
    let v = hs_validator(|_| {});
    for sub in [
        json!(""),
        json!(123),
        json!(null),
        json!(["u"]),
        json!({"id": "u"}),
    ] {
        let token = hs_token(&claims_with(json!({"sub": sub})));
        assert_eq!(
            v.validate(&token, now()).unwrap_err(),
            AuthError::MissingSubject,
            "{sub}"
        );
    }
    let mut c = claims_with(json!({}));
    c.remove("sub");
    let token = hs_token(&c);
    assert_eq!(
        v.validate(&token, now()).unwrap_err(),
        AuthError::MissingSubject
    );
    // `decode` is everything but the subject rule (what rust_jwt_decode returns).
    assert_eq!(v.decode(&token, now()).unwrap(), c);
}

#[test]
fn wse_topics_claim_becomes_the_topic_acl() {
    let v = hs_validator(|_| {});
    let token = hs_token(&claims_with(
        json!({"wse_topics": {"allow": ["a:*"], "deny": ["a:x"]}}),
    ));
    let acl = v.validate(&token, now()).unwrap().topic_acl.unwrap();
    assert_eq!(acl, TopicAcl::new(vec!["a:*".into()], vec!["a:x".into()]));
    let token = hs_token(&claims_with(json!({"wse_topics": ["a:*"]})));
    assert_eq!(v.validate(&token, now()).unwrap().topic_acl, None);
}

#[test]
fn algorithm_confusion_is_refused() {
    let (rsa, _) = rsa_keys();
    let rs = JwtValidator::new(&JwtSettings {
        secret: rsa.public.clone(),
        algorithm: JwtAlgorithm::Rs256,
        ..Default::default()
    })
    .unwrap();
    let hs = hs_validator(|_| {});
    let claims = claims_with(json!({}));

    // alg none, with and without a signature.
    let body = b64(&Value::Object(claims.clone()));
    let none = format!("{}.{body}.", b64(&json!({"alg": "none", "typ": "JWT"})));
    assert_eq!(
        hs.validate(&none, now()).unwrap_err(),
        AuthError::AlgorithmMismatch
    );
    assert_eq!(
        rs.validate(&none, now()).unwrap_err(),
        AuthError::AlgorithmMismatch
    );
    let no_alg = format!("{}.{body}.", b64(&json!({"typ": "JWT"})));
    assert_eq!(
        hs.validate(&no_alg, now()).unwrap_err(),
        AuthError::AlgorithmMismatch
    );

    // HS256 signed with the RSA public key PEM as the HMAC secret, against the RS256 validator.
    let forged = encode_jwt(&claims, &rsa.public, JwtAlgorithm::Hs256, None).unwrap();
    assert_eq!(
        rs.validate(&forged, now()).unwrap_err(),
        AuthError::AlgorithmMismatch
    );

    // The same HMAC signature under a header claiming RS256: the RSA check fails.
    let message = format!("{}.{body}", b64(&json!({"alg": "RS256", "typ": "JWT"})));
    let sig = forged.rsplit('.').next().unwrap();
    let relabelled = format!("{message}.{sig}");
    assert_eq!(
        rs.validate(&relabelled, now()).unwrap_err(),
        AuthError::BadSignature
    );

    // A genuine RS256 token against the HS256 validator.
    let rs_token = encode_jwt(&claims, &rsa.private, JwtAlgorithm::Rs256, None).unwrap();
    assert!(rs.validate(&rs_token, now()).is_ok());
    assert_eq!(
        hs.validate(&rs_token, now()).unwrap_err(),
        AuthError::AlgorithmMismatch
    );
}

#[test]
fn tampered_payload_or_wrong_key_fails_the_signature() {
    let v = hs_validator(|_| {});
    let token = hs_token(&claims_with(json!({})));
    let mut parts: Vec<&str> = token.split('.').collect();
    let evil = b64(&Value::Object(claims_with(json!({"sub": "admin"}))));
    parts[1] = &evil;
    assert_eq!(
        v.validate(&parts.join("."), now()).unwrap_err(),
        AuthError::BadSignature
    );
    let other = encode_jwt(&claims_with(json!({})), HS_OTHER, JwtAlgorithm::Hs256, None).unwrap();
    assert_eq!(
        v.validate(&other, now()).unwrap_err(),
        AuthError::BadSignature
    );
}

#[test]
fn kid_is_checked_before_the_signature() {
    let v = hs_validator(|s| s.key_id = Some("k1".into()));
    let c = claims_with(json!({}));
    let cases = [
        (
            encode_jwt(&c, HS_KEY, JwtAlgorithm::Hs256, Some("k1")).unwrap(),
            Ok(()),
        ),
        (
            encode_jwt(&c, HS_KEY, JwtAlgorithm::Hs256, Some("k2")).unwrap(),
            Err(AuthError::KidMismatch),
        ),
        (
            encode_jwt(&c, HS_KEY, JwtAlgorithm::Hs256, None).unwrap(),
            Err(AuthError::KidMismatch),
        ),
        // Wrong kid AND wrong key: the kid is reported, the signature never computed.
        (
            encode_jwt(&c, HS_OTHER, JwtAlgorithm::Hs256, Some("k2")).unwrap(),
            Err(AuthError::KidMismatch),
        ),
        (
            encode_jwt(&c, HS_OTHER, JwtAlgorithm::Hs256, Some("k1")).unwrap(),
            Err(AuthError::BadSignature),
        ),
    ];
    for (token, want) in cases {
        assert_eq!(v.validate(&token, now()).map(|_| ()), want);
    }
    // No key id configured: any kid passes.
    let k9 = encode_jwt(&c, HS_KEY, JwtAlgorithm::Hs256, Some("k9")).unwrap();
    assert!(hs_validator(|_| {}).validate(&k9, now()).is_ok());
}

#[test]
fn rotation_accepts_the_previous_key_only() {
    let v = hs_validator(|s| {
        s.previous_secret = Some(HS_PREVIOUS.to_vec());
        s.key_id = Some("new".into());
    });
    let c = claims_with(json!({}));
    let sign = |key: &[u8], kid: Option<&str>, claims: &Map<String, Value>| {
        encode_jwt(claims, key, JwtAlgorithm::Hs256, kid).unwrap()
    };
    let expired = claims_with(json!({"exp": NOW_SECS - 31}));
    let cases = [
        (sign(HS_KEY, Some("new"), &c), Ok(())),
        (sign(HS_PREVIOUS, None, &c), Ok(())),
        (sign(HS_PREVIOUS, Some("old"), &c), Ok(())),
        (sign(HS_PREVIOUS, Some("new"), &c), Ok(())),
        (
            sign(HS_OTHER, Some("new"), &c),
            Err(AuthError::BadSignature),
        ),
        (sign(HS_OTHER, None, &c), Err(AuthError::BadSignature)),
        // The current key with a wrong kid falls back to the previous key, which fails.
        (sign(HS_KEY, Some("old"), &c), Err(AuthError::BadSignature)),
        // Expiry is not a key problem: never "retried into success".
        (sign(HS_PREVIOUS, None, &expired), Err(AuthError::Expired)),
        (sign(HS_KEY, Some("new"), &expired), Err(AuthError::Expired)),
    ];
    for (i, (token, want)) in cases.into_iter().enumerate() {
        assert_eq!(v.validate(&token, now()).map(|_| ()), want, "case {i}");
    }
    // Without a previous key, the previous key's tokens are refused.
    let v = hs_validator(|_| {});
    assert_eq!(
        v.validate(&sign(HS_PREVIOUS, None, &c), now()).unwrap_err(),
        AuthError::BadSignature
    );
}

#[test]
fn rotation_works_for_rs256() {
    let (current, previous) = rsa_keys();
    let v = JwtValidator::new(&JwtSettings {
        secret: current.public.clone(),
        previous_secret: Some(previous.public.clone()),
        algorithm: JwtAlgorithm::Rs256,
        ..Default::default()
    })
    .unwrap();
    let c = claims_with(json!({}));
    for key in [&current.private, &previous.private] {
        let token = encode_jwt(&c, key, JwtAlgorithm::Rs256, None).unwrap();
        assert!(v.validate(&token, now()).is_ok());
    }
    let (ec, _) = ec_keys();
    let es = encode_jwt(&c, &ec.private, JwtAlgorithm::Es256, None).unwrap();
    assert_eq!(
        v.validate(&es, now()).unwrap_err(),
        AuthError::AlgorithmMismatch
    );
}

#[test]
fn oversize_tokens_are_refused_before_parsing() {
    let v = hs_validator(|_| {});
    let junk = "x".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(v.validate(&junk, now()).unwrap_err(), AuthError::TooLarge);
    // Find a valid token of exactly the limit: accepted; one byte longer: refused.
    let sized = |pad: usize, extra: bool| {
        let mut c = claims_with(json!({"pad": "p".repeat(pad)}));
        if extra {
            c.insert("x".into(), json!(1));
        }
        hs_token(&c)
    };
    let exact = (5000..6500)
        .flat_map(|pad| [sized(pad, false), sized(pad, true)])
        .find(|t| t.len() == MAX_TOKEN_BYTES)
        .expect("some padding reaches exactly 8192 bytes");
    assert!(v.validate(&exact, now()).is_ok());
    let over = (5000..6500)
        .flat_map(|pad| [sized(pad, false), sized(pad, true)])
        .find(|t| t.len() == MAX_TOKEN_BYTES + 1)
        .expect("some padding reaches exactly 8193 bytes");
    assert_eq!(v.validate(&over, now()).unwrap_err(), AuthError::TooLarge);
}

#[test]
fn malformed_tokens_table() {
    let v = hs_validator(|_| {});
    let header = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    let body = b64(&Value::Object(claims_with(json!({}))));
    let good = hs_token(&claims_with(json!({})));
    let sig = good.rsplit('.').next().unwrap().to_owned();
    let cases: Vec<(String, AuthError)> = vec![
        (String::new(), AuthError::Malformed),
        ("abc".into(), AuthError::Malformed),
        ("a.b".into(), AuthError::Malformed),
        (format!("{good}.extra"), AuthError::Malformed),
        (format!("!!!.{body}.{sig}"), AuthError::Malformed),
        (
            format!("{}.{body}.{sig}", URL_SAFE_NO_PAD.encode("not json")),
            AuthError::Malformed,
        ),
        (
            format!("{}.{body}.{sig}", b64(&json!(["HS256"]))),
            AuthError::Malformed,
        ),
        (format!("{header}.{body}.{sig}="), AuthError::Malformed),
        (format!("{header}.{body}.***"), AuthError::Malformed),
        ("é.é.é".into(), AuthError::Malformed),
        (format!("{header}.{body}.é"), AuthError::Malformed),
        (format!("{header}.{body}."), AuthError::BadSignature),
        (format!("{header}.{body}.AAAA"), AuthError::BadSignature),
    ];
    for (token, want) in cases {
        assert_eq!(
            v.validate(&token, now()).unwrap_err(),
            want,
            "token {token:?}"
        );
    }
}

#[test]
fn a_signed_payload_that_is_not_a_json_object_is_malformed() {
    let v = hs_validator(|_| {});
    for payload in ["[1,2]", "\"sub\"", "{\"exp\": 1e400}", "{bad json", "\u{0}"] {
        let message = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256"})),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = jsonwebtoken::EncodingKey::from_secret(HS_KEY);
        let sig =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        let token = format!("{message}.{sig}");
        assert_eq!(
            v.validate(&token, now()).unwrap_err(),
            AuthError::Malformed,
            "{payload}"
        );
    }
}

#[test]
fn authenticate_tries_cookie_then_bearer() {
    let v = hs_validator(|_| {});
    let good = hs_token(&claims_with(json!({"sub": "good"})));
    let other = hs_token(&claims_with(json!({"sub": "other"})));
    let expired = hs_token(&claims_with(json!({"exp": 1})));
    let forged = encode_jwt(&claims_with(json!({})), HS_OTHER, JwtAlgorithm::Hs256, None).unwrap();
    let cookie = |t: &str| format!("theme=dark; access_token={t}").into_bytes();
    let bearer = |t: &str| format!("Bearer {t}").into_bytes();
    type Case = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Result<&'static str, AuthError>,
    );
    let cases: Vec<Case> = vec![
        (None, None, Err(AuthError::Missing)),
        (Some(cookie(&good)), None, Ok("good")),
        (None, Some(bearer(&good)), Ok("good")),
        (Some(cookie(&good)), Some(bearer(&other)), Ok("good")),
        (Some(cookie(&good)), Some(bearer(&forged)), Ok("good")),
        // D4: a bad cookie does not hide a good header.
        (Some(cookie(&forged)), Some(bearer(&good)), Ok("good")),
        (Some(cookie(&expired)), Some(bearer(&good)), Ok("good")),
        // Both bad: the error of the last one tried (the header).
        (
            Some(cookie(&forged)),
            Some(bearer(&expired)),
            Err(AuthError::Expired),
        ),
        (
            Some(cookie(&expired)),
            Some(bearer(&forged)),
            Err(AuthError::BadSignature),
        ),
        (Some(cookie(&forged)), None, Err(AuthError::BadSignature)),
        (
            Some(cookie(&expired)),
            Some(bearer(&expired)),
            Err(AuthError::Expired),
        ),
        (Some(cookie("undefined")), Some(bearer(&good)), Ok("good")),
        (Some(cookie("null")), None, Err(AuthError::Missing)),
        (
            Some(b"access_token=".to_vec()),
            Some(b"Bearer ".to_vec()),
            Err(AuthError::Missing),
        ),
        (
            Some(b"access_token=\xff\xfe".to_vec()),
            Some(bearer(&good)),
            Ok("good"),
        ),
        (
            Some(b"\xc3\x28; \xe2\x82".to_vec()),
            Some(b"Bearer \xff".to_vec()),
            Err(AuthError::Missing),
        ),
        (Some(cookie("garbage")), None, Err(AuthError::Malformed)),
        (
            None,
            Some(b"Basic dXNlcjpwYXNz".to_vec()),
            Err(AuthError::Missing),
        ),
    ];
    for (i, (c, a, want)) in cases.into_iter().enumerate() {
        let got = v.authenticate(c.as_deref(), a.as_deref(), now());
        assert_eq!(
            got.as_ref().map(|c| c.sub.as_str()).map_err(|e| *e),
            want,
            "case {i}"
        );
    }
}

#[test]
fn authenticate_uses_the_configured_cookie_name() {
    let v = hs_validator(|s| s.cookie_name = Some("sess".into()));
    assert_eq!(v.cookie_name(), "sess");
    let good = hs_token(&claims_with(json!({})));
    let by_default_name = format!("access_token={good}");
    let by_custom_name = format!("sess={good}");
    let got = v.authenticate(Some(by_default_name.as_bytes()), None, now());
    assert_eq!(got.unwrap_err(), AuthError::Missing);
    assert!(
        v.authenticate(Some(by_custom_name.as_bytes()), None, now())
            .is_ok()
    );
    assert_eq!(hs_validator(|_| {}).cookie_name(), "access_token");
}

#[test]
fn construction_errors_name_the_field() {
    let (rsa, _) = rsa_keys();
    let (ec, _) = ec_keys();
    // The field `JwtValidator::new` names for these settings after `edit`, if any.
    let field = |mut s: JwtSettings, edit: &dyn Fn(&mut JwtSettings)| {
        edit(&mut s);
        JwtValidator::new(&s).err().map(|e| e.field)
    };
    let with_key = |secret: &[u8], algorithm| JwtSettings {
        secret: secret.to_vec(),
        algorithm,
        ..Default::default()
    };
    let rs =
        |edit: &dyn Fn(&mut JwtSettings)| field(with_key(&rsa.public, JwtAlgorithm::Rs256), edit);
    let es =
        |edit: &dyn Fn(&mut JwtSettings)| field(with_key(&ec.public, JwtAlgorithm::Es256), edit);
    let hs = |edit: &dyn Fn(&mut JwtSettings)| field(hs_settings(), edit);
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("hs ok", hs(&|_| {})),
        ("hs short", hs(&|s| s.secret = vec![b'k'; 31])),
        ("hs empty", hs(&|s| s.secret.clear())),
        (
            "hs short previous",
            hs(&|s| s.previous_secret = Some(b"short".to_vec())),
        ),
        (
            "hs private key ignored",
            hs(&|s| s.private_key = Some(b"whatever".to_vec())),
        ),
        ("rs ok", rs(&|s| s.private_key = Some(rsa.private.clone()))),
        (
            "rs garbage",
            rs(&|s| {
                s.secret = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec()
            }),
        ),
        ("rs not utf8", rs(&|s| s.secret = vec![0xff, 0xfe, 0x00])),
        ("rs hmac secret", rs(&|s| s.secret = HS_KEY.to_vec())),
        ("rs ec key", rs(&|s| s.secret = ec.public.clone())),
        (
            "rs private as public",
            rs(&|s| s.secret = rsa.private.clone()),
        ),
        (
            "rs bad previous",
            rs(&|s| s.previous_secret = Some(ec.public.clone())),
        ),
        (
            "rs private key is ec",
            rs(&|s| s.private_key = Some(ec.private.clone())),
        ),
        (
            "rs private key is public",
            rs(&|s| s.private_key = Some(rsa.public.clone())),
        ),
        (
            "rs private key garbage",
            rs(&|s| s.private_key = Some(b"nope".to_vec())),
        ),
        ("es ok", es(&|s| s.private_key = Some(ec.private.clone()))),
        ("es rsa key", es(&|s| s.secret = rsa.public.clone())),
        (
            "es private as public",
            es(&|s| s.secret = ec.private.clone()),
        ),
        (
            "es private key is rsa",
            es(&|s| s.private_key = Some(rsa.private.clone())),
        ),
    ];
    let want = [
        None,
        Some("jwt_secret"),
        Some("jwt_secret"),
        Some("jwt_previous_secret"),
        None,
        None,
        Some("jwt_secret"),
        Some("jwt_secret"),
        Some("jwt_secret"),
        Some("jwt_secret"),
        Some("jwt_secret"),
        Some("jwt_previous_secret"),
        Some("jwt_private_key"),
        Some("jwt_private_key"),
        Some("jwt_private_key"),
        None,
        Some("jwt_secret"),
        Some("jwt_secret"),
        Some("jwt_private_key"),
    ];
    assert_eq!(cases.len(), want.len());
    for ((name, got), want) in cases.into_iter().zip(want) {
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn ec_keys_on_another_curve_are_refused_for_es256() {
    // jsonwebtoken's loader takes any EC key; ours must insist on P-256. A P-256 key whose
    // curve OID is changed stands in for a key on another curve.
    let pem = String::from_utf8(ec_pair(4).public).unwrap();
    let der = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    // OID 1.2.840.10045.3.1.7 (prime256v1) ends in 0x07; make it ...3.1.6.
    let pos = der
        .windows(3)
        .position(|w| w == [0x03, 0x01, 0x07])
        .unwrap();
    der[pos + 2] = 0x06;
    let broken = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let s = JwtSettings {
        secret: broken.into_bytes(),
        algorithm: JwtAlgorithm::Es256,
        ..Default::default()
    };
    assert_eq!(JwtValidator::new(&s).unwrap_err().field, "jwt_secret");
}

#[test]
fn encode_errors_are_typed() {
    let (rsa, _) = rsa_keys();
    let (ec, _) = ec_keys();
    let c = claims_with(json!({}));
    assert_eq!(
        encode_jwt(&c, b"short", JwtAlgorithm::Hs256, None).unwrap_err(),
        JwtEncodeError::SecretTooShort { len: 5 }
    );
    for (key, alg) in [
        (&rsa.public, JwtAlgorithm::Rs256),
        (&ec.private, JwtAlgorithm::Rs256),
        (&rsa.private, JwtAlgorithm::Es256),
        (&ec.public, JwtAlgorithm::Es256),
    ] {
        let err = encode_jwt(&c, key, alg, None).unwrap_err();
        assert!(
            matches!(err, JwtEncodeError::InvalidKey { .. }),
            "{alg}: {err:?}"
        );
    }
}

proptest! {
    #[test]
    fn validate_never_panics_on_arbitrary_text(token in "\\PC{0,300}") {
        let v = hs_validator(|_| {});
        prop_assert!(v.validate(&token, now()).is_err());
    }

    #[test]
    fn validate_never_panics_on_arbitrary_parts(
        header in proptest::collection::vec(any::<u8>(), 0..64),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        sig in "[A-Za-z0-9_-]{0,50}",
    ) {
        let token = format!(
            "{}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let v = hs_validator(|_| {});
        prop_assert!(v.validate(&token, now()).is_err());
    }

    #[test]
    fn authenticate_never_panics_on_arbitrary_header_bytes(
        cookie in proptest::collection::vec(any::<u8>(), 0..80),
        auth in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let v = hs_validator(|_| {});
        prop_assert!(v.authenticate(Some(&cookie), Some(&auth), now()).is_err());
    }
}
