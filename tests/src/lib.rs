//! End-to-end tests of scssl live in `tests/tests/`: the pipeline across crates, and
//! `scssl bench` grids run through the crate's `scssl-e2e` binary (the `scssl` commands).
//!
//! The library holds the fuzz harnesses ([`fuzz`]), shared by the `cargo fuzz` targets in
//! `fuzz/` (nightly) and the stable test that replays their corpora.

pub mod fuzz;
