//! `$regex` patterns: compiled with bounds, kept in a small FIFO cache.
//!
//! Patterns come from filter criteria, which applications may take from clients, so they are
//! untrusted. The `regex` crate matches in time linear in the input (no backtracking, so no
//! catastrophic patterns), and compilation is capped: a pattern whose compiled program would
//! exceed [`REGEX_SIZE_LIMIT`] is refused with the same `ValueError` as a malformed one. A
//! pattern is anchored at the start of the text (`^(?:…)`), the original's `re.match`-like
//! semantics. At most [`CACHE_CAPACITY`] compiled patterns are kept; the oldest is evicted
//! first. Worst-case cache memory is therefore bounded by roughly
//! `CACHE_CAPACITY × (REGEX_SIZE_LIMIT + REGEX_DFA_SIZE_LIMIT)`; real filter patterns compile to
//! a few kilobytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use regex::{Regex, RegexBuilder};

/// Compiled patterns kept for reuse (the original's cache size). A full cache drops its oldest.
pub const CACHE_CAPACITY: usize = 1024;

/// Largest compiled program of one pattern (bytes). The original used the crate default of
/// 10 MiB; a quarter MiB is ample for any real filter and keeps a full cache affordable.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Largest lazy-DFA cache of one pattern (bytes); past it the engine falls back to slower
/// (still linear) matching instead of growing.
pub const REGEX_DFA_SIZE_LIMIT: usize = 256 * 1024;

/// Whether `text` matches `pattern` at its start. A malformed or oversized pattern is a
/// `ValueError("Invalid regex '<pattern>': <reason>")`, as in the original.
pub fn is_match(pattern: &str, text: &str) -> PyResult<bool> {
    Ok(compiled(pattern)?.is_match(text))
}

struct Cache {
    by_pattern: HashMap<String, Regex>,
    /// Insertion order, oldest first: the eviction queue.
    order: VecDeque<String>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        by_pattern: HashMap::new(),
        order: VecDeque::new(),
    })
});

fn compiled(pattern: &str) -> PyResult<Regex> {
    // A poisoned lock only means another thread panicked mid-update of a plain map; the map
    // itself is still consistent enough to use (worst case a missing entry is recompiled).
    if let Some(re) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .by_pattern
        .get(pattern)
    {
        return Ok(re.clone());
    }
    // Compile outside the lock: it is the slow part, and concurrent callers may race to
    // insert the same pattern, which the insert below tolerates.
    let re = RegexBuilder::new(&format!("^(?:{pattern})"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| PyValueError::new_err(format!("Invalid regex '{pattern}': {e}")))?;
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if !cache.by_pattern.contains_key(pattern) {
        while cache.by_pattern.len() >= CACHE_CAPACITY {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            cache.by_pattern.remove(&oldest);
        }
        cache.by_pattern.insert(pattern.to_owned(), re.clone());
        cache.order.push_back(pattern.to_owned());
    }
    Ok(re)
}

/// Number of compiled patterns currently cached (for tests and diagnostics).
pub fn cached_count() -> usize {
    CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .by_pattern
        .len()
}
