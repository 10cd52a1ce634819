//! `augment_config`: see `scssl_tests::fuzz::augment_config` (the harness, replayed on stable by
//! `tests/tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scssl_tests::fuzz::augment_config(data));
