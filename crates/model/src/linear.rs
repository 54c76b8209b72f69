//! Linear regression from noisy sufficient statistics (`XᵀX`, `Xᵀy`, `yᵀy`), for a numeric
//! peer-side target once intersection sums exist: sufficient-statistics perturbation with
//! AdaSSP's data-adaptive ridge (Y.-X. Wang, "Revisiting differentially private linear
//! regression: optimal and adaptive prediction & estimation in unbounded domain", UAI 2018,
//! Algorithm 2), where the noise of the statistics is given rather than added here.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal as NormalSampler};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::ModelError;
use crate::model::Interval;

/// Released (noised) sufficient statistics of a linear model over the overlap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoisyStatistics {
    /// `XᵀX`, `d × d` row-major (symmetrised before use).
    pub xtx: Vec<f64>,
    /// `Xᵀy`, length `d`.
    pub xty: Vec<f64>,
    /// `yᵀy`.
    pub yty: f64,
    /// Number of rows `n` (noised or public).
    pub n: f64,
    /// Noise variance of each entry of `XᵀX`.
    pub xtx_variance: f64,
    /// Noise variance of each entry of `Xᵀy`.
    pub xty_variance: f64,
}

/// Options of [`fit_linear`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearOptions {
    /// AdaSSP's failure probability `ρ` in the ridge rule.
    pub failure_probability: f64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Bootstrap replicates over the statistics' noise.
    pub bootstrap_replicates: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            failure_probability: 0.05,
            confidence: 0.95,
            bootstrap_replicates: 200,
            seed: 0,
        }
    }
}

/// A fitted linear model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    /// One coefficient per column of `X`, with intervals.
    pub coefficients: Vec<Interval>,
    /// The ridge `λ` used.
    pub ridge: f64,
    /// Residual variance estimate `σ̂²`.
    pub residual_variance: f64,
}

