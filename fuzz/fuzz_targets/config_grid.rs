//! `config_grid`: see `scssl_tests::fuzz::config_grid` (the harness, replayed on stable by
//! `tests/tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scssl_tests::fuzz::config_grid(data));
