//! Closed-form tail arithmetic of the discrete Laplace distribution and the `δ` of the clamped
//! (shifted) mechanism, in ln space so that tiny probabilities neither underflow nor lose digits.
//!
//! Notation: `Z ~ DiscreteLaplace(s)` with `P(Z = z) = (1 − q)/(1 + q) · q^|z|`, `q = e^(−1/s)`,
//! so `P(Z ≥ k) = q^k / (1 + q)` for every integer `k ≥ 1`.
//!
//! # The δ of the clamped mechanism
//!
//! The protocols release `M(c) = c + clamp(T + Z, 0, 2T)` and charge `ε = Δ/s` for a count of
//! L1 sensitivity `Δ`. Take neighbouring counts `c` and `c + d` with `1 ≤ d ≤ Δ ≤ T` (the case
//! `c − d` is the mirror image, since `Z` is symmetric) and write `P`, `Q` for the two output
//! distributions shifted so that `P` lives on `[0, 2T]` and `Q` on `[d, 2T + d]`. The exact `δ`
//! at `ε` is the hockey-stick divergence `Σ_o max(0, P(o) − e^ε·Q(o))`, and per output `o`:
//!
//! * `o < d`: only `P` reaches it; together these carry `P(Z ≤ d − 1 − T) = P(Z ≥ T − d + 1)`.
//! * `d ≤ o < 2T`: both are unclamped (or `Q` carries its lower atom at `o = d`, which is only
//!   larger), and `P(o)/Q(o) ≤ q^(−d) ≤ e^ε`: no contribution.
//! * `o = 2T`: `P` carries its whole upper tail `P(Z ≥ T) = q^T/(1 + q)` in one atom while `Q`
//!   has only the point mass `P(Z = T − d)`. This contributes
//!   `q^T/(1 + q) · max(0, 1 − (1 − q)·q^(−d−Δ))`, which is positive once `q^(d+Δ) > 1 − q`
//!   (for `Δ = 1`, once the scale exceeds ≈ 2.08, i.e. `ε` below ≈ 0.48).
//! * `o > 2T`: `P` is zero.
//!
//! The total grows with `d` (the tail term gains `(1 − q)·q^(T−d)` per step, at least what the
//! atom term loses, because that term is only positive while `q^(Δ+1) ≥ q^(d+Δ) > 1 − q`), so
//! the worst neighbour is `d = Δ`:
//!
//! `δ = [q^(T−Δ+1) + q^T · max(0, 1 − (1 − q)·q^(−2Δ))] / (1 + q)`.
//!
//! For `Δ = 1` and scale ≤ 2.08 this is exactly the one-sided tail `P(Z ≥ T)`; for larger
//! scales the atom at `2T` adds up to another `P(Z ≥ T)`, so the tail alone would understate δ.
//! For `T < Δ` the shifts can push one output's whole lower atom outside the other's support;
//! we return the vacuous `δ = 1` there.

/// `ln δ` of the clamped mechanism `c + clamp(T + Z, 0, 2T)` for counts of L1 `sensitivity`
/// `Δ`, at `ε = Δ / scale` (see the module documentation).
///
/// Returns `0` (`δ = 1`, no guarantee) for a scale that is not finite and positive or an offset
/// below the sensitivity, and `−∞` (`δ = 0`) for sensitivity 0.
pub(crate) fn ln_clamp_delta(scale: f64, offset: u32, sensitivity: u32) -> f64 {
    if !(scale.is_finite() && scale > 0.0) || offset < sensitivity {
        return 0.0;
    }
    if sensitivity == 0 {
        return f64::NEG_INFINITY;
    }
    let ln_q = -1.0 / scale;
    let delta = f64::from(sensitivity);
    ln_q * (f64::from(offset) - delta + 1.0) + ln_one_plus_atom_term(ln_q, delta)
        - ln_q.exp().ln_1p()
}

/// `ln(1 + r·q^(Δ−1))` with `r = max(0, 1 − (1 − q)·q^(−2Δ))`: the upper atom's share of `δ`
/// relative to the tail term `q^(T−Δ+1)`. Does not depend on `T`.
fn ln_one_plus_atom_term(ln_q: f64, delta: f64) -> f64 {
    let one_minus_q = -ln_q.exp_m1();
    let r = 1.0 - one_minus_q * (-2.0 * delta * ln_q).exp();
    if r > 0.0 {
        (r * ((delta - 1.0) * ln_q).exp()).ln_1p()
    } else {
        0.0
    }
}

