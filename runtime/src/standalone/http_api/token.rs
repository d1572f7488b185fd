//! `POST /api/token`: mints an HS256 JWT the server itself accepts (the console's own
//! WebSocket). Only HS256 can be minted: with RS256/ES256 the server holds a public key only.
//! Claims: `sub`, `iat`, `exp` = `iat + ttl_secs`, and `iss`/`aud` when the server checks them;
//! the header carries the configured `kid`, if any.

use serde_json::{Map, Value, json};
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings};

use super::body::{optional_u64, required_str};
use super::error::ApiError;
use crate::http::HttpResponse;

/// `ttl_secs` when none is given.
pub(super) const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
/// Longest `ttl_secs`: a leaked console token is good for a day at most.
pub(super) const MAX_TOKEN_TTL_SECS: u64 = 86_400;
/// Longest `sub`, in bytes (it is shown in events and presence; tokens stay far below the
/// validator's 8 KiB limit).
pub(super) const MAX_SUB_BYTES: usize = 256;

/// Answers `/api/token` with `now_unix_secs` as `iat`.
pub(super) fn token(
    jwt: Option<&JwtSettings>,
    body: &Map<String, Value>,
    now_unix_secs: u64,
) -> Result<HttpResponse, ApiError> {
    let jwt = hs256(jwt)?;
    let sub = required_str(body, "sub")?;
    if sub.is_empty() || sub.len() > MAX_SUB_BYTES {
        return Err(ApiError::invalid(
            "sub",
            &format!("must be 1 to {MAX_SUB_BYTES} bytes"),
        ));
    }
    let ttl_secs = optional_u64(body, "ttl_secs")?.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl_secs) {
        return Err(ApiError::invalid(
            "ttl_secs",
            &format!("expected an integer from 1 to {MAX_TOKEN_TTL_SECS}"),
        ));
    }
    let token = mint(jwt, sub, ttl_secs, now_unix_secs)?;
    tracing::info!(sub, ttl_secs, "HTTP API minted a token");
    Ok(HttpResponse::json(200, &json!({"token": token})))
}

/// The settings, when they hold an HS256 secret.
fn hs256(jwt: Option<&JwtSettings>) -> Result<&JwtSettings, ApiError> {
    match jwt {
        None => Err(ApiError::token_unavailable(
            "token minting needs the server's HS256 secret, and authentication is not configured",
        )),
        Some(s) if s.algorithm != JwtAlgorithm::Hs256 => {
            Err(ApiError::token_unavailable(&format!(
                "token minting needs an HS256 secret; the server verifies {} with a public key",
                s.algorithm.as_str()
            )))
        }
        Some(s) => Ok(s),
    }
}

/// Signs the claims of a token for `sub`.
fn mint(jwt: &JwtSettings, sub: &str, ttl_secs: u64, now: u64) -> Result<String, ApiError> {
    let claims = crate::standalone::claims::standard_claims(jwt, sub, ttl_secs, now);
    encode_jwt(
        &claims,
        &jwt.secret,
        JwtAlgorithm::Hs256,
        jwt.key_id.as_deref(),
    )
    .map_err(|e| ApiError::token_unavailable(&format!("cannot sign a token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wse_core::WallClock;
    use wse_core::auth::JwtValidator;

    fn settings() -> JwtSettings {
        JwtSettings {
            secret: b"a-console-secret-of-at-least-32-bytes!".to_vec(),
            issuer: Some("wse".into()),
            audience: Some("console".into()),
            key_id: Some("k1".into()),
            ..Default::default()
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_minted_token_passes_the_servers_own_validation() {
        let s = settings();
        let now = 1_700_000_000;
        let token = mint(&s, "console", 60, now).unwrap();
        let validator = JwtValidator::new(&s).unwrap();
        let claims = validator
            .validate(&token, WallClock::from_unix_micros(now * 1_000_000))
            .unwrap();
        assert_eq!(claims.sub, "console");
        assert_eq!(claims.claims["exp"], now + 60);
        assert_eq!(claims.claims["iss"], "wse");
        assert_eq!(claims.claims["aud"], "console");
        let later = WallClock::from_unix_micros((now + 60 + 31) * 1_000_000);
        assert!(
            validator.validate(&token, later).is_err(),
            "expired after ttl"
        );
    }

    #[test]
    fn minting_without_an_hs256_secret_is_409() {
        let b = body(json!({"sub": "x"}));
        assert_eq!(token(None, &b, 0).unwrap_err().status(), 409);
        let rs = JwtSettings {
            algorithm: JwtAlgorithm::Rs256,
            ..settings()
        };
        assert_eq!(token(Some(&rs), &b, 0).unwrap_err().status(), 409);
    }

    #[test]
    fn sub_and_ttl_are_checked() {
        let s = settings();
        for bad in [
            json!({}),
            json!({"sub": ""}),
            json!({"sub": 7}),
            json!({"sub": "x".repeat(MAX_SUB_BYTES + 1)}),
            json!({"sub": "x", "ttl_secs": 0}),
            json!({"sub": "x", "ttl_secs": MAX_TOKEN_TTL_SECS + 1}),
            json!({"sub": "x", "ttl_secs": "60"}),
        ] {
            assert_eq!(
                token(Some(&s), &body(bad.clone()), 0).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
        assert!(token(Some(&s), &body(json!({"sub": "x"})), 0).is_ok());
    }
}
