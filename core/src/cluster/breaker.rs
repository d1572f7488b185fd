//! The per-peer circuit breaker (UPSTREAM §10.7) as a pure machine; time is an input.
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ───────────────────────────────────────────▶ Open (until = now + open_duration)
//!     ▲                                                  │  every attempt refused
//!     │ success_threshold successes                      │  now ≥ until
//!     │                                                  ▼
//!     └──────────────────────────────────────────── HalfOpen: half_open_attempts attempts
//!                      a failure in HalfOpen ──▶ Open again (a fresh open_duration)
//! ```
//!
//! Defaults: 10 failures, 60 s, 3 half-open attempts, 3 successes.
//!
//! Grammar: [`CircuitBreaker::try_attempt`] before each connection attempt (the command),
//! [`CircuitBreaker::handle_success`] / [`CircuitBreaker::handle_failure`] with its result (the
//! inputs), [`CircuitBreaker::poll_timeout`] / [`CircuitBreaker::handle_timeout`] for the end of
//! the open period. The machine emits no outputs: the driver reads [`CircuitBreaker::state`].
//!
//! Invariants:
//!
//! - **nothing passes while open**: `try_attempt(now)` is refused for every `now` in
//!   `[opened_at, opened_at + open_duration)`;
//! - in half-open at most `half_open_attempts` attempts are granted, and only results of
//!   granted attempts count there: a result reported while open, or in half-open with no
//!   granted attempt pending, is ignored (it belongs to an attempt the breaker did not allow);
//! - a failure in half-open reopens at once; `success_threshold` successes close.
//!
//! Where the original differs: it lets one extra attempt through on the open → half-open
//! transition (4 in the first half-open round) and extends the open period on every failure
//! reported while open. Here the numbers are exact and the open period is fixed.

use std::time::Duration;

use crate::config::ConfigError;
use crate::time::Instant;

/// The breaker's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker (default 10).
    pub failure_threshold: u32,
    /// How long an open breaker refuses every attempt (default 60 s).
    pub open_duration: Duration,
    /// Attempts granted in half-open (default 3).
    pub half_open_attempts: u32,
    /// Successes in half-open that close the breaker (default 3, at most `half_open_attempts`).
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 10,
            open_duration: Duration::from_secs(60),
            half_open_attempts: 3,
            success_threshold: 3,
        }
    }
}

impl BreakerConfig {
    /// Checks the numbers: thresholds and attempts ≥ 1, `success_threshold ≤
    /// half_open_attempts` (else the breaker could never close).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::new(
                "breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        if self.half_open_attempts == 0 {
            return Err(ConfigError::new(
                "breaker.half_open_attempts",
                "must be at least 1",
            ));
        }
        if self.success_threshold == 0 || self.success_threshold > self.half_open_attempts {
            return Err(ConfigError::new(
                "breaker.success_threshold",
                format!(
                    "must be between 1 and half_open_attempts ({}), got {}",
                    self.half_open_attempts, self.success_threshold
                ),
            ));
        }
        Ok(())
    }

    /// The same numbers made usable without failing: zeros become 1 and `success_threshold`
    /// is capped at `half_open_attempts`.
    fn sanitized(self) -> BreakerConfig {
        let half_open_attempts = self.half_open_attempts.max(1);
        BreakerConfig {
            failure_threshold: self.failure_threshold.max(1),
            open_duration: self.open_duration,
            half_open_attempts,
            success_threshold: self.success_threshold.clamp(1, half_open_attempts),
        }
    }
}

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Attempts pass; failures are counted.
    Closed,
    /// Every attempt is refused until the open period ends.
    Open,
    /// A few probe attempts pass.
    HalfOpen,
}

/// Why [`CircuitBreaker::try_attempt`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The breaker is open until this instant.
    Open {
        /// When it turns half-open.
        until: Instant,
    },
    /// Half-open, and every probe attempt is granted already; wait for their results.
    ProbesInFlight,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Times the breaker opened (from closed or from half-open).
    pub opened: u64,
    /// Times it closed again from half-open.
    pub closed: u64,
    /// Attempts refused.
    pub refused: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { granted: u32, successes: u32 },
}

/// The per-peer circuit breaker. See the module docs.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    stats: BreakerStats,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker. An invalid `config` is made usable (zeros become 1, the success
    /// threshold is capped at the half-open attempts); check it with
    /// [`BreakerConfig::validate`] where it is read.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config: config.sanitized(),
            phase: Phase::Closed {
                consecutive_failures: 0,
            },
            stats: BreakerStats::default(),
        }
    }

    /// The numbers in force.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now` (an open breaker whose period has ended reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if now < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted while closed (0 in the other states).
    pub fn consecutive_failures(&self) -> u32 {
        match self.phase {
            Phase::Closed {
                consecutive_failures,
            } => consecutive_failures,
            _ => 0,
        }
    }

    /// Counters.
    pub fn stats(&self) -> BreakerStats {
        self.stats
    }

    /// Asks to make a connection attempt at `now`. Granted while closed; refused while open;
    /// in half-open granted up to `half_open_attempts` times.
    pub fn try_attempt(&mut self, now: Instant) -> Result<(), Refused> {
        self.handle_timeout(now);
        let refused = match &mut self.phase {
            Phase::Closed { .. } => return Ok(()),
            Phase::Open { until } => Refused::Open { until: *until },
            Phase::HalfOpen { granted, .. } => {
                if *granted < self.config.half_open_attempts {
                    *granted += 1;
                    return Ok(());
                }
                Refused::ProbesInFlight
            }
        };
        self.stats.refused += 1;
        Err(refused)
    }

    /// An attempt succeeded (connected and handshaken).
    pub fn handle_success(&mut self, now: Instant) {
        self.handle_timeout(now);
        match &mut self.phase {
            Phase::Closed {
                consecutive_failures,
            } => *consecutive_failures = 0,
            Phase::Open { .. } => {}
            Phase::HalfOpen { granted, successes } => {
                if *successes < *granted {
                    *successes += 1;
                    if *successes >= self.config.success_threshold {
                        self.phase = Phase::Closed {
                            consecutive_failures: 0,
                        };
                        self.stats.closed += 1;
                    }
                }
            }
        }
    }

    /// An attempt failed (connect, TLS or HELLO error).
    pub fn handle_failure(&mut self, now: Instant) {
        self.handle_timeout(now);
        match &mut self.phase {
            Phase::Closed {
                consecutive_failures,
            } => {
                *consecutive_failures = consecutive_failures.saturating_add(1);
                if *consecutive_failures >= self.config.failure_threshold {
                    self.open(now);
                }
            }
            Phase::Open { .. } => {}
            Phase::HalfOpen { granted, successes } => {
                if *successes < *granted {
                    self.open(now);
                }
            }
        }
    }

    /// When the open period ends (`None` unless open).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Turns an open breaker half-open once its period has ended; harmless early or twice.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Open { until } = self.phase
            && now >= until
        {
            self.phase = Phase::HalfOpen {
                granted: 0,
                successes: 0,
            };
        }
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open {
            until: now + self.config.open_duration,
        };
        self.stats.opened += 1;
    }
}

#[cfg(test)]
mod tests;
