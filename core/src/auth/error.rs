//! Why a token was refused ([`AuthError`]) or could not be minted ([`JwtEncodeError`]).
//!
//! [`AuthError`] is peer-caused: it never carries the token or a secret, and it maps onto the two
//! wire codes the original server sends before closing with 4401 (UPSTREAM §1.5): `AUTH_REQUIRED`
//! when no token was presented, `AUTH_FAILED` for everything else. The variants stay precise so
//! logs and metrics can tell an expired token from a forged one; the client only ever sees the
//! coarse message.

/// Why authentication failed. The client sees only [`AuthError::code`] and
/// [`AuthError::client_message`]; the variant is for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthError {
    /// Neither a usable cookie nor an `Authorization: Bearer` header was presented.
    #[error("no token presented")]
    Missing,
    /// The token is longer than [`crate::auth::MAX_TOKEN_BYTES`].
    #[error("token longer than 8192 bytes")]
    TooLarge,
    /// Not three base64url parts, or a header/payload that is not a JSON object.
    #[error("malformed token")]
    Malformed,
    /// The header `alg` is not the one algorithm the server accepts (this includes `none`).
    #[error("token algorithm is not the configured one")]
    AlgorithmMismatch,
    /// A key id is configured and the header `kid` differs (or is absent).
    #[error("token kid does not match the configured key id")]
    KidMismatch,
    /// The signature does not verify with the current (nor the previous) key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` + leeway is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is beyond now + leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is beyond now + leeway (CONTRACT D4).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// No `exp` claim: it is required.
    #[error("token has no exp claim")]
    MissingExpiry,
    /// A time claim (`exp`, `nbf`, `iat`) is not a non-negative number representable in seconds.
    #[error("claim {0} is not a numeric date")]
    BadTimeClaim(&'static str),
    /// An issuer is configured and `iss` is a different value.
    #[error("issuer mismatch")]
    BadIssuer,
    /// An issuer is configured and the token has no `iss` (CONTRACT D4).
    #[error("token has no iss claim")]
    MissingIssuer,
    /// An audience is configured and `aud` neither equals nor contains it.
    #[error("audience mismatch")]
    BadAudience,
    /// An audience is configured and the token has no `aud` (CONTRACT D4).
    #[error("token has no aud claim")]
    MissingAudience,
    /// `sub` is absent, not a string, or empty.
    #[error("token has no usable sub claim")]
    MissingSubject,
}

impl AuthError {
    /// The `error` frame's `code`: `AUTH_REQUIRED` when no token was presented, else `AUTH_FAILED`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "AUTH_REQUIRED",
            _ => "AUTH_FAILED",
        }
    }

    /// The `error` frame's `message`, exactly as the original server words it (UPSTREAM §1.5).
    pub fn client_message(&self) -> &'static str {
        match self {
            AuthError::Missing => "No JWT cookie or Authorization header",
            AuthError::MissingSubject => "Token missing user ID",
            _ => "Authentication failed",
        }
    }
}

/// Why [`crate::auth::encode_jwt`] could not produce a token. Caller misuse, not peer input: the
/// Python binding raises `ValueError` for [`JwtEncodeError::SecretTooShort`] and
/// `RuntimeError("JWT encode error: ...")` for the rest, as the original does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtEncodeError {
    /// HS256 secrets must be at least 32 bytes.
    #[error("HS256 secret must be at least 32 bytes, got {len}")]
    SecretTooShort {
        /// Length of the secret given.
        len: usize,
    },
    /// The key is not a PEM private key of the algorithm's kind.
    #[error("invalid {algorithm} private key: {reason}")]
    InvalidKey {
        /// The algorithm the key was meant for.
        algorithm: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The signer failed (should not happen with a valid key).
    #[error("signing failed: {0}")]
    Signing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_follow_the_original_wording() {
        let cases = [
            (
                AuthError::Missing,
                "AUTH_REQUIRED",
                "No JWT cookie or Authorization header",
            ),
            (
                AuthError::MissingSubject,
                "AUTH_FAILED",
                "Token missing user ID",
            ),
            (AuthError::Expired, "AUTH_FAILED", "Authentication failed"),
            (
                AuthError::BadSignature,
                "AUTH_FAILED",
                "Authentication failed",
            ),
            (
                AuthError::BadTimeClaim("exp"),
                "AUTH_FAILED",
                "Authentication failed",
            ),
        ];
        for (err, code, msg) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.client_message(), msg, "{err:?}");
        }
    }
}
