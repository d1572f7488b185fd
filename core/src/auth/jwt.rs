//! JWT validation (UPSTREAM §1.4 with CONTRACT D4) and minting (UPSTREAM §7.11).
//!
//! [`JwtValidator`] is built once from [`JwtSettings`] and then answers, for a token and the
//! current wall-clock time, either the verified [`Claims`] or the precise [`AuthError`]. The
//! time is an input: jsonwebtoken's own `exp`/`nbf` checks read the system clock, so they are
//! never used; jsonwebtoken only verifies signatures here.
//!
//! Order of checks (each failure stops):
//! 1. size (> 8192 bytes: [`AuthError::TooLarge`]), then shape: three base64url parts, header a
//!    JSON object;
//! 2. header `alg` equals the one configured algorithm (so `none`, and HS256 tokens against an
//!    RS256 key, are refused before any key is used);
//! 3. current key: `kid` (when configured), then signature. On a `kid` or signature failure
//!    with a previous key configured: the previous key, signature only (rotation);
//! 4. payload a JSON object; `exp` required; `exp`, `nbf`, `iat` numeric dates checked against
//!    `now` with a 30 s leeway; configured `iss`/`aud` required and matching (D4);
//! 5. `sub` a non-empty string; `wse_topics` an object → the connection's [`TopicAcl`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};

use super::acl::TopicAcl;
use super::error::AuthError;
use super::keys::{jwt_alg, signing_key, verifying_key};
use super::token::token_candidates;
use crate::config::{ConfigError, JwtAlgorithm, JwtSettings};
use crate::time::WallClock;

/// Longest accepted token, in bytes; longer ones are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The verified content of a token.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// The `sub` claim: the connection's user id. Never empty.
    pub sub: String,
    /// The ACL from the `wse_topics` claim, when it is a JSON object.
    pub topic_acl: Option<TopicAcl>,
    /// Every claim of the payload, `sub` and `wse_topics` included.
    pub claims: Map<String, Value>,
}

/// Validates tokens for one configuration. Built once; immutable, `Send + Sync`, cheap to share.
pub struct JwtValidator {
    algorithm: JwtAlgorithm,
    current: DecodingKey,
    previous: Option<DecodingKey>,
    key_id: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    cookie_name: String,
}

impl std::fmt::Debug for JwtValidator {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("algorithm", &self.algorithm)
            .field("previous_key", &self.previous.is_some())
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// Parses and checks every key of `settings`. Errors name the field at fault:
    /// `jwt_secret` / `jwt_previous_secret` (HS256: shorter than 32 bytes; RS256/ES256: not a
    /// PEM public key of that kind) and `jwt_private_key` (RS256/ES256: not a PEM private key of
    /// that kind; it is then dropped, as the original does; with HS256 it is ignored).
    /// Empty `issuer`, `audience` and `key_id` mean "not configured".
    pub fn new(settings: &JwtSettings) -> Result<JwtValidator, ConfigError> {
        let alg = settings.algorithm;
        let current =
            verifying_key(&settings.secret, alg).map_err(|r| ConfigError::new("jwt_secret", r))?;
        let previous = settings
            .previous_secret
            .as_deref()
            .map(|k| verifying_key(k, alg))
            .transpose()
            .map_err(|r| ConfigError::new("jwt_previous_secret", r))?;
        if let (Some(pk), JwtAlgorithm::Rs256 | JwtAlgorithm::Es256) = (&settings.private_key, alg)
        {
            signing_key(pk, alg).map_err(|r| ConfigError::new("jwt_private_key", r))?;
        }
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(JwtValidator {
            algorithm: alg,
            current,
            previous,
            key_id: non_empty(&settings.key_id),
            issuer: non_empty(&settings.issuer),
            audience: non_empty(&settings.audience),
            cookie_name: settings.cookie_name().to_owned(),
        })
    }

    /// The cookie that carries the token (`access_token` unless configured).
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The one accepted algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Authenticates a handshake from its raw `Cookie` and `Authorization` header values.
    ///
    /// The cookie token is tried first; if it is absent **or invalid**, the bearer token is
    /// tried (CONTRACT D4: a stale cookie must not hide a good header). Neither present:
    /// [`AuthError::Missing`]. Both invalid: the bearer token's error. The same token in both
    /// places (as the Python client sends) is validated once.
    pub fn authenticate(
        &self,
        cookie_header: Option<&[u8]>,
        authorization: Option<&[u8]>,
        now: WallClock,
    ) -> Result<Claims, AuthError> {
        let found = token_candidates(cookie_header, authorization, &self.cookie_name);
        match (found.cookie, found.bearer) {
            (None, None) => Err(AuthError::Missing),
            (Some(token), None) | (None, Some(token)) => self.validate(token, now),
            (Some(cookie), Some(bearer)) => match self.validate(cookie, now) {
                Ok(claims) => Ok(claims),
                Err(e) if cookie == bearer => Err(e),
                Err(_) => self.validate(bearer, now),
            },
        }
    }

