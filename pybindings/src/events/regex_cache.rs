//! `$regex` patterns: compiled with bounds, kept in small FIFO caches.
//!
//! Patterns come from filter criteria, which applications may take from clients, so they are
//! untrusted. The `regex` crate matches in time linear in the input (no backtracking, hence no
//! catastrophic patterns), and compilation is capped: a pattern whose compiled program would
//! exceed [`LARGE_SIZE_LIMIT`] is refused with the same `ValueError` as a malformed one (the
//! original allowed 10 MiB). A pattern is anchored at the start of the text (`^(?:…)`), the
//! original's `re.match`-like semantics.
//!
//! Memory is bounded by two FIFO caches (oldest evicted first): [`CACHE_CAPACITY`] patterns
//! that compile within [`SMALL_SIZE_LIMIT`] (every realistic filter), and
//! [`LARGE_CACHE_CAPACITY`] that need up to [`LARGE_SIZE_LIMIT`]. Each entry also owns a lazy
//! DFA cache capped at its tier's size limit. Worst case, about 1024 × 128 KiB + 16 × 2 MiB
//! ≈ 160 MiB, however hostile the patterns.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use regex::{Regex, RegexBuilder};

/// Patterns kept in the main cache (the original's cache size).
pub const CACHE_CAPACITY: usize = 1024;

/// Compiled-program budget (bytes) of a main-cache pattern; also its lazy-DFA cache budget.
pub const SMALL_SIZE_LIMIT: usize = 64 * 1024;

/// Patterns kept in the cache of large ones.
pub const LARGE_CACHE_CAPACITY: usize = 16;

/// Largest compiled program (bytes) of any pattern; also a large pattern's lazy-DFA budget.
/// Unicode classes are big: `\w{20}` fits, `\w{30}` does not (`[A-Za-z0-9_]{1000}` does).
pub const LARGE_SIZE_LIMIT: usize = 1024 * 1024;

/// Whether `text` matches `pattern` at its start. A malformed or oversized pattern is a
/// `ValueError("Invalid regex '<pattern>': <reason>")`, as in the original.
pub fn is_match(pattern: &str, text: &str) -> PyResult<bool> {
    Ok(compiled(pattern)?.is_match(text))
}

/// Number of compiled patterns currently cached, both tiers (for tests and diagnostics).
pub fn cached_count() -> usize {
    let caches = lock();
    caches.small.by_pattern.len() + caches.large.by_pattern.len()
}

/// A pattern → regex map that forgets its oldest entry when full.
struct Fifo {
    capacity: usize,
    by_pattern: HashMap<String, Regex>,
    /// Insertion order, oldest first.
    order: VecDeque<String>,
}

impl Fifo {
    fn new(capacity: usize) -> Self {
        Fifo {
            capacity,
            by_pattern: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, pattern: &str, re: &Regex) {
        if self.by_pattern.contains_key(pattern) {
            return; // another thread compiled it meanwhile
        }
        while self.by_pattern.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_pattern.remove(&oldest);
        }
        self.by_pattern.insert(pattern.to_owned(), re.clone());
        self.order.push_back(pattern.to_owned());
    }
}

struct Caches {
    small: Fifo,
    large: Fifo,
}

static CACHES: LazyLock<Mutex<Caches>> = LazyLock::new(|| {
    Mutex::new(Caches {
        small: Fifo::new(CACHE_CAPACITY),
        large: Fifo::new(LARGE_CACHE_CAPACITY),
    })
});

fn lock() -> std::sync::MutexGuard<'static, Caches> {
    // A poisoned lock only means another thread panicked between two plain map operations;
    // the worst left behind is an entry missing from `order`, which only delays its eviction.
    CACHES.lock().unwrap_or_else(PoisonError::into_inner)
}

fn compiled(pattern: &str) -> PyResult<Regex> {
    {
        let caches = lock();
        if let Some(re) = caches
            .small
            .by_pattern
            .get(pattern)
            .or_else(|| caches.large.by_pattern.get(pattern))
        {
            return Ok(re.clone());
        }
    }
    // Compile outside the lock: it is the slow part.
    let anchored = format!("^(?:{pattern})");
    let invalid =
        |e: regex::Error| PyValueError::new_err(format!("Invalid regex '{pattern}': {e}"));
    match build(&anchored, SMALL_SIZE_LIMIT) {
        Ok(re) => {
            lock().small.insert(pattern, &re);
            Ok(re)
        }
        Err(regex::Error::CompiledTooBig(_)) => {
            let re = build(&anchored, LARGE_SIZE_LIMIT).map_err(invalid)?;
            lock().large.insert(pattern, &re);
            Ok(re)
        }
        Err(e) => Err(invalid(e)),
    }
}

fn build(anchored: &str, limit: usize) -> Result<Regex, regex::Error> {
    RegexBuilder::new(anchored)
        .size_limit(limit)
        .dfa_size_limit(limit)
        .build()
}
