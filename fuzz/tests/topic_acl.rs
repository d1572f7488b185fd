//! Fuzz target: topic ACLs built from arbitrary JWT claims (`wse_core::auth::TopicAcl`).
//!
//! Input (see `wse_fuzz::split_mode`): raw, a JSON claim line then topic lines (the corpus
//! holds real claims); or structured, a `wse_topics` claim (not an object, or an object whose `allow`/`deny`/`publish` are
//! absent, not lists, or lists mixing globs with numbers and nulls), topics and glob patterns,
//! all over a small alphabet so matches are frequent. Invariants:
//!
//! - `from_claim` is `Some` exactly for objects and keeps exactly the string entries, in order;
//! - `allows_topic`, `allows_publish`, `allows_subscription` and `is_unrestricted` equal the
//!   documented rules evaluated with the reference glob matcher (deny wins; empty allow allows
//!   all; empty publish allows nothing);
//! - `pattern_may_reach_denied` is exact: it never misses a topic that both the pattern and a
//!   deny glob match (checked on every fuzzed topic), and for short globs, when it says yes, a
//!   brute-force search over every short string finds such a topic.

use bolero::TypeGenerator;
use serde_json::{Value, json};
use wse_core::auth::TopicAcl;
use wse_fuzz::{Mode, name_from, reference_glob, split_mode, structured};

#[derive(Debug, TypeGenerator)]
struct Input {
    claim: Claim,
    topics: Vec<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
}

#[derive(Debug, TypeGenerator)]
enum Claim {
    NotObject(u8),
    Object {
        allow: Field,
        deny: Field,
        publish: Field,
    },
}

#[derive(Debug, TypeGenerator)]
enum Field {
    Absent,
    NotList(u8),
    List(Vec<Item>),
}

#[derive(Debug, TypeGenerator)]
enum Item {
    Glob(Vec<u8>),
    Number(i32),
    Null,
}

/// Globs and topics use `a`, `b` and `:`; globs add `*` and `?`.
const GLOB_ALPHABET: &[u8] = b"ab:*?";
const TOPIC_ALPHABET: &[u8] = b"ab:";

#[test]
fn topic_acl() {
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        // Raw: a JSON `wse_topics` claim on the first line, then topics and patterns, one a line.
        Some((Mode::Raw, rest)) => {
            let text = String::from_utf8_lossy(rest);
            let mut lines = text.split('\n');
            let Ok(claim) = serde_json::from_str::<Value>(lines.next().unwrap_or("")) else {
                return;
            };
            let names: Vec<String> = lines.map(str::to_owned).collect();
            check(&claim, expected_lists(&claim), &names, &names);
        }
        Some((Mode::Structured, rest)) => {
            if let Some(input) = structured::<Input>(rest) {
                let (claim, lists) = render(&input.claim);
                let topics: Vec<String> = input
                    .topics
                    .iter()
                    .map(|t| name_from(t, TOPIC_ALPHABET))
                    .collect();
                let patterns: Vec<String> = input
                    .patterns
                    .iter()
                    .map(|p| name_from(p, GLOB_ALPHABET))
                    .collect();
                check(&claim, lists, &topics, &patterns);
            }
        }
        None => {}
    });
}

