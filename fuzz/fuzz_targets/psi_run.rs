//! `cargo +nightly fuzz run psi_run`: see `tandem_fuzzing::psi_run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::psi_run(data));
