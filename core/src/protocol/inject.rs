//! Category injection into application broadcast strings (UPSTREAM §2.2).
//!
//! Owns [`inject_category`]: `broadcast*` payloads are strings the application already
//! serialized; they are not re-serialized (their key order is kept), only `"c":"<cat>",` is
//! inserted right after the opening `{` when the object has a top-level `t` and no top-level `c`.
//!
//! The scan is a linear, allocation-free walk over the top-level object: nested objects and
//! arrays are skipped with a depth counter (no recursion), strings are skipped honouring `\`
//! escapes, so a `"t"` or `"c"` inside a nested value or inside string text is never taken for a
//! top-level key.
//!
//! Deliberate improvement over the original: whitespace around the `:` is accepted, so Python's
//! default `json.dumps` output (`"t": "user_snapshot"`) gets the category of its type (`S` here)
//! instead of always `U`; a key `"c" :` with whitespace also counts as an existing category.
//! Compact input gives exactly the original's result. Keys and a string `t` value are compared
//! after JSON unescaping (`"\u0074"` is `t`). A non-string `t` gives `U`, as in the original.
//!
//! Malformed input never panics: the scan stops where the object stops making sense and decides
//! from what it saw up to there (the original injects into malformed strings too).

use std::borrow::Cow;

use super::category::Category;

/// Inserts `"c":"<category>",` after the first `{` of a JSON object string that has a top-level
/// `t` and no top-level `c`; returns the input unchanged otherwise.
pub fn inject_category(data: &str) -> Cow<'_, str> {
    let scan = scan_top_level(data.as_bytes());
    match (scan.has_c, scan.t_category, scan.open_brace) {
        (false, Some(cat), Some(brace)) => {
            let insert = format!("\"c\":\"{}\",", cat.as_str());
            let mut out = String::with_capacity(data.len() + insert.len());
            // `brace` indexes an ASCII `{`, so both cuts fall on char boundaries.
            out.push_str(&data[..=brace]);
            out.push_str(&insert);
            out.push_str(&data[brace + 1..]);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(data),
    }
}

/// What the scan found at the top level.
#[derive(Default)]
struct TopLevel {
    /// Index of the object's opening brace, when the input (after whitespace) is an object.
    open_brace: Option<usize>,
    /// A top-level `c` key exists.
    has_c: bool,
    /// Category of the last top-level `t` value.
    t_category: Option<Category>,
}

