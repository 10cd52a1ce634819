//! `h5ad_read`: see `scssl_tests::fuzz::h5ad_read` (the harness, replayed on stable by
//! `tests/tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scssl_tests::fuzz::h5ad_read(data));
