//! `cargo +nightly fuzz run agreement_toml`: see `tandem_fuzzing::agreement_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::agreement_toml(data));
