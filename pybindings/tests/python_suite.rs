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

/// Like [`run`], but captures the output, and on failure ends the panic message with the
/// compiler's error lines: CI shows only the tail of a failing test's output, and a wheel build
/// buries the cause under pip's and maturin's wrapping.
fn run_captured(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return;
    }
    let errors: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("error") || l.starts_with("-->") || l.contains("No space left")
        })
        .collect();
    let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!(
        "{what} failed ({}): {cmd:?}\n--- stdout ---\n{stdout}\n--- the last lines of stderr ---\n{}\n--- the error lines ---\n{}",
        out.status,
        tail.join("\n"),
        errors.join("\n")
    );
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
    run_captured(
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
