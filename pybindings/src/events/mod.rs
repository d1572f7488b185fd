//! Event helpers of UPSTREAM §7.11: `rust_transform_event` (application event → wire envelope)
//! and `rust_match_event` (MongoDB-style filter), plus the regex cache behind `$regex`.
//!
//! Both work on Python objects directly (no JSON round trip), because the original's rules
//! are Python's: `==` and `<` between arbitrary values, `str()` of a field, dict identity.
//! Input is untrusted where it matters: regexes are linear-time and size-capped
//! ([`regex_cache`]); criteria and value nesting are depth-capped.

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub mod clock;
pub mod matcher;
pub mod regex_cache;
pub mod transform;

/// Registers the event functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rust_transform_event, m)?)?;
    m.add_function(wrap_pyfunction!(rust_match_event, m)?)?;
    m.add_function(wrap_pyfunction!(_event_regex_cache_len, m)?)?;
    Ok(())
}

/// Turns an application event dict into a WSE wire envelope dict.
///
/// An event that already has `v`, `t`, `p`, `id` and `ts` is returned as is (given `seq` if
/// missing). Otherwise the result is `{c, t, id, ts, seq, p, v, …}`: `t` is the event's
/// `event_type`/`type` looked up in `event_type_map` or lower-cased; `p` is `event["payload"]`
/// when it is a dict, else the event itself, without `_metadata` and with UUIDs, datetimes,
/// enums, bytes, tuples and plain objects made JSON-friendly; `id` and `ts` come from
/// `_metadata` or the event, else a new UUIDv7 and the current UTC time; `c` is the event's
/// own `c` or derived from the type (`S` snapshot, `WSE` system, `U` user). Optional keys:
/// `original_event_type`, `latency_ms`, `cid`, `pri`, `event_version`, `trace_id`.
#[pyfunction]
#[pyo3(signature = (event, sequence, event_type_map))]
fn rust_transform_event<'py>(
    event: &Bound<'py, PyDict>,
    sequence: i64,
    event_type_map: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let now = clock::now_unix_nanos();
    transform::transform(event, sequence, event_type_map, now, || {
        let wall = crate::functions::wall_now();
        wse_core::rand::uuid_v7(wall, &mut rand_core::OsRng).to_string()
    })
}

/// Whether `event` matches MongoDB-style `criteria`.
///
/// Keys are field paths (`"payload.price"` walks nested dicts); a value is either the value
/// the field must equal or a dict of operators that must all hold: `$eq $ne $gt $lt $gte
/// $lte $in $nin $regex $exists $contains $startswith $endswith`. Top-level `$and`/`$or` take
/// lists of criteria. A `start_from_latest` key matches everything. `$regex` patterns are
/// anchored at the start and run in linear time; a malformed or oversized one raises
/// `ValueError`. Comparing incompatible types raises Python's `TypeError`.
#[pyfunction]
#[pyo3(signature = (event, criteria))]
fn rust_match_event(event: &Bound<'_, PyDict>, criteria: &Bound<'_, PyDict>) -> PyResult<bool> {
    matcher::matches(event, criteria)
}

/// Number of compiled `$regex` patterns held in the cache (at most 1024). Diagnostic, not
/// part of the original API.
#[pyfunction]
fn _event_regex_cache_len() -> usize {
    regex_cache::cached_count()
}