/// The documented reading of a claim: an object gives its `allow`/`deny`/`publish` string
/// entries in order (non-strings skipped, non-lists empty); anything else gives no ACL.
fn expected_lists(claim: &Value) -> Option<Lists> {
    let obj = claim.as_object()?;
    let list = |k: &str| -> Vec<String> {
        obj.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some((list("allow"), list("deny"), list("publish")))
}

fn check(claim: &Value, lists: Option<Lists>, topics: &[String], patterns: &[String]) {
    let acl = TopicAcl::from_claim(claim);
    let Some((allow, deny, publish)) = lists else {
        assert_eq!(acl, None, "a non-object claim gave an ACL");
        return;
    };
    let acl = acl.expect("an object claim gives an ACL");
    assert_eq!(
        (acl.allow(), acl.deny(), acl.publish()),
        (&allow[..], &deny[..], &publish[..])
    );
    assert_eq!(acl.is_unrestricted(), allow.is_empty() && deny.is_empty());
    let matches_any = |globs: &[String], t: &str| {
        globs
            .iter()
            .any(|g| reference_glob(g.as_bytes(), t.as_bytes()))
    };
    for t in topics {
        let receive = !matches_any(&deny, t) && (allow.is_empty() || matches_any(&allow, t));
        assert_eq!(acl.allows_topic(t), receive, "allows_topic({t:?})");
        assert_eq!(
            acl.allows_publish(t),
            matches_any(&publish, t) && !matches_any(&deny, t)
        );
    }
    for (i, p) in patterns.iter().enumerate() {
        assert_eq!(acl.allows_subscription(p), acl.allows_topic(p));
        let reaches = acl.pattern_may_reach_denied(p);
        for t in topics {
            if reference_glob(p.as_bytes(), t.as_bytes()) && matches_any(&deny, t) {
                assert!(reaches, "{p:?} reaches denied topic {t:?} unnoticed");
            }
        }
        if reaches
            && i < 4
            && p.len() <= 3
            && deny.len() <= 4
            && deny
                .iter()
                .all(|d| d.len() <= 3 && d.bytes().all(|b| GLOB_ALPHABET.contains(&b)))
        {
            assert!(
                short_strings().any(|t| reference_glob(p.as_bytes(), &t)
                    && matches_any(&deny, &String::from_utf8_lossy(&t))),
                "{p:?} said to reach {deny:?} but no topic does"
            );
        }
    }
}

/// Every string of length 0 to 6 over `a`, `b`, `:` and `c` (standing for any other byte): a
/// witness of two globs of length ≤ 3 over `ab:*?` exists iff one is among these.
fn short_strings() -> impl Iterator<Item = Vec<u8>> {
    (0..=6u32).flat_map(|len| {
        (0..4usize.pow(len)).map(move |mut n| {
            (0..len)
                .map(|_| {
                    let c = b"ab:c"[n % 4];
                    n /= 4;
                    c
                })
                .collect()
        })
    })
}

type Lists = (Vec<String>, Vec<String>, Vec<String>);

/// The claim as JSON, and the string lists a correct parser must extract from it.
fn render(claim: &Claim) -> (Value, Option<Lists>) {
    let Claim::Object {
        allow,
        deny,
        publish,
    } = claim
    else {
        let Claim::NotObject(n) = claim else {
            unreachable!()
        };
        let v = [
            json!(null),
            json!(1),
            json!("allow"),
            json!(["a"]),
            json!(true),
        ][usize::from(n % 5)]
        .clone();
        return (v, None);
    };
    let mut obj = serde_json::Map::new();
    let mut lists = Vec::new();
    for (name, field) in [("allow", allow), ("deny", deny), ("publish", publish)] {
        let mut strings = Vec::new();
        match field {
            Field::Absent => {}
            Field::NotList(n) => {
                obj.insert(
                    name.into(),
                    [json!("a:*"), json!(3), json!({"a": 1})][usize::from(n % 3)].clone(),
                );
            }
            Field::List(items) => {
                let values = items
                    .iter()
                    .map(|i| match i {
                        Item::Glob(g) => {
                            let g = name_from(g, GLOB_ALPHABET);
                            strings.push(g.clone());
                            Value::String(g)
                        }
                        Item::Number(n) => json!(n),
                        Item::Null => Value::Null,
                    })
                    .collect();
                obj.insert(name.into(), Value::Array(values));
            }
        }
        lists.push(strings);
    }
    let publish = lists.pop().unwrap_or_default();
    let deny = lists.pop().unwrap_or_default();
    let allow = lists.pop().unwrap_or_default();
    (Value::Object(obj), Some((allow, deny, publish)))
}
