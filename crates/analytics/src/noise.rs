//! Noised counts, their known noise distribution, and interval arithmetic on them.
//!
//! Every count a psi-ca-v1 run releases (spec §1, §6) is `x̂ = x + E` with `x` the true count and
//! `E = clamp(Z, −T, T)`, `Z` discrete Laplace of scale `s`: `P(Z = z) = (1 − q)/(1 + q)·q^|z|`,
//! `q = e^(−1/s)` (`ShiftedLaplace { scale: s, offset: T }` of `tandem-dp`). The noise is centred,
//! so `x̂` is unbiased up to the clamp's mass `P(|Z| > T) ≤ δ`; the querier's own bucket sizes are
//! exact ([`Noise::EXACT`]).
//!
//! Intervals:
//! * a single count: exact quantiles of `E` ([`Noise::half_width`]);
//! * a linear combination of independent counts: normal approximation with the Cornish–Fisher
//!   correction for the (known) excess kurtosis of the noise (Cornish & Fisher 1938; for a single
//!   Laplace term at 95% it gives `3.06·s` against the exact `3.00·s`, where a plain normal
//!   interval gives `2.77·s` and under-covers);
//! * a ratio or product of such combinations: the delta method (first-order Taylor expansion,
//!   e.g. Casella & Berger §5.5.4) on the log scale when every factor is positive, else on the
//!   linear scale, with the same kurtosis correction; sampling variance, where a figure estimates
//!   a population quantity, is added as a Gaussian term.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::AnalyticsError;

/// The distribution of the error of one released count: none, or a discrete Laplace of `scale`
/// clamped to `[−clamp, clamp]` (psi-ca-v1 §2: `clamp(T + Z, 0, 2T) − T`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NoiseRepr", into = "NoiseRepr")]
pub struct Noise {
    scale: f64,
    clamp: u32,
}

/// Serialised form of [`Noise`]: `{"scale": s, "clamp": T}`; scale 0 means exact.
#[derive(Serialize, Deserialize)]
struct NoiseRepr {
    scale: f64,
    clamp: u32,
}

impl TryFrom<NoiseRepr> for Noise {
    type Error = AnalyticsError;
    fn try_from(r: NoiseRepr) -> Result<Self, Self::Error> {
        if r.scale == 0.0 {
            Ok(Noise::EXACT)
        } else {
            Noise::clamped_laplace(r.scale, r.clamp)
        }
    }
}

impl From<Noise> for NoiseRepr {
    fn from(n: Noise) -> Self {
        NoiseRepr {
            scale: n.scale,
            clamp: n.clamp,
        }
    }
}

impl Noise {
    /// No noise: a count the caller knows exactly (its own bucket sizes).
    pub const EXACT: Noise = Noise {
        scale: 0.0,
        clamp: 0,
    };

