//! Per-connection topic access control (UPSTREAM §1.4 `wse_topics`, §7.6 `set_topic_acl`,
//! CONTRACT D9).
//!
//! A [`TopicAcl`] is lists of globs ([`crate::glob`]: `*` any run of bytes, `?` exactly one
//! byte, no escaping). Rules: a deny match always wins; an empty allow list allows everything not
//! denied; otherwise a topic must match some allow glob.
//!
//! A third list, `publish`, says where the connection itself may publish (the standalone
//! server's client publish): a topic must match a publish glob and no deny glob. Unlike `allow`,
//! an empty publish list allows nothing, so a token that says nothing about publishing grants no
//! publishing.
//!
//! Glob subscriptions are where the original leaked (UPSTREAM §13.3 item 3): it matched the deny
//! globs against the *pattern string*, so `data:*` slipped past a deny of `data:internal:*` and
//! then received `data:internal:audit`. Here the subscribe-time check of a pattern
//! ([`TopicAcl::allows_subscription`]) is only a first filter; the caller MUST run
//! [`TopicAcl::allows_topic`] on every concrete topic delivered to a glob subscriber. The ACL
//! is pure data; enforcing it at delivery belongs to the pub/sub layer.

use crate::glob::glob_match;

/// A connection's topic ACL: allow and deny globs. The default allows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TopicAcl {
    allow: Vec<String>,
    deny: Vec<String>,
    publish: Vec<String>,
}

impl TopicAcl {
    /// An ACL from allow and deny globs (kept in the given order), granting no publishing.
    pub fn new(allow: Vec<String>, deny: Vec<String>) -> TopicAcl {
        TopicAcl {
            allow,
            deny,
            publish: Vec::new(),
        }
    }

    /// This ACL with `publish` as its publish globs (replacing any).
    #[must_use]
    pub fn with_publish(mut self, publish: Vec<String>) -> TopicAcl {
        self.publish = publish;
        self
    }

    /// The ACL carried by a JWT `wse_topics` claim: `{"allow": [..], "deny": [..], "publish":
    /// [..]}`. Any list may be absent (= empty); entries that are not strings are ignored. A
    /// claim that is not a JSON object gives `None` (no ACL), as the original.
    pub fn from_claim(v: &serde_json::Value) -> Option<TopicAcl> {
        let obj = v.as_object()?;
        let strings = |key: &str| -> Vec<String> {
            obj.get(key)
                .and_then(serde_json::Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(TopicAcl {
            allow: strings("allow"),
            deny: strings("deny"),
            publish: strings("publish"),
        })
    }

    /// The allow globs.
    pub fn allow(&self) -> &[String] {
        &self.allow
    }

    /// The deny globs.
    pub fn deny(&self) -> &[String] {
        &self.deny
    }

    /// The publish globs.
    pub fn publish(&self) -> &[String] {
        &self.publish
    }

    /// May this connection publish to the concrete topic `topic`? Some publish glob matches and
    /// no deny glob does; an empty publish list allows nothing. The allow list plays no part:
    /// receiving and publishing are granted separately.
    pub fn allows_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| glob_match(p, topic))
            && !self.deny.iter().any(|d| glob_match(d, topic))
    }

    /// May this connection receive messages on the concrete topic `topic`? No deny glob matches,
    /// and the allow list is empty or some allow glob matches.
    pub fn allows_topic(&self, topic: &str) -> bool {
        !self.deny.iter().any(|d| glob_match(d, topic))
            && (self.allow.is_empty() || self.allow.iter().any(|a| glob_match(a, topic)))
    }

    /// May this connection subscribe to `topic_or_pattern`?
    ///
    /// - A plain topic: exactly [`TopicAcl::allows_topic`].
    /// - A glob pattern (contains `*` or `?`): the pattern string itself, read as text, must not
    ///   match a deny glob and must match an allow glob when there are any (the original's
    ///   rule, so an ACL written for it keeps meaning the same). This does **not** prove that
    ///   every topic the pattern reaches is allowed: `data:*` passes a deny of `data:internal:*`.
    ///   Deliveries to a glob subscriber must therefore each be checked with
    ///   [`TopicAcl::allows_topic`] (CONTRACT D9); [`TopicAcl::pattern_may_reach_denied`] tells
    ///   whether that per-delivery filter can ever drop anything.
    pub fn allows_subscription(&self, topic_or_pattern: &str) -> bool {
        // Both cases are the same text match; the difference is what it guarantees (see above).
        self.allows_topic(topic_or_pattern)
    }

