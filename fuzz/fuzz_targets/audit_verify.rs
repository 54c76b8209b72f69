//! `cargo +nightly fuzz run audit_verify`: see `tandem_fuzzing::audit_verify`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::audit_verify(data));
