use super::*;
use proptest::prelude::*;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

#[test]
fn defaults_are_the_originals() {
    let c = BreakerConfig::default();
    assert_eq!(
        (
            c.failure_threshold,
            c.open_duration,
            c.half_open_attempts,
            c.success_threshold
        ),
        (10, Duration::from_secs(60), 3, 3)
    );
    assert!(c.validate().is_ok());
}

#[test]
fn ten_consecutive_failures_open_it_for_sixty_seconds_then_three_probes_close_it() {
    let mut b = CircuitBreaker::default();
    for i in 0..9 {
        assert_eq!(b.try_attempt(secs(i)), Ok(()));
        b.handle_failure(secs(i));
        assert_eq!(b.state(secs(i)), BreakerState::Closed);
    }
    assert_eq!(b.consecutive_failures(), 9);
    b.handle_failure(secs(10));
    assert_eq!(b.state(secs(10)), BreakerState::Open);
    assert_eq!(b.poll_timeout(), Some(secs(70)));
    for t in [10, 40, 69] {
        assert_eq!(
            b.try_attempt(secs(t)),
            Err(Refused::Open { until: secs(70) })
        );
    }
    assert_eq!(
        b.try_attempt(Instant::from_micros(70_000_000 - 1)),
        Err(Refused::Open { until: secs(70) })
    );
    // A late result while open changes nothing.
    b.handle_failure(secs(50));
    b.handle_success(secs(50));
    assert_eq!(b.poll_timeout(), Some(secs(70)));

    b.handle_timeout(secs(70));
    assert_eq!(b.state(secs(70)), BreakerState::HalfOpen);
    assert_eq!(b.poll_timeout(), None);
    for _ in 0..3 {
        assert_eq!(b.try_attempt(secs(71)), Ok(()));
    }
    assert_eq!(b.try_attempt(secs(71)), Err(Refused::ProbesInFlight));
    b.handle_success(secs(72));
    b.handle_success(secs(72));
    assert_eq!(b.state(secs(72)), BreakerState::HalfOpen);
    b.handle_success(secs(72));
    assert_eq!(b.state(secs(72)), BreakerState::Closed);
    assert_eq!(b.consecutive_failures(), 0);
    assert_eq!(
        b.stats(),
        BreakerStats {
            opened: 1,
            closed: 1,
            refused: 5,
        }
    );
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let mut b = CircuitBreaker::default();
    for _ in 0..9 {
        b.handle_failure(secs(1));
    }
    b.handle_success(secs(1));
    for _ in 0..9 {
        b.handle_failure(secs(2));
    }
    assert_eq!(b.state(secs(2)), BreakerState::Closed);
    b.handle_failure(secs(2));
    assert_eq!(b.state(secs(2)), BreakerState::Open);
}

#[test]
fn a_half_open_failure_reopens_for_a_fresh_period() {
    let mut b = CircuitBreaker::default();
    for _ in 0..10 {
        b.handle_failure(secs(0));
    }
    assert_eq!(b.try_attempt(secs(60)), Ok(()));
    b.handle_success(secs(61));
    assert_eq!(b.try_attempt(secs(62)), Ok(()));
    b.handle_failure(secs(63));
    assert_eq!(b.state(secs(63)), BreakerState::Open);
    assert_eq!(b.poll_timeout(), Some(secs(123)));
    assert!(b.try_attempt(secs(122)).is_err());
    assert_eq!(b.try_attempt(secs(123)), Ok(()));
    assert_eq!(b.stats().opened, 2);
}

#[test]
fn half_open_ignores_results_it_did_not_grant() {
    let mut b = CircuitBreaker::default();
    for _ in 0..10 {
        b.handle_failure(secs(0));
    }
    b.handle_timeout(secs(60));
    // No attempt granted yet: neither result counts.
    b.handle_failure(secs(60));
    b.handle_success(secs(60));
    assert_eq!(b.state(secs(60)), BreakerState::HalfOpen);
    assert_eq!(b.stats().opened, 1);
}

#[test]
fn handle_timeout_early_or_twice_is_harmless() {
    let mut b = CircuitBreaker::default();
    b.handle_timeout(secs(5));
    assert_eq!(b.state(secs(5)), BreakerState::Closed);
    for _ in 0..10 {
        b.handle_failure(secs(10));
    }
    b.handle_timeout(secs(69));
    assert_eq!(b.state(secs(69)), BreakerState::Open);
    b.handle_timeout(secs(70));
    assert_eq!(b.try_attempt(secs(70)), Ok(()));
    b.handle_timeout(secs(71));
    assert_eq!(
        b.try_attempt(secs(71)),
        Ok(()),
        "the half-open round goes on"
    );
}

