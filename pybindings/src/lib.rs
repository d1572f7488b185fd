//! # wse-py: the `wse_server._wse_accel` extension module
//!
//! The original `wse-server` Python API (UPSTREAM §7, CONTRACT §1.2) on the WSE engine:
//! [`server::RustWseServer`] drives a `wse-runtime` server on its own tokio runtime; the module
//! functions and helper classes of §7.11 sit beside it. Everything here is a thin layer:
//! conversions ([`convert`]), argument checks, and the GIL (released whenever we wait).

#![forbid(unsafe_code)]

use pyo3::prelude::*;

/// mimalloc: events are allocated on the runtime's threads and freed on another (Python's), a
/// pattern on which glibc malloc's arena locks showed in profiles (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod convert;
pub mod crypto;
pub mod events;
pub mod functions;
pub mod server;
pub mod utils;

/// The `_wse_accel` module.
#[pymodule]
#[pyo3(name = "_wse_accel")]
fn wse_accel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<server::RustWseServer>()?;
    functions::register(m)?;
    crypto::register(m)?;
    events::register(m)?;
    utils::register(m)?;
    Ok(())
}
