//! Python ⇄ JSON value conversion, with the rules of UPSTREAM §7.4/§7.5.
//!
//! Python → JSON (`send_event`, `rust_jwt_encode`, filters): `None`, `bool`, `int` (an `i64`;
//! any larger or smaller int becomes its decimal `str`), `float` (NaN and ±Inf become `null`),
//! `str`, `dict` (non-`str` keys become `str(key)`), `list`/`tuple`, `bytes`/`bytearray`
//! (lower-case hex), objects with an `isoformat()` method (its result), anything else
//! `str(obj)`. Nesting deeper than [`MAX_DEPTH`] (a cycle, say) is a `ValueError`, never a stack
//! overflow. JSON → Python (events): objects become `dict`s with sorted keys, integers `int`,
//! other numbers `float`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use serde_json::{Map, Number, Value};

/// Deepest nesting converted; deeper input (including a self-referencing list) is an error.
pub const MAX_DEPTH: usize = 128;

/// The error for a value nested deeper than [`MAX_DEPTH`] (a cycle, say).
pub fn too_deep() -> PyErr {
    PyValueError::new_err(format!(
        "value nested deeper than {MAX_DEPTH} levels (or self-referencing)"
    ))
}

/// Converts a Python value to JSON.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(obj, 0)
}

/// Converts a Python `dict` (or any mapping convertible to one) to a JSON object.
pub fn to_json_map(obj: &Bound<'_, PyAny>) -> PyResult<Map<String, Value>> {
    let dict = obj.cast::<PyDict>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!("expected a dict, got {}", type_name(obj)))
    })?;
    dict_to_map(dict, 0)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string())
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => Value::String(obj.str()?.to_string()),
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Number::from_f64(f.value()).map_or(Value::Null, Value::Number));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_to_map(d, depth).map(Value::Object);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_json_at(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_json_at(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::String(hex(b.as_bytes())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::String(hex(&b.to_vec())));
    }
    if obj.hasattr("isoformat")? {
        let iso = obj.call_method0("isoformat")?;
        return Ok(Value::String(iso.str()?.to_string()));
    }
    Ok(Value::String(obj.str()?.to_string()))
}

fn dict_to_map(d: &Bound<'_, PyDict>, depth: usize) -> PyResult<Map<String, Value>> {
    let mut map = Map::new();
    for (k, v) in d.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_owned(),
            Err(_) => k.str()?.to_string(),
        };
        map.insert(key, to_json_at(&v, depth + 1)?);
    }
    Ok(map)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Converts JSON to a Python value (objects become `dict`s in key order, which is sorted).
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => map_to_py(py, map)?.into_any(),
    })
}

/// Converts a JSON object to a Python `dict`.
pub fn map_to_py<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in map {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict)
}