/// Solves `(XᵀX̂ + λI)β = Xᵀŷ` (Cholesky, nalgebra) with AdaSSP's ridge
/// `λ = max(0, σ_XX·√(d·ln(2d²/ρ)) − λ_min(XᵀX̂))`, `σ_XX` the noise sd of an entry of `XᵀX̂`.
///
/// Intervals: `β̂ ± z·√(v_sampling + v_noise)` with the sampling variance `σ̂²·[(XᵀX̂+λI)⁻¹]ᵢᵢ`,
/// `σ̂² = (yᵀy − 2β̂ᵀXᵀŷ + β̂ᵀXᵀX̂β̂)/(n − d)`, and the noise variance from a seeded bootstrap
/// that redraws the statistics' noise (taken as Gaussian with the given variances).
///
/// # Errors
/// [`ModelError::Measurement`] on inconsistent shapes or non-finite values,
/// [`ModelError::InvalidOptions`] on bad options, [`ModelError::Optimisation`] if the system is
/// not positive definite.
pub fn fit_linear(
    stats: &NoisyStatistics,
    options: &LinearOptions,
) -> Result<LinearFit, ModelError> {
    let d = stats.xty.len();
    if d == 0 || stats.xtx.len() != d * d {
        return Err(ModelError::Measurement(format!(
            "XᵀX has {} entries, Xᵀy has {d}: expected d² and d, d ≥ 1",
            stats.xtx.len()
        )));
    }
    let finite = stats.xtx.iter().chain(&stats.xty).all(|v| v.is_finite())
        && stats.yty.is_finite()
        && stats.n.is_finite()
        && stats.xtx_variance >= 0.0
        && stats.xty_variance >= 0.0;
    if !finite {
        return Err(ModelError::Measurement(
            "statistics and variances must be finite (variances ≥ 0)".into(),
        ));
    }
    let in_unit = |x: f64| x > 0.0 && x < 1.0;
    if !(in_unit(options.failure_probability) && in_unit(options.confidence)) {
        return Err(ModelError::InvalidOptions(
            "failure probability and confidence must be in (0, 1)".into(),
        ));
    }
    let raw = DMatrix::from_row_slice(d, d, &stats.xtx);
    let xtx = (&raw + raw.transpose()) * 0.5;
    let xty = DVector::from_column_slice(&stats.xty);
    let lambda_min = SymmetricEigen::new(xtx.clone()).eigenvalues.min();
    let df = d as f64;
    let ridge = (stats.xtx_variance.sqrt()
        * (df * (2.0 * df * df / options.failure_probability).ln()).sqrt()
        - lambda_min)
        .max(0.0);
    let solve = |xtx: &DMatrix<f64>, xty: &DVector<f64>| -> Result<DVector<f64>, ModelError> {
        let a = xtx + DMatrix::identity(d, d) * ridge;
        a.cholesky()
            .map(|c| c.solve(xty))
            .ok_or_else(|| ModelError::Optimisation("XᵀX + λI is not positive definite".into()))
    };
    let beta = solve(&xtx, &xty)?;
    let dof = (stats.n - df).max(1.0);
    let residual_variance =
        ((stats.yty - 2.0 * beta.dot(&xty) + (beta.transpose() * &xtx * &beta)[(0, 0)]) / dof)
            .max(0.0);
    let inverse = (xtx.clone() + DMatrix::identity(d, d) * ridge)
        .cholesky()
        .map(|c| c.inverse())
        .ok_or_else(|| ModelError::Optimisation("XᵀX + λI is not positive definite".into()))?;

    let mut rng = StdRng::seed_from_u64(options.seed);
    let sampler = |variance: f64| {
        NormalSampler::new(0.0, variance.sqrt()).map_err(|e| ModelError::Measurement(e.to_string()))
    };
    let (noise_xx, noise_xy) = (sampler(stats.xtx_variance)?, sampler(stats.xty_variance)?);
    let mut sum = DVector::zeros(d);
    let mut sum_sq = DVector::zeros(d);
    for _ in 0..options.bootstrap_replicates {
        let mut e = DMatrix::zeros(d, d);
        for i in 0..d {
            for j in i..d {
                let z = noise_xx.sample(&mut rng);
                e[(i, j)] = z;
                e[(j, i)] = z;
            }
        }
        let f = DVector::from_fn(d, |_, _| noise_xy.sample(&mut rng));
        // Replicate statistics: the fitted ones plus fresh noise.
        let b = solve(&(&xtx + e), &(&xty + f))?;
        sum += &b;
        sum_sq += b.component_mul(&b);
    }
    let reps = options.bootstrap_replicates as f64;
    let z = Normal::new(0.0, 1.0)
        .map_err(|e| ModelError::InvalidOptions(e.to_string()))?
        .inverse_cdf(0.5 + options.confidence / 2.0);
    let coefficients = (0..d)
        .map(|i| {
            let noise_var = if options.bootstrap_replicates > 1 {
                ((sum_sq[i] - sum[i] * sum[i] / reps) / (reps - 1.0)).max(0.0)
            } else {
                0.0
            };
            let sd = (residual_variance * inverse[(i, i)] + noise_var).sqrt();
            Interval {
                estimate: beta[i],
                lower: beta[i] - z * sd,
                upper: beta[i] + z * sd,
            }
        })
        .collect();
    Ok(LinearFit {
        coefficients,
        ridge,
        residual_variance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// Noised statistics of `n` rows `y = x·truth + N(0, 1)`, `x = (1, U, U)`.
    fn statistics(seed: u64, truth: [f64; 3], n: usize) -> NoisyStatistics {
        let mut rng = StdRng::seed_from_u64(seed);
        let noise = NormalSampler::new(0.0, 1.0).unwrap();
        let (mut xtx, mut xty, mut yty) = (vec![0.0; 9], vec![0.0; 3], 0.0);
        for _ in 0..n {
            let x = [1.0, rng.random::<f64>(), rng.random::<f64>()];
            let y: f64 =
                x.iter().zip(&truth).map(|(a, b)| a * b).sum::<f64>() + noise.sample(&mut rng);
            for i in 0..3 {
                xty[i] += x[i] * y;
                for j in 0..3 {
                    xtx[i * 3 + j] += x[i] * x[j];
                }
            }
            yty += y * y;
        }
        // Noise of sd 2 on every statistic.
        let perturb = NormalSampler::new(0.0, 2.0).unwrap();
        xtx.iter_mut().for_each(|v| *v += perturb.sample(&mut rng));
        xty.iter_mut().for_each(|v| *v += perturb.sample(&mut rng));
        NoisyStatistics {
            xtx,
            xty,
            yty,
            n: n as f64,
            xtx_variance: 4.0,
            xty_variance: 4.0,
        }
    }

    #[test]
    fn recovers_planted_coefficients_from_lightly_noised_statistics() {
        let truth = [1.5, -2.0, 0.5];
        let mut covered = 0;
        for seed in 0..10 {
            let fit =
                fit_linear(&statistics(seed, truth, 2000), &LinearOptions::default()).unwrap();
            for (c, t) in fit.coefficients.iter().zip(truth) {
                // Sampling sd of a slope is √(12/n) ≈ 0.08; 0.4 is 5 sd.
                assert!((c.estimate - t).abs() < 0.4, "{fit:?}");
                covered += usize::from(c.contains(t));
            }
            assert!((fit.residual_variance - 1.0).abs() < 0.2, "{fit:?}");
        }
        // 30 intervals at 95 %: expect 28.5; fewer than 24 has probability < 0.1 %.
        assert!(covered >= 24, "{covered}/30 covered");
    }

    #[test]
    fn rejects_bad_shapes() {
        let stats = NoisyStatistics {
            xtx: vec![1.0; 3],
            xty: vec![1.0; 2],
            yty: 1.0,
            n: 10.0,
            xtx_variance: 1.0,
            xty_variance: 1.0,
        };
        assert!(fit_linear(&stats, &LinearOptions::default()).is_err());
    }
}
