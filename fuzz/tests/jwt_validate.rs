//! Fuzz target: JWT validation (`wse_core::auth::JwtValidator::validate`).
//!
//! One HS256 validator with a fixed test secret, a required issuer and a required audience.
//! Input (see `wse_fuzz::split_mode`): raw token text (the corpus holds real tokens), or a
//! structured description of a token minted with `encode_jwt` from fuzzed
//! claims (right or wrong key; every time claim absent, past, future, negative or fractional;
//! issuer and audience right, wrong, missing or in an array), then optionally tampered with
//! (bit flips, truncation, appended bytes, an `alg: none` header, a payload re-signed with
//! another key).
//!
//! Invariant, for every input: the validator accepts exactly the tokens an independent
//! reference accepts, and returns exactly their claims. The reference recomputes the HMAC-SHA256
//! itself (`hmac` + `sha2`, not jsonwebtoken), so "accepted" means "really verifies". Never a
//! panic. For an untampered minted token, the decision is also predicted directly from the
//! claims that were put in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bolero::TypeGenerator;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use wse_core::WallClock;
use wse_core::auth::{JwtValidator, LEEWAY_SECS, MAX_TOKEN_BYTES, TopicAcl, encode_jwt};
use wse_core::config::{JwtAlgorithm, JwtSettings};
use wse_fuzz::{Mode, TEST_SECRET, name_from, split_mode, structured};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "wse";
const NOW_SECS: u64 = 1_764_000_000;
const WRONG_SECRET: &[u8] = b"another-secret-of-enough-length-0123456789";

#[derive(Debug, TypeGenerator)]
struct Mint {
    /// `sub`: 0 a name, 1 empty string, 2 a number, 3 absent.
    sub_kind: u8,
    sub: Vec<u8>,
    /// Offsets from now, in seconds; `None` leaves the claim out.
    exp: Option<i32>,
    nbf: Option<i32>,
    iat: Option<i32>,
    /// Write the time claims as floats (`x.25`, which rounds to `x`).
    float_times: bool,
    /// `iss`: 0 right, 1 wrong, 2 absent, 3 null.
    iss: u8,
    /// `aud`: 0 right, 1 wrong, 2 absent, 3 array holding it, 4 array without it.
    aud: u8,
    wrong_key: bool,
    kid: bool,
    topics: Option<(Vec<u8>, Vec<u8>)>,
    tamper: Tamper,
}

#[derive(Debug, TypeGenerator)]
enum Tamper {
    None,
    Flip { at: u16, bit: u8 },
    Truncate(u16),
    Append(Vec<u8>),
    AlgNone,
    ResignPayload,
}

#[test]
fn jwt_validate() {
    let validator = JwtValidator::new(&JwtSettings {
        secret: TEST_SECRET.to_vec(),
        algorithm: JwtAlgorithm::Hs256,
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..Default::default()
    })
    .expect("valid test settings");
    let now = WallClock::from_unix_millis(NOW_SECS * 1000);
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        Some((Mode::Raw, token)) => {
            check_token(&validator, now, &String::from_utf8_lossy(token));
        }
        Some((Mode::Structured, rest)) => {
            if let Some(mint) = structured::<Mint>(rest) {
                check_minted(&validator, now, &mint);
            }
        }
        None => {}
    });
}

fn check_token(validator: &JwtValidator, now: WallClock, token: &str) -> bool {
    let got = validator.validate(token, now);
    let want = reference_claims(token);
    match (&got, &want) {
        (Ok(claims), Some(want)) => {
            assert_eq!(&claims.claims, want, "claims of {token:?}");
            assert_eq!(Some(&Value::String(claims.sub.clone())), want.get("sub"));
            let acl = want.get("wse_topics").and_then(TopicAcl::from_claim);
            assert_eq!(claims.topic_acl, acl, "ACL of {token:?}");
        }
        (Err(_), None) => {}
        _ => panic!("token {token:?}: validator {got:?}, reference {want:?}"),
    }
    got.is_ok()
}

fn check_minted(validator: &JwtValidator, now: WallClock, mint: &Mint) {
    let claims = mint_claims(mint);
    let key = if mint.wrong_key {
        WRONG_SECRET
    } else {
        TEST_SECRET
    };
    let kid = mint.kid.then_some("k1");
    let token = encode_jwt(&claims, key, JwtAlgorithm::Hs256, kid).expect("HS256 minting");
    let tampered = tamper(&token, &mint.tamper);
    let accepted = check_token(validator, now, &tampered);
    if tampered == token {
        assert_eq!(accepted, predicted(mint), "minted {mint:?}");
    }
}