    /// Discrete Laplace noise of `scale` (`s = sensitivity/ε`) clamped to `[−clamp, clamp]`,
    /// as `ShiftedLaplace { scale, offset: clamp }` of `tandem-dp` draws it.
    ///
    /// Errors: [`AnalyticsError::InvalidParameter`] unless `scale` is finite and positive.
    pub fn clamped_laplace(scale: f64, clamp: u32) -> Result<Noise, AnalyticsError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(AnalyticsError::InvalidParameter(format!(
                "noise scale must be finite and > 0, got {scale}"
            )));
        }
        Ok(Noise { scale, clamp })
    }

    /// Scale `s` of the discrete Laplace (0 for exact counts).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Clamp `T`: the error never exceeds `T` in absolute value (0 for exact counts).
    pub fn clamp(&self) -> u32 {
        self.clamp
    }

    /// Whether the count is exact.
    pub fn is_exact(&self) -> bool {
        self.scale == 0.0
    }

    /// `q = e^(−1/s)` and `1 − q` (computed without cancellation).
    fn q(&self) -> (f64, f64) {
        let x = -1.0 / self.scale;
        (x.exp(), -x.exp_m1())
    }

    /// Variance of the error, in counts²: `2q/(1 − q)²` (discrete Laplace, e.g. Inusah &
    /// Kozubowski 2006). The clamp lowers it by a relative amount of order `(T/s)²·q^T` (about
    /// `400·δ` at psi-ca-v1's clamps), which is ignored: this is an upper bound, tight to that
    /// order.
    pub fn variance(&self) -> f64 {
        if self.is_exact() {
            return 0.0;
        }
        let (q, p) = self.q();
        2.0 * q / (p * p)
    }

    /// Standard deviation of the error, in counts.
    pub fn std_dev(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Fourth cumulant `κ₄ = μ₄ − 3σ⁴` of the error (unclamped, like [`Self::variance`]), with
    /// `μ₄ = 2q(1 + 11q + 11q² + q³)/((1 + q)(1 − q)⁴)` from `Σ z⁴qᶻ`.
    pub fn fourth_cumulant(&self) -> f64 {
        if self.is_exact() {
            return 0.0;
        }
        let (q, p) = self.q();
        let mu4 = 2.0 * q * (1.0 + 11.0 * q + 11.0 * q * q + q * q * q) / ((1.0 + q) * p.powi(4));
        let var = self.variance();
        (mu4 - 3.0 * var * var).max(0.0)
    }

    /// The smallest half-width `h` (counts) with `P(|E| > h) ≤ alpha`, exact for the clamped
    /// discrete Laplace: `P(|Z| > h) = 2q^(h+1)/(1 + q)` below the clamp, 0 from `h = T` on.
    /// At most one unit wider than necessary through floating-point rounding of the solve.
    ///
    /// Errors: [`AnalyticsError::InvalidParameter`] unless `0 < alpha < 1`.
    pub fn half_width(&self, alpha: f64) -> Result<u64, AnalyticsError> {
        check_alpha(alpha)?;
        if self.is_exact() {
            return Ok(0);
        }
        let (q, _) = self.q();
        let k = ((alpha * (1.0 + q) / 2.0).ln() / q.ln()).ceil() - 1.0;
        // `k` is finite and ≥ −1 here; past `T` the clamped error cannot go.
        let h = if k <= 0.0 {
            0
        } else {
            k.min(f64::from(u32::MAX)) as u64
        };
        Ok(h.min(u64::from(self.clamp)))
    }

    /// Half-width (counts) of the `1 − alpha` interval of a sum of `k ≥ 1` independent errors
    /// of this distribution, as the analyses compute it: exact ([`Self::half_width`]) for one,
    /// the kurtosis-corrected normal for more. Data-independent, so a preview can show the
    /// expected widths of cells (`k = 1`) and of margins over `k` cells before anything runs.
    ///
    /// Errors: [`AnalyticsError::InvalidParameter`] for `k = 0` or `alpha ∉ (0, 1)`.
    pub fn sum_half_width(&self, k: usize, alpha: f64) -> Result<f64, AnalyticsError> {
        check_alpha(alpha)?;
        match k {
            0 => Err(AnalyticsError::InvalidParameter(
                "a sum needs at least one term".into(),
            )),
            1 => Ok(self.half_width(alpha)? as f64),
            _ => {
                let (var, k4) = (
                    k as f64 * self.variance(),
                    k as f64 * self.fourth_cumulant(),
                );
                if var == 0.0 {
                    return Ok(0.0);
                }
                Ok(cornish_fisher(z_two_sided(alpha), k4 / (var * var)) * var.sqrt())
            }
        }
    }
}

/// One released count: the signed unbiased estimate and the distribution of its error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoisyCount {
    /// The estimate `x̂` in persons; may be negative (signed estimates stay primary).
    pub estimate: i64,
    /// The error's distribution.
    pub noise: Noise,
}