/// The smallest offset `T` (at least the sensitivity, at most `max_offset`) whose clamping
/// `ln δ` is at most `ln_delta`, or `None` if even `max_offset` is not enough.
///
/// `ln δ(T)` is affine in `T` with slope `−1/scale`, so the solution is computed in closed form
/// and then corrected by single steps against [`ln_clamp_delta`] for floating-point rounding.
/// Returns `None` for a scale that is not finite and positive.
pub(crate) fn min_offset(
    scale: f64,
    sensitivity: u32,
    ln_delta: f64,
    max_offset: u32,
) -> Option<u32> {
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let lowest = sensitivity.max(1);
    let fits = |t: u32| ln_clamp_delta(scale, t, sensitivity) <= ln_delta;
    let at_lowest = ln_clamp_delta(scale, lowest, sensitivity);
    // ln δ(T) = ln δ(lowest) − (T − lowest)/scale.
    let estimate = f64::from(lowest) + ((at_lowest - ln_delta) * scale).max(0.0).ceil();
    if estimate.is_nan() || estimate > f64::from(max_offset) {
        return None;
    }
    // The estimate is an integer in [lowest, max_offset] here, so the cast is exact.
    let mut t = estimate as u32;
    while t > lowest && fits(t - 1) {
        t -= 1;
    }
    while !fits(t) {
        if t >= max_offset {
            return None;
        }
        t += 1;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probability mass of `clamp(T + Z, 0, 2T)` at `y`.
    fn clamped_pmf(scale: f64, offset: u32, y: i64) -> f64 {
        let q = (-1.0 / scale).exp();
        let t = i64::from(offset);
        if y < 0 || y > 2 * t {
            0.0
        } else if y == 0 || y == 2 * t {
            q.powi(offset as i32) / (1.0 + q)
        } else {
            (1.0 - q) / (1.0 + q) * q.powi((y - t).abs() as i32)
        }
    }

    /// Brute-force hockey-stick divergence between `M(c)` and `M(c + d)` at `ε = Δ/scale`.
    fn hockey_stick(scale: f64, offset: u32, d: u32, sensitivity: u32) -> f64 {
        let e_eps = (f64::from(sensitivity) / scale).exp();
        let hi = 2 * i64::from(offset) + i64::from(d) + 2;
        (-2..=hi)
            .map(|o| {
                let p = clamped_pmf(scale, offset, o);
                let q = clamped_pmf(scale, offset, o - i64::from(d));
                // Interior ratios equal e^ε exactly; ignore their floating-point residue.
                if p > e_eps * q * (1.0 + 1e-9) {
                    p - e_eps * q
                } else {
                    0.0
                }
            })
            .sum()
    }

    #[test]
    fn closed_form_matches_brute_force_over_all_neighbours() {
        for scale in [0.5, 1.0, 2.0, 2.5, 4.0, 10.0, 30.0] {
            for sensitivity in [1, 2, 3, 5] {
                for offset in [sensitivity, sensitivity + 1, 3 * sensitivity + 7, 40] {
                    let worst = (1..=sensitivity)
                        .map(|d| hockey_stick(scale, offset, d, sensitivity))
                        .fold(0.0, f64::max);
                    let closed = ln_clamp_delta(scale, offset, sensitivity).exp();
                    assert!(
                        (worst - closed).abs() <= 1e-12 * closed.max(1e-300),
                        "scale {scale} Δ {sensitivity} T {offset}: brute {worst} vs {closed}"
                    );
                }
            }
        }
    }

    #[test]
    fn atom_term_vanishes_only_at_small_scales() {
        // Δ = 1: δ = P(Z ≥ T) exactly while q² + q ≤ 1 (scale ≤ 1/ln(golden ratio) ≈ 2.078).
        let tail = |scale: f64, t: u32| {
            let q = (-1.0 / scale).exp();
            q.powi(t as i32) / (1.0 + q)
        };
        for scale in [0.3, 1.0, 2.0, 2.07] {
            let got = ln_clamp_delta(scale, 12, 1).exp();
            assert!((got / tail(scale, 12) - 1.0).abs() < 1e-12);
        }
        for scale in [2.1, 4.0, 100.0] {
            let ratio = ln_clamp_delta(scale, 12, 1).exp() / tail(scale, 12);
            assert!(ratio > 1.0 && ratio < 2.0, "scale {scale}: ratio {ratio}");
        }
    }

    #[test]
    fn degenerate_inputs_are_conservative() {
        assert_eq!(ln_clamp_delta(f64::NAN, 10, 1), 0.0);
        assert_eq!(ln_clamp_delta(0.0, 10, 1), 0.0);
        assert_eq!(ln_clamp_delta(f64::INFINITY, 10, 1), 0.0);
        assert_eq!(ln_clamp_delta(2.0, 2, 3), 0.0);
        assert_eq!(ln_clamp_delta(2.0, 10, 0), f64::NEG_INFINITY);
        // A tiny scale gives δ = 0 without NaN.
        assert_eq!(ln_clamp_delta(1e-310, 1, 1), f64::NEG_INFINITY);
    }

    #[test]
    fn min_offset_is_the_smallest_fitting_offset() {
        for scale in [0.7, 2.0, 10.0, 1234.5] {
            for sensitivity in [1, 4] {
                for delta in [0.3, 1e-6, 1e-30, 1e-300] {
                    let ln_delta = f64::ln(delta);
                    let t = min_offset(scale, sensitivity, ln_delta, u32::MAX / 2)
                        .expect("fits in u32");
                    assert!(t >= sensitivity);
                    assert!(ln_clamp_delta(scale, t, sensitivity) <= ln_delta);
                    if t > sensitivity {
                        assert!(ln_clamp_delta(scale, t - 1, sensitivity) > ln_delta);
                    }
                }
            }
        }
    }

    #[test]
    fn min_offset_reports_overflow_and_bad_scales() {
        assert_eq!(min_offset(1e9, 1, f64::ln(1e-300), 1000), None);
        assert_eq!(min_offset(f64::NAN, 1, f64::ln(1e-6), 1000), None);
        assert_eq!(min_offset(-1.0, 1, f64::ln(1e-6), 1000), None);
    }
}
