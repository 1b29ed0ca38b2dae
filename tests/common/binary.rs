//! The real `inboxguard` binary, run with a bound so a hang fails the test.

use super::HANG_GUARD;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `inboxguard ARGS`: its exit code, stdout and stderr.
pub fn run_inboxguard(args: &[&str]) -> (Option<i32>, String, String) {
    // `option_env!`: an example shares this harness, and examples get no binary path.
    let Some(binary) = option_env!("CARGO_BIN_EXE_inboxguard") else {
        panic!("the inboxguard binary is built for integration tests only");
    };
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("inboxguard {args:?} still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
