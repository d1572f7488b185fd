//! `rust_match_event`: MongoDB-style criteria evaluated against an event dict.
//!
//! The rules are the original's, observed on `wse-server` 2.5.1 (the tests pin each one):
//! - a `start_from_latest` key anywhere in a criteria dict makes it match;
//! - `$and` (then `$or`) holding a `list` of criteria dicts decides the whole dict, and the
//!   other keys are ignored; any other `$and`/`$or` value is skipped;
//! - every other key is a dotted path into nested dicts (no list indexing); its value is an
//!   operator dict (all operators must hold, checked in order, an unknown one fails) or, if
//!   not a dict, a value the field must equal (`==`, a missing field counts as `None`);
//! - comparisons are Python's own (`==`, `<`, …), so their `TypeError`s surface unchanged;
//! - string operators test `str(field)`; `$regex` is anchored at the start.
//!
//! Evaluation stops at the first failing key or operator, so a later malformed operator is
//! only reported when reached. Criteria nest only through `$and`/`$or`; nesting deeper than
//! [`MAX_CRITERIA_DEPTH`] is a `ValueError` (the original overflowed the stack and crashed).

use pyo3::basic::CompareOp;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

use super::regex_cache;

/// Deepest `$and`/`$or` nesting evaluated.
pub const MAX_CRITERIA_DEPTH: usize = 128;

/// Whether `event` satisfies `criteria`.
pub fn matches(event: &Bound<'_, PyDict>, criteria: &Bound<'_, PyDict>) -> PyResult<bool> {
    matches_at(event, criteria, 0)
}

fn matches_at(
    event: &Bound<'_, PyDict>,
    criteria: &Bound<'_, PyDict>,
    depth: usize,
) -> PyResult<bool> {
    if depth > MAX_CRITERIA_DEPTH {
        return Err(PyValueError::new_err(format!(
            "filter criteria nested deeper than {MAX_CRITERIA_DEPTH} levels of $and/$or"
        )));
    }
    if criteria.contains("start_from_latest")? {
        return Ok(true);
    }
    if let Some(all) = list_at(criteria, "$and")? {
        for sub in all.iter() {
            if !matches_at(event, sub.cast::<PyDict>()?, depth + 1)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = list_at(criteria, "$or")? {
        for sub in any.iter() {
            if matches_at(event, sub.cast::<PyDict>()?, depth + 1)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    for (key, condition) in criteria.iter() {
        let key = key.cast::<PyString>()?;
        let path = key.to_str()?;
        if path == "$and" || path == "$or" {
            continue;
        }
        let field = resolve(event, path)?;
        let ok = match condition.cast::<PyDict>() {
            Ok(ops) => all_operators_hold(field.as_ref(), ops)?,
            Err(_) => equals(field.as_ref(), &condition)?,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `criteria[key]` if it is a list.
fn list_at<'py>(criteria: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyList>>> {
    Ok(criteria
        .get_item(key)?
        .and_then(|v| v.cast_into::<PyList>().ok()))
}

/// The value at a dotted path through nested dicts, `None` if any step is missing.
fn resolve<'py>(event: &Bound<'py, PyDict>, path: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    let mut current = event.clone().into_any();
    for segment in path.split('.') {
        let Ok(dict) = current.cast::<PyDict>() else {
            return Ok(None);
        };
        match dict.get_item(segment)? {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// Plain equality; a missing field equals only `None`.
fn equals(field: Option<&Bound<'_, PyAny>>, expected: &Bound<'_, PyAny>) -> PyResult<bool> {
    match field {
        Some(v) => v.eq(expected),
        None => Ok(expected.is_none()),
    }
}

fn all_operators_hold(field: Option<&Bound<'_, PyAny>>, ops: &Bound<'_, PyDict>) -> PyResult<bool> {
    for (op, arg) in ops.iter() {
        let op = op.cast::<PyString>()?;
        if !operator_holds(op.to_str()?, field, &arg)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn operator_holds(
    op: &str,
    field: Option<&Bound<'_, PyAny>>,
    arg: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    match op {
        "$eq" => equals(field, arg),
        "$ne" => equals(field, arg).map(|eq| !eq),
        "$gt" => compare(field, arg, CompareOp::Gt),
        "$lt" => compare(field, arg, CompareOp::Lt),
        "$gte" => compare(field, arg, CompareOp::Ge),
        "$lte" => compare(field, arg, CompareOp::Le),
        // Membership is Python's `in` on a list (identity counts, so NaN is found); any other
        // container is "not in".
        "$in" => match (field, arg.cast::<PyList>()) {
            (Some(v), Ok(list)) => list.contains(v),
            _ => Ok(false),
        },
        "$nin" => match (field, arg.cast::<PyList>()) {
            (Some(v), Ok(list)) => list.contains(v).map(|found| !found),
            _ => Ok(true),
        },
        "$exists" => Ok(field.is_some() == arg.cast::<PyBool>()?.is_true()),
        "$regex" => {
            let pattern = arg.cast::<PyString>()?.to_str()?;
            match field {
                Some(v) => regex_cache::is_match(pattern, text_of(v)?.to_str()?),
                None => Ok(false),
            }
        }
        "$contains" | "$startswith" | "$endswith" => {
            let needle = arg.cast::<PyString>()?.to_str()?;
            let Some(v) = field else {
                return Ok(false);
            };
            let text = text_of(v)?;
            let text = text.to_str()?;
            Ok(match op {
                "$contains" => text.contains(needle),
                "$startswith" => text.starts_with(needle),
                _ => text.ends_with(needle),
            })
        }
        _ => Ok(false),
    }
}

/// Ordering comparison `field <op> arg`; a missing field never compares.
fn compare(
    field: Option<&Bound<'_, PyAny>>,
    arg: &Bound<'_, PyAny>,
    op: CompareOp,
) -> PyResult<bool> {
    match field {
        Some(v) => v.rich_compare(arg, op)?.is_truthy(),
        None => Ok(false),
    }
}

/// The field as text: a `str` as is, anything else through `str()`.
fn text_of<'py>(v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.clone()),
        Err(_) => v.str(),
    }
}
