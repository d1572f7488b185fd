//! Epochs: the identity of one incarnation of a topic's ring.
//!
//! A ring gets an [`Epoch`] when it is created and keeps it until it is dropped (TTL, memory
//! budget). Offsets only mean something together with their epoch, so a recreated ring must never
//! reuse the epoch its topic had before, or a client would "recover" the wrong messages.
//!
//! [`EpochSource`] guarantees that: it draws one random base from the injected entropy (so epochs
//! differ across restarts, as the original's time-plus-pid epochs do) and then walks a bijection of
//! `u32`, so no two rings created by one store share an epoch until 2^32 rings have been created.
//! On the wire an epoch is 8 lowercase hex digits (UPSTREAM §8.2).

use std::fmt;
use std::str::FromStr;

use crate::rand::Entropy;

/// The epoch of a topic's ring; `Display` is the wire form, 8 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The raw value.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Longest input echoed back in an [`EpochParseError`]; the input may come from a peer.
const MAX_ECHOED_INPUT_CHARS: usize = 64;

/// An epoch string that is not 1 to 8 hex digits. The message matches the original's
/// `RuntimeError("Invalid epoch hex string: ...")`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid epoch hex string: {input}")]
pub struct EpochParseError {
    /// The rejected input, cut to 64 characters (then ending in `...`).
    pub input: String,
}

impl FromStr for Epoch {
    type Err = EpochParseError;

    /// Parses 1 to 8 hex digits, either case. Signs, prefixes, spaces and empty input are errors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
        match u32::from_str_radix(s, 16) {
            Ok(v) if valid => Ok(Epoch(v)),
            _ => Err(EpochParseError { input: echo(s) }),
        }
    }
}

fn echo(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(MAX_ECHOED_INPUT_CHARS).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

/// Hands out epochs that are distinct within one store (see the module doc).
#[derive(Clone, Debug, Default)]
pub(crate) struct EpochSource {
    /// Drawn from the injected entropy at the first ring creation.
    base: Option<u32>,
    /// Rings created so far (wrapping after 2^32).
    counter: u32,
}

impl EpochSource {
    /// A fresh epoch, distinct from the previous 2^32 − 1 this source returned.
    pub(crate) fn next(&mut self, rng: &mut (impl Entropy + ?Sized)) -> Epoch {
        let base = *self.base.get_or_insert_with(|| {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            u32::from_le_bytes(b)
        });
        let e = Epoch(base.wrapping_add(scramble(self.counter)));
        self.counter = self.counter.wrapping_add(1);
        e
    }
}

/// A bijection of `u32` (odd multiplications and xor-shifts are each invertible), so consecutive
/// counters give unrelated-looking but never equal epochs.
fn scramble(mut x: u32) -> u32 {
    x = x.wrapping_mul(0x9e37_79b1);
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn epoch_displays_as_eight_lowercase_hex_digits() {
        let cases = [
            (0, "00000000"),
            (0xabcd, "0000abcd"),
            (u32::MAX, "ffffffff"),
        ];
        for (v, want) in cases {
            assert_eq!(Epoch(v).to_string(), want);
        }
    }

    #[test]
    fn epoch_parses_one_to_eight_hex_digits_in_either_case() {
        let cases = [
            ("0", Ok(0)),
            ("0000abcd", Ok(0xabcd)),
            ("ABCD", Ok(0xabcd)),
            ("FfFfFfFf", Ok(u32::MAX)),
            ("", Err(())),
            ("123456789", Err(())),
            ("+1", Err(())),
            ("-1", Err(())),
            ("0x1f", Err(())),
            (" 1f", Err(())),
            ("zz", Err(())),
            ("１", Err(())),
        ];
        for (input, want) in cases {
            let got = input.parse::<Epoch>().map(Epoch::as_u32).map_err(|_| ());
            assert_eq!(got, want, "input={input:?}");
        }
    }

    #[test]
    fn epoch_parse_error_names_the_input_like_the_original() {
        let err = "xyz".parse::<Epoch>().unwrap_err();
        assert_eq!(err.to_string(), "Invalid epoch hex string: xyz");
        let long = "x".repeat(1000);
        let err = long.parse::<Epoch>().unwrap_err();
        assert_eq!(err.input, format!("{}...", "x".repeat(64)));
    }

    #[test]
    fn display_then_parse_round_trips() {
        for v in [0, 1, 0x1234_5678, u32::MAX] {
            assert_eq!(Epoch(v).to_string().parse::<Epoch>(), Ok(Epoch(v)));
        }
    }

    #[test]
    fn epoch_source_never_repeats_and_depends_on_the_seed() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut src = EpochSource::default();
        let seen: BTreeSet<Epoch> = (0..100_000).map(|_| src.next(&mut rng)).collect();
        assert_eq!(seen.len(), 100_000);

        let mut other = EpochSource::default();
        let mut rng2 = ChaCha8Rng::seed_from_u64(2);
        assert_ne!(
            other.next(&mut rng2),
            EpochSource::default().next(&mut ChaCha8Rng::seed_from_u64(1))
        );
    }
}
