//! The claims of tokens this server mints (`wse token`, `POST /api/token`): `sub`, `iat`,
//! `exp = iat + ttl`, and the `iss`/`aud` the server requires, so a minted token always passes
//! the server's own validation.

use serde_json::{Map, Value};
use wse_core::config::JwtSettings;

/// The standard claims for `sub`, issued at `now_secs` (Unix seconds) for `ttl_secs`.
pub fn standard_claims(
    jwt: &JwtSettings,
    sub: &str,
    ttl_secs: u64,
    now_secs: u64,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), now_secs.into());
    claims.insert("exp".into(), now_secs.saturating_add(ttl_secs).into());
    for (claim, value) in [("iss", &jwt.issuer), ("aud", &jwt.audience)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            claims.insert(claim.into(), v.into());
        }
    }
    claims
}
