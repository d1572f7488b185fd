//! Python values ⇄ msgpack values (`rmpv::Value`) for `RustCompressionManager`, and msgpack
//! values → JSON for its JSON `pack_event`.
//!
//! Python → msgpack keeps what msgpack can say, as the original does: dicts in insertion order
//! with their keys converted like values (an `int` key stays an int), `bytes`/`bytearray` as
//! bin, NaN and infinities as floats. Values msgpack has no type for become: an `Enum` member
//! its `.value`, an object with `isoformat()` (datetime, date, time) that string, anything else
//! `str(obj)` (UUID, set, ...). An `int` outside `i64`/`u64` becomes its decimal string.
//! Nesting deeper than [`MAX_DEPTH`] (a cycle, say) is a `ValueError`.
//!
//! msgpack → Python: the decoder accepts one value nested at most [`MAX_INBOUND_DEPTH`]
//! containers deep, ignores bytes after it (as the original does), and refuses the reserved
//! marker `0xc1` and strings that are not UTF-8. bin and ext become `bytes`; map keys are converted like values (an unhashable key
//! is a `TypeError` from `dict`).
//!
//! msgpack → JSON: bin and ext become lower-case hex, NaN and infinities `null`, a non-string
//! map key its msgpack display form (`1`, `nil`, `true`, `[1, 2]`), as the original writes them.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use rmpv::{Integer, Value};
use serde_json::{Map, Number, Value as Json};
use wse_core::protocol::msgpack::MAX_INBOUND_DEPTH;

use crate::convert::{MAX_DEPTH, hex, too_deep};

/// Converts a Python value to a msgpack value (rules in the module doc).
pub(super) fn py_to_msgpack(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_msgpack_at(obj, 0)
}

fn to_msgpack_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Boolean(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Integer(Integer::from(i)));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Integer(Integer::from(u)));
        }
        return Ok(Value::from(obj.str()?.to_str()?));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::from(s.to_str()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            entries.push((to_msgpack_at(&k, depth + 1)?, to_msgpack_at(&v, depth + 1)?));
        }
        return Ok(Value::Map(entries));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_msgpack_at(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_msgpack_at(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Binary(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Binary(b.to_vec()));
    }
    let enum_type = obj.py().import("enum")?.getattr("Enum")?;
    if obj.is_instance(&enum_type)? {
        return to_msgpack_at(&obj.getattr("value")?, depth + 1);
    }
    if obj.hasattr("isoformat")? {
        return Ok(Value::from(obj.call_method0("isoformat")?.str()?.to_str()?));
    }
    Ok(Value::from(obj.str()?.to_str()?))
}

/// Encodes a msgpack value.
pub(super) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail; the error type is only for fallible writers.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// Why msgpack input was not decoded.
#[derive(Debug)]
pub(super) struct Undecodable;

/// Decodes the first msgpack value of `data` (later bytes are ignored).
pub(super) fn decode(data: &[u8]) -> Result<Value, Undecodable> {
    // rmpv spends two units of its depth budget per container level and at most three on a
    // leaf, so this budget admits every value MAX_INBOUND_DEPTH containers deep while bounding
    // the decoder's recursion.
    let budget = MAX_INBOUND_DEPTH * 2 + 8;
    let mut rest = data;
    let value =
        rmpv::decode::read_value_with_max_depth(&mut rest, budget).map_err(|_| Undecodable)?;
    // rmpv reads the reserved marker 0xc1 as nil and keeps non-UTF-8 strings; the core's
    // inbound decoder refuses both and applies the exact depth limit, so it vets the bytes
    // the value occupied.
    let used = data.len() - rest.len();
    wse_core::protocol::msgpack::msgpack_to_json(&data[..used], MAX_INBOUND_DEPTH)
        .map_err(|_| Undecodable)?;
    Ok(value)
}

/// Converts a decoded msgpack value to Python.
pub(super) fn msgpack_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Nil => py.None().into_bound(py),
        Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => n.into_pyobject(py)?.into_any(),
            (None, Some(n)) => n.into_pyobject(py)?.into_any(),
            // An rmpv Integer is always an i64 or a u64.
            (None, None) => py.None().into_bound(py),
        },
        Value::F32(f) => f64::from(*f).into_pyobject(py)?.into_any(),
        Value::F64(f) => f.into_pyobject(py)?.into_any(),
        Value::String(s) => PyString::new(py, s.as_str().unwrap_or_default()).into_any(),
        Value::Binary(b) | Value::Ext(_, b) => PyBytes::new(py, b).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(msgpack_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(msgpack_to_py(py, k)?, msgpack_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Converts a msgpack value to JSON (rules in the module doc).
pub(super) fn msgpack_to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => Json::from(n),
            (None, Some(n)) => Json::from(n),
            (None, None) => Json::Null,
        },
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Json::String(s.as_str().unwrap_or_default().to_owned()),
        Value::Binary(b) | Value::Ext(_, b) => Json::String(hex(b)),
        Value::Array(items) => Json::Array(items.iter().map(msgpack_to_json).collect()),
        Value::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
                    other => other.to_string(),
                };
                map.insert(key, msgpack_to_json(v));
            }
            Json::Object(map)
        }
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}
