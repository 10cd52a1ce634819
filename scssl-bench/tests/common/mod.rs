//! The `scssl` binary, for the command-line test files.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The `scssl` binary under test.
pub fn scssl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scssl"))
}

pub fn run_ok(c: &mut Command) -> String {
    let out = c.output().expect("scssl runs");
    assert!(
        out.status.success(),
        "scssl failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run_err(c: &mut Command) -> String {
    let out = c.output().expect("scssl runs");
    assert!(!out.status.success(), "scssl should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `scssl simulate ARGS -o out` (ARGS space-separated).
pub fn simulate(out: &Path, args: &str) {
    run_ok(
        scssl()
            .arg("simulate")
            .args(args.split_whitespace())
            .arg("-o")
            .arg(out),
    );
}
