//! Fuzz target: finding the token in the `Cookie` and `Authorization` headers
//! (`wse_core::auth::token_candidates`) and the order `JwtValidator::authenticate` tries them.
//!
//! Input (see `wse_fuzz::split_mode`): raw `Cookie` and `Authorization` values separated by a
//! newline (the corpus holds real ones), or a structured description: either header absent,
//! bytes that need not be UTF-8, and a cookie name.
//! Invariants:
//!
//! - the result equals a straightforward reference written from the documented rules (split on
//!   `;`, trim, first `name=` part, trimmed value, `""`/`undefined`/`null`/non-UTF-8 absent;
//!   bearer: first 7 bytes `bearer ` in any case, the non-empty UTF-8 rest untrimmed);
//! - every candidate borrows from its own header (no copy, no invented bytes);
//! - `authenticate` reports `Missing` exactly when there is no candidate, and otherwise gives
//!   the same verdict as validating the candidates in the documented order.

use bolero::TypeGenerator;
use wse_core::WallClock;
use wse_core::auth::{AuthError, JwtValidator, token_candidates};
use wse_core::config::JwtSettings;
use wse_fuzz::{Mode, TEST_SECRET, split_mode, structured};

#[derive(Debug, TypeGenerator)]
struct Input {
    cookie: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    /// 0: the default `access_token`, 1: `sess`, otherwise the fuzzed bytes as a name.
    name_kind: u8,
    name: Vec<u8>,
}

#[test]
fn token_extraction() {
    let validator = JwtValidator::new(&JwtSettings {
        secret: TEST_SECRET.to_vec(),
        ..Default::default()
    })
    .expect("valid test settings");
    let now = WallClock::from_unix_millis(1_764_000_000_000);
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        // Raw: `<Cookie header>\n<Authorization header>`, as the corpus holds them.
        Some((Mode::Raw, rest)) => {
            let (cookie, authorization) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (Some(rest[..at].to_vec()), Some(rest[at + 1..].to_vec())),
                None => (Some(rest.to_vec()), None),
            };
            let input = Input {
                cookie,
                authorization,
                name_kind: 0,
                name: Vec::new(),
            };
            check(&validator, now, &input);
        }
        Some((Mode::Structured, rest)) => {
            if let Some(input) = structured::<Input>(rest) {
                check(&validator, now, &input);
            }
        }
        None => {}
    });
}

fn check(validator: &JwtValidator, now: WallClock, input: &Input) {
    let fuzzed_name = String::from_utf8_lossy(&input.name);
    let name = match input.name_kind % 3 {
        0 => "access_token",
        1 => "sess",
        _ => &fuzzed_name,
    };
    let (cookie, auth) = (input.cookie.as_deref(), input.authorization.as_deref());
    let got = token_candidates(cookie, auth, name);
    assert_eq!(
        got.cookie,
        cookie.and_then(|h| reference_cookie(h, name)),
        "cookie"
    );
    assert_eq!(got.bearer, auth.and_then(reference_bearer), "bearer");
    if let (Some(v), Some(h)) = (got.cookie, cookie) {
        assert!(
            within(v.as_bytes(), h),
            "cookie value not borrowed from the header"
        );
    }
    if let (Some(v), Some(h)) = (got.bearer, auth) {
        assert!(
            within(v.as_bytes(), h),
            "bearer token not borrowed from the header"
        );
    }
    // The validator's own cookie name is the default one.
    let found = token_candidates(cookie, auth, "access_token");
    let verdict = validator.authenticate(cookie, auth, now);
    let expected = match (found.cookie, found.bearer) {
        (None, None) => Err(AuthError::Missing),
        (Some(t), None) | (None, Some(t)) => validator.validate(t, now),
        (Some(c), Some(b)) => validator.validate(c, now).or_else(|e| {
            if c == b {
                Err(e)
            } else {
                validator.validate(b, now)
            }
        }),
    };
    assert_eq!(verdict, expected, "authenticate order");
}

fn reference_cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    for part in header.split(|&b| b == b';') {
        let part = part.trim_ascii();
        let Some(rest) = part.strip_prefix(name.as_bytes()) else {
            continue;
        };
        let Some(value) = rest.strip_prefix(b"=") else {
            continue;
        };
        let value = std::str::from_utf8(value.trim_ascii()).ok()?;
        return (!matches!(value, "" | "undefined" | "null")).then_some(value);
    }
    None
}

fn reference_bearer(header: &[u8]) -> Option<&str> {
    if header.len() <= 7 || !header[..7].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    std::str::from_utf8(&header[7..]).ok()
}

/// Whether `part` lies inside `whole` in memory (so it was borrowed from it).
fn within(part: &[u8], whole: &[u8]) -> bool {
    let (start, end) = (part.as_ptr() as usize, part.as_ptr() as usize + part.len());
    let (lo, hi) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    lo <= start && end <= hi
}
