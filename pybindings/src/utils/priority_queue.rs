//! The two priority queues: `RustPriorityQueue` (any `int` priority, a heap) and
//! `RustPriorityMessageQueue` (five fixed levels with the original's drop policy and batching).
//!
//! Bound: each holds at most `max_size` messages; nothing is allocated up front. A full
//! `RustPriorityQueue` refuses new messages; a full `RustPriorityMessageQueue` drops the oldest
//! message of the lowest droppable level, or refuses the new one.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::lock;

/// Priority queue: higher numbers come out first; equal priorities come out in push order.
/// Holds at most `max_size` messages. Safe to share between threads.
#[pyclass(module = "wse_server._wse_accel", name = "RustPriorityQueue", frozen)]
#[derive(Debug)]
pub struct RustPriorityQueue {
    max_size: usize,
    heap: Mutex<Heap>,
}

#[derive(Debug)]
struct Heap {
    entries: BinaryHeap<Entry>,
    /// Push counter: the FIFO tie-break within one priority.
    pushed: u64,
}

#[derive(Debug)]
struct Entry {
    priority: i32,
    order: u64,
    message: Py<PyAny>,
}

impl Entry {
    fn key(&self) -> (i32, std::cmp::Reverse<u64>) {
        (self.priority, std::cmp::Reverse(self.order))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[pymethods]
impl RustPriorityQueue {
    /// Creates an empty queue holding at most `max_size` messages.
    #[new]
    fn new(max_size: usize) -> Self {
        Self {
            max_size,
            heap: Mutex::new(Heap {
                entries: BinaryHeap::new(),
                pushed: 0,
            }),
        }
    }

    /// Adds `message` with `priority`; returns `False` (and keeps nothing) if the queue is full.
    fn push(&self, py: Python<'_>, priority: i32, message: Py<PyAny>) -> bool {
        let mut heap = lock(&self.heap, py);
        if heap.entries.len() >= self.max_size {
            // Release the lock before `message` is dropped on return (its `__del__` may run).
            drop(heap);
            return false;
        }
        let order = heap.pushed;
        heap.pushed += 1;
        heap.entries.push(Entry {
            priority,
            order,
            message,
        });
        true
    }

    /// Removes and returns the highest-priority message, or `None` if the queue is empty.
    fn pop(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.heap, py).entries.pop().map(|e| e.message)
    }

    /// Removes and returns up to `max_count` messages, highest priority first.
    fn drain(&self, py: Python<'_>, max_count: usize) -> Vec<Py<PyAny>> {
        let mut heap = lock(&self.heap, py);
        let n = max_count.min(heap.entries.len());
        (0..n)
            .filter_map(|_| heap.entries.pop().map(|e| e.message))
            .collect()
    }

    /// How many messages are queued.
    fn len(&self, py: Python<'_>) -> usize {
        lock(&self.heap, py).entries.len()
    }

    /// Whether the queue holds `max_size` messages (always true for `max_size == 0`).
    fn is_full(&self, py: Python<'_>) -> bool {
        lock(&self.heap, py).entries.len() >= self.max_size
    }

    /// Removes every message.
    fn clear(&self, py: Python<'_>) {
        let removed = std::mem::take(&mut lock(&self.heap, py).entries);
        drop(removed);
    }
}

/// The five levels, highest first: CRITICAL, HIGH, NORMAL, LOW, BACKGROUND.
const LEVELS: [i32; 5] = [10, 8, 5, 3, 1];

/// Index into [`LEVELS`] of the levels a full queue may drop from, in the order it tries them
/// (BACKGROUND, LOW, NORMAL); HIGH and CRITICAL messages are never dropped to make room.
const DROPPABLE: [usize; 3] = [4, 3, 2];

/// `get_stats()["backpressure"]` is true above this utilisation (percent).
const BACKPRESSURE_PERCENT: f64 = 80.0;

/// Maps any `int` priority to a level index: 9 and up → CRITICAL(10), 7–8 → HIGH(8),
/// 4–6 → NORMAL(5), 2–3 → LOW(3), 1 and below → BACKGROUND(1).
fn level_index(priority: i32) -> usize {
    match priority {
        9.. => 0,
        7..=8 => 1,
        4..=6 => 2,
        2..=3 => 3,
        _ => 4,
    }
}

/// Priority message queue with five levels and batching.
///
/// Priorities are mapped to CRITICAL(10), HIGH(8), NORMAL(5), LOW(3) or BACKGROUND(1) (nearest
/// level, ties upward). When the queue is full, `enqueue` drops the oldest BACKGROUND, else LOW,
/// else NORMAL message to make room; if only HIGH and CRITICAL messages are queued the new
/// message is refused (`False`). Every drop is counted under the dropped message's level.
/// `dequeue_batch()` returns up to `batch_size` `(level, message)` tuples, highest level first,
/// oldest first within a level. Safe to share between threads.
#[pyclass(
    module = "wse_server._wse_accel",
    name = "RustPriorityMessageQueue",
    frozen
)]
#[derive(Debug)]
pub struct RustPriorityMessageQueue {
    max_size: usize,
    batch_size: usize,
    state: Mutex<Levels>,
}

