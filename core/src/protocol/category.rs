//! Message categories (UPSTREAM §2.1–2.2) and legacy text prefixes.
//!
//! Owns [`Category`] (the envelope's `c`), the type → category rule every outbound path uses,
//! and [`strip_legacy_prefix`] for the pre-2.0.8 `WSE{` / `S{` / `U{` text prefixes.
//! Pure functions of their input; total (no input panics).

use std::fmt;

/// The envelope category `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `"WSE"`: protocol/system messages.
    System,
    /// `"S"`: snapshots.
    Snapshot,
    /// `"U"`: updates (the default).
    Update,
}

/// Event types that are system messages (UPSTREAM §2.2 rule 2). Exact, case-sensitive.
const SYSTEM_TYPES: [&str; 9] = [
    "server_ready",
    "server_hello",
    "client_hello_ack",
    "connection_state_change",
    "subscription_update",
    "snapshot_complete",
    "error",
    "pong",
    "PONG",
];

impl Category {
    /// The wire spelling: `"WSE"`, `"S"` or `"U"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::System => "WSE",
            Category::Snapshot => "S",
            Category::Update => "U",
        }
    }

    /// Parses the wire spelling (exact, case-sensitive).
    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "WSE" => Some(Category::System),
            "S" => Some(Category::Snapshot),
            "U" => Some(Category::Update),
            _ => None,
        }
    }

    /// The category of an event type (UPSTREAM §2.2), rules applied in order:
    /// 1. contains `_snapshot` or starts with `snapshot_` → [`Category::Snapshot`];
    /// 2. one of the system types (`server_ready`, ..., `pong`, `PONG`) → [`Category::System`];
    /// 3. anything else, the empty type included → [`Category::Update`].
    ///
    /// Rule 1 comes first, so `snapshot_complete` (which is also listed as a system type) is `S`.
    pub fn of(event_type: &str) -> Category {
        if event_type.contains("_snapshot") || event_type.starts_with("snapshot_") {
            Category::Snapshot
        } else if SYSTEM_TYPES.contains(&event_type) {
            Category::System
        } else {
            Category::Update
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strips one legacy category prefix from inbound text: `WSE{` → `{`, `S{` → `{`, `U{` → `{`.
/// Any other text is returned unchanged (including `WSE[` and friends, which only the TS client
/// ever stripped, and only on its own inbound side).
pub fn strip_legacy_prefix(text: &str) -> &str {
    for prefix in ["WSE{", "S{", "U{"] {
        if text.starts_with(prefix) {
            // Keep the `{`: drop only the letters before it (all ASCII, so on a char boundary).
            return &text[prefix.len() - 1..];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn category_of_follows_the_three_rules_in_order() {
        let cases = [
            ("user_snapshot", Category::Snapshot),
            ("snapshot_full", Category::Snapshot),
            ("a_snapshotx", Category::Snapshot),
            ("snapshot_complete", Category::Snapshot),
            ("snapshot", Category::Update),
            ("Snapshot_x", Category::Update),
            ("server_ready", Category::System),
            ("server_hello", Category::System),
            ("client_hello_ack", Category::System),
            ("connection_state_change", Category::System),
            ("subscription_update", Category::System),
            ("error", Category::System),
            ("pong", Category::System),
            ("PONG", Category::System),
            ("Pong", Category::Update),
            ("ping", Category::Update),
            ("client_hello", Category::Update),
            ("", Category::Update),
            ("price_tick", Category::Update),
        ];
        for (t, want) in cases {
            assert_eq!(Category::of(t), want, "type {t:?}");
        }
    }

    #[test]
    fn wire_spelling_round_trips() {
        for c in [Category::System, Category::Snapshot, Category::Update] {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(Category::parse("wse"), None);
    }

    #[test]
    fn legacy_prefixes_are_stripped_to_the_brace() {
        let cases = [
            ("WSE{\"t\":1}", "{\"t\":1}"),
            ("S{}", "{}"),
            ("U{", "{"),
            ("{}", "{}"),
            ("WSE[1]", "WSE[1]"),
            ("WSE", "WSE"),
            ("S", "S"),
            ("US{}", "US{}"),
            ("", ""),
            (" WSE{}", " WSE{}"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_legacy_prefix(input), want, "input {input:?}");
        }
    }

    /// Direct transcription of §2.2, used as the reference.
    fn reference(t: &str) -> Category {
        let rule1 = t.contains("_snapshot") || t.starts_with("snapshot_");
        let rule2 = matches!(
            t,
            "server_ready"
                | "server_hello"
                | "client_hello_ack"
                | "connection_state_change"
                | "subscription_update"
                | "snapshot_complete"
                | "error"
                | "pong"
                | "PONG"
        );
        if rule1 {
            Category::Snapshot
        } else if rule2 {
            Category::System
        } else {
            Category::Update
        }
    }

    proptest! {
        #[test]
        fn category_of_matches_the_spec_rules(
            t in prop_oneof![
                "[a-zA-Z_]{0,20}",
                "[a-z]{0,5}_snapshot[a-z_]{0,5}",
                "snapshot_[a-z]{0,5}",
                prop::sample::select(SYSTEM_TYPES.to_vec()).prop_map(str::to_owned),
            ]
        ) {
            prop_assert_eq!(Category::of(&t), reference(&t));
        }

        #[test]
        fn strip_legacy_prefix_never_panics_and_only_drops_a_prefix(s in any::<String>()) {
            let out = strip_legacy_prefix(&s);
            prop_assert!(s.ends_with(out));
            let dropped = s.len() - out.len();
            let stripped_to_brace = (dropped == 3 || dropped == 1) && out.starts_with('{');
            prop_assert!(dropped == 0 || stripped_to_brace, "dropped {} bytes of {:?}", dropped, s);
        }
    }
}
