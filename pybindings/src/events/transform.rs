//! `rust_transform_event`: an application event dict → a WSE wire envelope dict.
//!
//! The rules are the original's, observed on `wse-server` 2.5.1 (the tests pin each one):
//! - an event that already has `v`, `t`, `p`, `id` and `ts` is returned as is (the same dict),
//!   given `seq` if it has none;
//! - type: `event_type`, else `type` (first one not `None`, as `str`), else `"unknown"`;
//!   `t` is its entry in the map (as `str`), else its lower-case form; `original_event_type`
//!   is added when the two differ;
//! - payload `p`: `event["payload"]` if it is a dict, else the event itself (then gaining
//!   `event_type` from `type` when it has none), either way without its `_metadata` key and
//!   with values made JSON-friendly (see [`Converter`]);
//! - `id`, `ts`, `cid`, `pri`, `trace_id`, `event_version` from `_metadata` first, then from the
//!   event (`None` counts as absent); a fresh UUIDv7 and the current UTC time otherwise;
//! - `latency_ms` when the timestamp came from the event and can be read as a time;
//! - category `c`: the event's own `c`, else `S` for snapshot types, `WSE` for the server's
//!   system types, `U` for everything else.
//!
//! Deliberate difference: values are converted at every depth, up to
//! [`crate::convert::MAX_DEPTH`] levels (deeper input, a cycle say, is a `ValueError`). The
//! original stops converting below three levels of dicts, leaving UUIDs, datetimes and tuples
//! in place there, and crashes on self-referencing lists.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use super::clock;
use crate::convert::MAX_DEPTH;

/// Keys whose presence marks an event as already in wire form.
const WIRE_KEYS: [&str; 5] = ["v", "t", "p", "id", "ts"];

/// Types whose category is `WSE` (server system messages).
const SYSTEM_TYPES: [&str; 6] = [
    "server_ready",
    "snapshot_complete",
    "client_hello_ack",
    "connection_state_change",
    "error",
    "pong",
];

/// Builds the envelope of `event`; `now_nanos` is the current Unix time in nanoseconds and
/// `new_id` mints an id for events that carry none.
pub fn transform<'py>(
    event: &Bound<'py, PyDict>,
    sequence: i64,
    type_map: &Bound<'py, PyDict>,
    now_nanos: i128,
    new_id: impl FnOnce() -> String,
) -> PyResult<Bound<'py, PyDict>> {
    let py = event.py();
    if all_present(event, &WIRE_KEYS)? {
        if !event.contains("seq")? {
            event.set_item("seq", sequence)?;
        }
        return Ok(event.clone());
    }
    let conv = Converter::new(py)?;
    let metadata = event
        .get_item("_metadata")?
        .and_then(|m| m.cast_into::<PyDict>().ok());
    let from_meta_or_event = |key: &str, event_key: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Some(md) = &metadata {
            if let Some(v) = non_none(md, key)? {
                return Ok(Some(v));
            }
        }
        non_none(event, event_key)
    };

    let type_value = match non_none(event, "event_type")? {
        Some(v) => Some(v),
        None => non_none(event, "type")?,
    };
    let type_name = match &type_value {
        Some(v) => text(v)?,
        None => "unknown".to_owned(),
    };
    let wire_type = match type_map.get_item(&type_name)? {
        Some(mapped) => text(&mapped)?,
        None => type_name.to_lowercase(),
    };

    let payload = match event
        .get_item("payload")?
        .and_then(|p| p.cast_into::<PyDict>().ok())
    {
        Some(p) => conv.payload(&p)?,
        None => {
            let p = conv.payload(event)?;
            if type_value.is_some() && !event.contains("event_type")? {
                if let Some(t) = p.get_item("type")? {
                    p.set_item("event_type", t)?;
                }
            }
            p
        }
    };

    let category = match non_none(event, "c")? {
        Some(c) => c,
        None => PyString::new(py, category_of(&wire_type)).into_any(),
    };
    let id = match from_meta_or_event("event_id", "event_id")? {
        Some(v) => conv.as_text(&v)?,
        None => new_id(),
    };
    let (ts, latency_ms) = match from_meta_or_event("timestamp", "timestamp")? {
        Some(v) => conv.timestamp(&v, now_nanos)?,
        None => (clock::format_utc_micros_z(now_nanos), None),
    };

    let out = PyDict::new(py);
    out.set_item("c", category)?;
    out.set_item("t", &wire_type)?;
    out.set_item("id", id)?;
    out.set_item("ts", ts)?;
    out.set_item("seq", sequence)?;
    out.set_item("p", payload)?;
    out.set_item("v", 1)?;
    if wire_type != type_name {
        out.set_item("original_event_type", &type_name)?;
    }
    if let Some(ms) = latency_ms {
        out.set_item("latency_ms", ms)?;
    }
    if let Some(cid) = from_meta_or_event("correlation_id", "correlation_id")? {
        out.set_item("cid", text(&cid)?)?;
    }
    if let Some(pri) = from_meta_or_event("priority", "pri")? {
        out.set_item("pri", pri)?;
    }
    out.set_item("event_version", event_version(event, metadata.as_ref())?)?;
    if let Some(trace) = from_meta_or_event("trace_id", "trace_id")? {
        out.set_item("trace_id", text(&trace)?)?;
    }
    Ok(out)
}