    /// True if some topic could match both `pattern` and a deny glob, i.e. a glob subscription
    /// to `pattern` needs its deliveries filtered by the deny list. Exact (neither misses a
    /// reachable denied topic nor reports one that cannot exist), computed over byte strings by
    /// intersecting the two globs: `O(len(pattern) × len(deny glob))` per deny entry.
    pub fn pattern_may_reach_denied(&self, pattern: &str) -> bool {
        self.deny
            .iter()
            .any(|d| globs_intersect(pattern.as_bytes(), d.as_bytes()))
    }

    /// True if the ACL has no allow or deny rules, so every topic and pattern is allowed and
    /// deliveries need no filtering (publish globs do not restrict receiving).
    pub fn is_unrestricted(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Is there a byte string matched by both globs `a` and `b`? Reachability in the product of
/// the two globs' automata. A state is a pair of positions; a `*` at a position can consume a
/// byte and stay, or be skipped without consuming. A shortest witness advances at least one
/// position per byte, so the search is over at most `(|a|+1)(|b|+1)` states.
fn globs_intersect(a: &[u8], b: &[u8]) -> bool {
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let slot = i * width + j;
        if seen[slot] {
            continue;
        }
        seen[slot] = true;
        if a[i..].iter().all(|&c| c == b'*') && b[j..].iter().all(|&c| c == b'*') {
            return true;
        }
        // Skip a star without consuming anything.
        if a.get(i) == Some(&b'*') {
            stack.push((i + 1, j));
        }
        if b.get(j) == Some(&b'*') {
            stack.push((i, j + 1));
        }
        // Consume one byte that both sides accept.
        let (Some(&ca), Some(&cb)) = (a.get(i), b.get(j)) else {
            continue;
        };
        let any_a = ca == b'*' || ca == b'?';
        let any_b = cb == b'*' || cb == b'?';
        if any_a || any_b || ca == cb {
            let ni = if ca == b'*' { i } else { i + 1 };
            let nj = if cb == b'*' { j } else { j + 1 };
            stack.push((ni, nj));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn acl(allow: &[&str], deny: &[&str]) -> TopicAcl {
        TopicAcl::new(
            allow.iter().map(|s| (*s).to_owned()).collect(),
            deny.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    #[test]
    fn allows_topic_table() {
        let cases: [(&[&str], &[&str], &str, bool); 12] = [
            (&[], &[], "anything", true),
            (&[], &["secret:*"], "secret:x", false),
            (&[], &["secret:*"], "public:x", true),
            (&["chat:*"], &[], "chat:lobby", true),
            (&["chat:*"], &[], "news:today", false),
            (&["chat:*"], &["chat:admin"], "chat:admin", false),
            (&["chat:admin"], &["chat:*"], "chat:admin", false),
            (&["user:?"], &[], "user:1", true),
            (&["user:?"], &[], "user:12", false),
            (&["user:??"], &[], "user:é", true),
            (&["a", "b"], &[], "b", true),
            (&["*"], &["*"], "x", false),
        ];
        for (allow, deny, topic, want) in cases {
            assert_eq!(
                acl(allow, deny).allows_topic(topic),
                want,
                "{allow:?} {deny:?} {topic}"
            );
        }
    }

    #[test]
    fn glob_subscription_rules_table() {
        let cases: [(&[&str], &[&str], &str, bool); 8] = [
            // The original's bypass: the pattern passes, deliveries must be filtered.
            (&["data:*"], &["data:internal:*"], "data:*", true),
            // A pattern that is itself denied is refused.
            (&["data:*"], &["data:internal:*"], "data:internal:*", false),
            // A pattern wider than the allow list is refused.
            (&["chat:*"], &[], "*", false),
            (&["chat:*"], &[], "chat:*", true),
            (&[], &[], "any:*", true),
            (&[], &["*"], "any:*", false),
            (&["user:?"], &[], "user:?", true),
            (&["user:?"], &[], "user:*", true),
        ];
        for (allow, deny, pattern, want) in cases {
            let a = acl(allow, deny);
            assert_eq!(
                a.allows_subscription(pattern),
                want,
                "{allow:?} {deny:?} {pattern}"
            );
        }
    }

    #[test]
    fn a_wide_pattern_passes_subscribe_but_denied_deliveries_are_refused() {
        let a = acl(&["data:*"], &["data:internal:*"]);
        assert!(a.allows_subscription("data:*"));
        assert!(a.pattern_may_reach_denied("data:*"));
        assert!(a.allows_topic("data:public:prices"));
        assert!(!a.allows_topic("data:internal:audit"));
        assert!(!a.pattern_may_reach_denied("data:public:*"));
    }

    #[test]
    fn only_an_acl_without_rules_is_unrestricted() {
        assert!(TopicAcl::default().is_unrestricted());
        assert!(!acl(&["a"], &[]).is_unrestricted());
        assert!(!acl(&[], &["a"]).is_unrestricted());
    }

    #[test]
    fn from_claim_reads_string_entries_and_ignores_the_rest() {
        let v = json!({"allow": ["a:*", 3, null, "b"], "deny": ["a:secret", {"x": 1}]});
        let a = TopicAcl::from_claim(&v).unwrap();
        assert_eq!(a.allow(), ["a:*", "b"]);
        assert_eq!(a.deny(), ["a:secret"]);
        assert_eq!(TopicAcl::from_claim(&json!({})), Some(TopicAcl::default()));
        assert_eq!(
            TopicAcl::from_claim(&json!({"allow": "a:*"})),
            Some(TopicAcl::default())
        );
        assert!(a.publish().is_empty());
        for not_object in [json!(null), json!([]), json!("a:*"), json!(1)] {
            assert_eq!(TopicAcl::from_claim(&not_object), None, "{not_object}");
        }
    }

    #[test]
    fn from_claim_reads_the_publish_globs() {
        let v = json!({"allow": ["chat:*"], "publish": ["chat:*", 7, "news"]});
        let a = TopicAcl::from_claim(&v).unwrap();
        assert_eq!(a.publish(), ["chat:*", "news"]);
        assert_eq!(a.allow(), ["chat:*"]);
    }

    #[test]
    fn allows_publish_table() {
        let cases: [(&[&str], &[&str], &str, bool); 8] = [
            // An empty publish list allows nothing, whatever the allow list says.
            (&[], &[], "chat:lobby", false),
            (&["chat:*"], &[], "chat:lobby", true),
            (&["chat:*"], &[], "news:today", false),
            (&["chat:*"], &["chat:admin"], "chat:admin", false),
            (&["chat:*"], &["chat:admin"], "chat:lobby", true),
            (&["*"], &["*"], "x", false),
            (&["user:?"], &[], "user:1", true),
            (&["user:?"], &[], "user:12", false),
        ];
        for (publish, deny, topic, want) in cases {
            let a = acl(&[], deny).with_publish(publish.iter().map(|s| (*s).to_owned()).collect());
            assert_eq!(
                a.allows_publish(topic),
                want,
                "{publish:?} {deny:?} {topic}"
            );
        }
    }

    #[test]
    fn publish_globs_do_not_widen_or_narrow_receiving() {
        let a = acl(&["chat:*"], &[]).with_publish(vec!["news:*".to_owned()]);
        assert!(!a.allows_topic("news:today"));
        assert!(a.allows_topic("chat:lobby"));
        assert!(!a.allows_publish("chat:lobby"));
        assert!(
            TopicAcl::default()
                .with_publish(vec!["x".into()])
                .is_unrestricted()
        );
    }

    #[test]
    fn globs_intersect_table() {
        let cases = [
            ("data:*", "data:internal:*", true),
            ("data:public:*", "data:internal:*", false),
            ("a?c", "*b*", true),
            ("a?c", "a*d", false),
            ("*", "", true),
            ("?", "", false),
            ("", "", true),
            ("x*y*z", "*q*", true),
            ("abc", "abc", true),
            ("abc", "abd", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                globs_intersect(a.as_bytes(), b.as_bytes()),
                want,
                "{a} ∩ {b}"
            );
            assert_eq!(
                globs_intersect(b.as_bytes(), a.as_bytes()),
                want,
                "{b} ∩ {a}"
            );
        }
    }

    /// All strings over {a, b} up to `max_len`.
    fn all_words(max_len: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..max_len {
            frontier = frontier
                .iter()
                .flat_map(|w| [format!("{w}a"), format!("{w}b")])
                .collect::<Vec<_>>();
            out.extend(frontier.iter().cloned());
        }
        out
    }

    proptest! {
        #[test]
        fn allows_topic_is_deny_none_and_allow_any_or_empty(
            allow in proptest::collection::vec("[ab*?]{0,4}", 0..3),
            deny in proptest::collection::vec("[ab*?]{0,4}", 0..3),
            topic in "[ab]{0,6}",
        ) {
            let a = TopicAcl::new(allow.clone(), deny.clone());
            let want = !deny.iter().any(|d| glob_match(d, &topic))
                && (allow.is_empty() || allow.iter().any(|p| glob_match(p, &topic)));
            prop_assert_eq!(a.allows_topic(&topic), want);
        }

        #[test]
        fn globs_intersect_agrees_with_brute_force(a in "[ab*?]{0,4}", b in "[ab*?]{0,4}") {
            // A shortest common word advances at least one glob per byte: length <= 8.
            let brute = all_words(8).iter().any(|w| glob_match(&a, w) && glob_match(&b, w));
            prop_assert_eq!(globs_intersect(a.as_bytes(), b.as_bytes()), brute);
        }
    }
}
