//! `cargo +nightly fuzz run psi_message`: see `tandem_fuzzing::psi_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::psi_message(data));
