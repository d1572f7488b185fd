//! Helper classes of UPSTREAM §7.11 ("Utility classes"): a compression manager, a token
//! bucket, two event sequencers and two priority queues. None of them touches the wire; they
//! exist so code written against the original `wse-server` keeps importing and behaving alike.
//!
//! Every class is `frozen` with its state behind one `std::sync::Mutex`, so an instance may be
//! shared between Python threads. Two rules keep that deadlock-free:
//! - the mutex is taken with `lock`, which lets go of the interpreter while it waits;
//! - no Python code runs while the mutex is held: results are copied out first and turned into
//!   Python objects afterwards, and Python objects a call removes are dropped (which may run a
//!   `__del__`) only after the guard is gone.
//!
//! Every structure is bounded; each module says by what.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::sync::MutexExt;

pub mod compression;
pub mod event_sequencer;
pub mod priority_queue;
pub mod sequencer;
pub mod token_bucket;
mod values;

/// Registers the utility classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<compression::RustCompressionManager>()?;
    m.add_class::<token_bucket::RustTokenBucket>()?;
    m.add_class::<sequencer::RustSequencer>()?;
    m.add_class::<event_sequencer::RustEventSequencer>()?;
    m.add_class::<priority_queue::RustPriorityQueue>()?;
    m.add_class::<priority_queue::RustPriorityMessageQueue>()?;
    Ok(())
}

/// Locks `mutex` without blocking the interpreter while waiting. A poisoned mutex (a panic in a
/// critical section, which none of ours can raise) still yields its state: every critical
/// section leaves the state consistent before anything that could panic.
fn lock<'a, T>(mutex: &'a Mutex<T>, py: Python<'_>) -> MutexGuard<'a, T> {
    mutex
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