/// The category a (wire) type implies when the event names none.
pub fn category_of(wire_type: &str) -> &'static str {
    if wire_type.contains("_snapshot") || wire_type.contains("snapshot_") {
        "S"
    } else if SYSTEM_TYPES.contains(&wire_type) {
        "WSE"
    } else {
        "U"
    }
}

fn all_present(d: &Bound<'_, PyDict>, keys: &[&str]) -> PyResult<bool> {
    for k in keys {
        if !d.contains(*k)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `d[key]` unless missing or `None`.
fn non_none<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(d.get_item(key)?.filter(|v| !v.is_none()))
}

/// A `str` as is, anything else through `str()`.
fn text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Ok(v.str()?.to_str()?.to_owned()),
    }
}

/// UTF-8 text, or Latin-1 (every byte one character) when the bytes are not UTF-8.
fn bytes_to_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// `event["version"]` if not `None`, else `_metadata["version"]`; an integer that fits `i64`,
/// anything else counts as 1.
fn event_version(event: &Bound<'_, PyDict>, metadata: Option<&Bound<'_, PyDict>>) -> PyResult<i64> {
    let v = match non_none(event, "version")? {
        Some(v) => Some(v),
        None => match metadata {
            Some(md) => non_none(md, "version")?,
            None => None,
        },
    };
    Ok(v.filter(|v| v.is_instance_of::<PyInt>())
        .and_then(|v| v.extract::<i64>().ok())
        .unwrap_or(1))
}

/// Python → JSON-friendly Python values, the original's rules: `str`/`int`/`float`/`bool`/
/// `None` unchanged (their subclasses too, so `IntEnum` and `str` enums stay members); dicts
/// converted value by value (keys untouched; a dict needing no change is returned as is);
/// lists and tuples → new lists; `bytes` → UTF-8 text, else Latin-1; `uuid.UUID` → `str`;
/// `datetime.date`/`datetime` → `isoformat()`; enum-like objects (with `value` and `name`) →
/// their converted `value`; other objects with a `__dict__` → a converted copy of it;
/// anything else unchanged.
#[derive(Debug)]
pub struct Converter<'py> {
    uuid_type: &'py Bound<'py, PyType>,
    date_type: &'py Bound<'py, PyType>,
    datetime_type: &'py Bound<'py, PyType>,
}

static UUID_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

