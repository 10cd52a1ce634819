//! End-to-end tests of scssl live in `tests/tests/`: the pipeline across crates, and
//! `scssl bench` grids run through the crate's `scssl-e2e` binary (the `scssl` commands). This
//! library is empty.
