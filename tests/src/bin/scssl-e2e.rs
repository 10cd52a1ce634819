//! The `scssl` command line built inside the end-to-end test crate, so that its tests can run
//! it as a process (`CARGO_BIN_EXE_scssl-e2e`) and kill it mid-grid. Same commands as `scssl`.

fn main() {
    scssl_bench::cli::main();
}
