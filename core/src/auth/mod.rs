//! Authentication and authorization, as pure functions of their inputs.
//!
//! | file | owns |
//! |---|---|
//! | `token.rs` | finding the token in the `Cookie` and `Authorization` headers |
//! | `jwt.rs` | [`JwtValidator`] (signature, time and claim checks against an injected clock), [`encode_jwt`] |
//! | `keys.rs` | strict parsing of secrets and PEM keys |
//! | `error.rs` | [`AuthError`] (peer-caused, mapped to `AUTH_REQUIRED` / `AUTH_FAILED`), [`JwtEncodeError`] |
//! | `origin.rs` | the `Origin` allow-list ([`OriginPolicy`], CONTRACT D3) |
//! | `acl.rs` | per-connection topic ACLs ([`TopicAcl`], CONTRACT D9) |
//!
//! Nothing here reads a clock or draws randomness: the validator takes `now: WallClock`, and
//! RS256 signing blinds with a generator seeded from the key and message.

mod acl;
mod error;
mod jwt;
mod keys;
mod origin;
mod token;

pub use acl::TopicAcl;
pub use error::{AuthError, JwtEncodeError};
pub use jwt::{Claims, JwtValidator, LEEWAY_SECS, MAX_TOKEN_BYTES, encode_jwt};
pub use keys::MIN_HS256_SECRET_BYTES;
pub use origin::OriginPolicy;
pub use token::{TokenCandidates, token_candidates};
