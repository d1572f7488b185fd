//! Helpers shared by the loopback test suites (each includes this module with `mod support;`).

use serde_json::{Value, json};
use wse_core::auth::encode_jwt;
use wse_core::config::JwtAlgorithm;

/// An HS256 token for `sub`, valid for ten minutes from now, signed with `secret`, with the
/// extra claims of `extra` (an object) merged in.
pub(crate) fn hs256_token(secret: &[u8], sub: &str, extra: Option<Value>) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + 600;
    let mut claims = json!({"sub": sub, "exp": exp});
    if let Some(Value::Object(more)) = extra {
        for (k, v) in more {
            claims[k] = v;
        }
    }
    encode_jwt(
        claims.as_object().expect("an object"),
        secret,
        JwtAlgorithm::Hs256,
        None,
    )
    .expect("a valid HS256 secret")
}
