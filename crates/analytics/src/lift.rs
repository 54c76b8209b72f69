//! Analysis 6 of issue 12: conversion lift of a test arm over a control arm.
//!
//! My side holds the arm (exact sizes `n_t`, `n_c`), the peer's holds conversion; the released
//! conversions per arm are noised cells `ĉ = c + E`. Each rate `r̂ = ĉ/n` estimates the arm's
//! conversion propensity, so every interval carries both error sources:
//! `Var(r̂) = r(1 − r)/n + σ²/n²` (binomial sampling + known DP noise variance σ²).

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::conversion::{Inference, rate};
use crate::grid::Grid;
use crate::noise::{
    Estimate, Form, NoiseShare, NoisyCount, bounded, check_alpha, linear, noise_share,
    p_two_sided_cf,
};

/// One arm's input: my exact size and the noised count of its converters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// Arm name (my bucket label, e.g. `test`).
    pub name: String,
    /// Customers in the arm, exact.
    pub size: u64,
    /// Converters in the arm (cell arm × converted), noised.
    pub conversions: NoisyCount,
}

/// One arm of a lift result (issue 12's JSON: `name`, `size`, `conversions`, `rate`, `ci_low`,
/// `ci_high`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    /// Arm name.
    pub name: String,
    /// Customers in the arm, exact.
    pub size: u64,
    /// Noised converters (signed, unbiased).
    pub conversions: i64,
    /// `conversions / size`, in `[0, 1]` (the known-range rule, spec §1.3).
    pub rate: f64,
    /// Lower end of the rate's interval (noise + sampling), in `[0, 1]`.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
}

/// Analysis 6 result (issue 12's JSON: `arms`, `lift_abs`, `lift_rel`, `p_value`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiftResult {
    /// The segment this lift is for (`--group-by`), `None` for the whole audience.
    pub segment: Option<String>,
    /// Test arm, then control arm.
    pub arms: Vec<ArmResult>,
    /// `r_t − r_c`, absolute (rate points as a fraction).
    pub lift_abs: Estimate,
    /// `r_t / r_c − 1` in `[−1, ∞)` (the known-range rule, spec §1.3); `None` (too small to
    /// estimate) when the interval of the control's noised conversions reaches 0.
    pub lift_rel: Option<Estimate>,
    /// Two-sided p-value of the test of no lift (`r_t = r_c`).
    pub p_value: f64,
    /// Noise-share indicator over the two arms' noised conversions.
    pub noise_share: NoiseShare,
}

