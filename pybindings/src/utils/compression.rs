//! `RustCompressionManager`: zlib with statistics, plus msgpack/JSON event packing.
//!
//! zlib comes from `wse_core::protocol::zlib`; decompression is capped at
//! [`MAX_DECOMPRESSED_BYTES`] (10 MiB), so a decompression bomb is a `RuntimeError` after at most
//! that much output, never an out-of-memory. Value conversions are in `values`. State
//! is eight counters.

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::Value as Json;
use wse_core::protocol::zlib::{DecompressError, zlib_compress, zlib_decompress_capped};

use super::lock;
use super::values::{decode, encode, msgpack_to_json, msgpack_to_py, py_to_msgpack};
use crate::convert::{hex, to_py};
use crate::functions::MAX_DECOMPRESSED_BYTES;

/// Highest zlib level.
const MAX_LEVEL: u32 = 9;

/// zlib compression with statistics, and msgpack/JSON packing of events.
///
/// `compress` uses `compression_level` (0 = stored … 9 = smallest) unless given a level;
/// `decompress` refuses output over 10 MiB with a `RuntimeError`. `pack_event`/`unpack_event`
/// turn event dicts into msgpack or JSON bytes and back. Safe to share between threads.
#[pyclass(
    module = "wse_server._wse_accel",
    name = "RustCompressionManager",
    frozen
)]
#[derive(Debug)]
pub struct RustCompressionManager {
    threshold: usize,
    level: u32,
    stats: Mutex<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    compressed: u64,
    decompressed: u64,
    compression_failures: u64,
    decompression_failures: u64,
    bytes_saved: u64,
}

fn rate(successes: u64, failures: u64) -> f64 {
    let total = successes.saturating_add(failures);
    if total == 0 {
        0.0
    } else {
        successes as f64 / total as f64
    }
}

#[pymethods]
impl RustCompressionManager {
    /// Creates a manager that compresses payloads longer than `threshold` bytes at
    /// `compression_level`.
    #[new]
    #[pyo3(signature = (threshold = 1024, compression_level = 6))]
    fn new(threshold: usize, compression_level: u32) -> Self {
        Self {
            threshold,
            level: compression_level,
            stats: Mutex::new(Stats::default()),
        }
    }

    /// Whether `data` is longer than the threshold.
    fn should_compress(&self, data: &[u8]) -> bool {
        data.len() > self.threshold
    }