fn scan_top_level(b: &[u8]) -> TopLevel {
    let mut found = TopLevel::default();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return found;
    }
    found.open_brace = Some(i);
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return found; // `}` (end), or malformed
        }
        let Some(key_end) = skip_string(b, i) else {
            return found;
        };
        let key = &b[i..key_end];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return found;
        }
        i = skip_ws(b, i + 1);
        let Some(value_end) = skip_value(b, i) else {
            return found;
        };
        if string_token_is(key, "c") {
            found.has_c = true;
        } else if string_token_is(key, "t") {
            let value = &b[i..value_end];
            let t = if value.first() == Some(&b'"') {
                decode_string_token(value)
            } else {
                None
            };
            found.t_category = Some(t.map_or(Category::Update, |t| Category::of(&t)));
        }
        i = skip_ws(b, value_end);
        if b.get(i) != Some(&b',') {
            return found;
        }
        i += 1;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is `"`: the index just past the closing quote, or `None` if unterminated.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The index just past the JSON value starting at `b[i]`, or `None` if it runs off the end.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            // A scalar (number, true, false, null, or junk): up to the next delimiter.
            let mut j = i;
            while let Some(&c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Whether a quoted string token (`"..."`) decodes to `want`.
fn string_token_is(token: &[u8], want: &str) -> bool {
    let inner = &token[1..token.len() - 1];
    if inner.contains(&b'\\') {
        decode_string_token(token).is_some_and(|s| s == want)
    } else {
        inner == want.as_bytes()
    }
}

/// Decodes a quoted string token; `None` for invalid escapes or bytes.
fn decode_string_token(token: &[u8]) -> Option<String> {
    let inner = &token[1..token.len() - 1];
    if inner.contains(&b'\\') {
        serde_json::from_slice(token).ok()
    } else {
        std::str::from_utf8(inner).ok().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    #[test]
    fn injection_table() {
        let cases = [
            // (name, input, expected output)
            (
                "compact update",
                r#"{"t":"price","p":{}}"#,
                r#"{"c":"U","t":"price","p":{}}"#,
            ),
            (
                "compact snapshot",
                r#"{"p":1,"t":"user_snapshot"}"#,
                r#"{"c":"S","p":1,"t":"user_snapshot"}"#,
            ),
            (
                "compact system",
                r#"{"t":"error"}"#,
                r#"{"c":"WSE","t":"error"}"#,
            ),
            (
                "existing c kept",
                r#"{"t":"user_snapshot","c":"U"}"#,
                r#"{"t":"user_snapshot","c":"U"}"#,
            ),
            (
                "existing c with space",
                r#"{"c" : "X", "t":"a"}"#,
                r#"{"c" : "X", "t":"a"}"#,
            ),
            (
                "no t, nothing injected",
                r#"{"p":{"t":"x"}}"#,
                r#"{"p":{"t":"x"}}"#,
            ),
            (
                "nested c ignored",
                r#"{"p":{"c":"S"},"t":"a_snapshot"}"#,
                r#"{"c":"S","p":{"c":"S"},"t":"a_snapshot"}"#,
            ),
            (
                "nested t ignored",
                r#"{"p":{"t":"user_snapshot"},"t":"tick"}"#,
                r#"{"c":"U","p":{"t":"user_snapshot"},"t":"tick"}"#,
            ),
            (
                "t inside string ignored",
                r#"{"p":"\"t\":\"user_snapshot\"","t":"x"}"#,
                r#"{"c":"U","p":"\"t\":\"user_snapshot\"","t":"x"}"#,
            ),
            (
                "c inside string ignored",
                r#"{"p":"{\"c\":1}","t":"x"}"#,
                r#"{"c":"U","p":"{\"c\":1}","t":"x"}"#,
            ),
            (
                "brackets inside strings",
                r#"{"p":["]}",{"a":"{["}],"t":"error"}"#,
                r#"{"c":"WSE","p":["]}",{"a":"{["}],"t":"error"}"#,
            ),
            ("numeric t is U", r#"{"t":5}"#, r#"{"c":"U","t":5}"#),
            ("null t is U", r#"{"t":null}"#, r#"{"c":"U","t":null}"#),
            (
                "escaped t value",
                r#"{"t":"user\u005fsnapshot"}"#,
                r#"{"c":"S","t":"user\u005fsnapshot"}"#,
            ),
            (
                "escaped t key",
                r#"{"\u0074":"error"}"#,
                r#"{"c":"WSE","\u0074":"error"}"#,
            ),
            (
                "json.dumps separators",
                r#"{"t": "user_snapshot", "p": {"t": "x"}}"#,
                r#"{"c":"S","t": "user_snapshot", "p": {"t": "x"}}"#,
            ),
            (
                "pretty printed",
                "{\n  \"t\" : \"pong\"\n}",
                "{\"c\":\"WSE\",\n  \"t\" : \"pong\"\n}",
            ),
            (
                "leading whitespace",
                r#"  {"t":"x"}"#,
                r#"  {"c":"U","t":"x"}"#,
            ),
            ("array untouched", r#"[{"t":"x"}]"#, r#"[{"t":"x"}]"#),
            ("not json untouched", "hello", "hello"),
            ("empty object", "{}", "{}"),
            ("empty", "", ""),
            (
                "unicode",
                r#"{"ü":"é","t":"x"}"#,
                r#"{"c":"U","ü":"é","t":"x"}"#,
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(inject_category(input), want, "{name}");
        }
    }

    #[test]
    fn unchanged_input_is_borrowed() {
        assert!(matches!(
            inject_category(r#"{"c":"U","t":"x"}"#),
            Cow::Borrowed(_)
        ));
        assert!(matches!(inject_category(r#"{"t":"x"}"#), Cow::Owned(_)));
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for input in [
            "{",
            "{\"",
            "{\"t\"",
            "{\"t\":",
            "{\"t\":\"",
            "{\"t\":\"x",
            "{\"t\":\"x\\",
            "{\"p\":{",
            "{\"p\":[}}]",
            "{\"t\":\"\\ud800\"}",
            "{,}",
            "{\"t\"::}",
            "{\"\\",
            "{\"t\":\"x\"",
        ] {
            let _ = inject_category(input);
        }
    }

    /// The category a JSON parser would assign after injection.
    fn expected_c(map: &Map<String, Value>) -> Option<Value> {
        if let Some(c) = map.get("c") {
            return Some(c.clone());
        }
        let t = map.get("t")?;
        Some(Value::from(
            t.as_str().map_or(Category::Update, Category::of).as_str(),
        ))
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                ".{0,10}",
                "[ct\"{}\\[\\]:,\\\\ ]{0,10}",
                "(user_snapshot|snapshot_x|error|pong|t|c)"
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[ct\"{}a]{0,3}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn injected_objects_still_parse_with_the_right_category(
            map in prop::collection::btree_map("(t|c|p|[a-z\"{}]{0,3})", arb_json(), 0..6),
            pretty in any::<bool>(),
        ) {
            let map: Map<String, Value> = map.into_iter().collect();
            let text = if pretty {
                serde_json::to_string_pretty(&map).unwrap()
            } else {
                serde_json::to_string(&map).unwrap()
            };
            // Compare with the text parsed back (serde_json float parsing is not bit-exact).
            let map: Map<String, Value> = serde_json::from_str(&text).unwrap();
            let out = inject_category(&text);
            let parsed: Map<String, Value> = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(parsed.get("c").cloned(), expected_c(&map));
            let mut rest = parsed.clone();
            if !map.contains_key("c") {
                rest.remove("c");
            }
            prop_assert_eq!(rest, map, "only c was added");
        }

        #[test]
        fn inject_category_never_panics(s in any::<String>()) {
            let _ = inject_category(&s);
        }

        #[test]
        fn inject_category_never_panics_on_json_like_text(s in r#"\s?\{("[tc\\u]{0,3}"\s?:\s?("[a-z_\\"]{0,6}"?|[0-9]|\{|\[|\]|\}),?){0,5}\}?"#) {
            let _ = inject_category(&s);
        }
    }
}
