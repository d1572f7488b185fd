//! Where the token comes from: the cookie header and the `Authorization` header (UPSTREAM §1.3).
//!
//! Input: the raw header values as bytes, exactly as they arrived (they may be non-ASCII or not
//! UTF-8 at all) and the configured cookie name. Output: [`TokenCandidates`], the two places a
//! token may have been found, borrowed from the input. Nothing here validates a token; the order
//! in which candidates are tried belongs to [`crate::auth::JwtValidator::authenticate`].
//!
//! Invariants: never panics, never allocates; a value that is not UTF-8 counts as absent.

/// The tokens a handshake request offers, at most one per source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCandidates<'a> {
    /// The value of the `<cookie_name>=` cookie, trimmed; absent when empty, `undefined` or `null`.
    pub cookie: Option<&'a str>,
    /// What follows `Bearer ` (any case) in the `Authorization` header; absent when empty.
    pub bearer: Option<&'a str>,
}

/// Finds the token candidates in the raw `Cookie` and `Authorization` header values.
///
/// Cookie: the header is split on `;`, each part trimmed; the first part starting with
/// `<cookie_name>=` supplies the value, itself trimmed. No quote stripping, no URL decoding (as
/// the original). A value that is empty, `undefined` or `null` (what browsers and JS clients
/// leave behind after a logout) or not UTF-8 is absent.
///
/// Bearer: the first 7 bytes must equal `bearer ` case-insensitively; the token is the rest,
/// untrimmed. An empty or non-UTF-8 rest is absent.
pub fn token_candidates<'a>(
    cookie_header: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    cookie_name: &str,
) -> TokenCandidates<'a> {
    TokenCandidates {
        cookie: cookie_header.and_then(|h| cookie_value(h, cookie_name)),
        bearer: authorization.and_then(bearer_value),
    }
}

fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    let name = name.as_bytes();
    let value = header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .find_map(|part| part.strip_prefix(name)?.strip_prefix(b"="))?
        .trim_ascii();
    let value = std::str::from_utf8(value).ok()?;
    match value {
        "" | "undefined" | "null" => None,
        v => Some(v),
    }
}

fn bearer_value(header: &[u8]) -> Option<&str> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") || rest.is_empty() {
        return None;
    }
    std::str::from_utf8(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(h: &[u8]) -> Option<&str> {
        token_candidates(Some(h), None, "access_token").cookie
    }

    fn bearer(h: &[u8]) -> Option<&str> {
        token_candidates(None, Some(h), "access_token").bearer
    }

    #[test]
    fn cookie_extraction_table() {
        let cases: [(&[u8], Option<&str>); 14] = [
            (b"access_token=abc", Some("abc")),
            (b"a=1; access_token=abc; b=2", Some("abc")),
            (b"a=1;access_token= abc ;b=2", Some("abc")),
            (b"  access_token=abc  ", Some("abc")),
            (b"access_token=\"abc\"", Some("\"abc\"")),
            (b"access_token=a%20b", Some("a%20b")),
            (b"access_token=", None),
            (b"access_token=   ", None),
            (b"access_token=undefined", None),
            (b"access_token=null", None),
            (b"my_access_token=abc", None),
            (b"access_tokenx=abc", None),
            (b"", None),
            (b"access_token=first; access_token=second", Some("first")),
        ];
        for (header, want) in cases {
            assert_eq!(
                cookie(header),
                want,
                "header {:?}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn custom_cookie_name_is_honoured() {
        let c = token_candidates(Some(b"access_token=a; sess=b"), None, "sess");
        assert_eq!(c.cookie, Some("b"));
    }

    #[test]
    fn non_utf8_or_non_ascii_cookie_bytes_never_panic() {
        // A broken neighbour cookie does not hide ours; a broken value of ours is absent.
        assert_eq!(cookie(b"x=\xff\xfe; access_token=abc"), Some("abc"));
        assert_eq!(cookie(b"access_token=\xff\xfe"), None);
        assert_eq!(cookie("access_token=jété".as_bytes()), Some("jété"));
        assert_eq!(cookie(b"\xff;\xff=;=;;;"), None);
    }

    #[test]
    fn bearer_extraction_table() {
        let cases: [(&[u8], Option<&str>); 10] = [
            (b"Bearer abc", Some("abc")),
            (b"bearer abc", Some("abc")),
            (b"BEARER abc", Some("abc")),
            (b"Bearer  abc ", Some(" abc ")),
            (b"Bearer ", None),
            (b"Bearer", None),
            (b"Basic abc", None),
            (b"Bearerabc", None),
            (b"Bearer \xff", None),
            (b"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", None),
        ];
        for (header, want) in cases {
            assert_eq!(
                bearer(header),
                want,
                "header {:?}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn a_multibyte_character_straddling_the_scheme_boundary_does_not_panic() {
        // Byte 7 splits "é": slicing by bytes must not assume a char boundary.
        assert_eq!(bearer("bearer\u{e9}x".as_bytes()), None);
        assert_eq!(bearer("Bearer é".as_bytes()), Some("é"));
    }
}
