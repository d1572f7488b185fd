//! The `Origin` allow-list (CONTRACT D3; the original has none, UPSTREAM §1.9).
//!
//! Input: the configured entries (`allowed_origins=` or the `ALLOWED_ORIGINS` env var) and the
//! raw `Origin` header bytes of a handshake. Output: allowed or not; the caller rejects with an
//! `ORIGIN_FORBIDDEN` error frame and close 4403.
//!
//! Decisions:
//! - An empty list disables the check (upstream-compatible default).
//! - **A request without an `Origin` header is allowed.** `Origin` is a browser defence against
//!   cross-site WebSocket hijacking: browsers always send it on WebSocket handshakes, so a
//!   missing header means a non-browser client (such as the published Python client, which sends
//!   none). Such a client can forge any Origin anyway; authenticating it is the JWT's job.
//! - Entries are exact origins (`https://app.example.com`, `http://localhost:3000`) or globs in
//!   the [`crate::glob`] dialect (`https://*.example.com`). Comparison is ASCII
//!   case-insensitive (scheme and host are case-insensitive; an origin has no path) and ignores
//!   one trailing `/` on either side.
//! - The opaque origin `null` (sandboxed iframes, `file:` pages) is allowed only when an entry
//!   is exactly `null`; no glob matches it.
//! - An `Origin` value that is not UTF-8 is refused.

use crate::config::ConfigError;
use crate::glob::{glob_match, is_glob};

const FIELD: &str = "allowed_origins";

/// The compiled allow-list. Cheap to share; immutable after construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Normalised exact origins, sorted for binary search.
    exact: Vec<String>,
    /// Normalised glob entries, in configuration order.
    globs: Vec<String>,
    /// Whether `null` is listed.
    allow_null: bool,
}

impl OriginPolicy {
    /// Compiles `allowed`. Each entry must be `null` or `scheme://host[:port]` (globs allowed,
    /// no path, no whitespace); an error names the field `allowed_origins` and the entry.
    pub fn new(allowed: &[String]) -> Result<OriginPolicy, ConfigError> {
        let mut policy = OriginPolicy::default();
        for entry in allowed {
            let norm = normalise(entry);
            check_entry(entry, &norm)?;
            if norm == "null" {
                policy.allow_null = true;
            } else if is_glob(&norm) {
                policy.globs.push(norm);
            } else {
                policy.exact.push(norm);
            }
        }
        policy.exact.sort();
        policy.exact.dedup();
        Ok(policy)
    }

    /// Compiles the `ALLOWED_ORIGINS` environment value: comma-separated, blank items ignored,
    /// so an empty or all-blank value disables the check.
    pub fn from_env_value(value: &str) -> Result<OriginPolicy, ConfigError> {
        let entries: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        OriginPolicy::new(&entries)
    }

    /// Whether any entry is configured; when not, [`OriginPolicy::allows`] accepts everything.
    pub fn is_enabled(&self) -> bool {
        self.allow_null || !self.exact.is_empty() || !self.globs.is_empty()
    }

    /// Is a handshake with this `Origin` header value (`None` = header absent) allowed?
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let Some(raw) = origin else {
            // No Origin: not a browser; see the module doc.
            return true;
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            return false;
        };
        let origin = normalise(text);
        if origin == "null" {
            return self.allow_null;
        }
        if origin.is_empty() {
            return false;
        }
        self.exact.binary_search(&origin).is_ok()
            || self.globs.iter().any(|g| glob_match(g, &origin))
    }
}

/// Trimmed, ASCII-lowercased, one trailing `/` removed.
fn normalise(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_suffix('/').unwrap_or(s);
    s.to_ascii_lowercase()
}

fn check_entry(raw: &str, norm: &str) -> Result<(), ConfigError> {
    if norm == "null" {
        return Ok(());
    }
    let bad = |why: &str| Err(ConfigError::new(FIELD, format!("entry {raw:?}: {why}")));
    let Some((scheme, rest)) = norm.split_once("://") else {
        return bad("expected scheme://host[:port] or null");
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.*?".contains(&b));
    if !scheme_ok {
        return bad("invalid scheme");
    }
    if rest.is_empty() {
        return bad("missing host");
    }
    if rest.contains('/') {
        return bad("an origin has no path");
    }
    if rest
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return bad("contains whitespace or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OriginPolicy {
        let v: Vec<String> = entries.iter().map(|s| (*s).to_owned()).collect();
        OriginPolicy::new(&v).unwrap()
    }

    #[test]
    fn origin_allow_table() {
        let p = policy(&[
            "https://app.example.com",
            "https://*.corp.example",
            "http://localhost:3000/",
        ]);
        let cases: [(Option<&[u8]>, bool); 16] = [
            (None, true),
            (Some(b"https://app.example.com"), true),
            (Some(b"https://app.example.com/"), true),
            (Some(b"HTTPS://APP.Example.COM"), true),
            (Some(b"  https://app.example.com  "), true),
            (Some(b"http://app.example.com"), false),
            (Some(b"https://app.example.com:8443"), false),
            (Some(b"https://evil.example.com"), false),
            (Some(b"https://a.corp.example"), true),
            (Some(b"https://a.b.corp.example"), true),
            (Some(b"https://corp.example"), false),
            (Some(b"http://localhost:3000"), true),
            (Some(b"http://localhost:3001"), false),
            (Some(b"null"), false),
            (Some(b""), false),
            (Some(b"https://app.example.com\xff"), false),
        ];
        for (origin, want) in cases {
            let shown = origin.map(String::from_utf8_lossy);
            assert_eq!(p.allows(origin), want, "origin {shown:?}");
        }
    }

    #[test]
    fn null_origin_is_allowed_only_when_listed() {
        assert!(policy(&["null"]).allows(Some(b"null")));
        assert!(policy(&["NULL", "https://a.example"]).allows(Some(b"null")));
        assert!(!policy(&["https://*"]).allows(Some(b"null")));
        assert!(!policy(&["https://a.example"]).allows(Some(b"null")));
    }

    #[test]
    fn empty_policy_is_disabled_and_allows_everything() {
        let p = policy(&[]);
        assert!(!p.is_enabled());
        assert!(p.allows(Some(b"https://anything.example")));
        assert!(p.allows(Some(b"\xff")));
        assert!(policy(&["null"]).is_enabled());
    }

    #[test]
    fn env_value_is_comma_separated_with_blanks_ignored() {
        let p = OriginPolicy::from_env_value(" https://a.example , ,https://b.example,").unwrap();
        assert!(p.allows(Some(b"https://a.example")));
        assert!(p.allows(Some(b"https://b.example")));
        assert!(!p.allows(Some(b"https://c.example")));
        for blank in ["", " ", " , ,"] {
            assert!(
                !OriginPolicy::from_env_value(blank).unwrap().is_enabled(),
                "{blank:?}"
            );
        }
    }

    #[test]
    fn malformed_entries_are_rejected_naming_the_field() {
        for bad in [
            "example.com",
            "https://",
            "https://a.example/path",
            "://a",
            "",
            "ht tp://a",
        ] {
            let err = OriginPolicy::new(&[bad.to_owned()]).unwrap_err();
            assert_eq!(err.field, "allowed_origins", "{bad:?}");
        }
        assert!(OriginPolicy::from_env_value("https://ok.example, nope").is_err());
    }
}
