//! Shared by the suites that run the published Python client (the interop suites, and
//! `wse_bin.rs` for the README's flow): the interpreter that has it.
//!
//! `$WSE_INTEROP_PYTHON` if set (an interpreter that already has `wse-client[msgpack]` and
//! `pytest`); otherwise a virtualenv is created once under `target/interop-venv` and the pinned
//! packages are installed from PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

const PINNED: &[&str] = &["wse-client[msgpack,crypto]==2.5.1", "pytest>=8,<10"];

/// The interpreter to run the interop suites with.
pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WSE_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv");
    let py = target.join("bin/python");
    let stamp = target.join("installed.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(&PINNED.join("\n")) {
        return py;
    }
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&target)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "python3 -m venv failed: install python3-venv"
    );
    let status = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PINNED)
        .status()
        .expect("pip runs");
    assert!(
        status.success(),
        "pip install {PINNED:?} failed (needs PyPI)"
    );
    std::fs::write(&stamp, PINNED.join("\n")).expect("stamp written");
    py
}
