//! # wse-fuzz: fuzz targets for every WSE decoder and state machine
//!
//! The targets are the integration tests in `tests/`, one file per target, each a
//! `bolero::check!()`. Under `cargo test -p wse-fuzz` every target runs as a bounded property
//! test (bolero's random engine, one second per target) after replaying its committed inputs in
//! `tests/__fuzz__/<target>/{corpus,crashes}`; under `cargo bolero test <target>` the same code is
//! driven coverage-guided by libFuzzer. See `docs/testing.md` for the commands and for what each
//! target asserts.
//!
//! This library holds only what several targets share: small alphabets that make fuzzed names
//! collide (so operation sequences touch the same topic twice), a reference glob matcher, and
//! the fixed test key of the JWT targets. Nothing here is used by the engine.

/// The HS256 secret of every JWT the fuzz targets mint and the validators they build accept.
/// A fixed test value: this crate is never published and never runs in production.
pub const TEST_SECRET: &[u8] = b"wse-fuzz-only-test-secret-0123456789abcdef";

/// Maps fuzzed bytes onto a name over `alphabet`, so that short random inputs often produce the
/// same name twice. Each byte picks one character (`byte % alphabet.len()`).
///
/// # Panics
///
/// If `alphabet` is empty (a bug in the target, never caused by the fuzzed input).
pub fn name_from(bytes: &[u8], alphabet: &[u8]) -> String {
    assert!(!alphabet.is_empty(), "alphabet must not be empty");
    bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

/// The obvious glob semantics (`*` any run of bytes, `?` exactly one byte, everything else
/// itself, no escaping) as a dynamic programme over bytes: `O(pattern × text)` time and memory,
/// no backtracking. The reference the engine's iterative matcher is checked against.
pub fn reference_glob(pattern: &[u8], text: &[u8]) -> bool {
    let width = text.len() + 1;
    // m[i * width + j]: pattern[i..] matches text[j..].
    let mut m = vec![false; (pattern.len() + 1) * width];
    m[pattern.len() * width + text.len()] = true;
    for i in (0..pattern.len()).rev() {
        for j in (0..=text.len()).rev() {
            m[i * width + j] = match pattern[i] {
                b'*' => m[(i + 1) * width + j] || (j < text.len() && m[i * width + j + 1]),
                p => j < text.len() && (p == b'?' || p == text[j]) && m[(i + 1) * width + j + 1],
            };
        }
    }
    m[0]
}

/// Depth of a JSON value: scalars 0, each enclosing array or object adds one (the msgpack
/// decoder's definition).
pub fn json_depth(v: &serde_json::Value) -> usize {
    // Iterative, so a deep value cannot overflow the test's own stack.
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            serde_json::Value::Array(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            serde_json::Value::Object(map) => {
                deepest = deepest.max(depth + 1);
                stack.extend(map.values().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// How a byte-level target reads its input: byte 0 even means **raw** (the rest is the real
/// input, as a committed corpus file holds it: a token, a request, a header), odd means
/// **structured** (the rest drives bolero's generator for a typed description, see
/// [`structured`]). Both halves are equally likely under random bytes. `None` for empty input.
pub fn split_mode(bytes: &[u8]) -> Option<(Mode, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    Some((
        if first % 2 == 0 {
            Mode::Raw
        } else {
            Mode::Structured
        },
        rest,
    ))
}

/// See [`split_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The rest of the input is used as it is.
    Raw,
    /// The rest of the input drives a generator.
    Structured,
}

/// Builds a `T` from fuzz bytes with bolero's own generator (the way `with_type` targets read
/// their input), so that a byte-level target can mix raw inputs with structured ones. `None`
/// when the bytes run out before a value is complete.
pub fn structured<T: bolero::TypeGenerator>(bytes: &[u8]) -> Option<T> {
    use bolero::generator::bolero_generator::driver::{ByteSliceDriver, Options};
    let mut driver = ByteSliceDriver::new(bytes, &Options::default());
    T::generate(&mut driver)
}