impl<'py> Converter<'py> {
    /// Looks up (once per interpreter) the standard types the rules name.
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        Ok(Converter {
            uuid_type: UUID_TYPE.import(py, "uuid", "UUID")?,
            date_type: DATE_TYPE.import(py, "datetime", "date")?,
            datetime_type: DATETIME_TYPE.import(py, "datetime", "datetime")?,
        })
    }

    /// A converted copy of `d` without its `_metadata` key.
    pub fn payload(&self, d: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(d.py());
        for (k, v) in d.iter() {
            if k.cast::<PyString>()
                .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "_metadata"))
            {
                continue;
            }
            out.set_item(k, self.convert(&v, 1)?.0)?;
        }
        Ok(out)
    }

    /// An `id` or `ts` taken from an event, as text. Only the value itself is converted, not
    /// what it contains (the original's rule): `bytes` decoded, UUIDs and dates as for
    /// payloads, an enum-like object as `str(value)`, anything else `str()`.
    pub fn as_text(&self, v: &Bound<'py, PyAny>) -> PyResult<String> {
        if let Ok(s) = v.cast::<PyString>() {
            return Ok(s.to_str()?.to_owned());
        }
        if let Ok(b) = v.cast::<PyBytes>() {
            return Ok(bytes_to_text(b.as_bytes()));
        }
        if v.is_instance(self.uuid_type)? {
            return text(v);
        }
        if v.is_instance(self.date_type)? {
            return text(&v.call_method0("isoformat")?);
        }
        if v.hasattr("value")? && v.hasattr("name")? {
            return text(&v.getattr("value")?);
        }
        text(v)
    }

    /// An event's own timestamp as text, and its age in milliseconds when it reads as a time:
    /// a `str` in RFC 3339 or zone-less (UTC) form, or a zone-aware `datetime` (a naive one
    /// gives an isoformat without offset, which does not count: the original's rule).
    fn timestamp(&self, v: &Bound<'py, PyAny>, now_nanos: i128) -> PyResult<(String, Option<i64>)> {
        let ts = self.as_text(v)?;
        let at = if v.is_instance_of::<PyString>() {
            clock::parse_rfc3339(&ts).or_else(|| clock::parse_naive_utc(&ts))
        } else if v.is_instance(self.datetime_type)? {
            clock::parse_rfc3339(&ts)
        } else {
            None
        };
        // Truncated toward zero, negative for a timestamp in the future.
        let latency = at.map(|at| i64::try_from((now_nanos - at) / 1_000_000).unwrap_or(i64::MAX));
        Ok((ts, latency))
    }

    /// The converted value, and whether it differs from `v`.
    fn convert(&self, v: &Bound<'py, PyAny>, depth: usize) -> PyResult<(Bound<'py, PyAny>, bool)> {
        if depth > MAX_DEPTH {
            return Err(PyValueError::new_err(format!(
                "event value nested deeper than {MAX_DEPTH} levels (or self-referencing)"
            )));
        }
        let py = v.py();
        if v.is_none()
            || v.is_instance_of::<PyBool>()
            || v.is_instance_of::<PyInt>()
            || v.is_instance_of::<PyFloat>()
            || v.is_instance_of::<PyString>()
        {
            return Ok((v.clone(), false));
        }
        if let Ok(d) = v.cast::<PyDict>() {
            return self.convert_dict(d, depth);
        }
        if let Ok(l) = v.cast::<PyList>() {
            let out = PyList::empty(py);
            for item in l.iter() {
                out.append(self.convert(&item, depth + 1)?.0)?;
            }
            return Ok((out.into_any(), true));
        }
        if let Ok(t) = v.cast::<PyTuple>() {
            let out = PyList::empty(py);
            for item in t.iter() {
                out.append(self.convert(&item, depth + 1)?.0)?;
            }
            return Ok((out.into_any(), true));
        }
        if let Ok(b) = v.cast::<PyBytes>() {
            let s = bytes_to_text(b.as_bytes());
            return Ok((PyString::new(py, &s).into_any(), true));
        }
        if v.is_instance(self.uuid_type)? {
            return Ok((v.str()?.into_any(), true));
        }
        if v.is_instance(self.date_type)? {
            return Ok((v.call_method0("isoformat")?, true));
        }
        if v.hasattr("value")? && v.hasattr("name")? {
            let value = v.getattr("value")?;
            return Ok((self.convert(&value, depth + 1)?.0, true));
        }
        if let Some(attrs) = v.getattr_opt("__dict__")? {
            if let Ok(attrs) = attrs.cast::<PyDict>() {
                let out = PyDict::new(py);
                for (k, item) in attrs.iter() {
                    out.set_item(k, self.convert(&item, depth + 1)?.0)?;
                }
                return Ok((out.into_any(), true));
            }
        }
        Ok((v.clone(), false))
    }

    fn convert_dict(
        &self,
        d: &Bound<'py, PyDict>,
        depth: usize,
    ) -> PyResult<(Bound<'py, PyAny>, bool)> {
        let out = PyDict::new(d.py());
        let mut changed = false;
        for (k, item) in d.iter() {
            let (converted, item_changed) = self.convert(&item, depth + 1)?;
            changed |= item_changed;
            out.set_item(k, converted)?;
        }
        if changed {
            Ok((out.into_any(), true))
        } else {
            Ok((d.clone().into_any(), false))
        }
    }
}
