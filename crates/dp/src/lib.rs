//! Differential-privacy layer of Tandem, built on `opendp` (=0.16.0, features `contrib`, `use-openssl`).
//!
//! Everything here works on integers: noise is exact discrete Laplace sampled by opendp with
//! cryptographically secure randomness, privacy losses come from opendp's privacy maps, and
//! intervals from opendp's accuracy functions. No floating-point noise anywhere.
//!
//! opendp's measurements are neither `Send` nor `Sync`: every function here builds and invokes
//! them inside the call, so callers on an async runtime must call these from synchronous code
//! (`tokio::task::spawn_blocking`).

use serde::{Deserialize, Serialize};

/// Errors of the DP layer.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    /// A parameter is out of its valid range (names the parameter and the reason).
    #[error("invalid DP parameter: {0}")]
    InvalidParameter(String),
    /// opendp refused to build or run a measurement.
    #[error("opendp: {0}")]
    OpenDp(String),
}

/// A shifted, clamped discrete-Laplace noise distribution: one draw is
/// `clamp(T + Z, 0, 2T)` with `Z ~ DiscreteLaplace(scale)` and `T = offset`.
///
/// Protocols use it to choose how many dummy items to add (so the number is never negative and
/// bounded by the public `2T`); the chance that clamping happens is the mechanism's `δ`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftedLaplace {
    /// Scale of the discrete Laplace noise (`ε = sensitivity / scale`).
    pub scale: f64,
    /// The public offset `T`; draws lie in `[0, 2T]`.
    pub offset: u32,
}

impl ShiftedLaplace {
    /// The distribution that gives `epsilon`-DP for an L1 `sensitivity`, with the smallest offset
    /// `T` whose clamping probability [`Self::clamp_delta`] is at most `delta`.
    pub fn for_epsilon(epsilon: f64, sensitivity: u32, delta: f64) -> Result<Self, DpError> {
        let _ = (epsilon, sensitivity, delta);
        todo!()
    }

    /// ε of one release with L1 `sensitivity`, from opendp's privacy map of the discrete Laplace
    /// measurement at this scale.
    pub fn epsilon(&self, sensitivity: u32) -> Result<f64, DpError> {
        let _ = sensitivity;
        todo!()
    }

    /// δ of the clamping: the probability that `T + Z` falls outside `[0, 2T]` on the side that
    /// breaks pure DP, `P(Z ≥ T)` (one-sided tail of the discrete Laplace), computed exactly.
    pub fn clamp_delta(&self) -> f64 {
        todo!()
    }

    /// Half-width `h` such that `P(|Z| ≤ h) ≥ 1 − alpha`, from opendp's
    /// `discrete_laplacian_scale_to_accuracy`. The released estimate `x̂` gives the interval
    /// `[x̂ − h, x̂ + h]` at confidence `1 − alpha`.
    pub fn half_width(&self, alpha: f64) -> Result<u64, DpError> {
        let _ = alpha;
        todo!()
    }
}

/// A source of protocol noise. Production code uses [`OpenDpNoise`]; tests may implement it to
/// switch noise off (always return `T`) or to fix a seed.
pub trait NoiseSource {
    /// `count` independent draws of `clamp(T + Z, 0, 2T)` from `dist`.
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError>;
}

/// The production noise source: opendp's discrete Laplace sampler with OpenSSL randomness.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenDpNoise;

impl NoiseSource for OpenDpNoise {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        let _ = (dist, count);
        todo!()
    }
}

/// A privacy loss in the approximate-DP form `(ε, δ)`, as charged to the budget ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrivacyLoss {
    /// Pure-DP part (sum of the composed mechanisms' ε, basic composition).
    pub epsilon: f64,
    /// Failure probability (sum of the composed mechanisms' δ).
    pub delta: f64,
}

impl PrivacyLoss {
    /// Basic composition of two losses.
    pub fn compose(self, other: PrivacyLoss) -> PrivacyLoss {
        PrivacyLoss { epsilon: self.epsilon + other.epsilon, delta: self.delta + other.delta }
    }

    /// The zero-concentrated-DP ρ of the pure-ε part (`ρ = ε²/2`).
    pub fn rho(&self) -> f64 {
        self.epsilon * self.epsilon / 2.0
    }
}

/// ε of a `rho`-zCDP mechanism at the given `delta`, from opendp's `make_zCDP_to_approxDP` and
/// `make_fix_delta` (tighter than the textbook `ρ + 2√(ρ ln(1/δ))`).
pub fn zcdp_epsilon(rho: f64, delta: f64) -> Result<f64, DpError> {
    let _ = (rho, delta);
    todo!()
}
