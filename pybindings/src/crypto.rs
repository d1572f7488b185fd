//! The end-to-end encryption helpers of UPSTREAM §4.5: ECDH P-256 key pairs, the HKDF-SHA256
//! session key, and AES-256-GCM records (`IV ‖ ciphertext ‖ tag`). The semantics are
//! `wse_core::crypto::python`'s; this layer adds the OS random generator, releases the GIL
//! around the curve arithmetic and long AES runs, and raises the original's exceptions with
//! the original's messages.
//!
//! Where the original differs from the core's stricter reading, the original wins here:
//! - a private key of 24 to 31 bytes is a big-endian scalar with its leading zero bytes left
//!   out (the original accepts it and derives the same key as from the 32-byte form);
//! - `rust_aes_gcm_decrypt` checks the data's length before the key's (both `ValueError`;
//!   only the message tells which).

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rand_core::OsRng;
use wse_core::crypto::keys::KEY_LEN;
use wse_core::crypto::python::{
    HelperError, PythonException, aes_gcm_decrypt, aes_gcm_encrypt, ecdh_derive_shared_secret,
    ecdh_generate_keypair,
};
use wse_core::crypto::record::MIN_RAW_LEN;

/// Shortest private key accepted: P-256's 32 bytes less up to 8 leading zero bytes, as the
/// original (the `p256` crate's `SecretKey::from_slice`) allows.
pub const MIN_PRIVATE_KEY_LEN: usize = 24;

/// AES runs shorter than this keep the GIL: they take microseconds, and retaking a released
/// GIL can cost far more when other Python threads are busy (up to the switch interval).
pub const DETACH_AES_FROM_BYTES: usize = 16 * 1024;

/// Registers the functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rust_ecdh_generate_keypair, m)?)?;
    m.add_function(wrap_pyfunction!(rust_ecdh_derive_shared_secret, m)?)?;
    m.add_function(wrap_pyfunction!(rust_aes_gcm_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(rust_aes_gcm_decrypt, m)?)?;
    Ok(())
}

/// The exception the original raises for `e`, with its message.
pub fn to_py_err(e: HelperError) -> PyErr {
    let message = match e {
        HelperError::KeyLength { .. } => "AES-GCM-256 key must be 32 bytes",
        HelperError::DataTooShort { .. } => {
            "Encrypted data too short (min 28 bytes: 12 IV + 16 tag)"
        }
        HelperError::BadPrivateKey(_) => "Invalid private key: crypto error",
        HelperError::BadPublicKey(_) => "Invalid peer public key: crypto error",
        HelperError::AuthenticationFailed => "Decrypt failed: aead::Error",
    };
    match e.python_exception() {
        PythonException::ValueError => PyValueError::new_err(message),
        PythonException::RuntimeError => PyRuntimeError::new_err(message),
    }
}

/// Runs `f` without the GIL when `len` bytes make it worth it.
fn detach_if_long<T: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> T + Send) -> T {
    if len >= DETACH_AES_FROM_BYTES {
        py.detach(f)
    } else {
        f()
    }
}

/// A new ECDH P-256 key pair from the OS generator: the 32-byte big-endian private scalar and
/// the 65-byte uncompressed SEC1 public key (`04 ‖ X ‖ Y`).
#[pyfunction]
fn rust_ecdh_generate_keypair(py: Python<'_>) -> (Bound<'_, PyBytes>, Bound<'_, PyBytes>) {
    let (private, public) = py.detach(|| ecdh_generate_keypair(&mut OsRng));
    (PyBytes::new(py, &private), PyBytes::new(py, &public))
}

/// The 32-byte AES-256 key agreed with a peer: ECDH on P-256, then HKDF-SHA256 (no salt, info
/// `wse-encryption/aes-gcm-key`). `peer_public_key` is SEC1, uncompressed (65 bytes) or
/// compressed (33). `ValueError` if either key is not valid.
#[pyfunction]
fn rust_ecdh_derive_shared_secret<'py>(
    py: Python<'py>,
    private_key: &[u8],
    peer_public_key: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let key = py.detach(|| {
        if (MIN_PRIVATE_KEY_LEN..KEY_LEN).contains(&private_key.len()) {
            let mut padded = [0u8; KEY_LEN];
            padded[KEY_LEN - private_key.len()..].copy_from_slice(private_key);
            let key = ecdh_derive_shared_secret(&padded, peer_public_key);
            padded.fill(0);
            std::hint::black_box(&padded);
            key
        } else {
            ecdh_derive_shared_secret(private_key, peer_public_key)
        }
    });
    Ok(PyBytes::new(py, &key.map_err(to_py_err)?))
}

/// AES-256-GCM with a fresh random 12-byte IV and no associated data: `IV ‖ ciphertext ‖
/// 16-byte tag`. `ValueError` if `key` is not 32 bytes.
#[pyfunction]
fn rust_aes_gcm_encrypt<'py>(
    py: Python<'py>,
    key: &[u8],
    plaintext: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let record = detach_if_long(py, plaintext.len(), || {
        aes_gcm_encrypt(key, plaintext, &mut OsRng)
    })
    .map_err(to_py_err)?;
    Ok(PyBytes::new(py, &record))
}

/// The plaintext of an `IV ‖ ciphertext ‖ tag` record. `ValueError` if `data` is shorter than
/// 28 bytes or `key` is not 32 bytes; `RuntimeError` if authentication fails.
#[pyfunction]
fn rust_aes_gcm_decrypt<'py>(
    py: Python<'py>,
    key: &[u8],
    data: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    if data.len() < MIN_RAW_LEN {
        return Err(to_py_err(HelperError::DataTooShort {
            len: data.len(),
            min: MIN_RAW_LEN,
        }));
    }
    let plaintext =
        detach_if_long(py, data.len(), || aes_gcm_decrypt(key, data)).map_err(to_py_err)?;
    Ok(PyBytes::new(py, &plaintext))
}
