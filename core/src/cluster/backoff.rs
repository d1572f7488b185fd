//! Reconnect backoff for peer links (UPSTREAM §10.7): 1 s × 1.5 per attempt, capped at 60 s,
//! times a jitter factor in `[0.8, 1.2)` drawn from the injected [`Entropy`]; reset after a
//! successful handshake.
//!
//! Delay `n` (0-based, attempts since the last reset) is
//! `min(min(initial · factor^n, max) · j, max)` with `j` uniform in `[jitter_min, jitter_max)`:
//! the cap holds jitter included, as in the original (so at the cap the delays spread over
//! `[48 s, 60 s]`). `j` is drawn from the top 53 bits of one `u64`; the delay is then rounded to
//! the nanosecond, which may round `base · j` up to `base · jitter_max`. Each delay draws exactly
//! one `u64`, so one seed replays one sequence.
//! Arithmetic is `f64` seconds, clamped before it becomes a [`Duration`]: no configuration, even
//! an unvalidated one, panics.

use std::time::Duration;

use crate::config::ConfigError;
use crate::rand::Entropy;

/// The backoff's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The first delay before jitter (default 1 s).
    pub initial: Duration,
    /// Growth per attempt, finite and ≥ 1 (default 1.5).
    pub factor: f64,
    /// The cap, jitter included (default 60 s).
    pub max: Duration,
    /// Smallest jitter factor, inclusive (default 0.8).
    pub jitter_min: f64,
    /// Largest jitter factor, exclusive (default 1.2).
    pub jitter_max: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            factor: 1.5,
            max: Duration::from_secs(60),
            jitter_min: 0.8,
            jitter_max: 1.2,
        }
    }
}

impl BackoffConfig {
    /// Checks the numbers: `factor` finite and ≥ 1, `initial ≤ max`, `0 < jitter_min ≤
    /// jitter_max`, both finite.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(ConfigError::new(
                "backoff.factor",
                format!("must be a finite number ≥ 1, got {}", self.factor),
            ));
        }
        if self.initial > self.max {
            return Err(ConfigError::new(
                "backoff.initial",
                format!("{:?} is larger than max {:?}", self.initial, self.max),
            ));
        }
        let ok = self.jitter_min.is_finite()
            && self.jitter_max.is_finite()
            && self.jitter_min > 0.0
            && self.jitter_min <= self.jitter_max;
        if !ok {
            return Err(ConfigError::new(
                "backoff.jitter",
                format!(
                    "needs 0 < jitter_min ≤ jitter_max, got [{}, {})",
                    self.jitter_min, self.jitter_max
                ),
            ));
        }
        Ok(())
    }
}

/// One peer's reconnect backoff: the attempt count since the last success.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff (attempt 0).
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, attempt: 0 }
    }

    /// The numbers in force.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Attempts since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self, rng: &mut (impl Entropy + ?Sized)) -> Duration {
        let d = self.delay(self.attempt, rng);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// A successful handshake: the next delay is the initial one again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before attempt `n` (0-based), drawing one `u64` from `rng`.
    pub fn delay(&self, n: u32, rng: &mut (impl Entropy + ?Sized)) -> Duration {
        let c = &self.config;
        let max = c.max.as_secs_f64();
        // Exponents past a few thousand are infinite for any factor > 1; min() caps them (and
        // turns a NaN from an unvalidated factor into the cap).
        let exp = i32::try_from(n.min(10_000)).unwrap_or(10_000);
        let base = (c.initial.as_secs_f64() * c.factor.powi(exp)).min(max);
        let unit = unit_interval(rng.next_u64());
        let jitter = c.jitter_min + (c.jitter_max - c.jitter_min) * unit;
        let secs = (base * jitter).min(max).max(0.0);
        Duration::try_from_secs_f64(secs).unwrap_or(c.max)
    }
}

