//! Noised marginals as the fit receives them, with their known noise distribution.

use rand::Rng;
use rand_distr::{Distribution, Geometric};
use serde::{Deserialize, Serialize};
use tandem_dp::ShiftedLaplace;

use crate::{MarginalSpec, ModelError, Schema};

/// One released cross-tab: the signed DP estimates of a marginal's cells (psi-ca-v1's
/// `CellCounts::noised`, `[gA · nB + gB]`) and the cell noise they carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoisyMarginal {
    /// Which marginal.
    pub spec: MarginalSpec,
    /// Signed estimates `count + clamp(Z, −T, T)`, one per cell (may be negative).
    pub counts: Vec<i64>,
    /// The run's `cell_noise` `(scale, T)`.
    pub noise: ShiftedLaplace,
}

impl NoisyMarginal {
    /// Checks the shape against a schema and the noise scale.
    ///
    /// # Errors
    /// [`ModelError::InvalidPlan`] for a bad spec, [`ModelError::Measurement`] for a wrong number
    /// of cells or a noise scale that is not finite and positive.
    pub fn validate(&self, schema: &Schema) -> Result<(), ModelError> {
        self.spec.validate(schema)?;
        let expected = self.spec.cells(schema);
        if self.counts.len() != expected {
            return Err(ModelError::Measurement(format!(
                "marginal {} has {} cells, expected {expected}",
                self.spec.name(schema),
                self.counts.len()
            )));
        }
        if !(self.noise.scale.is_finite() && self.noise.scale > 0.0) {
            return Err(ModelError::Measurement(format!(
                "marginal {} has noise scale {}",
                self.spec.name(schema),
                self.noise.scale
            )));
        }
        Ok(())
    }

    /// Variance of one cell's noise: the discrete Laplace variance `2q/(1 − q)²`,
    /// `q = e^(−1/scale)`. Clamping to `[−T, T]` only lowers it, so this is an upper bound (and
    /// exact up to the clamping δ).
    pub fn noise_variance(&self) -> f64 {
        discrete_laplace_variance(self.noise.scale)
    }
}

/// `2q/(1 − q)²` with `q = e^(−1/scale)`, computed stably for large scales.
pub(crate) fn discrete_laplace_variance(scale: f64) -> f64 {
    let q = (-1.0 / scale).exp();
    let one_minus_q = -(-1.0 / scale).exp_m1();
    2.0 * q / (one_minus_q * one_minus_q)
}

/// A simulator of a run's cell noise `clamp(Z, −T, T)` for the parametric bootstrap: `Z` is the
/// difference of two geometric draws with success probability `1 − e^(−1/scale)`, which is
/// discrete Laplace. It only simulates the known noise to compute intervals; released noise
/// always comes from `tandem_dp::OpenDpNoise`.
pub(crate) struct NoiseSimulator {
    geometric: Geometric,
    offset: i64,
}

impl NoiseSimulator {
    pub(crate) fn new(noise: &ShiftedLaplace) -> Result<Self, ModelError> {
        let p = -(-1.0 / noise.scale).exp_m1();
        let geometric = Geometric::new(p)
            .map_err(|e| ModelError::Measurement(format!("noise scale {}: {e}", noise.scale)))?;
        Ok(NoiseSimulator {
            geometric,
            offset: i64::from(noise.offset),
        })
    }

    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> i64 {
        let a = self.geometric.sample(rng).min(i64::MAX as u64) as i64;
        let b = self.geometric.sample(rng).min(i64::MAX as u64) as i64;
        a.saturating_sub(b).clamp(-self.offset, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn simulated_noise_has_the_stated_variance() {
        let noise = ShiftedLaplace {
            scale: 3.0,
            offset: 1000,
        };
        let sim = NoiseSimulator::new(&noise).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let n = 40_000;
        let draws: Vec<f64> = (0..n).map(|_| sim.sample(&mut rng) as f64).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let expected = discrete_laplace_variance(3.0);
        // Var ≈ 2·s² = 18 here; the sample variance's relative sd is about √(5/n) ≈ 1.1 %.
        assert!((var / expected - 1.0).abs() < 0.06, "{var} vs {expected}");
        assert!(mean.abs() < 0.1, "{mean}");
    }

    #[test]
    fn clamps_to_offset() {
        let noise = ShiftedLaplace {
            scale: 50.0,
            offset: 2,
        };
        let sim = NoiseSimulator::new(&noise).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..1000).all(|_| sim.sample(&mut rng).abs() <= 2));
    }
}
