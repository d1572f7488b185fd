//! Fuzz target: the `Origin` allow-list (`wse_core::auth::OriginPolicy`).
//!
//! Input (see `wse_fuzz::split_mode`): raw, an `ALLOWED_ORIGINS` value then one `Origin` per
//! line (the corpus holds real ones); or structured, a list of configured entries (raw bytes, or built `scheme://host[:port]` with glob
//! characters) and a list of `Origin` header values (absent, raw bytes, built, or a configured
//! entry re-cased, with a trailing `/` and surrounding spaces). Invariants:
//!
//! - construction never panics; when it succeeds, `allows` equals a reference written from the
//!   documented rules (disabled when empty; absent header allowed; non-UTF-8 refused; trim,
//!   one trailing `/`, ASCII case-insensitive; `null` only when listed; exact or glob match);
//! - a valid exact entry always admits itself in any case, with a trailing slash and padding;
//! - `from_env_value` of the comma-joined entries is the same policy as `new` of the non-blank
//!   entries.

use bolero::TypeGenerator;
use wse_core::auth::OriginPolicy;
use wse_core::glob::{glob_match, is_glob};
use wse_fuzz::{Mode, name_from, split_mode, structured};

#[derive(Debug, TypeGenerator)]
struct Input {
    entries: Vec<Entry>,
    origins: Vec<Origin>,
}

#[derive(Debug, TypeGenerator)]
enum Entry {
    Raw(Vec<u8>),
    Built(Parts),
    Null,
}

#[derive(Debug, TypeGenerator)]
enum Origin {
    Absent,
    Raw(Vec<u8>),
    Built(Parts),
    /// Configured entry `index` (modulo the count), re-cased and padded.
    Copy {
        index: u8,
        upper: bool,
        slash: bool,
        spaces: bool,
    },
}

#[derive(Debug, TypeGenerator)]
struct Parts {
    scheme: u8,
    host: Vec<u8>,
    port: Option<u16>,
}

impl Parts {
    fn render(&self, host_alphabet: &[u8]) -> String {
        let scheme = ["http", "https", "HTTPS", "ws*", "h?tps"][usize::from(self.scheme % 5)];
        let host = name_from(&self.host, host_alphabet);
        match self.port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }
    }
}

#[test]
fn origin_policy() {
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        // Raw: an `ALLOWED_ORIGINS` value, then one `Origin` value per line.
        Some((Mode::Raw, rest)) => {
            let text = String::from_utf8_lossy(rest);
            let mut lines = text.split('\n');
            let env = lines.next().unwrap_or("");
            let entries: Vec<String> = env
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            let origins: Vec<Option<Vec<u8>>> =
                lines.map(|l| Some(l.as_bytes().to_vec())).collect();
            if let Ok(policy) = OriginPolicy::from_env_value(env) {
                check(&policy, &entries, &origins);
            }
        }
        Some((Mode::Structured, rest)) => {
            if let Some(input) = structured::<Input>(rest) {
                check_structured(&input);
            }
        }
        None => {}
    });
}

fn check_structured(input: &Input) {
    let entries: Vec<String> = input
        .entries
        .iter()
        .map(|e| match e {
            Entry::Raw(b) => String::from_utf8_lossy(b).into_owned(),
            Entry::Built(p) => p.render(b"ab.*?"),
            Entry::Null => "null".to_owned(),
        })
        .collect();
    let Ok(policy) = OriginPolicy::new(&entries) else {
        return;
    };
    let origins: Vec<Option<Vec<u8>>> = input
        .origins
        .iter()
        .map(|o| origin_bytes(o, &entries))
        .collect();
    check(&policy, &entries, &origins);
}

fn check(policy: &OriginPolicy, entries: &[String], origins: &[Option<Vec<u8>>]) {
    for origin in origins {
        let origin = origin.as_deref();
        assert_eq!(
            policy.allows(origin),
            reference_allows(entries, origin),
            "entries {entries:?}, origin {:?}",
            origin.map(String::from_utf8_lossy)
        );
    }
    for entry in entries {
        let norm = normalise(entry);
        if norm != "null" && !is_glob(&norm) && !norm.is_empty() {
            let padded = format!("  {}/ ", norm.to_ascii_uppercase());
            assert!(
                policy.allows(Some(padded.as_bytes())),
                "{entry:?} refused itself"
            );
        }
    }
    if entries.iter().all(|e| !e.contains(',')) {
        let env = OriginPolicy::from_env_value(&entries.join(","))
            .expect("the same entries, already accepted once");
        let non_blank: Vec<String> = entries
            .iter()
            .filter(|e| !e.trim().is_empty())
            .cloned()
            .collect();
        // `policy` came from `new(entries)` or from this very env value.
        let from_new = OriginPolicy::new(&non_blank).expect("subset of accepted entries");
        assert_eq!(env, from_new);
    }
}

fn origin_bytes(origin: &Origin, entries: &[String]) -> Option<Vec<u8>> {
    match origin {
        Origin::Absent => None,
        Origin::Raw(b) => Some(b.clone()),
        Origin::Built(p) => Some(p.render(b"ab.").into_bytes()),
        Origin::Copy {
            index,
            upper,
            slash,
            spaces,
        } => {
            let entry = entries.get(usize::from(*index) % entries.len().max(1))?;
            let mut s = if *upper {
                entry.to_ascii_uppercase()
            } else {
                entry.clone()
            };
            if *slash {
                s.push('/');
            }
            if *spaces {
                s = format!(" \t{s} ");
            }
            Some(s.into_bytes())
        }
    }
}

fn normalise(s: &str) -> String {
    let s = s.trim();
    s.strip_suffix('/').unwrap_or(s).to_ascii_lowercase()
}

fn reference_allows(entries: &[String], origin: Option<&[u8]>) -> bool {
    let norms: Vec<String> = entries.iter().map(|e| normalise(e)).collect();
    if norms.is_empty() {
        return true;
    }
    let Some(raw) = origin else {
        return true;
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return false;
    };
    let origin = normalise(text);
    if origin == "null" {
        return norms.iter().any(|n| n == "null");
    }
    !origin.is_empty()
        && norms.iter().any(|n| {
            n != "null"
                && if is_glob(n) {
                    glob_match(n, &origin)
                } else {
                    *n == origin
                }
        })
}
