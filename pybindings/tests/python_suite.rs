//! Runs the Python suite (`pybindings/tests/*.py`) the way a user meets the package: build the
//! wheel with `pip install ./pybindings` (maturin comes from PyPI through the build backend)
//! into a fresh virtualenv, then `pytest` against the installed package, with the published
//! `wse-client` and `websockets` as the clients.
//!
//! Python: `$WSE_PYTHON` if set, else `python3` (3.11 or newer). The virtualenv is recreated
//! under `target/pybindings-venv` on every run; the wheel is built with the `pywheel` profile (unoptimised) in
//! `target/pywheel` (its own target dir, so this build never waits on the `cargo test` that runs
//! it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    std::env::var_os("WSE_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{what} failed ({status}): {cmd:?}");
}

#[test]
fn the_python_package_passes_its_suite_from_a_fresh_virtualenv() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = crate_dir.join("../target");
    let venv = target.join("pybindings-venv");
    run(
        Command::new(python())
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "creating the virtualenv (python3 -m venv; install python3-venv if missing)",
    );
    let py = venv.join("bin/python");
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("{}[test]", crate_dir.display()))
            .env("CARGO_TARGET_DIR", target.join("pywheel"))
            // An unoptimised profile builds several times faster than release; users'
            // `pip install ./pybindings` builds the release profile.
            .env("MATURIN_PEP517_ARGS", "--profile pywheel"),
        "pip install ./pybindings[test] (builds the wheel; needs PyPI for maturin)",
    );
    run(
        Command::new(&py)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"])
            .current_dir(crate_dir.join("tests")),
        "the Python suite",
    );
}
