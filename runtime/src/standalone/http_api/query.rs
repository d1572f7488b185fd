//! Query strings: `k=v&k2=v2` pairs, percent-decoded (`%XX`, and `+` as a space, as HTML forms
//! and `URLSearchParams` encode it). A malformed escape or a result that is not UTF-8 is a 400
//! naming the parameter, never a silent guess. The query is bounded by the request head limit.

use super::error::ApiError;

/// The decoded parameters of one request, in order; the first occurrence of a name wins.
#[derive(Debug, Default)]
pub(super) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes every pair of `raw` (the query without `?`).
    pub(super) fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k)
                .map_err(|e| ApiError::invalid("query", &format!("parameter name {e}")))?;
            let value = percent_decode(v).map_err(|e| ApiError::invalid(&key, &e.to_string()))?;
            pairs.push((key, value));
        }
        Ok(Query { pairs })
    }

    /// The value of `name`, if given.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or a 400 `missing_field` naming it.
    pub(super) fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }
}

/// Why a component could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum DecodeError {
    /// `%` not followed by two hex digits.
    #[error("bad percent-encoding (`%` must be followed by two hex digits)")]
    BadEscape,
    /// The decoded bytes are not UTF-8.
    #[error("not UTF-8 once percent-decoded")]
    NotUtf8,
}

/// Decodes `%XX` escapes and `+` (a space) in one query component.
pub(super) fn percent_decode(component: &str) -> Result<String, DecodeError> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(DecodeError::BadEscape);
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_plus_signs_are_decoded() {
        assert_eq!(percent_decode("room%20one").unwrap(), "room one");
        assert_eq!(percent_decode("a+b%2Bc").unwrap(), "a b+c");
        assert_eq!(percent_decode("chat%2fx%2F").unwrap(), "chat/x/");
        assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode("plain.topic").unwrap(), "plain.topic");
        assert_eq!(percent_decode("").unwrap(), "");
    }

    #[test]
    fn truncated_or_non_hex_escapes_are_refused() {
        for bad in ["%", "%4", "a%zz", "%g0", "x%2"] {
            assert_eq!(percent_decode(bad), Err(DecodeError::BadEscape), "{bad}");
        }
    }

    #[test]
    fn escapes_that_decode_to_invalid_utf8_are_refused() {
        assert_eq!(percent_decode("%FF"), Err(DecodeError::NotUtf8));
        assert_eq!(percent_decode("%C3"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn the_first_occurrence_wins_and_names_are_decoded_too() {
        let q = Query::parse(Some("topic=a%20b&limit=5&topic=c&my%20key=v&flag")).unwrap();
        assert_eq!(q.get("topic"), Some("a b"));
        assert_eq!(q.get("limit"), Some("5"));
        assert_eq!(q.get("my key"), Some("v"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("absent"), None);
        assert_eq!(q.require("absent").unwrap_err().status(), 400);
    }

    #[test]
    fn a_bad_value_is_a_400_naming_the_parameter() {
        let err = Query::parse(Some("topic=%zz")).unwrap_err();
        let body = String::from_utf8(err.into_response().body.to_vec()).unwrap();
        assert!(body.contains("topic: bad percent-encoding"), "{body}");
        assert!(Query::parse(None).unwrap().get("topic").is_none());
    }
}
