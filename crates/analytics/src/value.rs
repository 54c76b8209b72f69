//! Value figures of issue 13 over `psi-sum-v1` sums (spec `analyses-v1.md` §2.10): return on ad
//! spend, value lift per arm, and value per member by acquisition cohort.
//!
//! A released sum is `Ŝ = S + E` with `E = clamp(Z, −T, T)`, `Z` discrete Laplace of scale
//! `U/ε` (psi-sum-v1 §6): the same shape as a released count, so a sum is a [`NoisyCount`] in
//! the value column's unit and every interval here uses the linear-form and delta-method
//! machinery of [`crate::noise`] (kurtosis-corrected normal). Where a figure estimates a
//! population mean (value lift; cohorts with [`Inference::Population`]) the sampling variance
//! of a member's value is estimated from the released sums of squares `Q̂ = Q + E'`:
//! `s² = Q̂/n − (Ŝ/n)²`, clipped to `[0, U²/4]` (the largest variance of a value in `[0, U]`,
//! Popoviciu's inequality), and added as a Gaussian term `s²/n`.

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::conversion::Inference;
use crate::noise::{
    Estimate, Form, Noise, NoiseShare, NoisyCount, bounded, check_alpha, linear, noise_share,
    p_two_sided_cf,
};

/// Return on ad spend of one group: the noised revenue over the overlap against a spend the
/// analyst supplies (public, not data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoasRow {
    /// My bucket label (`all` for the whole run).
    pub group: String,
    /// The spend, in the value column's unit.
    pub spend: f64,
    /// Revenue `Σ Ŝ` over the group's cells in `[0, ∞)` (the known-range rule, spec §1.3).
    pub revenue: Estimate,
    /// `revenue / spend`, likewise in `[0, ∞)`.
    pub roas: Estimate,
}

/// ROAS result: one row per group, and the noise-share indicator over the sums used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoasResult {
    /// One row per group the analyst gave a spend for.
    pub rows: Vec<RoasRow>,
    /// Noise-share indicator over the released sums the rows read.
    pub noise_share: NoiseShare,
}

/// ROAS of `group` from its released sums `sums` (one per cell of the group) and `spend`:
/// `Σ Ŝ / spend`, the interval of `Σ Ŝ` a linear form of independent noises (descriptive: the
/// revenue of these customers, DP noise only), divided by the public spend.
///
/// Errors: [`AnalyticsError::InvalidParameter`] for a spend that is not finite and positive, no
/// sums, or `alpha ∉ (0, 1)`.
pub fn roas(
    group: &str,
    sums: &[NoisyCount],
    spend: f64,
    alpha: f64,
) -> Result<RoasRow, AnalyticsError> {
    check_alpha(alpha)?;
    if !(spend.is_finite() && spend > 0.0) {
        return Err(AnalyticsError::InvalidParameter(format!(
            "spend of {group:?} must be a positive number, got {spend}"
        )));
    }
    if sums.is_empty() {
        return Err(AnalyticsError::Shape(format!("no sums for {group:?}")));
    }
    let revenue = in_range(
        linear(sums, &Form::terms(0..sums.len()), 0.0, alpha),
        f64::INFINITY,
    );
    Ok(RoasRow {
        group: group.to_owned(),
        spend,
        roas: Estimate {
            estimate: revenue.estimate / spend,
            ci_low: revenue.ci_low / spend,
            ci_high: revenue.ci_high / spend,
        },
        revenue,
    })
}

/// One arm's input to [`value_lift`]: my exact arm size, the released sum and sum of squares
/// of the peer's value over the arm's members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueArm {
    /// Arm name (my bucket label).
    pub name: String,
    /// My customers in the arm, exact.
    pub size: u64,
    /// `Ŝ`: the peer's values summed over the arm (members not at the peer count 0).
    pub sum: NoisyCount,
    /// `Q̂`: the squares of those values summed.
    pub squares: NoisyCount,
}

