//! Topic globs: `*` matches any run of bytes (including none), `?` exactly one byte, everything
//! else itself. No escaping, no character classes — the original server's dialect, shared by
//! topic ACLs ([`crate::auth`]) and glob subscriptions ([`crate::pubsub`]).
//!
//! Matching is iterative with single-star backtracking, so it runs in `O(pattern × text)` time at
//! worst and never recurses: a hostile pattern like `*a*a*a*a*b` cannot blow the stack or take
//! exponential time.

/// True if `pattern` contains a glob metacharacter (`*` or `?`).
pub fn is_glob(pattern: &str) -> bool {
    pattern.bytes().any(|b| b == b'*' || b == b'?')
}

/// True if `pattern` matches the whole of `text`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was seen, and the text position it is currently assumed to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte and retry from just after it.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious exponential-time definition, used as the reference.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && reference(&p[1..], &t[1..]),
        }
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("chat:*", "chat:lobby", true),
            ("chat:*", "chat:", true),
            ("chat:*", "chats", false),
            ("data:internal:*", "data:internal:audit", true),
            ("user:?", "user:1", true),
            ("user:?", "user:12", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            (
                "*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("exact", "exact", true),
            ("exact", "exac", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t), want, "pattern {p:?} text {t:?}");
        }
        assert!(is_glob("a*") && is_glob("a?") && !is_glob("plain:topic"));
    }

    #[test]
    fn question_mark_matches_one_byte_not_one_character() {
        // "é" is two bytes in UTF-8: the original server's `?` is a byte wildcard.
        assert!(glob_match("??", "é"));
        assert!(!glob_match("?", "é"));
    }

    proptest! {
        #[test]
        fn glob_agrees_with_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            prop_assert_eq!(glob_match(&p, &t), reference(p.as_bytes(), t.as_bytes()));
        }
    }
}
