//! Stamping: the `tp`/`e`/`o` keys that let a client track its position in a topic.
//!
//! UPSTREAM §8.2: when the text is a JSON object (its first non-whitespace character is `{`), the
//! stored and delivered text is the original with `{"tp":<topic>,"e":"<8 hex>","o":<offset>,`
//! spliced in right after that `{`; any other text is stored unchanged. Leading whitespace is kept.
//! The text is not parsed, so stamping is O(len) and never fails.
//!
//! One fix over the original: an empty object (`{}`, `{ }`) gets no trailing comma, so the stamped
//! text stays valid JSON (`{"tp":"t","e":"0000abcd","o":0}`).

use std::fmt::Write as _;

use super::Epoch;

/// `text` with the recovery stamp of `(topic, epoch, offset)` spliced in (see the module doc).
pub(crate) fn stamp(topic: &str, epoch: Epoch, offset: u64, text: &str) -> String {
    let body_start = text.len() - text.trim_start().len();
    if !text[body_start..].starts_with('{') {
        return text.to_owned();
    }
    let (head, rest) = text.split_at(body_start + 1);
    let topic_json = serde_json::to_string(topic).expect("invariant: a str always serializes");
    let mut out = String::with_capacity(text.len() + topic_json.len() + 40);
    out.push_str(head);
    // Writing to a String cannot fail.
    let _ = write!(out, r#""tp":{topic_json},"e":"{epoch}","o":{offset}"#);
    if !rest.trim_start().starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_spliced_after_the_first_brace_of_objects_only() {
        let e = Epoch(0xabcd);
        let cases = [
            (
                "prices",
                42,
                r#"{"c":"U","t":"price"}"#,
                r#"{"tp":"prices","e":"0000abcd","o":42,"c":"U","t":"price"}"#,
            ),
            (
                "a\"b\\c",
                0,
                r#"{"x":1}"#,
                r#"{"tp":"a\"b\\c","e":"0000abcd","o":0,"x":1}"#,
            ),
            (
                "t",
                7,
                "  \n{\"x\":{}}",
                "  \n{\"tp\":\"t\",\"e\":\"0000abcd\",\"o\":7,\"x\":{}}",
            ),
            ("t", 1, "{}", r#"{"tp":"t","e":"0000abcd","o":1}"#),
            ("t", 1, "{ }", r#"{"tp":"t","e":"0000abcd","o":1 }"#),
            ("t", 1, "[1,2]", "[1,2]"),
            ("t", 1, "hello {", "hello {"),
            ("t", 1, "", ""),
            (
                "t",
                u64::MAX,
                "{\"a\":1}",
                r#"{"tp":"t","e":"0000abcd","o":18446744073709551615,"a":1}"#,
            ),
        ];
        for (topic, offset, text, want) in cases {
            assert_eq!(stamp(topic, e, offset, text), want, "text={text:?}");
        }
    }

    #[test]
    fn stamped_objects_stay_valid_json_with_the_same_fields() {
        let cases = [r#"{"c":"U","p":{"a":[1,2]}}"#, "{}", " { } "];
        for text in cases {
            let out = stamp("room/1 ü", Epoch(1), 3, text);
            let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
            assert_eq!(v["tp"], "room/1 ü", "{out}");
            assert_eq!(v["e"], "00000001");
            assert_eq!(v["o"], 3);
        }
    }
}
