//! `RustEventSequencer`: duplicate filter plus per-topic ordering of sequenced events.
//!
//! Per topic it tracks the next expected sequence number and buffers events that arrived early
//! (at most `max_out_of_order` ahead), releasing them once the gap closes.
//!
//! Bounds:
//! - the duplicate window holds `max(window_size, 1)` ids (`DedupWindow`);
//! - a topic buffer holds at most `max_out_of_order` events: only sequence numbers in
//!   `expected+1 ..= expected+max_out_of_order` are buffered, one event per number;
//! - at most [`MAX_TRACKED_TOPICS`] topics are tracked. The original tracks every topic it
//!   ever saw until `reset_sequence`, which grows without limit under topic churn; here a new
//!   topic beyond the limit evicts the least recently active one (its buffered events count
//!   as dropped). An evicted topic that shows up again starts over, like a first event.
//!
//! `cleanup()` drops buffered events older than five minutes and, as the original, forgets a
//! topic whose last buffered events it dropped; topics without buffered events stay tracked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::lock;
use super::sequencer::DedupWindow;

/// Most topics tracked at once; beyond it the least recently active topic is forgotten.
pub const MAX_TRACKED_TOPICS: usize = 10_000;

/// `cleanup()` drops buffered events older than this (the original's five minutes).
pub const BUFFERED_EVENT_MAX_AGE: Duration = Duration::from_secs(300);

/// Full event sequencer: sequence numbers, duplicate detection, and per-topic in-order
/// delivery with a bounded out-of-order buffer and gap statistics.
///
/// `process_sequenced_event(topic, sequence, event)` returns the events that can be delivered
/// now, in order, or `None` when the event was buffered (it arrived early) or dropped (it is
/// older than expected). The first event of a topic is always delivered. An event more than
/// `max_out_of_order` ahead resets the topic: buffered events are discarded and the event is
/// delivered. At most 10,000 topics are tracked; the least recently active one is forgotten
/// to make room. Safe to share between threads.
#[pyclass(module = "wse_server._wse_accel", name = "RustEventSequencer", frozen)]
#[derive(Debug)]
pub struct RustEventSequencer {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    sequence: u64,
    seen: DedupWindow,
    max_out_of_order: u64,
    duplicate_count: u64,
    out_of_order_count: u64,
    dropped_count: u64,
    topics: HashMap<String, Topic>,
    /// Topics by last activity (a strictly increasing tick), least recent first.
    recency: BTreeMap<u64, String>,
    tick: u64,
}

#[derive(Debug)]
struct Topic {
    expected: u64,
    buffered: BTreeMap<u64, Buffered>,
    last_active: u64,
}

#[derive(Debug)]
struct Buffered {
    event: Py<PyAny>,
    received: Instant,
}

/// What `process_sequenced_event` decided.
#[derive(Debug)]
enum Outcome {
    Deliver(Vec<Py<PyAny>>),
    Held,
}

/// A copy of one topic's numbers, taken under the lock and turned into Python afterwards.
#[derive(Debug)]
struct TopicSnapshot {
    name: String,
    expected: u64,
    buffered: Vec<u64>,
    oldest_age_secs: f64,
}

impl State {
    fn touch(&mut self, topic: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(t) = self.topics.get_mut(topic) {
            self.recency.remove(&t.last_active);
            t.last_active = tick;
            self.recency.insert(tick, topic.to_owned());
        }
    }

    /// Forgets the least recently active topic; its buffered events are returned for dropping.
    fn evict_least_recent(&mut self, garbage: &mut Vec<Py<PyAny>>) {
        let Some((_, name)) = self.recency.pop_first() else {
            return;
        };
        if let Some(topic) = self.topics.remove(&name) {
            self.dropped_count = self
                .dropped_count
                .saturating_add(topic.buffered.len() as u64);
            garbage.extend(topic.buffered.into_values().map(|b| b.event));
        }
    }

