#![allow(dead_code, missing_docs)]
use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/fixtures")
}

pub fn shared_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
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