impl NoisyCount {
    /// A count with the given noise.
    pub fn new(estimate: i64, noise: Noise) -> NoisyCount {
        NoisyCount { estimate, noise }
    }

    /// An exactly known count (own bucket sizes).
    pub fn exact(count: u64) -> NoisyCount {
        NoisyCount {
            estimate: i64::try_from(count).unwrap_or(i64::MAX),
            noise: Noise::EXACT,
        }
    }

    /// The `1 − alpha` interval `[x̂ − h, x̂ + h]` for the true count, `h` =
    /// [`Noise::half_width`], clipped below at 0 (true counts are non-negative; this only
    /// raises coverage).
    pub fn interval(&self, alpha: f64) -> Result<CountInterval, AnalyticsError> {
        let h = i64::try_from(self.noise.half_width(alpha)?).unwrap_or(i64::MAX);
        Ok(CountInterval {
            estimate: self.estimate,
            ci_low: self.estimate.saturating_sub(h).max(0),
            ci_high: self.estimate.saturating_add(h).max(0),
        })
    }

    /// Whether ADH's noise indicator counts this cell as affected: the noise's standard
    /// deviation exceeds 10% of the estimate (every non-positive noised estimate is affected).
    pub fn noise_affected(&self) -> bool {
        let sd = self.noise.std_dev();
        sd > 0.0 && sd > 0.1 * self.estimate as f64
    }
}

/// A released count with its interval, in persons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountInterval {
    /// Signed unbiased estimate.
    pub estimate: i64,
    /// Lower end of the `1 − alpha` interval (≥ 0).
    pub ci_low: i64,
    /// Upper end.
    pub ci_high: i64,
}

/// A derived figure with its `1 − alpha` interval (the JSON shape issue 12 gives for lift).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Point estimate (plug-in of the noised counts).
    pub estimate: f64,
    /// Lower end of the interval.
    pub ci_low: f64,
    /// Upper end of the interval.
    pub ci_high: f64,
}

impl Estimate {
    /// Whether `value` lies in `[ci_low, ci_high]`.
    pub fn covers(&self, value: f64) -> bool {
        self.ci_low <= value && value <= self.ci_high
    }

    /// The figure moved into its known range `[lo, hi]` (rates and shares `[0, 1]`, indices
    /// `[0, ∞)`, a value per member `[0, U]` …): the estimate and both ends clamped alike, so the
    /// estimate stays inside its interval (clamping is monotone) and the interval keeps every
    /// true value of the range it held (spec `analyses-v1` §1.3, "known range"). `None` — too
    /// small to estimate — when a figure is not finite.
    pub fn within(self, lo: f64, hi: f64) -> Option<Estimate> {
        if !(self.estimate.is_finite() && self.ci_low.is_finite() && self.ci_high.is_finite()) {
            return None;
        }
        Some(Estimate {
            estimate: self.estimate.clamp(lo, hi),
            ci_low: self.ci_low.clamp(lo, hi),
            ci_high: self.ci_high.clamp(lo, hi),
        })
    }
}

/// ADH-style noise-share indicator of a result: how many of its released cells have noise whose
/// standard deviation exceeds 10% of the estimate ([`NoisyCount::noise_affected`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseShare {
    /// Number of noised cells looked at.
    pub cells: usize,
    /// Cells whose noise s.d. exceeds 10% of their estimate.
    pub affected: usize,
    /// `affected / cells` in `[0, 1]` (0 for no cells).
    pub share: f64,
}

/// The noise-share indicator over `cells` (exact counts are never affected but are counted).
pub fn noise_share(cells: &[NoisyCount]) -> NoiseShare {
    let affected = cells.iter().filter(|c| c.noise_affected()).count();
    NoiseShare {
        cells: cells.len(),
        affected,
        share: if cells.is_empty() {
            0.0
        } else {
            affected as f64 / cells.len() as f64
        },
    }
}

pub(crate) fn check_alpha(alpha: f64) -> Result<(), AnalyticsError> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter(format!(
            "alpha must be in (0, 1), got {alpha}"
        )))
    }
}