/// A uniform `f64` in `[0, 1)` from the top 53 bits of `x`.
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// An entropy source returning one fixed word.
    struct Fixed(u64);
    impl Entropy for Fixed {
        fn fill(&mut self, dest: &mut [u8]) {
            for (d, s) in dest.iter_mut().zip(self.0.to_le_bytes().iter().cycle()) {
                *d = *s;
            }
        }
    }

    #[test]
    fn the_jitter_free_sequence_is_one_second_times_one_and_a_half_capped_at_sixty() {
        // unit = 0.5 → jitter factor exactly 1.0.
        let mut half = Fixed(1 << 63);
        let mut b = Backoff::new(BackoffConfig::default());
        let got: Vec<f64> = (0..14)
            .map(|_| b.next_delay(&mut half).as_secs_f64())
            .collect();
        let want = [
            1.0,
            1.5,
            2.25,
            3.375,
            5.0625,
            7.59375,
            11.390625,
            17.0859375,
            25.62890625,
            38.443359375,
            57.6650390625,
            60.0,
            60.0,
            60.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn jitter_spans_point_eight_to_one_point_two_and_the_cap_includes_it() {
        let b = Backoff::new(BackoffConfig::default());
        assert_eq!(b.delay(0, &mut Fixed(0)), Duration::from_millis(800));
        // The factor is below 1.2; the delay, rounded to the nanosecond, may reach it.
        let top = b.delay(0, &mut Fixed(u64::MAX)).as_secs_f64();
        assert!(top <= 1.2 && top > 1.199_999, "{top}");
        assert_eq!(b.delay(20, &mut Fixed(u64::MAX)), Duration::from_secs(60));
        assert_eq!(b.delay(20, &mut Fixed(0)), Duration::from_secs(48));
        assert_eq!(b.delay(u32::MAX, &mut Fixed(0)), Duration::from_secs(48));
    }

    #[test]
    fn reset_starts_over() {
        let mut rng = Fixed(1 << 63);
        let mut b = Backoff::new(BackoffConfig::default());
        for _ in 0..5 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.attempt(), 5);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(&mut rng), Duration::from_secs(1));
    }

    #[test]
    fn validate_names_the_bad_number() {
        assert!(BackoffConfig::default().validate().is_ok());
        let bad = |c: BackoffConfig| c.validate().unwrap_err().field;
        let d = BackoffConfig::default();
        assert_eq!(bad(BackoffConfig { factor: 0.5, ..d }), "backoff.factor");
        assert_eq!(
            bad(BackoffConfig {
                factor: f64::NAN,
                ..d
            }),
            "backoff.factor"
        );
        assert_eq!(
            bad(BackoffConfig {
                initial: Duration::from_secs(61),
                ..d
            }),
            "backoff.initial"
        );
        assert_eq!(
            bad(BackoffConfig {
                jitter_min: 1.3,
                ..d
            }),
            "backoff.jitter"
        );
    }

    proptest! {
        #[test]
        fn same_seed_same_delays_and_always_within_bounds(seed: u64, n in 1usize..40) {
            let run = |seed: u64| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut b = Backoff::new(BackoffConfig::default());
                (0..n).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
            };
            let a = run(seed);
            prop_assert_eq!(&a, &run(seed));
            for (i, d) in a.iter().enumerate() {
                let base = (1.5f64.powi(i as i32)).min(60.0);
                let s = d.as_secs_f64();
                prop_assert!(s >= base * 0.8 - 1e-9, "attempt {i}: {s} < {}", base * 0.8);
                prop_assert!(s <= base * 1.2 + 1e-9 && s <= 60.0, "attempt {i}: {s}");
            }
        }

        #[test]
        fn any_config_gives_a_delay_within_zero_and_max(
            initial_ms in 0u64..100_000, max_ms in 0u64..100_000, factor in any::<f64>(),
            lo in any::<f64>(), hi in any::<f64>(), n: u32, word: u64,
        ) {
            let b = Backoff::new(BackoffConfig {
                initial: Duration::from_millis(initial_ms),
                factor,
                max: Duration::from_millis(max_ms),
                jitter_min: lo,
                jitter_max: hi,
            });
            let d = b.delay(n, &mut Fixed(word));
            prop_assert!(d <= Duration::from_millis(max_ms));
        }
    }
}
