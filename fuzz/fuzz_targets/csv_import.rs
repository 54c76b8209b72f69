//! `cargo +nightly fuzz run csv_import`: see `tandem_fuzzing::csv_import`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::csv_import(data));