/// Conversion lift of `test` over `control` at confidence `1 − alpha`.
///
/// * Arm rates and `lift_abs`: Wald intervals with `Var = Σ r(1 − r)/n + σ²/n²`, the noise part
///   kurtosis-corrected (Cornish–Fisher).
/// * `lift_rel`: delta method on `log(r_t/r_c)` (Katz et al. 1978 for the risk ratio) with the
///   same variances, back-transformed; on the linear scale when the test's conversions are not
///   positive. Arm rates and `lift_rel` follow the known-range rule (`noise::bounded`).
/// * `p_value`: two-proportion z-test with pooled rate `p̄ = (ĉ_t + ĉ_c)/(n_t + n_c)` and the
///   noise variances added, `z = (r̂_t − r̂_c)/√(p̄(1 − p̄)(1/n_t + 1/n_c) + σ_t²/n_t² + σ_c²/n_c²)`,
///   normal reference distribution (the noise's own tails are ignored in the test; with
///   `σ/n ≪ √(p̄/n)`, the usual case, this is immaterial).
///
/// Errors: [`AnalyticsError::InvalidParameter`] for an empty arm or `alpha ∉ (0, 1)`.
pub fn lift(test: &Arm, control: &Arm, alpha: f64) -> Result<LiftResult, AnalyticsError> {
    check_alpha(alpha)?;
    let counts = [test.conversions, control.conversions];
    // Fails for an empty arm before anything divides by its size.
    let arms = [test, control]
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let e = rate(
                &counts,
                Form::terms([i]),
                arm.size,
                Inference::Population,
                alpha,
            )
            .ok_or_else(|| {
                AnalyticsError::InvalidParameter(format!("arm {:?} has no customers", arm.name))
            })?;
            Ok(ArmResult {
                name: arm.name.clone(),
                size: arm.size,
                conversions: arm.conversions.estimate,
                rate: e.estimate,
                ci_low: e.ci_low,
                ci_high: e.ci_high,
            })
        })
        .collect::<Result<_, AnalyticsError>>()?;
    let (nt, nc) = (test.size as f64, control.size as f64);
    let (rt, rc) = (
        test.conversions.estimate as f64 / nt,
        control.conversions.estimate as f64 / nc,
    );
    let binom = |r: f64, n: f64| {
        let p = r.clamp(0.0, 1.0);
        p * (1.0 - p) / n
    };
    let (st, sc) = (binom(rt, nt), binom(rc, nc));
    let diff = Form::default().term(0, 1.0 / nt).term(1, -1.0 / nc);
    let lift_abs = linear(&counts, &diff, st + sc, alpha);
    let lift_rel = bounded(
        &counts,
        nc / nt,
        &[(Form::terms([0]), 1.0), (Form::terms([1]), -1.0)],
        // Sampling variance of r_t/r_c by the delta method, `s_t/r_c² + r_t²·s_c/r_c⁴` (valid
        // at r_t = 0 too; `None` below when r_c ≤ 0).
        if rc > 0.0 {
            st / (rc * rc) + rt * rt * sc / rc.powi(4)
        } else {
            0.0
        },
        alpha,
        true,
        // Rates are non-negative, so the ratio is too (the relative lift at least −100%).
        (0.0, f64::INFINITY),
    )
    .map(|e| Estimate {
        estimate: e.estimate - 1.0,
        ci_low: e.ci_low - 1.0,
        ci_high: e.ci_high - 1.0,
    });
    let pooled = ((rt * nt + rc * nc) / (nt + nc)).clamp(0.0, 1.0);
    let var0 = pooled * (1.0 - pooled) * (1.0 / nt + 1.0 / nc)
        + test.conversions.noise.variance() / (nt * nt)
        + control.conversions.noise.variance() / (nc * nc);
    let kappa4 = test.conversions.noise.fourth_cumulant() / nt.powi(4)
        + control.conversions.noise.fourth_cumulant() / nc.powi(4);
    let p_value = if var0 > 0.0 {
        p_two_sided_cf((rt - rc) / var0.sqrt(), kappa4 / (var0 * var0))
    } else if rt == rc {
        1.0
    } else {
        0.0
    };
    Ok(LiftResult {
        segment: None,
        arms,
        lift_abs,
        lift_rel,
        p_value,
        noise_share: noise_share(&counts),
    })
}

/// [`lift`] read off a grid: my buckets `test_arm` and `control_arm` (for a segment, the
/// composite labels of arm × segment), the peer's bucket `converted`; `segment` is copied into
/// the result.
///
/// Errors: unknown labels, malformed grid, as [`lift`].
pub fn lift_from_grid(
    grid: &Grid,
    test_arm: &str,
    control_arm: &str,
    converted: &str,
    segment: Option<&str>,
    alpha: f64,
) -> Result<LiftResult, AnalyticsError> {
    grid.validate()?;
    let c = grid.col(converted)?;
    let arm = |label: &str| -> Result<Arm, AnalyticsError> {
        let r = grid.row(label)?;
        Ok(Arm {
            name: label.to_owned(),
            size: grid.my_sizes[r],
            conversions: *grid.cell(r, c),
        })
    };
    let mut result = lift(&arm(test_arm)?, &arm(control_arm)?, alpha)?;
    result.segment = segment.map(str::to_owned);
    Ok(result)
}
