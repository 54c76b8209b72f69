//! Statistical tests: interval coverage and test calibration over seeded runs.
//!
//! The noise is simulated here only, by a seeded sampler of the psi-ca-v1 distribution
//! (`clamp(Z, −T, T)`, `Z = G₁ − G₂` with `Gᵢ` geometric); production noise comes from opendp
//! through the node. Coverage figures are printed (`cargo test -p tandem-analytics --
//! --nocapture`) and recorded in `protocols/analyses-v1.md`.

mod attribution;
mod descriptive;
mod lift;
mod ranges;
mod values;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{Noise, NoisyCount};

/// Seeded simulator of the release noise and of binomial sampling.
pub(crate) struct Sim(StdRng);

impl Sim {
    pub(crate) fn new(seed: u64) -> Sim {
        Sim(StdRng::seed_from_u64(seed))
    }

    fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// `Geometric(1 − q)` on `{0, 1, …}` by inversion.
    fn geometric(&mut self, q: f64) -> i64 {
        let u = 1.0 - self.uniform(); // (0, 1]
        (u.ln() / q.ln()).floor() as i64
    }

    /// One error `clamp(Z, −T, T)` of `noise`.
    pub(crate) fn error(&mut self, noise: Noise) -> i64 {
        if noise.is_exact() {
            return 0;
        }
        let q = (-1.0 / noise.scale()).exp();
        let z = self.geometric(q) - self.geometric(q);
        let t = i64::from(noise.clamp());
        z.clamp(-t, t)
    }

    /// A released count of `truth`.
    pub(crate) fn noisy(&mut self, truth: u64, noise: Noise) -> NoisyCount {
        NoisyCount::new(truth as i64 + self.error(noise), noise)
    }

    /// `Binomial(n, p)` as a sum of Bernoulli draws (n is in the thousands here).
    pub(crate) fn binomial(&mut self, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| self.uniform() < p).count() as u64
    }
}

/// Noise of the cells and of the peer's sizes for responder ε `eps` (psi-ca-v1 §6 split: 3/4 to
/// the cells, 1/4 to the sizes), each clamped where its one-sided tail `q^T/(1 + q)` falls
/// below `δ/2 = 5·10⁻¹⁰` (`T ≈ s·ln(2/δ)`, as `ShiftedLaplace::for_epsilon` chooses).
pub(crate) fn run_noise(eps: f64) -> (Noise, Noise) {
    let noise = |scale: f64| {
        let clamp = (scale * (2.0f64 / 1e-9).ln()).ceil() as u32;
        Noise::clamped_laplace(scale, clamp).unwrap()
    };
    (noise(1.0 / (0.75 * eps)), noise(1.0 / (0.25 * eps)))
}

#[test]
fn sampler_matches_the_noise_variance() {
    let noise = Noise::clamped_laplace(4.0, 1000).unwrap();
    let mut sim = Sim::new(7);
    let n = 20_000;
    let draws: Vec<f64> = (0..n).map(|_| sim.error(noise) as f64).collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let var = draws.iter().map(|d| d * d).sum::<f64>() / n as f64;
    // s.d. of the mean ≈ 0.04, of the variance ≈ 0.9 (κ₄ ≈ 3σ⁴): six-sigma bounds.
    assert!(mean.abs() < 0.25, "mean {mean}");
    assert!(
        (var - noise.variance()).abs() < 6.0,
        "var {var} vs {}",
        noise.variance()
    );
    let h = noise.half_width(0.05).unwrap() as f64;
    let outside = draws.iter().filter(|d| d.abs() > h).count() as f64 / n as f64;
    assert!(outside <= 0.05 + 0.005, "P(|E| > h) = {outside}");
}