    fn process(
        &mut self,
        topic: &str,
        sequence: u64,
        event: Py<PyAny>,
        now: Instant,
        garbage: &mut Vec<Py<PyAny>>,
    ) -> Outcome {
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= MAX_TRACKED_TOPICS {
                self.evict_least_recent(garbage);
            }
            self.topics.insert(
                topic.to_owned(),
                Topic {
                    // Wrapping, as the original: after u64::MAX the next expected is 0.
                    expected: sequence.wrapping_add(1),
                    buffered: BTreeMap::new(),
                    last_active: 0,
                },
            );
            self.touch(topic);
            return Outcome::Deliver(vec![event]);
        }
        self.touch(topic);
        let max_ahead = self.max_out_of_order;
        let t = self
            .topics
            .get_mut(topic)
            .unwrap_or_else(|| unreachable!("the topic was checked present above"));
        if sequence == t.expected {
            let mut out = vec![event];
            t.expected = t.expected.wrapping_add(1);
            while let Some(next) = t.buffered.remove(&t.expected) {
                out.push(next.event);
                t.expected = t.expected.wrapping_add(1);
            }
            return Outcome::Deliver(out);
        }
        if sequence < t.expected {
            self.dropped_count = self.dropped_count.saturating_add(1);
            return Outcome::Held;
        }
        let ahead = sequence - t.expected;
        self.out_of_order_count = self.out_of_order_count.saturating_add(1);
        if ahead <= max_ahead {
            let entry = Buffered {
                event,
                received: now,
            };
            if let Some(replaced) = t.buffered.insert(sequence, entry) {
                garbage.push(replaced.event);
            }
            return Outcome::Held;
        }
        // Too far ahead: give up on the gap. The skipped numbers count as dropped (not the
        // buffered events, which lie inside the gap), as the original counts them.
        self.dropped_count = self.dropped_count.saturating_add(ahead - 1);
        garbage.extend(
            std::mem::take(&mut t.buffered)
                .into_values()
                .map(|b| b.event),
        );
        t.expected = sequence.wrapping_add(1);
        Outcome::Deliver(vec![event])
    }

    /// `cleanup()`: drops buffered events older than [`BUFFERED_EVENT_MAX_AGE`] and forgets
    /// the topics this empties.
    fn expire_buffered(&mut self, now: Instant, garbage: &mut Vec<Py<PyAny>>) {
        let mut emptied = Vec::new();
        let mut expired = 0u64;
        for (name, t) in &mut self.topics {
            let before = t.buffered.len();
            let (stale, fresh): (BTreeMap<u64, Buffered>, BTreeMap<u64, Buffered>) =
                std::mem::take(&mut t.buffered)
                    .into_iter()
                    .partition(|(_, b)| {
                        now.saturating_duration_since(b.received) > BUFFERED_EVENT_MAX_AGE
                    });
            t.buffered = fresh;
            expired += (before - t.buffered.len()) as u64;
            garbage.extend(stale.into_values().map(|b| b.event));
            if before > 0 && t.buffered.is_empty() {
                emptied.push(name.clone());
            }
        }
        self.dropped_count = self.dropped_count.saturating_add(expired);
        for name in emptied {
            self.remove_topic(&name, garbage);
        }
    }

    fn remove_topic(&mut self, topic: &str, garbage: &mut Vec<Py<PyAny>>) {
        if let Some(t) = self.topics.remove(topic) {
            self.recency.remove(&t.last_active);
            garbage.extend(t.buffered.into_values().map(|b| b.event));
        }
    }

    fn snapshot(&self, now: Instant) -> Vec<TopicSnapshot> {
        let mut topics: Vec<TopicSnapshot> = self
            .topics
            .iter()
            .map(|(name, t)| TopicSnapshot {
                name: name.clone(),
                expected: t.expected,
                buffered: t.buffered.keys().copied().collect(),
                oldest_age_secs: t
                    .buffered
                    .values()
                    .map(|b| now.saturating_duration_since(b.received).as_secs_f64())
                    .fold(0.0, f64::max),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }
}

#[pymethods]
impl RustEventSequencer {
    /// Creates a sequencer remembering `window_size` event ids and buffering events up to
    /// `max_out_of_order` sequence numbers ahead of the expected one.
    #[new]
    #[pyo3(signature = (window_size = 10000, max_out_of_order = 100))]
    fn new(window_size: usize, max_out_of_order: usize) -> Self {
        Self {
            state: Mutex::new(State {
                sequence: 0,
                seen: DedupWindow::new(window_size),
                max_out_of_order: max_out_of_order as u64,
                duplicate_count: 0,
                out_of_order_count: 0,
                dropped_count: 0,
                topics: HashMap::new(),
                recency: BTreeMap::new(),
                tick: 0,
            }),
        }
    }

    /// Advances the sequence and returns the new value (the first call returns 1).
    fn next_seq(&self, py: Python<'_>) -> u64 {
        let mut state = lock(&self.state, py);
        state.sequence = state.sequence.wrapping_add(1);
        state.sequence
    }

    /// The last value `next_seq` returned (0 before the first call).
    fn get_current_sequence(&self, py: Python<'_>) -> u64 {
        lock(&self.state, py).sequence
    }

    /// `True` (and counts a duplicate) if `event_id` is among the last `window_size` ids;
    /// otherwise remembers it and returns `False`.
    fn is_duplicate(&self, py: Python<'_>, event_id: &str) -> bool {
        let mut state = lock(&self.state, py);
        let duplicate = state.seen.check_and_insert(event_id, Instant::now());
        if duplicate {
            state.duplicate_count = state.duplicate_count.saturating_add(1);
        }
        duplicate
    }

    /// Orders `event` (sequence number `sequence`) within `topic`. Returns the list of events
    /// now deliverable in order (this one first, then any buffered successors), or `None` if
    /// the event was buffered or dropped as old.
    fn process_sequenced_event<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        sequence: u64,
        event: Py<PyAny>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let mut garbage = Vec::new();
        let outcome =
            lock(&self.state, py).process(topic, sequence, event, Instant::now(), &mut garbage);
        drop(garbage);
        match outcome {
            Outcome::Deliver(events) => PyList::new(py, events).map(Some),
            Outcome::Held => Ok(None),
        }
    }

    /// Drops buffered events older than five minutes (they count as dropped); a topic whose
    /// last buffered events expired this way is forgotten, so its next event starts it over.
    /// The duplicate window needs no trimming: it never exceeds `window_size`.
    fn cleanup(&self, py: Python<'_>) {
        let mut garbage = Vec::new();
        lock(&self.state, py).expire_buffered(Instant::now(), &mut garbage);
        drop(garbage);
    }

    /// Buffer statistics: `total_topics`, `total_buffered`, and for each topic with buffered
    /// events `expected_sequence`, `buffered_count`, `buffered_sequences`, `gap_size` (first
    /// buffered minus expected) and `oldest_buffered_age` (seconds).
    fn get_buffer_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (total_topics, topics) = {
            let state = lock(&self.state, py);
            (state.topics.len(), state.snapshot(Instant::now()))
        };
        let per_topic = PyDict::new(py);
        let mut total_buffered = 0usize;
        for t in topics.iter().filter(|t| !t.buffered.is_empty()) {
            total_buffered += t.buffered.len();
            let d = PyDict::new(py);
            d.set_item("expected_sequence", t.expected)?;
            d.set_item("buffered_count", t.buffered.len())?;
            d.set_item("buffered_sequences", &t.buffered)?;
            d.set_item("gap_size", t.buffered[0].saturating_sub(t.expected))?;
            d.set_item("oldest_buffered_age", t.oldest_age_secs)?;
            per_topic.set_item(&t.name, d)?;
        }
        let out = PyDict::new(py);
        out.set_item("total_topics", total_topics)?;
        out.set_item("total_buffered", total_buffered)?;
        out.set_item("topics", per_topic)?;
        Ok(out)
    }

    /// Sequence statistics: `current_sequence`, `duplicate_count`, `out_of_order_count`,
    /// `dropped_count`, `topics` (per topic `expected`, `buffered`, `gaps`,
    /// `buffered_sequences`), `total_topics`, `total_buffered`, `seen_ids_count`.
    ///
    /// `gaps` lists the runs of missing numbers between consecutive entries of
    /// `[expected] + buffered_sequences`, each as `{"start", "end", "size"}` — the expected
    /// number itself is not reported as missing, as in the original.
    fn get_sequence_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (counters, seen, topics) = {
            let state = lock(&self.state, py);
            (
                [
                    state.sequence,
                    state.duplicate_count,
                    state.out_of_order_count,
                    state.dropped_count,
                ],
                state.seen.len(),
                state.snapshot(Instant::now()),
            )
        };
        let per_topic = PyDict::new(py);
        let mut total_buffered = 0usize;
        for t in &topics {
            total_buffered += t.buffered.len();
            let gaps = PyList::empty(py);
            let mut previous = t.expected;
            for &seq in &t.buffered {
                if seq > previous.saturating_add(1) {
                    let gap = PyDict::new(py);
                    gap.set_item("start", previous + 1)?;
                    gap.set_item("end", seq - 1)?;
                    gap.set_item("size", seq - previous - 1)?;
                    gaps.append(gap)?;
                }
                previous = seq;
            }
            let d = PyDict::new(py);
            d.set_item("expected", t.expected)?;
            d.set_item("buffered", t.buffered.len())?;
            d.set_item("gaps", gaps)?;
            d.set_item("buffered_sequences", &t.buffered)?;
            per_topic.set_item(&t.name, d)?;
        }
        let [current, duplicates, out_of_order, dropped] = counters;
        let out = PyDict::new(py);
        out.set_item("current_sequence", current)?;
        out.set_item("duplicate_count", duplicates)?;
        out.set_item("out_of_order_count", out_of_order)?;
        out.set_item("dropped_count", dropped)?;
        out.set_item("topics", per_topic)?;
        out.set_item("total_topics", topics.len())?;
        out.set_item("total_buffered", total_buffered)?;
        out.set_item("seen_ids_count", seen)?;
        Ok(out)
    }

    /// Forgets the ordering state (expected number and buffered events) of `topic`, or of
    /// every topic when `topic` is `None`. Counters and the duplicate window are kept.
    #[pyo3(signature = (topic = None))]
    fn reset_sequence(&self, py: Python<'_>, topic: Option<&str>) {
        let mut garbage = Vec::new();
        {
            let mut state = lock(&self.state, py);
            match topic {
                Some(name) => state.remove_topic(name, &mut garbage),
                None => {
                    state.recency.clear();
                    for (_, t) in state.topics.drain() {
                        garbage.extend(t.buffered.into_values().map(|b| b.event));
                    }
                }
            }
        }
        drop(garbage);
    }
}