#[derive(Debug)]
struct Levels {
    queues: [VecDeque<(Py<PyAny>, Instant)>; 5],
    dropped: [u64; 5],
}

impl Levels {
    fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

#[pymethods]
impl RustPriorityMessageQueue {
    /// Creates an empty queue of at most `max_size` messages, dequeued `batch_size` at a time.
    #[new]
    #[pyo3(signature = (max_size = 1000, batch_size = 10))]
    fn new(max_size: usize, batch_size: usize) -> Self {
        Self {
            max_size,
            batch_size,
            state: Mutex::new(Levels {
                queues: Default::default(),
                dropped: [0; 5],
            }),
        }
    }

    /// Queues `message` at `priority` (default NORMAL). Returns `False` if it was refused
    /// because the queue is full of HIGH and CRITICAL messages (or `max_size` is 0).
    #[pyo3(signature = (message, priority = 5))]
    fn enqueue(&self, py: Python<'_>, message: Py<PyAny>, priority: i32) -> bool {
        let level = level_index(priority);
        let mut evicted = None;
        let accepted = {
            let mut state = lock(&self.state, py);
            if state.len() >= self.max_size {
                match DROPPABLE.iter().find(|&&l| !state.queues[l].is_empty()) {
                    Some(&victim) => {
                        evicted = state.queues[victim].pop_front();
                        state.dropped[victim] += 1;
                    }
                    None => state.dropped[level] += 1,
                }
            }
            let accepted = state.len() < self.max_size;
            if accepted {
                state.queues[level].push_back((message, Instant::now()));
            }
            accepted
        };
        drop(evicted);
        accepted
    }

    /// Removes and returns up to `batch_size` `(level, message)` tuples, highest level first.
    fn dequeue_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let batch: Vec<(i32, Py<PyAny>)> = {
            let mut state = lock(&self.state, py);
            let mut batch = Vec::new();
            for (i, queue) in state.queues.iter_mut().enumerate() {
                while batch.len() < self.batch_size {
                    match queue.pop_front() {
                        Some((message, _)) => batch.push((LEVELS[i], message)),
                        None => break,
                    }
                }
            }
            batch
        };
        let items = batch
            .into_iter()
            .map(|(level, message)| {
                PyTuple::new(
                    py,
                    [level.into_pyobject(py)?.into_any(), message.into_bound(py)],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// How many messages are queued.
    #[getter]
    fn size(&self, py: Python<'_>) -> usize {
        lock(&self.state, py).len()
    }

    /// Queue statistics: `size`, `capacity`, `utilization_percent`, `priority_distribution`
    /// and `dropped_by_priority` (keyed by level), `priority_queue_depths`
    /// (`"priority_<level>_depth"`), `total_dropped`, `backpressure` (above 80 % full),
    /// `oldest_message_age` (seconds, `None` when empty) and `processing_rate` (always 0.0:
    /// the original reports no rate, the key is kept for shape).
    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let now = Instant::now();
        let (depths, dropped, oldest) = {
            let state = lock(&self.state, py);
            let depths: [usize; 5] = std::array::from_fn(|i| state.queues[i].len());
            let oldest = state
                .queues
                .iter()
                .filter_map(|q| q.front().map(|(_, at)| *at))
                .min();
            (depths, state.dropped, oldest)
        };
        let size: usize = depths.iter().sum();
        let utilization = if self.max_size == 0 {
            0.0
        } else {
            size as f64 / self.max_size as f64 * 100.0
        };
        let distribution = PyDict::new(py);
        let named_depths = PyDict::new(py);
        let dropped_by = PyDict::new(py);
        for (i, level) in LEVELS.iter().enumerate() {
            distribution.set_item(level, depths[i])?;
            named_depths.set_item(format!("priority_{level}_depth"), depths[i])?;
            dropped_by.set_item(level, dropped[i])?;
        }
        let out = PyDict::new(py);
        out.set_item("size", size)?;
        out.set_item("capacity", self.max_size)?;
        out.set_item("utilization_percent", utilization)?;
        out.set_item("priority_distribution", distribution)?;
        out.set_item("priority_queue_depths", named_depths)?;
        out.set_item("dropped_by_priority", dropped_by)?;
        out.set_item("total_dropped", dropped.iter().sum::<u64>())?;
        out.set_item("backpressure", utilization > BACKPRESSURE_PERCENT)?;
        out.set_item(
            "oldest_message_age",
            oldest.map(|at| now.saturating_duration_since(at).as_secs_f64()),
        )?;
        out.set_item("processing_rate", 0.0)?;
        Ok(out)
    }

    /// Removes every queued message (drop counters are kept).
    fn clear(&self, py: Python<'_>) {
        let removed = {
            let mut state = lock(&self.state, py);
            std::mem::take(&mut state.queues)
        };
        drop(removed);
    }
}
