//! Module-level functions of UPSTREAM §7.11 that the engine backs today: JWT minting and
//! checking with the server's own validator, zlib, SHA-256, HMAC-SHA256 and message signing.
//! Signatures, defaults and exception types are the original's.

use hmac::{Hmac, Mac};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sha2::{Digest, Sha256};
use wse_core::auth::{JwtValidator, encode_jwt};
use wse_core::config::{JwtAlgorithm, JwtSettings};
use wse_core::protocol::zlib::{zlib_compress, zlib_decompress_capped};

use crate::convert::{hex, map_to_py, to_json_map};

/// Largest output of `rust_decompress` (the original's cap).
pub const MAX_DECOMPRESSED_BYTES: usize = 10 * 1024 * 1024;

/// Registers the functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rust_jwt_encode, m)?)?;
    m.add_function(wrap_pyfunction!(rust_jwt_decode, m)?)?;
    m.add_function(wrap_pyfunction!(rust_compress, m)?)?;
    m.add_function(wrap_pyfunction!(rust_decompress, m)?)?;
    m.add_function(wrap_pyfunction!(rust_should_compress, m)?)?;
    m.add_function(wrap_pyfunction!(rust_sha256, m)?)?;
    m.add_function(wrap_pyfunction!(rust_hmac_sha256, m)?)?;
    m.add_function(wrap_pyfunction!(rust_sign_message, m)?)?;
    Ok(())
}

/// Parses an algorithm name; anything but HS256/RS256/ES256 is a `ValueError`.
pub fn parse_algorithm(name: &str) -> PyResult<JwtAlgorithm> {
    name.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "Unsupported algorithm: {name}. Supported: HS256, RS256, ES256"
        ))
    })
}

/// Seconds since the Unix epoch, as the validator's wall clock (the binding may read the
/// clock; the core never does).
pub fn wall_now() -> wse_core::WallClock {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    wse_core::WallClock::from_unix_micros(micros)
}

/// Mints a JWT: header `{"typ":"JWT","alg":…,"kid"?}`, the claims as given (no `exp`/`iat`
/// added). HS256 needs a secret of at least 32 bytes; RS256/ES256 a PEM private key.
#[pyfunction]
#[pyo3(signature = (claims, secret, algorithm = "HS256", key_id = None))]
fn rust_jwt_encode(
    claims: &Bound<'_, PyAny>,
    secret: &[u8],
    algorithm: &str,
    key_id: Option<&str>,
) -> PyResult<String> {
    let alg = parse_algorithm(algorithm)?;
    let claims = to_json_map(claims)?;
    encode_jwt(&claims, secret, alg, key_id)
        .map_err(|e| PyRuntimeError::new_err(format!("JWT encode error: {e}")))
}

/// Validates a token with the server's rules (exp required, 30 s leeway, configured iss/aud
/// required, kid when configured, rotation secret) and returns its claims, or `None` for any
/// failure — an unsupported algorithm and an unusable key included, as the original does.
#[pyfunction]
#[pyo3(signature = (token, secret, algorithm = "HS256", issuer = None, audience = None,
                    previous_secret = None, key_id = None))]
#[allow(clippy::too_many_arguments)]
fn rust_jwt_decode<'py>(
    py: Python<'py>,
    token: &str,
    secret: &[u8],
    algorithm: &str,
    issuer: Option<String>,
    audience: Option<String>,
    previous_secret: Option<Vec<u8>>,
    key_id: Option<String>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Ok(alg) = algorithm.parse::<JwtAlgorithm>() else {
        return Ok(None);
    };
    let settings = JwtSettings {
        secret: secret.to_vec(),
        algorithm: alg,
        issuer,
        audience,
        cookie_name: None,
        previous_secret,
        key_id,
        private_key: None,
    };
    let Ok(validator) = JwtValidator::new(&settings) else {
        return Ok(None);
    };
    match validator.decode(token, wall_now()) {
        Ok(claims) => map_to_py(py, &claims).map(Some),
        Err(_) => Ok(None),
    }
}

/// zlib-compresses `data` at `level` (1..=9).
#[pyfunction]
#[pyo3(signature = (data, level = 6))]
fn rust_compress<'py>(py: Python<'py>, data: &[u8], level: i64) -> PyResult<Bound<'py, PyBytes>> {
    let level = u32::try_from(level)
        .ok()
        .filter(|l| (1..=9).contains(l))
        .ok_or_else(|| PyValueError::new_err("compression level must be between 1 and 9"))?;
    let out = py.detach(|| zlib_compress(data, level));
    Ok(PyBytes::new(py, &out))
}

/// Inflates zlib `data`; output beyond 10 MiB or a corrupt stream is a `RuntimeError`.
#[pyfunction]
fn rust_decompress<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let out = py
        .detach(|| zlib_decompress_capped(data, MAX_DECOMPRESSED_BYTES))
        .map_err(|e| PyRuntimeError::new_err(format!("decompression error: {e}")))?;
    Ok(PyBytes::new(py, &out))
}

/// Whether `data` is longer than `threshold` bytes.
#[pyfunction]
#[pyo3(signature = (data, threshold = 1024))]
fn rust_should_compress(data: &[u8], threshold: usize) -> bool {
    data.len() > threshold
}

/// Lower-case hex SHA-256 of `data`.
#[pyfunction]
fn rust_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC-SHA256 takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The 32 raw bytes of HMAC-SHA256(`key`, `data`).
#[pyfunction]
fn rust_hmac_sha256<'py>(py: Python<'py>, key: &[u8], data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &hmac_sha256(key, data))
}

/// `hex(HMAC-SHA256(secret, hex(SHA-256(payload_json))))`, as the original signs.
#[pyfunction]
fn rust_sign_message(payload_json: &str, secret: &[u8]) -> String {
    let digest = hex(&Sha256::digest(payload_json.as_bytes()));
    hex(&hmac_sha256(secret, digest.as_bytes()))
}