#[test]
fn invalid_configs_are_reported_and_made_usable() {
    let d = BreakerConfig::default();
    let field = |c: BreakerConfig| c.validate().unwrap_err().field;
    assert_eq!(
        field(BreakerConfig {
            failure_threshold: 0,
            ..d
        }),
        "breaker.failure_threshold"
    );
    assert_eq!(
        field(BreakerConfig {
            half_open_attempts: 0,
            ..d
        }),
        "breaker.half_open_attempts"
    );
    assert_eq!(
        field(BreakerConfig {
            success_threshold: 4,
            ..d
        }),
        "breaker.success_threshold"
    );
    let b = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 0,
        open_duration: Duration::ZERO,
        half_open_attempts: 0,
        success_threshold: 9,
    });
    assert_eq!(b.config().failure_threshold, 1);
    assert_eq!(b.config().half_open_attempts, 1);
    assert_eq!(b.config().success_threshold, 1);
}

// ----- model-based property test -----------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Attempt,
    Success,
    Failure,
    Advance(u64),
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Attempt),
        3 => Just(Op::Success),
        4 => Just(Op::Failure),
        3 => (0u64..8_000).prop_map(Op::Advance),
        1 => Just(Op::Timeout),
    ]
}

/// The documented behaviour, stated as plainly as possible: counters and an "opened at".
#[derive(Debug)]
struct Model {
    cfg: BreakerConfig,
    failures: u32,
    opened_at: Option<Instant>,
    /// `Some((granted, successes))` in half-open.
    probing: Option<(u32, u32)>,
}

impl Model {
    fn tick(&mut self, now: Instant) {
        if let Some(at) = self.opened_at
            && now.saturating_duration_since(at) >= self.cfg.open_duration
        {
            self.opened_at = None;
            self.probing = Some((0, 0));
        }
    }

    fn attempt(&mut self, now: Instant) -> bool {
        self.tick(now);
        if self.opened_at.is_some() {
            return false;
        }
        match &mut self.probing {
            None => true,
            Some((granted, _)) if *granted < self.cfg.half_open_attempts => {
                *granted += 1;
                true
            }
            Some(_) => false,
        }
    }

    fn result(&mut self, now: Instant, ok: bool) {
        self.tick(now);
        if self.opened_at.is_some() {
            return;
        }
        match self.probing {
            None if ok => self.failures = 0,
            None => {
                self.failures += 1;
                if self.failures >= self.cfg.failure_threshold {
                    self.failures = 0;
                    self.opened_at = Some(now);
                }
            }
            Some((granted, successes)) if successes < granted => {
                if !ok {
                    self.probing = None;
                    self.opened_at = Some(now);
                } else if successes + 1 >= self.cfg.success_threshold {
                    self.probing = None;
                } else {
                    self.probing = Some((granted, successes + 1));
                }
            }
            Some(_) => {}
        }
    }

    fn state(&self, now: Instant) -> BreakerState {
        match (self.opened_at, self.probing) {
            (Some(at), _) if now.saturating_duration_since(at) < self.cfg.open_duration => {
                BreakerState::Open
            }
            (Some(_), _) | (None, Some(_)) => BreakerState::HalfOpen,
            (None, None) => BreakerState::Closed,
        }
    }
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (1u32..6, 1u64..20, 1u32..5)
        .prop_flat_map(|(f, open, half)| (Just(f), Just(open), Just(half), 1..=half))
        .prop_map(
            |(failure_threshold, open, half_open_attempts, success_threshold)| BreakerConfig {
                failure_threshold,
                open_duration: Duration::from_secs(open),
                half_open_attempts,
                success_threshold,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The machine agrees with the model on every decision and state, and **nothing passes
    /// while open**: no attempt is granted at an instant inside `[opened_at, opened_at +
    /// open_duration)` of any time the breaker opened.
    #[test]
    fn agrees_with_the_model_and_nothing_passes_while_open(
        cfg in config(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let mut b = CircuitBreaker::new(cfg);
        let mut m = Model { cfg, failures: 0, opened_at: None, probing: None };
        let mut now = Instant::from_secs(1_000);
        let mut open_periods: Vec<(Instant, Instant)> = Vec::new();
        for op in ops {
            let opened_before = b.stats().opened;
            match op {
                Op::Attempt => {
                    let granted = b.try_attempt(now).is_ok();
                    prop_assert_eq!(granted, m.attempt(now), "attempt at {:?}", now);
                    if granted {
                        for (from, to) in &open_periods {
                            prop_assert!(!(*from <= now && now < *to), "granted while open");
                        }
                    }
                }
                Op::Success => { b.handle_success(now); m.result(now, true); }
                Op::Failure => { b.handle_failure(now); m.result(now, false); }
                Op::Advance(ms) => now = now + Duration::from_millis(ms),
                Op::Timeout => b.handle_timeout(now),
            }
            if b.stats().opened > opened_before {
                open_periods.push((now, now + cfg.open_duration));
                prop_assert_eq!(b.poll_timeout(), Some(now + cfg.open_duration));
            }
            prop_assert_eq!(b.state(now), m.state(now));
            prop_assert_eq!(b.state(now) == BreakerState::Open, b.poll_timeout().is_some_and(|t| now < t));
        }
    }
}