fn mint_claims(m: &Mint) -> Map<String, Value> {
    let mut c = Map::new();
    match m.sub_kind % 4 {
        0 => c.insert(
            "sub".into(),
            json!(format!("u{}", name_from(&m.sub, b"ab"))),
        ),
        1 => c.insert("sub".into(), json!("")),
        2 => c.insert("sub".into(), json!(7)),
        _ => None,
    };
    let time = |offset: i32| {
        let secs = NOW_SECS as i64 + i64::from(offset);
        if m.float_times {
            json!(secs as f64 + 0.25)
        } else {
            json!(secs)
        }
    };
    for (name, offset) in [("exp", m.exp), ("nbf", m.nbf), ("iat", m.iat)] {
        if let Some(offset) = offset {
            c.insert(name.into(), time(offset));
        }
    }
    match m.iss % 4 {
        0 => c.insert("iss".into(), json!(ISSUER)),
        1 => c.insert("iss".into(), json!("https://evil.test")),
        3 => c.insert("iss".into(), Value::Null),
        _ => None,
    };
    match m.aud % 5 {
        0 => c.insert("aud".into(), json!(AUDIENCE)),
        1 => c.insert("aud".into(), json!("other")),
        3 => c.insert("aud".into(), json!(["x", AUDIENCE])),
        4 => c.insert("aud".into(), json!(["x", "y"])),
        _ => None,
    };
    if let Some((allow, deny)) = &m.topics {
        let list = |b: &[u8]| {
            b.chunks(3)
                .map(|c| name_from(c, b"ab*"))
                .collect::<Vec<_>>()
        };
        c.insert(
            "wse_topics".into(),
            json!({"allow": list(allow), "deny": list(deny)}),
        );
    }
    c
}

/// The decision for an untampered minted token, from the claims that went into it.
fn predicted(m: &Mint) -> bool {
    let now = NOW_SECS as i64;
    let leeway = LEEWAY_SECS as i64;
    let at = |offset: i32| now + i64::from(offset);
    // Negative NumericDates are refused outright.
    let times_valid = [m.exp, m.nbf, m.iat].iter().flatten().all(|&o| at(o) >= 0);
    times_valid
        && !m.wrong_key
        && m.exp.is_some_and(|o| at(o) + leeway >= now)
        && m.nbf.is_none_or(|o| at(o) <= now + leeway)
        && m.iat.is_none_or(|o| at(o) <= now + leeway)
        && m.iss % 4 == 0
        && matches!(m.aud % 5, 0 | 3)
        && m.sub_kind % 4 == 0
}

fn tamper(token: &str, how: &Tamper) -> String {
    match how {
        Tamper::None => token.to_owned(),
        Tamper::Flip { at, bit } => {
            let mut bytes = token.as_bytes().to_vec();
            let i = usize::from(*at) % bytes.len();
            bytes[i] ^= 1 << (bit % 8);
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Tamper::Truncate(n) => {
            let n = usize::from(*n) % token.len();
            token[..n].to_owned()
        }
        Tamper::Append(extra) => format!("{token}{}", String::from_utf8_lossy(extra)),
        Tamper::AlgNone => {
            let rest = token.split_once('.').map_or("", |(_, r)| r);
            format!(
                "{}.{rest}",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
            )
        }
        Tamper::ResignPayload => {
            let mut parts = token.split('.');
            let (h, p) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let message = format!("{h}.{p}");
            format!(
                "{message}.{}",
                URL_SAFE_NO_PAD.encode(hmac(WRONG_SECRET, &message))
            )
        }
    }
}

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The reference validator: every rule of the module doc of `wse_core::auth::jwt`, with the
/// signature recomputed here.
fn reference_claims(token: &str) -> Option<Map<String, Value>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return None;
    };
    let object = |part: &str| match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    if object(header)?.get("alg")? != "HS256" {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if signature != hmac(TEST_SECRET, &format!("{header}.{payload}")) {
        return None;
    }
    let claims = object(payload)?;
    let date = |name: &str| -> Result<Option<u64>, ()> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => Ok(Some(u)),
                (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                    Ok(Some(f.round() as u64))
                }
                _ => Err(()),
            },
            Some(_) => Err(()),
        }
    };
    let (exp, nbf, iat) = (date("exp").ok()??, date("nbf").ok()?, date("iat").ok()?);
    let now = NOW_SECS;
    let ok_times = exp.saturating_add(LEEWAY_SECS) >= now
        && nbf.is_none_or(|t| t <= now + LEEWAY_SECS)
        && iat.is_none_or(|t| t <= now + LEEWAY_SECS);
    let ok_iss = claims.get("iss").and_then(Value::as_str) == Some(ISSUER);
    let ok_aud = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    let ok_sub = matches!(claims.get("sub"), Some(Value::String(s)) if !s.is_empty());
    (ok_times && ok_iss && ok_aud && ok_sub).then_some(claims)
}