    /// zlib-compresses `data` at `level` (default: the manager's level). A level above 9 is a
    /// `ValueError` (counted as a compression failure).
    #[pyo3(signature = (data, level = None))]
    fn compress<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        level: Option<u32>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let level = level.unwrap_or(self.level);
        if level > MAX_LEVEL {
            lock(&self.stats, py).compression_failures += 1;
            return Err(PyValueError::new_err(format!(
                "compression level must be between 0 and {MAX_LEVEL}, got {level}"
            )));
        }
        let out = py.detach(|| zlib_compress(data, level));
        {
            let mut stats = lock(&self.stats, py);
            stats.compressed += 1;
            let saved = data.len().saturating_sub(out.len()) as u64;
            stats.bytes_saved = stats.bytes_saved.saturating_add(saved);
        }
        Ok(PyBytes::new(py, &out))
    }

    /// Inflates zlib `data` (empty input gives empty output). A corrupt stream, bytes after
    /// the stream, or output over 10 MiB is a `RuntimeError` (counted as a failure).
    fn decompress<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let result = if data.is_empty() {
            Ok(Vec::new())
        } else {
            py.detach(|| zlib_decompress_capped(data, MAX_DECOMPRESSED_BYTES))
        };
        let mut stats = lock(&self.stats, py);
        match result {
            Ok(out) => {
                stats.decompressed += 1;
                drop(stats);
                Ok(PyBytes::new(py, &out))
            }
            Err(e) => {
                stats.decompression_failures += 1;
                Err(PyRuntimeError::new_err(match e {
                    DecompressError::TooLarge { limit } => {
                        format!("decompressed output exceeds {limit} bytes limit")
                    }
                    DecompressError::Corrupt => format!("decompression error: {e}"),
                }))
            }
        }
    }

    /// Packs a dict as msgpack: insertion order and non-string keys kept, `bytes` as bin,
    /// an `Enum` member as its value, datetimes as `isoformat()`, other objects (UUID, set, an
    /// int beyond 64 bits) as `str(obj)`. Nesting deeper than 128 is a `ValueError`.
    fn pack_msgpack<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &encode(&py_to_msgpack(data.as_any())?)))
    }

    /// Unpacks one msgpack value (nested at most 64 deep; bytes after it are ignored). Invalid
    /// input is a `RuntimeError`.
    fn unpack_msgpack<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let value = decode(data).map_err(|_| {
            PyRuntimeError::new_err(
                "msgpack unpacking failed (invalid or exceeds max nesting depth)",
            )
        })?;
        msgpack_to_py(py, &value)
    }

    /// Packs an event dict as msgpack, or with `use_msgpack=False` as compact JSON with sorted
    /// keys (bytes as hex, NaN as null, non-string keys as text).
    #[pyo3(signature = (event, use_msgpack = true))]
    fn pack_event<'py>(
        &self,
        py: Python<'py>,
        event: &Bound<'py, PyDict>,
        use_msgpack: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let value = py_to_msgpack(event.as_any())?;
        let bytes = if use_msgpack {
            encode(&value)
        } else {
            serde_json::to_vec(&msgpack_to_json(&value))
                .map_err(|e| PyValueError::new_err(format!("JSON encoding failed: {e}")))?
        };
        Ok(PyBytes::new(py, &bytes))
    }

    /// Unpacks an event. With `is_msgpack=True`: msgpack, else JSON, else `RuntimeError`.
    /// With `is_msgpack=False`: JSON (UTF-8, or Latin-1 when not UTF-8); undecodable input
    /// gives `{"_raw_hex": <hex of data>, "_decode_error": True}` instead of an error.
    #[pyo3(signature = (data, is_msgpack = true))]
    fn unpack_event<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        is_msgpack: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if is_msgpack {
            if let Ok(value) = decode(data) {
                return msgpack_to_py(py, &value);
            }
            return match serde_json::from_slice::<Json>(data) {
                Ok(json) => to_py(py, &json),
                Err(_) => Err(PyRuntimeError::new_err(
                    "Failed to unpack event (tried msgpack + JSON)",
                )),
            };
        }
        if let Some(json) = parse_json_any_encoding(data) {
            return to_py(py, &json);
        }
        let marker = PyDict::new(py);
        marker.set_item("_raw_hex", hex(data))?;
        marker.set_item("_decode_error", true)?;
        Ok(marker.into_any())
    }

    /// Counters: `total_compressed`, `total_decompressed`, `compression_failures`,
    /// `decompression_failures`, `total_bytes_saved` (input minus output, never negative per
    /// call), `compression_success_rate`, `decompression_success_rate`, `average_bytes_saved`.
    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = {
            let stats = lock(&self.stats, py);
            Stats { ..*stats }
        };
        let average_saved = if s.compressed == 0 {
            0.0
        } else {
            s.bytes_saved as f64 / s.compressed as f64
        };
        let out = PyDict::new(py);
        out.set_item("total_compressed", s.compressed)?;
        out.set_item("total_decompressed", s.decompressed)?;
        out.set_item("compression_failures", s.compression_failures)?;
        out.set_item("decompression_failures", s.decompression_failures)?;
        out.set_item("total_bytes_saved", s.bytes_saved)?;
        out.set_item(
            "compression_success_rate",
            rate(s.compressed, s.compression_failures),
        )?;
        out.set_item(
            "decompression_success_rate",
            rate(s.decompressed, s.decompression_failures),
        )?;
        out.set_item("average_bytes_saved", average_saved)?;
        Ok(out)
    }

    /// Sets every counter back to zero.
    fn reset_stats(&self, py: Python<'_>) {
        *lock(&self.stats, py) = Stats::default();
    }
}

/// Parses JSON from UTF-8, or, if `data` is not UTF-8, from its Latin-1 reading.
fn parse_json_any_encoding(data: &[u8]) -> Option<Json> {
    match serde_json::from_slice(data) {
        Ok(json) => Some(json),
        Err(_) if std::str::from_utf8(data).is_err() => {
            let latin1: String = data.iter().map(|&b| char::from(b)).collect();
            serde_json::from_str(&latin1).ok()
        }
        Err(_) => None,
    }
}
