//! Fuzz target: topic globs (`wse_core::glob::glob_match`, `is_glob`) against a simple
//! reference (`wse_fuzz::reference_glob`, a dynamic programme with no backtracking).
//!
//! Input (see `wse_fuzz::split_mode`): raw `<pattern>\n<text>`, or structured: a pattern and a
//! text, either as arbitrary strings or mapped onto a tiny alphabet
//! (`ab*?` / `ab`) so matches and near-misses are frequent. Invariants: the matcher agrees with
//! the reference on every pair; `is_glob` is exactly "contains `*` or `?`"; a pattern without
//! glob characters matches only itself; every pattern matches the text built by replacing its
//! `*` with nothing and its `?` with one byte.

use bolero::TypeGenerator;
use wse_core::glob::{self, is_glob};
use wse_fuzz::{Mode, name_from, reference_glob, split_mode, structured};

#[derive(Debug, TypeGenerator)]
enum Input {
    Small { pattern: Vec<u8>, text: Vec<u8> },
    Any { pattern: String, text: String },
}

#[test]
fn glob_match() {
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        // Raw: `<pattern>\n<text>`.
        Some((Mode::Raw, rest)) => {
            let text = String::from_utf8_lossy(rest);
            let (pattern, topic) = text.split_once('\n').unwrap_or((&text, ""));
            check(pattern, topic);
        }
        Some((Mode::Structured, rest)) => match structured::<Input>(rest) {
            Some(Input::Small { pattern, text }) => {
                check(&name_from(&pattern, b"ab*?"), &name_from(&text, b"ab"));
            }
            Some(Input::Any { pattern, text }) => check(&pattern, &text),
            None => {}
        },
        None => {}
    });
}

fn check(pattern: &str, text: &str) {
    assert_eq!(
        glob::glob_match(pattern, text),
        reference_glob(pattern.as_bytes(), text.as_bytes()),
        "pattern {pattern:?} text {text:?}"
    );
    assert_eq!(is_glob(pattern), pattern.contains(['*', '?']));
    if !is_glob(pattern) {
        assert_eq!(glob::glob_match(pattern, text), pattern == text);
    }
    // The shortest text a pattern matches: drop every `*`, replace every `?` by one byte.
    let witness: String = pattern
        .chars()
        .filter(|&c| c != '*')
        .map(|c| if c == '?' { 'x' } else { c })
        .collect();
    assert!(
        glob::glob_match(pattern, &witness),
        "{pattern:?} must match {witness:?}"
    );
}

/// The shared reference itself, on hand-checked cases (it is what the target trusts).
#[test]
fn reference_glob_agrees_with_hand_checked_cases() {
    let cases: [(&str, &str, bool); 9] = [
        ("*", "", true),
        ("", "", true),
        ("", "x", false),
        ("a*b", "axxb", true),
        ("a*b", "axxc", false),
        ("?", "é", false),
        ("??", "é", true),
        ("*a*a*b", "aaaaaaaaaa", false),
        ("a?c*", "abcdef", true),
    ];
    for (p, t, want) in cases {
        assert_eq!(
            reference_glob(p.as_bytes(), t.as_bytes()),
            want,
            "{p:?} {t:?}"
        );
    }
    assert_eq!(
        wse_fuzz::json_depth(&serde_json::json!([[1], {"a": {}}])),
        3
    );
    assert_eq!(name_from(&[0, 2, 4], b"ab"), "aaa");
}
