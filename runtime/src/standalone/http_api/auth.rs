//! API key check: `Authorization: apikey <key>` (scheme case-insensitive, RFC 9110 §11.1),
//! compared in constant time so response timing does not reveal how much of a guess was right.

/// True when `authorization` carries the `apikey` scheme and exactly `api_key`. An empty
/// configured key matches nothing (fail closed).
pub(super) fn is_authorized(authorization: Option<&[u8]>, api_key: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let value = value.trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, presented) = value.split_at(space);
    scheme.eq_ignore_ascii_case(b"apikey")
        && !api_key.is_empty()
        && constant_time_eq(presented.trim_ascii(), api_key.as_bytes())
}

/// Byte equality whose running time depends only on the lengths: every byte of the longer
/// input is visited and differences are OR-ed, never branched on.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    // Keeps the optimiser from turning the loop into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apikey_scheme_with_the_exact_key_is_accepted_whatever_the_scheme_case() {
        assert!(is_authorized(Some(b"apikey s3cret"), "s3cret"));
        assert!(is_authorized(Some(b"ApiKey   s3cret "), "s3cret"));
    }

    #[test]
    fn other_schemes_keys_and_prefixes_are_refused() {
        assert!(!is_authorized(None, "s3cret"));
        assert!(!is_authorized(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!is_authorized(Some(b"apikey s3cre"), "s3cret"));
        assert!(!is_authorized(Some(b"apikey s3cretX"), "s3cret"));
        assert!(!is_authorized(Some(b"apikey"), "s3cret"));
        assert!(!is_authorized(Some(b"apikeys3cret"), "s3cret"));
    }

    #[test]
    fn an_empty_configured_key_matches_nothing() {
        assert!(!is_authorized(Some(b"apikey "), ""));
        assert!(!is_authorized(Some(b"apikey x"), ""));
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"\0", b""));
    }
}