/// One arm of a value-lift result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueArmResult {
    /// Arm name.
    pub name: String,
    /// My customers in the arm, exact.
    pub size: u64,
    /// Noised sum of the arm's values (signed, unbiased).
    pub sum: i64,
    /// Value per member `Ŝ/n`, with its interval (noise + sampling), in `[0, U]` (the
    /// known-range rule, spec §1.3).
    pub per_member: Estimate,
    /// Estimated standard deviation of one member's value, `s` (from the sums of squares).
    pub std_dev: f64,
}

/// Value lift of a test arm over a control arm (Private Lift's question, released with DP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueLiftResult {
    /// The segment this lift is for, `None` for the whole audience.
    pub segment: Option<String>,
    /// Test arm, then control arm.
    pub arms: Vec<ValueArmResult>,
    /// `m_t − m_c`: value per member, test minus control, in the value column's unit.
    pub difference: Estimate,
    /// `m_t / m_c` in `[0, ∞)`; `None` (too small to estimate) when the interval of the
    /// control's noised sum reaches 0.
    pub ratio: Option<Estimate>,
    /// Two-sided p-value of the test of no difference (`m_t = m_c`).
    pub p_value: f64,
    /// Noise-share indicator over the two arms' noised sums.
    pub noise_share: NoiseShare,
}

/// A value figure moved into `[0, max]` by the known-range rule ([`Estimate::within`]; a linear
/// form of finite sums is always finite).
fn in_range(e: Estimate, max: f64) -> Estimate {
    e.within(0.0, max).unwrap_or(e)
}

/// `s² = Q̂/n − (Ŝ/n)²` clipped to `[0, U²/4]`.
fn member_variance(sum: &NoisyCount, squares: &NoisyCount, n: f64, bound: u32) -> f64 {
    let m = sum.estimate as f64 / n;
    let cap = f64::from(bound) * f64::from(bound) / 4.0;
    (squares.estimate as f64 / n - m * m).clamp(0.0, cap)
}

/// Value lift of `test` over `control` at confidence `1 − alpha`, values in `[0, bound]`.
///
/// * Per arm, `m̂ = Ŝ/n` with `Var(m̂) = s²/n + σ²/n²` (sampling of members, Welch's
///   unpooled variance; DP noise of the sum, kurtosis-corrected), `s²` from the sums of
///   squares as in the module docs.
/// * `difference`: `m̂_t − m̂_c` with the two variances added.
/// * `ratio`: delta method on `log(m̂_t/m̂_c)` with the same variances, back-transformed
///   (linear scale when the test's sum is not positive).
/// * `p_value`: Welch's z-test `z = (m̂_t − m̂_c)/√Var`, the noise's excess kurtosis corrected
///   (Cornish–Fisher), normal reference (arms of thousands of members).
///
/// Errors: [`AnalyticsError::InvalidParameter`] for an empty arm or `alpha ∉ (0, 1)`.
pub fn value_lift(
    test: &ValueArm,
    control: &ValueArm,
    bound: u32,
    alpha: f64,
) -> Result<ValueLiftResult, AnalyticsError> {
    check_alpha(alpha)?;
    for arm in [test, control] {
        if arm.size == 0 {
            return Err(AnalyticsError::InvalidParameter(format!(
                "arm {:?} has no customers",
                arm.name
            )));
        }
    }
    let sums = [test.sum, control.sum];
    let u = f64::from(bound);
    let (nt, nc) = (test.size as f64, control.size as f64);
    let (vt, vc) = (
        member_variance(&test.sum, &test.squares, nt, bound) / nt,
        member_variance(&control.sum, &control.squares, nc, bound) / nc,
    );
    let arms = [(test, nt, vt, 0), (control, nc, vc, 1)]
        .into_iter()
        .map(|(arm, n, v, i)| ValueArmResult {
            name: arm.name.clone(),
            size: arm.size,
            sum: arm.sum.estimate,
            per_member: in_range(
                linear(&sums, &Form::default().term(i, 1.0 / n), v, alpha),
                u,
            ),
            std_dev: (v * n).sqrt(),
        })
        .collect();
    let diff = Form::default().term(0, 1.0 / nt).term(1, -1.0 / nc);
    let difference = linear(&sums, &diff, vt + vc, alpha);
    let (mt, mc) = (sums[0].estimate as f64 / nt, sums[1].estimate as f64 / nc);
    let ratio = bounded(
        &sums,
        nc / nt,
        &[(Form::terms([0]), 1.0), (Form::terms([1]), -1.0)],
        // Sampling variance of m_t/m_c by the delta method, `v_t/m_c² + m_t²·v_c/m_c⁴`.
        if mc > 0.0 {
            vt / (mc * mc) + mt * mt * vc / mc.powi(4)
        } else {
            0.0
        },
        alpha,
        true,
        (0.0, f64::INFINITY),
    );
    let var =
        vt + vc + test.sum.noise.variance() / (nt * nt) + control.sum.noise.variance() / (nc * nc);
    let kappa4 = test.sum.noise.fourth_cumulant() / nt.powi(4)
        + control.sum.noise.fourth_cumulant() / nc.powi(4);
    let p_value = if var > 0.0 {
        p_two_sided_cf((mt - mc) / var.sqrt(), kappa4 / (var * var))
    } else if mt == mc {
        1.0
    } else {
        0.0
    };
    Ok(ValueLiftResult {
        segment: None,
        arms,
        difference,
        ratio,
        p_value,
        noise_share: noise_share(&sums),
    })
}