/// Two-sided standard normal quantile `z_{1−alpha/2}`.
pub(crate) fn z_two_sided(alpha: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - alpha / 2.0)
}

/// Two-sided p-value of a standard normal statistic.
pub(crate) fn p_two_sided(z: f64) -> f64 {
    (2.0 * Normal::standard().cdf(-z.abs())).min(1.0)
}

/// Two-sided p-value of a statistic `t` standardised by its s.d., whose distribution is the
/// Cornish–Fisher expansion with excess kurtosis `g2` (the inverse of [`cornish_fisher`], by
/// bisection; the plain normal p-value when `g2 ≤ 0`). Consistent with the intervals: `t` at
/// the interval's `z'` gives `alpha`.
pub(crate) fn p_two_sided_cf(t: f64, g2: f64) -> f64 {
    let t = t.abs();
    let knee = 3f64.sqrt();
    if !(g2 > 0.0 && g2.is_finite()) || t <= knee {
        return p_two_sided(t);
    }
    // cornish_fisher is the identity up to √3 and increasing beyond, with cf(t) ≥ t.
    let (mut lo, mut hi) = (knee, t);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cornish_fisher(mid, g2) < t {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    p_two_sided(0.5 * (lo + hi))
}

/// Cornish–Fisher quantile for a symmetric distribution with excess kurtosis `g2`:
/// `z + (z³ − 3z)·g2/24` (never below `z`).
pub(crate) fn cornish_fisher(z: f64, g2: f64) -> f64 {
    if g2 > 0.0 && g2.is_finite() {
        z + (z * z * z - 3.0 * z).max(0.0) * g2 / 24.0
    } else {
        z
    }
}

/// A linear form `c + Σ wᵢ·x̂ᵢ` over an indexed list of independent noisy counts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Form {
    pub constant: f64,
    pub terms: Vec<(usize, f64)>,
}

impl Form {
    pub fn constant(c: f64) -> Form {
        Form {
            constant: c,
            terms: Vec::new(),
        }
    }

    pub fn term(mut self, index: usize, weight: f64) -> Form {
        self.terms.push((index, weight));
        self
    }

    pub fn terms(indices: impl IntoIterator<Item = usize>) -> Form {
        Form {
            constant: 0.0,
            terms: indices.into_iter().map(|i| (i, 1.0)).collect(),
        }
    }

    /// `self + other`.
    pub fn plus(mut self, other: Form) -> Form {
        self.constant += other.constant;
        self.terms.extend(other.terms);
        self
    }

    /// `−self`.
    pub fn neg(mut self) -> Form {
        self.constant = -self.constant;
        for t in &mut self.terms {
            t.1 = -t.1;
        }
        self
    }

    pub fn value(&self, counts: &[NoisyCount]) -> f64 {
        self.constant
            + self
                .terms
                .iter()
                .map(|&(i, w)| w * counts[i].estimate as f64)
                .sum::<f64>()
    }

    /// The weight of every index, duplicates merged.
    fn dense(&self, n: usize) -> Vec<f64> {
        let mut d = vec![0.0; n];
        for &(i, w) in &self.terms {
            d[i] += w;
        }
        d
    }
}

/// Variance and fourth cumulant of `Σ gᵢ·Eᵢ`.
fn moments(counts: &[NoisyCount], gradient: &[f64]) -> (f64, f64) {
    gradient
        .iter()
        .zip(counts)
        .fold((0.0, 0.0), |(v, k), (&g, c)| {
            let g2 = g * g;
            (
                v + g2 * c.noise.variance(),
                k + g2 * g2 * c.noise.fourth_cumulant(),
            )
        })
}

fn interval(value: f64, var: f64, kappa4: f64, alpha: f64) -> (f64, f64) {
    if var <= 0.0 {
        return (value, value);
    }
    let z = cornish_fisher(z_two_sided(alpha), kappa4 / (var * var));
    let h = z * var.sqrt();
    (value - h, value + h)
}

