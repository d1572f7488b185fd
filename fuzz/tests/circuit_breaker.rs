//! Fuzz target: the per-peer circuit breaker (`wse_core::cluster::breaker::CircuitBreaker`)
//! under operation sequences, checked against a model written from UPSTREAM §10.7.
//!
//! Input (typed): the breaker's numbers (small, so every transition happens in short inputs)
//! and a sequence of attempts, successes, failures, clock steps (including zero and steps past
//! the open period) and timer firings.
//!
//! Invariants after every step:
//!
//! - **nothing passes while open**: no attempt is granted at an instant inside
//!   `[opened_at, opened_at + open_duration)` of any time the breaker opened;
//! - the breaker opens exactly when the model does: on the `failure_threshold`-th consecutive
//!   failure while closed, or on a failure of a granted half-open attempt;
//! - a half-open round grants at most `half_open_attempts` attempts, and the breaker closes
//!   exactly when `success_threshold` of them succeeded;
//! - `state`, `poll_timeout` and every `try_attempt` answer agree with the model; the counters
//!   (`opened`, `closed`, `refused`) match it.

use std::time::Duration;

use bolero::TypeGenerator;
use wse_core::Instant;
use wse_core::cluster::breaker::{
    BreakerConfig, BreakerState, BreakerStats, CircuitBreaker, Refused,
};

#[derive(Debug, TypeGenerator)]
struct Input {
    failure_threshold: u8,
    open_secs: u8,
    half_open_attempts: u8,
    success_threshold: u8,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Op {
    Attempt,
    Success,
    Failure,
    /// Advance the clock by this many milliseconds × 64 (0 to about 70 s).
    Advance(u16),
    Timeout,
}

/// The documented behaviour, as plainly as possible.
#[derive(Debug)]
struct Model {
    cfg: BreakerConfig,
    failures: u32,
    opened_at: Option<Instant>,
    /// `(granted, succeeded)` while half-open.
    round: Option<(u32, u32)>,
    stats: BreakerStats,
}

impl Model {
    fn open_until(&self) -> Option<Instant> {
        self.opened_at.map(|at| at + self.cfg.open_duration)
    }

    fn settle(&mut self, now: Instant) {
        if self.open_until().is_some_and(|until| now >= until) {
            self.opened_at = None;
            self.round = Some((0, 0));
        }
    }

    fn open(&mut self, now: Instant) {
        self.opened_at = Some(now);
        self.round = None;
        self.failures = 0;
        self.stats.opened += 1;
    }

    fn attempt(&mut self, now: Instant) -> Result<(), Refused> {
        self.settle(now);
        let refused = if let Some(until) = self.open_until() {
            Refused::Open { until }
        } else {
            match &mut self.round {
                None => return Ok(()),
                Some((granted, _)) if *granted < self.cfg.half_open_attempts => {
                    *granted += 1;
                    return Ok(());
                }
                Some(_) => Refused::ProbesInFlight,
            }
        };
        self.stats.refused += 1;
        Err(refused)
    }

    fn result(&mut self, now: Instant, ok: bool) {
        self.settle(now);
        if self.opened_at.is_some() {
            return;
        }
        match self.round {
            None if ok => self.failures = 0,
            None => {
                self.failures += 1;
                if self.failures >= self.cfg.failure_threshold {
                    self.open(now);
                }
            }
            Some((granted, succeeded)) if succeeded < granted => {
                if !ok {
                    self.open(now);
                } else if succeeded + 1 >= self.cfg.success_threshold {
                    self.round = None;
                    self.stats.closed += 1;
                } else {
                    self.round = Some((granted, succeeded + 1));
                }
            }
            Some(_) => {}
        }
    }

    fn state(&self, now: Instant) -> BreakerState {
        match self.open_until() {
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
            None if self.round.is_some() => BreakerState::HalfOpen,
            None => BreakerState::Closed,
        }
    }
}

#[test]
fn circuit_breaker() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let half_open_attempts = u32::from(input.half_open_attempts % 5) + 1;
        let cfg = BreakerConfig {
            failure_threshold: u32::from(input.failure_threshold % 12) + 1,
            open_duration: Duration::from_secs(u64::from(input.open_secs % 90)),
            half_open_attempts,
            success_threshold: u32::from(input.success_threshold) % half_open_attempts + 1,
        };
        cfg.validate().expect("valid by construction");
        let mut breaker = CircuitBreaker::new(cfg);
        let mut model = Model {
            cfg,
            failures: 0,
            opened_at: None,
            round: None,
            stats: BreakerStats::default(),
        };
        let mut now = Instant::from_secs(1_000);
        let mut open_periods: Vec<(Instant, Instant)> = Vec::new();
        for op in &input.ops {
            match op {
                Op::Attempt => {
                    let got = breaker.try_attempt(now);
                    assert_eq!(got, model.attempt(now), "attempt at {now:?}");
                    if got.is_ok() {
                        assert!(
                            !open_periods
                                .iter()
                                .any(|(from, to)| *from <= now && now < *to),
                            "an attempt passed while open"
                        );
                    }
                }
                Op::Success => {
                    breaker.handle_success(now);
                    model.result(now, true);
                }
                Op::Failure => {
                    breaker.handle_failure(now);
                    model.result(now, false);
                }
                Op::Advance(step) => now = now + Duration::from_millis(u64::from(*step) * 64),
                Op::Timeout => {
                    breaker.handle_timeout(now);
                    model.settle(now);
                }
            }
            let stats = breaker.stats();
            if stats.opened > open_periods.len() as u64 {
                open_periods.push((now, now + cfg.open_duration));
            }
            assert_eq!(stats, model.stats);
            assert_eq!(breaker.state(now), model.state(now));
            assert_eq!(breaker.poll_timeout(), model.open_until());
        }
    });
}
