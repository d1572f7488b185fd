//! Randomness as an input.
//!
//! The core draws no randomness of its own. Everything that needs it (message and connection ids
//! today; epochs, jitter and gossip choices later) takes an [`Entropy`] source from the driver: the
//! OS generator in production, a seeded generator in tests and simulation, so a seed replays
//! exactly.

use crate::time::WallClock;

/// A source of random bytes injected by the driver.
///
/// Implemented for every `rand_core::RngCore`, so `rand_chacha::ChaCha8Rng::seed_from_u64(s)`
/// (simulation) and `rand_core::OsRng` (production) both fit.
pub trait Entropy {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);

    /// A random `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

impl<R: rand_core::RngCore + ?Sized> Entropy for R {
    fn fill(&mut self, dest: &mut [u8]) {
        self.fill_bytes(dest);
    }
}

/// A UUIDv7 (RFC 9562) from the wall clock and injected randomness: the form the original server
/// uses for connection ids and message ids.
pub fn uuid_v7(wall: WallClock, rng: &mut (impl Entropy + ?Sized)) -> uuid::Uuid {
    let mut random = [0u8; 10];
    rng.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(wall.unix_millis(), &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    #[test]
    fn uuid_v7_is_version_7_and_time_ordered_and_seed_reproducible() {
        let mut a = ChaCha8Rng::seed_from_u64(7);
        let mut b = ChaCha8Rng::seed_from_u64(7);
        let t1 = WallClock::from_unix_millis(1_700_000_000_000);
        let t2 = WallClock::from_unix_millis(1_700_000_000_001);
        let x = uuid_v7(t1, &mut a);
        let y = uuid_v7(t2, &mut a);
        assert_eq!(x.get_version_num(), 7);
        assert!(x < y, "later millisecond sorts later");
        assert_eq!(x, uuid_v7(t1, &mut b), "same seed, same id");
    }
}