/// Interval of a linear form, plus `extra_var` Gaussian variance (sampling).
pub(crate) fn linear(counts: &[NoisyCount], form: &Form, extra_var: f64, alpha: f64) -> Estimate {
    let value = form.value(counts);
    let (var, k4) = moments(counts, &form.dense(counts.len()));
    let (lo, hi) = interval(value, var + extra_var, k4, alpha);
    Estimate {
        estimate: value,
        ci_low: lo,
        ci_high: hi,
    }
}

/// The one rule for every ratio-like figure with a known range (spec `analyses-v1` §1.3, "known
/// range"): `c·Π Lₖ^pₖ` over linear forms `Lₖ` with its delta-method interval, plus
/// `extra_var` Gaussian variance on the figure's scale, moved into `range` by
/// [`Estimate::within`]. `None` — "too small to estimate" — when a denominator (a factor with a
/// negative power) is too small for the figure to mean anything: its own `1 − alpha` interval
/// reaches 0 (or it is not positive), so the figure is unbounded within the noise; an exact
/// denominator `n > 0` is never too small. The interval is on the log scale when `log_scale` and
/// every `Lₖ`'s own interval is above 0, else on the linear scale.
pub(crate) fn bounded(
    counts: &[NoisyCount],
    c: f64,
    factors: &[(Form, f64)],
    extra_var: f64,
    alpha: f64,
    log_scale: bool,
    range: (f64, f64),
) -> Option<Estimate> {
    // Too small to estimate: a denominator indistinguishable from 0 within its noise (this
    // includes one that is not positive, where the figure is undefined).
    if factors
        .iter()
        .any(|(f, p)| *p < 0.0 && linear(counts, f, 0.0, alpha).ci_low <= 0.0)
    {
        return None;
    }
    let values: Vec<f64> = factors.iter().map(|(f, _)| f.value(counts)).collect();
    let value = c * factors
        .iter()
        .zip(&values)
        .map(|((_, p), &v)| v.powf(*p))
        .product::<f64>();
    let n = counts.len();
    let mut g = vec![0.0; n];
    // The log scale only where every factor is clear of 0 within its noise: a log interval
    // never reaches 0, so it could not cover a true value of 0 (an index of a segment nobody
    // in the bucket belongs to).
    if log_scale
        && value > 0.0
        && factors
            .iter()
            .all(|(f, _)| linear(counts, f, 0.0, alpha).ci_low > 0.0)
    {
        for ((f, p), &v) in factors.iter().zip(&values) {
            for (gi, w) in g.iter_mut().zip(f.dense(n)) {
                *gi += p * w / v;
            }
        }
        let (var, k4) = moments(counts, &g);
        let (lo, hi) = interval(value.ln(), var + extra_var / (value * value), k4, alpha);
        return Estimate {
            estimate: value,
            ci_low: lo.exp(),
            ci_high: hi.exp(),
        }
        .within(range.0, range.1);
    }
    for (k, (f, p)) in factors.iter().enumerate() {
        // ∂/∂Lₖ of c·Π Lⱼ^pⱼ = c·pₖ·Lₖ^(pₖ−1)·Π_{j≠k} Lⱼ^pⱼ
        let rest: f64 = factors
            .iter()
            .zip(&values)
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, ((_, pj), &vj))| vj.powf(*pj))
            .product();
        let d = c * p * values[k].powf(p - 1.0) * rest;
        for (gi, w) in g.iter_mut().zip(f.dense(n)) {
            *gi += d * w;
        }
    }
    let (var, k4) = moments(counts, &g);
    let (lo, hi) = interval(value, var + extra_var, k4, alpha);
    Estimate {
        estimate: value,
        ci_low: lo,
        ci_high: hi,
    }
    .within(range.0, range.1)
}