    /// Validates one token at wall-clock time `now`: every rule of the module doc, `sub`
    /// included.
    pub fn validate(&self, token: &str, now: WallClock) -> Result<Claims, AuthError> {
        let claims = self.decode(token, now)?;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(AuthError::MissingSubject),
        };
        let topic_acl = claims.get("wse_topics").and_then(TopicAcl::from_claim);
        Ok(Claims {
            sub,
            topic_acl,
            claims,
        })
    }

    /// Every check of [`JwtValidator::validate`] except `sub`: what `rust_jwt_decode` needs
    /// (it returns the claims of a token without a subject).
    pub fn decode(&self, token: &str, now: WallClock) -> Result<Map<String, Value>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header = decode_object(header_b64)?;
        if header.get("alg").and_then(Value::as_str) != Some(self.algorithm.as_str()) {
            return Err(AuthError::AlgorithmMismatch);
        }
        if URL_SAFE_NO_PAD.decode(signature_b64).is_err() {
            return Err(AuthError::Malformed);
        }
        let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        let signed = Signed {
            header: &header,
            message,
            signature_b64,
        };
        match (
            self.check_key(&signed, &self.current, self.key_id.as_deref()),
            &self.previous,
        ) {
            (Ok(()), _) => {}
            // Rotation: the old key predates the kid, so only its signature counts.
            (Err(AuthError::BadSignature | AuthError::KidMismatch), Some(previous)) => {
                self.check_key(&signed, previous, None)?;
            }
            (Err(e), _) => return Err(e),
        }
        let claims = decode_object(payload_b64)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_key(
        &self,
        signed: &Signed<'_>,
        key: &DecodingKey,
        key_id: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(want) = key_id
            && signed.header.get("kid").and_then(Value::as_str) != Some(want)
        {
            return Err(AuthError::KidMismatch);
        }
        let alg = jwt_alg(self.algorithm);
        match jsonwebtoken::crypto::verify(signed.signature_b64, signed.message, key, alg) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(AuthError::BadSignature),
        }
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: WallClock) -> Result<(), AuthError> {
        let now = now.unix_secs();
        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingExpiry)?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        if exp.saturating_add(LEEWAY_SECS) < now {
            return Err(AuthError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
            return Err(AuthError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECS)) {
            return Err(AuthError::IssuedInFuture);
        }
        if let Some(want) = &self.issuer {
            match claims.get("iss") {
                None | Some(Value::Null) => return Err(AuthError::MissingIssuer),
                Some(Value::String(iss)) if iss == want => {}
                Some(_) => return Err(AuthError::BadIssuer),
            }
        }
        if let Some(want) = &self.audience {
            match claims.get("aud") {
                None | Some(Value::Null) => return Err(AuthError::MissingAudience),
                Some(Value::String(aud)) if aud == want => {}
                Some(Value::Array(auds)) if auds.iter().any(|a| a.as_str() == Some(want)) => {}
                Some(_) => return Err(AuthError::BadAudience),
            }
        }
        Ok(())
    }
}

/// The parts of a token the signature covers.
struct Signed<'a> {
    header: &'a Map<String, Value>,
    message: &'a [u8],
    signature_b64: &'a str,
}

/// A base64url (unpadded) JSON object, or [`AuthError::Malformed`].
fn decode_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed),
    }
}

/// A NumericDate claim in whole seconds: absent (or `null`) is `None`; a non-negative integer
/// or finite float below 2^64 (rounded, as jsonwebtoken does) is `Some`; anything else is
/// [`AuthError::BadTimeClaim`].
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    let n = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(_) => return Err(AuthError::BadTimeClaim(name)),
    };
    if let Some(secs) = n.as_u64() {
        return Ok(Some(secs));
    }
    match n.as_f64() {
        // `as` saturates; the range check keeps the rounding meaningful.
        Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f.round() as u64)),
        _ => Err(AuthError::BadTimeClaim(name)),
    }
}

/// Mints a token: header `{"typ":"JWT","alg":..,"kid":..}` (jsonwebtoken's field order, as the
/// original), payload `claims` as given (no `exp`/`iat` added). HS256 needs a secret of at
/// least 32 bytes; RS256 a PEM private key (PKCS#8 or PKCS#1); ES256 a PKCS#8 PEM P-256 private
/// key. Deterministic: the same inputs give the same token, and no OS randomness is drawn.
pub fn encode_jwt(
    claims: &Map<String, Value>,
    key: &[u8],
    algorithm: JwtAlgorithm,
    key_id: Option<&str>,
) -> Result<String, super::JwtEncodeError> {
    use super::JwtEncodeError;
    if algorithm == JwtAlgorithm::Hs256 && key.len() < super::keys::MIN_HS256_SECRET_BYTES {
        return Err(JwtEncodeError::SecretTooShort { len: key.len() });
    }
    let signer = signing_key(key, algorithm).map_err(|reason| JwtEncodeError::InvalidKey {
        algorithm: algorithm.as_str(),
        reason,
    })?;
    let mut header = jsonwebtoken::Header::new(jwt_alg(algorithm));
    header.kid = key_id.map(str::to_owned);
    let header_json =
        serde_json::to_vec(&header).map_err(|e| JwtEncodeError::Signing(e.to_string()))?;
    let claims_json =
        serde_json::to_vec(claims).map_err(|e| JwtEncodeError::Signing(e.to_string()))?;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(claims_json)
    );
    let signature = signer
        .sign(message.as_bytes(), algorithm)
        .map_err(JwtEncodeError::Signing)?;
    Ok(format!("{message}.{signature}"))
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
