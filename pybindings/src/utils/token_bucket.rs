//! `RustTokenBucket`: a floating-point token bucket on the monotonic clock.
//!
//! State is three floats and an instant, so it is bounded by construction. Arguments are taken
//! as the original takes them, without range checks: a negative refill rate drains the bucket
//! over time, a negative `acquire` adds tokens (still capped at `capacity` on the next refill),
//! and NaN never compares as "enough".

use std::sync::Mutex;
use std::time::Instant;

use pyo3::prelude::*;

use super::lock;

/// Token bucket rate limiter.
///
/// Holds up to `capacity` tokens and regains `refill_rate` tokens per second. Every `acquire`
/// (and every read of `tokens`) first adds the tokens earned since the previous refill, then
/// `acquire(n)` takes `n` tokens if that many are there. Safe to share between threads.
#[pyclass(module = "wse_server._wse_accel", name = "RustTokenBucket", frozen)]
#[derive(Debug)]
pub struct RustTokenBucket {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    refill_rate: f64,
    tokens: f64,
    last_refill: Instant,
}

impl Bucket {
    /// Adds the tokens earned since the last refill, never above `capacity`.
    fn refill(&mut self, now: Instant) {
        let elapsed_secs = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        // `f64::min` ignores a NaN operand: an infinite rate over zero elapsed time (NaN) fills
        // the bucket instead of poisoning it, as the original does.
        self.tokens = (self.tokens + elapsed_secs * self.refill_rate).min(self.capacity);
        self.last_refill = now;
    }
}

#[pymethods]
impl RustTokenBucket {
    /// Creates a bucket holding `initial_tokens` (default: `capacity`) tokens.
    #[new]
    #[pyo3(signature = (capacity, refill_rate, initial_tokens = None))]
    fn new(capacity: f64, refill_rate: f64, initial_tokens: Option<f64>) -> Self {
        Self {
            state: Mutex::new(Bucket {
                capacity,
                refill_rate,
                tokens: initial_tokens.unwrap_or(capacity),
                last_refill: Instant::now(),
            }),
        }
    }

    /// Refills, then takes `tokens` tokens and returns `True` if at least that many are
    /// available; otherwise returns `False` and takes nothing.
    fn acquire(&self, py: Python<'_>, tokens: f64) -> bool {
        let mut bucket = lock(&self.state, py);
        bucket.refill(Instant::now());
        if bucket.tokens >= tokens {
            bucket.tokens -= tokens;
            true
        } else {
            false
        }
    }

    /// The tokens available now (refills first).
    #[getter]
    fn tokens(&self, py: Python<'_>) -> f64 {
        let mut bucket = lock(&self.state, py);
        bucket.refill(Instant::now());
        bucket.tokens
    }

    /// Fills the bucket to `capacity` and restarts the refill clock.
    fn reset(&self, py: Python<'_>) {
        let mut bucket = lock(&self.state, py);
        bucket.tokens = bucket.capacity;
        bucket.last_refill = Instant::now();
    }
}