/// A share or rate `num/den ∈ [0, 1]` (part over whole) by the rule of [`bounded`], on the
/// linear scale, with `extra_var` Gaussian variance (sampling) on the rate's scale: a noised
/// overlap a little above a noised size, or below 0, reads as 100% or 0%, never as 112% or −3%.
pub(crate) fn share(
    counts: &[NoisyCount],
    num: Form,
    den: Form,
    extra_var: f64,
    alpha: f64,
) -> Option<Estimate> {
    bounded(
        counts,
        1.0,
        &[(num, 1.0), (den, -1.0)],
        extra_var,
        alpha,
        false,
        (0.0, 1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_a_tiny_or_empty_whole_is_too_small_to_estimate() {
        let noise = Noise::clamped_laplace(4.0, 1000).unwrap();
        let counts = [
            NoisyCount::new(3, noise),
            NoisyCount::new(1, noise),
            NoisyCount::new(-2, noise),
            NoisyCount::new(900, noise),
            NoisyCount::new(1000, noise),
        ];
        let share_of = |num: usize, den: usize| {
            share(&counts, Form::terms([num]), Form::terms([den]), 0.0, 0.05)
        };
        // 3 of a noised 1, or of a noised −2: no figure, not 300% or −150%.
        assert_eq!(share_of(0, 1), None);
        assert_eq!(share_of(0, 2), None);
        // 1000 of a noised 900: clamped to 100%, its interval within [0, 1].
        let e = share_of(4, 3).unwrap();
        assert_eq!(e.estimate, 1.0);
        assert!(
            0.0 <= e.ci_low && e.ci_low <= e.ci_high && e.ci_high <= 1.0,
            "{e:?}"
        );
        // −2 of 1000: 0%, not negative.
        let e = share_of(2, 4).unwrap();
        assert_eq!(e.estimate, 0.0);
        assert!(e.ci_low >= 0.0 && e.ci_high <= 1.0, "{e:?}");
        // An ordinary share is left as the ratio gives it.
        let e = share_of(3, 4).unwrap();
        assert!((e.estimate - 0.9).abs() < 1e-12 && e.ci_low < 0.9 && e.ci_high > 0.9);
    }

    #[test]
    fn the_known_range_rule_clamps_estimate_and_interval_alike() {
        let e = Estimate {
            estimate: -0.03,
            ci_low: -0.05,
            ci_high: 0.02,
        };
        let w = e.within(0.0, 1.0).unwrap();
        assert_eq!((w.estimate, w.ci_low, w.ci_high), (0.0, 0.0, 0.02));
        assert!(w.covers(w.estimate) && w.covers(0.0));
        let nan = Estimate {
            estimate: f64::NAN,
            ..e
        };
        assert_eq!(nan.within(0.0, 1.0), None);
        // An index over a denominator whose interval reaches 0 is too small to estimate; over
        // an exact one it is not, and a log interval is used only when every factor is clear
        // of 0 (so a true index of 0 can be covered).
        let noise = Noise::clamped_laplace(4.0 / 3.0, 29).unwrap();
        let counts = [
            NoisyCount::new(2, noise),
            NoisyCount::new(3, noise),
            NoisyCount::new(500, noise),
        ];
        let idx = |num: usize, den: Form| {
            bounded(
                &counts,
                100.0,
                &[(Form::terms([num]), 1.0), (den, -1.0)],
                0.0,
                0.05,
                true,
                (0.0, f64::INFINITY),
            )
        };
        assert_eq!(idx(0, Form::terms([1])), None);
        let small = idx(0, Form::terms([2])).unwrap();
        assert_eq!(small.ci_low, 0.0, "{small:?}");
        assert!(small.covers(small.estimate));
        assert!(idx(2, Form::constant(1000.0)).unwrap().ci_low > 0.0);
    }

    #[test]
    fn exact_noise_has_no_width() {
        let c = NoisyCount::exact(10);
        assert_eq!(c.interval(0.05).unwrap().ci_low, 10);
        assert_eq!(Noise::EXACT.variance(), 0.0);
        assert!(!c.noise_affected());
    }

    #[test]
    fn half_width_matches_the_tail_formula() {
        let n = Noise::clamped_laplace(2.0, 1000).unwrap();
        let q = (-0.5f64).exp();
        let h = n.half_width(0.05).unwrap();
        let tail = |h: u64| 2.0 * q.powf(h as f64 + 1.0) / (1.0 + q);
        assert!(tail(h) <= 0.05 && tail(h - 1) > 0.05, "h = {h}");
        // The clamp caps the width.
        assert_eq!(
            Noise::clamped_laplace(2.0, 3)
                .unwrap()
                .half_width(0.05)
                .unwrap(),
            3
        );
    }

    #[test]
    fn moments_match_a_direct_sum() {
        let n = Noise::clamped_laplace(3.0, 10_000).unwrap();
        let q = (-1.0f64 / 3.0).exp();
        let c = (1.0 - q) / (1.0 + q);
        let (mut v, mut m4) = (0.0, 0.0);
        for z in 1..2000 {
            let p = c * q.powi(z);
            v += 2.0 * p * f64::from(z * z);
            m4 += 2.0 * p * f64::from(z).powi(4);
        }
        assert!((n.variance() - v).abs() < 1e-9 * v);
        assert!((n.fourth_cumulant() - (m4 - 3.0 * v * v)).abs() < 1e-6 * m4);
    }

    #[test]
    fn sum_half_width_grows_like_the_square_root() {
        let n = Noise::clamped_laplace(4.0, 100).unwrap();
        let one = n.sum_half_width(1, 0.05).unwrap();
        let four = n.sum_half_width(4, 0.05).unwrap();
        let hundred = n.sum_half_width(100, 0.05).unwrap();
        assert_eq!(one, n.half_width(0.05).unwrap() as f64);
        // Towards 1.96·√k·σ as the kurtosis of the sum vanishes.
        assert!(four > 2.0 * 1.96 * n.std_dev() && four < 2.0 * one);
        let normal = 1.96 * 10.0 * n.std_dev();
        assert!(hundred > normal && hundred < 1.01 * normal);
        assert!(n.sum_half_width(0, 0.05).is_err());
        assert_eq!(Noise::EXACT.sum_half_width(3, 0.05).unwrap(), 0.0);
    }

    #[test]
    fn cornish_fisher_p_value_inverts_the_quantile() {
        let z = cornish_fisher(z_two_sided(0.01), 1.5);
        assert!((p_two_sided_cf(z, 1.5) - 0.01).abs() < 1e-9);
        assert!((p_two_sided_cf(-1.0, 1.5) - p_two_sided(1.0)).abs() < 1e-15);
        assert!((p_two_sided_cf(2.5, 0.0) - p_two_sided(2.5)).abs() < 1e-15);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Noise::clamped_laplace(0.0, 1).is_err());
        assert!(Noise::clamped_laplace(f64::NAN, 1).is_err());
        assert!(Noise::EXACT.half_width(1.0).is_err());
        let json = r#"{"scale":-1.0,"clamp":3}"#;
        assert!(serde_json::from_str::<Noise>(json).is_err());
        let n: Noise = serde_json::from_str(r#"{"scale":2.5,"clamp":3}"#).unwrap();
        assert_eq!(n.clamp(), 3);
    }

    #[test]
    fn noise_share_counts_cells_with_large_noise() {
        let n = Noise::clamped_laplace(10.0, 100).unwrap(); // s.d. ≈ 14.1
        let cells = [
            NoisyCount::new(1000, n),
            NoisyCount::new(100, n),
            NoisyCount::new(-3, n),
            NoisyCount::exact(0),
        ];
        let s = noise_share(&cells);
        assert_eq!((s.cells, s.affected), (4, 2));
    }
}
