//! `cargo +nightly fuzz run node_envelope`: see `tandem_fuzzing::node_envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_fuzzing::node_envelope(data));
