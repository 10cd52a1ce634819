//! `scssl` — self-supervised learning for single-cell data: simulate, preprocess, train, embed,
//! evaluate, annotate, inspect, bench, report. The commands live in [`scssl_bench::cli`].

// mimalloc keeps freed large blocks for reuse: burn-ndarray's per-operation temporaries (hundreds
// of MB per step in the transformer methods) otherwise go back to the kernel and come back as
// fresh pages that it must zero, which was ~40 % of an scCLIP step with glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    scssl_bench::cli::main();
}
