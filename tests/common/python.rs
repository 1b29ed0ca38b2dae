//! The Python interpreter for the tests that sign with independent Python packages, and how
//! they skip when a package is missing.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The packages those tests import, pinned; `.ci/run` installs the same versions.
pub const PYTHON_PACKAGES: &str =
    "httpsig==1.3.0 http-message-signatures==3.0.0 http-sf==1.5.0 cryptography==48.0.0";

/// `$INBOXGUARD_PYTHON` if set, else the repository's `.venv/bin/python3` if present (the
/// README's install line makes one: Debian's own python3 refuses `pip install`, PEP 668),
/// else `python3` from `PATH`.
pub fn python() -> OsString {
    if let Some(python) = std::env::var_os("INBOXGUARD_PYTHON") {
        return python;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        return venv.into_os_string();
    }
    "python3".into()
}

/// A `Command` running [`python`].
pub fn python_command() -> Command {
    Command::new(python())
}

/// Whether [`python`] can import `module`. When it cannot, `test` is skipped with a note on
/// the terminal, or fails under `CI=true`, where it must run.
pub fn python_can_import(test: &str, module: &str) -> bool {
    let python = python();
    let problem = match Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
    {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "{} cannot import {module}: {}",
            python.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => format!("cannot run {}: {e}", python.to_string_lossy()),
    };
    let install = format!(
        "python3 -m venv .venv && .venv/bin/pip install {PYTHON_PACKAGES} \
         (or set INBOXGUARD_PYTHON to a python3 that has them)"
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {problem}; CI must run this test ({install})");
    }
    skip_note(&format!("SKIPPED {test}: {problem}; {install}"));
    false
}

/// Prints `note` where `cargo test` shows it even for a passing test: straight to the
/// process's stderr, which the test harness does not capture (it captures `eprintln!`).
pub fn skip_note(note: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{note}");
}
