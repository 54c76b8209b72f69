//! `cargo +nightly fuzz run agreement_json`: see `tandem_fuzzing::agreement_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::agreement_json(data));