/// One acquisition cohort's input to [`ltv`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LtvCohort {
    /// My cohort label (e.g. `2026-01`).
    pub cohort: String,
    /// My customers in the cohort, exact.
    pub members: u64,
    /// The released sums of the cohort's cells (one per peer bucket).
    pub sums: Vec<NoisyCount>,
    /// The released sums of squares of the same cells, when the agreement releases them.
    pub squares: Option<Vec<NoisyCount>>,
}

/// One cohort of an LTV result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LtvRow {
    /// My cohort label.
    pub cohort: String,
    /// My customers in the cohort, exact.
    pub members: u64,
    /// The cohort's value at the peer `Σ Ŝ`, in `[0, ∞)` (the known-range rule, spec §1.3:
    /// estimate and interval clamped alike, so the interval holds the estimate).
    pub value: Estimate,
    /// Value per member `Σ Ŝ / n` in `[0, U]`, likewise; `None` for an empty cohort.
    pub per_member: Option<Estimate>,
}

/// LTV by acquisition cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LtvResult {
    /// One row per cohort, in my label order.
    pub rows: Vec<LtvRow>,
    /// What the intervals are about.
    pub inference: Inference,
    /// Noise-share indicator over every released sum read.
    pub noise_share: NoiseShare,
}

/// Value per member by cohort (lifetime value at the peer of the customers I acquired in each
/// cohort), values in `[0, bound]`, at confidence `1 − alpha`.
///
/// `per_member = Σ Ŝ / n` over the cohort's cells. [`Inference::Descriptive`]: the value of
/// these members, DP noise only (linear form). [`Inference::Population`]: the expected value of
/// a member of the population the cohort is drawn from, adding `s²/n` with `s²` from the sums
/// of squares (module docs).
///
/// Errors: [`AnalyticsError::InvalidParameter`] for population inference without sums of
/// squares or `alpha ∉ (0, 1)`; [`AnalyticsError::Shape`] when a cohort's squares do not match
/// its sums.
pub fn ltv(
    cohorts: &[LtvCohort],
    inference: Inference,
    bound: u32,
    alpha: f64,
) -> Result<LtvResult, AnalyticsError> {
    check_alpha(alpha)?;
    let mut rows = Vec::with_capacity(cohorts.len());
    let mut all = Vec::new();
    for c in cohorts {
        all.extend_from_slice(&c.sums);
        let whole = Form::terms(0..c.sums.len());
        let value = in_range(linear(&c.sums, &whole, 0.0, alpha), f64::INFINITY);
        let sampling = match (inference, &c.squares) {
            (Inference::Descriptive, _) => 0.0,
            (Inference::Population, None) => {
                return Err(AnalyticsError::InvalidParameter(
                    "population inference needs the sums of squares (the agreement's value column releases none)"
                        .into(),
                ));
            }
            (Inference::Population, Some(q)) => {
                if q.len() != c.sums.len() {
                    return Err(AnalyticsError::Shape(format!(
                        "cohort {:?}: {} sums of squares for {} sums",
                        c.cohort,
                        q.len(),
                        c.sums.len()
                    )));
                }
                let n = c.members.max(1) as f64;
                let total = |v: &[NoisyCount]| v.iter().map(|x| x.estimate).sum::<i64>();
                let s2 = member_variance(
                    &NoisyCount::new(total(&c.sums), Noise::EXACT),
                    &NoisyCount::new(total(q), Noise::EXACT),
                    n,
                    bound,
                );
                s2 / n
            }
        };
        let per_member = (c.members > 0).then(|| {
            let n = c.members as f64;
            let mut form = Form::default();
            for i in 0..c.sums.len() {
                form = form.term(i, 1.0 / n);
            }
            in_range(linear(&c.sums, &form, sampling, alpha), f64::from(bound))
        });
        rows.push(LtvRow {
            cohort: c.cohort.clone(),
            members: c.members,
            value,
            per_member,
        });
    }
    Ok(LtvResult {
        rows,
        inference,
        noise_share: noise_share(&all),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise() -> Noise {
        Noise::clamped_laplace(2000.0, 40_000).unwrap()
    }

    #[test]
    fn roas_divides_the_revenue_interval_by_the_spend() {
        let sums = [
            NoisyCount::new(150_000, noise()),
            NoisyCount::new(50_000, noise()),
        ];
        let r = roas("all", &sums, 100_000.0, 0.05).unwrap();
        assert_eq!(r.revenue.estimate, 200_000.0);
        assert!((r.roas.estimate - 2.0).abs() < 1e-12);
        assert!((r.roas.ci_low * 100_000.0 - r.revenue.ci_low).abs() < 1e-6);
        assert!(r.roas.ci_low < 2.0 && r.roas.ci_high > 2.0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(roas("all", &sums, bad, 0.05).is_err(), "{bad}");
        }
        assert!(roas("all", &[], 1.0, 0.05).is_err());
    }

    #[test]
    fn value_lift_without_difference_is_not_significant() {
        let arm = |name: &str| ValueArm {
            name: name.into(),
            size: 10_000,
            sum: NoisyCount::new(3_000_000, noise()),
            squares: NoisyCount::new(
                1_500_000_000,
                Noise::clamped_laplace(4e6, 80_000_000).unwrap(),
            ),
        };
        let r = value_lift(&arm("test"), &arm("control"), 1000, 0.05).unwrap();
        assert_eq!(r.difference.estimate, 0.0);
        assert!(r.p_value > 0.99, "{}", r.p_value);
        let ratio = r.ratio.unwrap();
        assert!((ratio.estimate - 1.0).abs() < 1e-12 && ratio.covers(1.0));
        assert!((r.arms[0].per_member.estimate - 300.0).abs() < 1e-9);
        // s² = 150 000 − 300² = 60 000.
        assert!((r.arms[0].std_dev - 60_000f64.sqrt()).abs() < 1e-9);
        let empty = ValueArm {
            size: 0,
            ..arm("control")
        };
        assert!(value_lift(&arm("test"), &empty, 1000, 0.05).is_err());
    }

    #[test]
    fn ltv_population_needs_squares() {
        let c = LtvCohort {
            cohort: "2026-01".into(),
            members: 100,
            sums: vec![NoisyCount::new(20_000, noise())],
            squares: None,
        };
        let d = ltv(std::slice::from_ref(&c), Inference::Descriptive, 1000, 0.05).unwrap();
        assert_eq!(d.rows[0].per_member.unwrap().estimate, 200.0);
        assert!(ltv(&[c], Inference::Population, 1000, 0.05).is_err());
    }
}
