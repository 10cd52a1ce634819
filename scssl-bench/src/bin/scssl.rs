//! `scssl` — self-supervised learning for single-cell data: simulate, preprocess, train, embed,
//! evaluate, annotate, inspect, bench, report. The commands live in [`scssl_bench::cli`].

fn main() {
    scssl_bench::cli::main();
}
