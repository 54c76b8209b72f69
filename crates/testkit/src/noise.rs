//! Noise sources for tests of the PSI state machines (production noise comes only from the
//! node's release path): tandem-dp's test-only sources, re-exported.

pub use tandem_dp::test_noise::{NoNoise, SeededLaplace};
