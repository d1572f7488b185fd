//! `RustSequencer` (a counter plus a duplicate filter) and the bounded duplicate window that
//! `RustEventSequencer` shares.
//!
//! Bound: the window holds at most `max(window_size, 1)` ids; inserting into a full window
//! first forgets the oldest id. (The original behaves the same way, so a window of 0 acts as a
//! window of 1.) Nothing is allocated up front, so a huge `window_size` costs only what is used.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::prelude::*;

use super::lock;

/// The most recent event ids, oldest first, with the instant each was first seen.
#[derive(Debug)]
pub(super) struct DedupWindow {
    capacity: usize,
    order: VecDeque<(Arc<str>, Instant)>,
    ids: HashSet<Arc<str>>,
}

impl DedupWindow {
    /// An empty window remembering up to `max(window_size, 1)` ids.
    pub(super) fn new(window_size: usize) -> Self {
        Self {
            capacity: window_size.max(1),
            order: VecDeque::new(),
            ids: HashSet::new(),
        }
    }

    /// `true` if `id` is in the window. Otherwise records it (forgetting the oldest id if the
    /// window is full) and returns `false`. A repeat does not refresh an id's age or position.
    pub(super) fn check_and_insert(&mut self, id: &str, now: Instant) -> bool {
        if self.ids.contains(id) {
            return true;
        }
        if self.order.len() >= self.capacity {
            if let Some((oldest, _)) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        let id: Arc<str> = Arc::from(id);
        self.ids.insert(Arc::clone(&id));
        self.order.push_back((id, now));
        false
    }

    /// Forgets every id first seen more than `max_age_secs` seconds before `now` (all of them
    /// for a negative age, none for NaN).
    pub(super) fn forget_older_than(&mut self, max_age_secs: f64, now: Instant) {
        while let Some((id, seen)) = self.order.front() {
            if now.saturating_duration_since(*seen).as_secs_f64() > max_age_secs {
                self.ids.remove(id);
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    /// How many ids are remembered.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

/// Event sequencer with duplicate detection.
///
/// `next_seq()` hands out 1, 2, 3, ...; `is_duplicate(event_id)` remembers the last
/// `window_size` ids it was asked about and reports repeats. `cleanup(max_age_secs)` forgets
/// ids older than that. Safe to share between threads.
#[pyclass(module = "wse_server._wse_accel", name = "RustSequencer", frozen)]
#[derive(Debug)]
pub struct RustSequencer {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    sequence: u64,
    seen: DedupWindow,
}

#[pymethods]
impl RustSequencer {
    /// Creates a sequencer whose duplicate window holds `window_size` ids.
    #[new]
    fn new(window_size: usize) -> Self {
        Self {
            state: Mutex::new(State {
                sequence: 0,
                seen: DedupWindow::new(window_size),
            }),
        }
    }

    /// Advances the sequence and returns the new value (the first call returns 1).
    fn next_seq(&self, py: Python<'_>) -> u64 {
        let mut state = lock(&self.state, py);
        // 2^64 calls cannot happen; wrapping keeps the arithmetic total.
        state.sequence = state.sequence.wrapping_add(1);
        state.sequence
    }

    /// The last value `next_seq` returned (0 before the first call).
    fn get_current_seq(&self, py: Python<'_>) -> u64 {
        lock(&self.state, py).sequence
    }

    /// `True` if `event_id` is among the remembered ids; otherwise remembers it and returns
    /// `False`.
    fn is_duplicate(&self, py: Python<'_>, event_id: &str) -> bool {
        lock(&self.state, py)
            .seen
            .check_and_insert(event_id, Instant::now())
    }

    /// Forgets ids first seen more than `max_age_secs` seconds ago.
    fn cleanup(&self, py: Python<'_>, max_age_secs: f64) {
        lock(&self.state, py)
            .seen
            .forget_older_than(max_age_secs, Instant::now());
    }

    /// How many ids are remembered.
    fn seen_count(&self, py: Python<'_>) -> usize {
        lock(&self.state, py).seen.len()
    }
}
