//! Reconnect backoff: the strategies of the published clients (UPSTREAM §11.1, §11.2).
//!
//! Owns [`ReconnectStrategy`], [`ReconnectPolicy`] and its [`ReconnectPolicy::delay`], a pure
//! function of the retry index and injected randomness (the jitter).
//!
//! Order of operations in `delay(n)`: the strategy's raw delay, then the caps (`max`, and
//! [`ABSOLUTE_MAX_DELAY`]), then ±`jitter` uniformly, then [`ABSOLUTE_MAX_DELAY`] once more, so
//! the 300 s cap holds jitter included while `max` may be exceeded by at most the jitter
//! (`max·(1+jitter)`), as in the published clients. Arithmetic is in `f64` seconds and every
//! value is clamped before it becomes a [`Duration`]: no input (even an unvalidated policy)
//! panics.

use std::time::Duration;

use crate::config::ConfigError;
use crate::rand::Entropy;

/// The hard cap on any reconnect delay, jitter included (the published clients' 5 minutes).
pub const ABSOLUTE_MAX_DELAY: Duration = Duration::from_secs(300);
/// The adaptive strategy's minimum delay grows as `1 s·2^(n-1)` up to this (the TS client's).
pub const ADAPTIVE_FLOOR_MAX: Duration = Duration::from_secs(60);
/// The Fibonacci strategy stops growing at `fib(10)` = 89 times `base`.
const FIBONACCI_MAX_INDEX: u32 = 10;

/// How the delay grows with the retry index `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReconnectStrategy {
    /// `base·factor^n` (the Python client's default).
    #[default]
    Exponential,
    /// `base + n·1 s`.
    Linear,
    /// `base·fib(min(n, 10))`, with `fib(0) = fib(1) = 1`.
    Fibonacci,
    /// Exponential, but never below `1 s·2^(n-1)` capped at 60 s (the TS client's minimum).
    Adaptive,
}

/// When and how often the client reconnects. `Default` is the Python client's
/// `ReconnectConfig()`: exponential, base 1 s, max 30 s, factor 1.5, ±10 % jitter, no attempt
/// limit.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// The growth rule.
    pub strategy: ReconnectStrategy,
    /// The first delay (`n = 0`).
    pub base: Duration,
    /// The largest delay before jitter (and never above [`ABSOLUTE_MAX_DELAY`]).
    pub max: Duration,
    /// The exponential growth factor (exponential and adaptive strategies); finite, ≥ 1.
    pub factor: f64,
    /// Relative jitter in `[0, 1)`: the delay is multiplied by a uniform `1 ± jitter`.
    pub jitter: f64,
    /// Reconnect attempts allowed after a connection is lost before the client gives up
    /// (`Failed`); `None` retries forever. Reaching `Ready` starts the count again.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            strategy: ReconnectStrategy::Exponential,
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            factor: 1.5,
            jitter: 0.1,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Checks the policy: `factor` finite and ≥ 1, `jitter` in `[0, 1)`, `base` ≤ `max`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(ConfigError::new(
                "reconnect.factor",
                format!("must be a finite number ≥ 1, got {}", self.factor),
            ));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "reconnect.jitter",
                format!("must be in [0, 1), got {}", self.jitter),
            ));
        }
        if self.base > self.max {
            return Err(ConfigError::new(
                "reconnect.base",
                format!("{:?} is larger than max {:?}", self.base, self.max),
            ));
        }
        Ok(())
    }

    /// Delay before reconnect attempt `n` (0-based: the number of reconnect attempts already
    /// made since the client was last `Ready`), jitter drawn from `rng`.
    ///
    /// Always draws exactly one `u64` from `rng` (also with zero jitter), so a seed replays the
    /// same stream whatever the policy.
    pub fn delay(&self, n: u32, rng: &mut impl Entropy) -> Duration {
        let cap = self.max.min(ABSOLUTE_MAX_DELAY).as_secs_f64();
        let raw = self.raw_secs(n);
        // `f64::min` returns the other operand when one is NaN: a NaN delay becomes the cap.
        let capped = raw.min(cap).max(0.0);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 0.999_999)
        } else {
            0.0
        };
        let unit = unit_interval(rng.next_u64());
        let jittered = capped * (1.0 + jitter * (2.0 * unit - 1.0));
        let secs = jittered.clamp(0.0, ABSOLUTE_MAX_DELAY.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(ABSOLUTE_MAX_DELAY)
    }

    /// The strategy's delay in seconds before caps and jitter (may be infinite or NaN for an
    /// unvalidated policy; `delay` clamps it).
    fn raw_secs(&self, n: u32) -> f64 {
        let base = self.base.as_secs_f64();
        // Exponents beyond 1100 overflow f64 for any factor > 1.9; clamping keeps `powi` in i32.
        let exp = i32::try_from(n.min(1100)).unwrap_or(1100);
        let exponential = base * self.factor.powi(exp);
        match self.strategy {
            ReconnectStrategy::Exponential => exponential,
            ReconnectStrategy::Linear => base + f64::from(n),
            ReconnectStrategy::Fibonacci => base * fibonacci(n.min(FIBONACCI_MAX_INDEX)) as f64,
            ReconnectStrategy::Adaptive => {
                let floor = 2f64.powi(exp - 1).min(ADAPTIVE_FLOOR_MAX.as_secs_f64());
                if exponential.is_nan() {
                    floor
                } else {
                    exponential.max(floor)
                }
            }
        }
    }
}

/// `fib(0) = fib(1) = 1`, `fib(k) = fib(k-1) + fib(k-2)`; `k` ≤ 10 here, so no overflow.
fn fibonacci(k: u32) -> u64 {
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 0..k {
        (a, b) = (b, a.saturating_add(b));
    }
    a
}

/// A uniform `f64` in `[0, 1)` from the top 53 bits of `x`.
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fibonacci_starts_one_one() {
        let got: Vec<u64> = (0..=10).map(fibonacci).collect();
        assert_eq!(got, [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]);
    }

    #[test]
    fn unit_interval_stays_below_one() {
        assert_eq!(unit_interval(0), 0.0);
        assert!(unit_interval(u64::MAX) < 1.0);
    }
}
