#![allow(dead_code, missing_docs)]
use std::path::PathBuf;

/// This crate's directory. `cargo test` also sets CARGO_MANIFEST_DIR at run time; preferring
/// it keeps fixture paths right when a target cache shared between checkouts serves a test
/// binary built in another one.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn fixtures() -> PathBuf {
    manifest_dir().join("../conformance/fixtures")
}

pub fn shared_data() -> Option<PathBuf> {
    let p = manifest_dir().join("../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "NOTICE: {} not found; skipping tests on the shared real datasets",
            p.display()
        );
        None
    }
}

pub fn json(name: &str) -> serde_json::Value {
    let p = fixtures().join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("valid golden JSON")
}
