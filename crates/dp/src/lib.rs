//! Differential-privacy layer of Tandem, built on `opendp` (=0.16.0, features `contrib`, `use-openssl`).
//!
//! Everything here works on integers: noise is exact discrete Laplace sampled by opendp with
//! cryptographically secure randomness, privacy losses come from opendp's privacy maps, and
//! intervals from opendp's accuracy functions. No floating-point noise anywhere.
//!
//! opendp's measurements are neither `Send` nor `Sync`: every function here builds and invokes
//! them inside the call, so callers on an async runtime must call these from synchronous code
//! (`tokio::task::spawn_blocking`).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

mod mechanisms;
mod tail;
#[cfg(feature = "test-noise")]
pub mod test_noise;

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

/// How many one-ulp steps [`ShiftedLaplace::for_epsilon`] may widen the scale so that opendp's
/// (upward-rounding) privacy map does not exceed the requested ε.
const MAX_SCALE_STEPS: usize = 8;

/// Relative shortfall of the mapped ε below the requested one that still counts as "the same".
const EPSILON_TOLERANCE: f64 = 1e-9;

impl ShiftedLaplace {
    /// The largest supported offset: draws lie in `[0, 2T]` and must fit a `u32`.
    pub const MAX_OFFSET: u32 = u32::MAX / 2;

    /// The distribution that gives `epsilon`-DP for an L1 `sensitivity`, with the smallest offset
    /// `T` whose clamping δ [`Self::clamp_delta_for`]`(sensitivity)` is at most `delta`.
    ///
    /// The scale is `sensitivity / epsilon`, widened by a few ulps if needed so that opendp's
    /// privacy map (which rounds up) gives at most `epsilon`: `self.epsilon(sensitivity)` is then
    /// `≤ epsilon` and equal to it up to floating-point rounding.
    pub fn for_epsilon(epsilon: f64, sensitivity: u32, delta: f64) -> Result<Self, DpError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(invalid(format!(
                "epsilon must be finite and > 0, got {epsilon}"
            )));
        }
        if sensitivity == 0 {
            return Err(invalid("sensitivity must be at least 1".to_owned()));
        }
        if !(delta > 0.0 && delta < 1.0) {
            return Err(invalid(format!("delta must be in (0, 1), got {delta}")));
        }
        let mut dist = ShiftedLaplace {
            scale: f64::from(sensitivity) / epsilon,
            offset: 0,
        };
        if !dist.scale.is_finite() {
            return Err(invalid(format!(
                "epsilon {epsilon} is too small for sensitivity {sensitivity} (infinite scale)"
            )));
        }
        let mut achieved = dist.epsilon(sensitivity)?;
        for _ in 0..MAX_SCALE_STEPS {
            if achieved <= epsilon {
                break;
            }
            dist.scale = dist.scale.next_up();
            achieved = dist.epsilon(sensitivity)?;
        }
        if !(achieved <= epsilon && achieved >= epsilon * (1.0 - EPSILON_TOLERANCE)) {
            return Err(DpError::OpenDp(format!(
                "privacy map at scale {} gives epsilon {achieved}, requested {epsilon}",
                dist.scale
            )));
        }
        dist.offset = tail::min_offset(dist.scale, sensitivity, delta.ln(), Self::MAX_OFFSET)
            .ok_or_else(|| {
                invalid(format!(
                    "epsilon {epsilon} with delta {delta} needs an offset above {}",
                    Self::MAX_OFFSET
                ))
            })?;
        Ok(dist)
    }

    /// ε of one release with L1 `sensitivity`, from opendp's privacy map of the discrete Laplace
    /// measurement (`make_laplace` on `AtomDomain<i64>`, `AbsoluteDistance<i64>`) at this scale.
    pub fn epsilon(&self, sensitivity: u32) -> Result<f64, DpError> {
        self.check_scale()?;
        mechanisms::laplace_epsilon(self.scale, sensitivity)
    }

    /// δ of the clamping for a count of sensitivity 1 (each identifier counted at most once, the
    /// protocols' setting): `self.clamp_delta_for(1)`.
    ///
    /// With `q = e^(−1/scale)` this is the one-sided tail `P(Z ≥ T) = q^T/(1 + q)` while
    /// `q² + q ≤ 1` (scale ≤ ≈ 2.08, ε ≥ ≈ 0.48). At larger scales the atom of
    /// `clamp(T + Z, 0, 2T)` at `2T` breaks the ε bound as well and adds up to another
    /// `P(Z ≥ T)`; see [`Self::clamp_delta_for`].
    pub fn clamp_delta(&self) -> f64 {
        self.clamp_delta_for(1)
    }

    /// Exact δ of the clamped mechanism `M(c) = c + clamp(T + Z, 0, 2T)` for counts of L1
    /// `sensitivity` `Δ`, at the ε of [`Self::epsilon`]`(Δ)`: for all neighbouring `c`, `c'` with
    /// `|c − c'| ≤ Δ` and all output sets `S`, `P(M(c) ∈ S) ≤ e^ε·P(M(c') ∈ S) + δ`.
    ///
    /// With `q = e^(−1/scale)` and `T ≥ Δ`:
    /// `δ = [q^(T−Δ+1) + q^T · max(0, 1 − (1 − q)·q^(−2Δ))] / (1 + q)`.
    /// The first term is the mass of outputs only `M(c)` can produce (below `c + Δ`); the second
    /// is the part of `M(c)`'s upper atom `P(Z ≥ T)` at `c + 2T` that exceeds `e^ε` times
    /// `M(c + Δ)`'s unclamped mass there. Everywhere else the ratio is at most `e^(Δ/scale)`.
    /// Computed in ln space; the result underflows to 0 only below `f64`'s smallest value.
    ///
    /// Returns 1 (no guarantee) if the scale is not finite and positive or `T < Δ`, and 0 for
    /// sensitivity 0.
    pub fn clamp_delta_for(&self, sensitivity: u32) -> f64 {
        tail::ln_clamp_delta(self.scale, self.offset, sensitivity).exp()
    }

    /// Half-width `h` such that `P(|Z| ≤ h) ≥ 1 − alpha`, from opendp's
    /// `discrete_laplacian_scale_to_accuracy`. The released estimate `x̂` gives the interval
    /// `[x̂ − h, x̂ + h]` at confidence `1 − alpha`.
    ///
    /// opendp returns the real `a` with `P(|Z| ≥ a) = alpha`; `h` is `a` rounded up (at most
    /// one unit wider than necessary, and safe against rounding in `a`). Clamping is ignored:
    /// it only moves draws towards `T`.
    pub fn half_width(&self, alpha: f64) -> Result<u64, DpError> {
        self.check_scale()?;
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(invalid(format!("alpha must be in (0, 1), got {alpha}")));
        }
        let accuracy = mechanisms::discrete_laplace_accuracy(self.scale, alpha)?;
        if accuracy.is_nan() || accuracy >= u64::MAX as f64 {
            return Err(DpError::OpenDp(format!(
                "accuracy {accuracy} at scale {} does not fit a u64",
                self.scale
            )));
        }
        // For alpha above P(|Z| ≥ 1) opendp's formula goes below 1 or negative; h = 0 covers it.
        // The result is a non-negative integer below 2^64, so the cast is exact.
        Ok(accuracy.max(0.0).ceil() as u64)
    }

    /// Refuses a scale that is not finite and positive (possible after deserialisation).
    fn check_scale(&self) -> Result<(), DpError> {
        if self.scale.is_finite() && self.scale > 0.0 {
            Ok(())
        } else {
            Err(invalid(format!(
                "scale must be finite and > 0, got {}",
                self.scale
            )))
        }
    }
}

/// Shorthand for [`DpError::InvalidParameter`].
fn invalid(reason: String) -> DpError {
    DpError::InvalidParameter(reason)
}

/// A source of protocol noise. Production code uses [`OpenDpNoise`]; tests may implement it to
/// switch noise off (always return `T`) or to fix a seed.
pub trait NoiseSource {
    /// `count` independent draws of `clamp(T + Z, 0, 2T)` from `dist`.
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError>;
}

/// A source of central (unclamped) noise: the responder of `psi-ca-v2` adds it to the counts it
/// computed itself, so no clamp and no offset are needed and the mechanism is pure ε-DP (δ = 0).
/// Production code uses [`OpenDpNoise`]; tests a seeded or a zero source.
pub trait CentralNoise {
    /// `count` independent draws of `Z ~ DiscreteLaplace(scale)` (`P(Z = z) ∝ e^(−|z|/scale)`),
    /// unclamped.
    fn laplace(&mut self, scale: f64, count: usize) -> Result<Vec<i64>, DpError>;
}

/// A release whose privacy loss a budget ledger has already charged: the capability needed to
/// obtain the production noise source ([`OpenDpNoise::for_release`]), so that noise for a
/// release is drawn only after its charge. The node implements it for exactly one type, its
/// reservation (`tandem_node::release::Reservation`), which only charging the ledger creates.
pub trait Charged {
    /// The loss charged for the release.
    fn charged_loss(&self) -> PrivacyLoss;
}

/// The production noise source: opendp's discrete Laplace sampler with OpenSSL randomness.
/// Obtained only from a [`Charged`] release (no public fields, no `Default`).
#[derive(Debug)]
pub struct OpenDpNoise {
    _charged: (),
}

impl OpenDpNoise {
    /// The noise source for a release whose loss `release` has charged.
    pub fn for_release(release: &dyn Charged) -> OpenDpNoise {
        let _ = release.charged_loss();
        OpenDpNoise { _charged: () }
    }
}

impl NoiseSource for OpenDpNoise {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        dist.check_scale()?;
        if dist.offset > ShiftedLaplace::MAX_OFFSET {
            return Err(invalid(format!(
                "offset {} exceeds {} (draws in [0, 2T] must fit a u32)",
                dist.offset,
                ShiftedLaplace::MAX_OFFSET
            )));
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        let upper = 2 * i64::from(dist.offset);
        let draws = mechanisms::shifted_laplace_draws(dist.scale, dist.offset, count)?;
        // Clamped into [0, 2T] ⊆ [0, u32::MAX], so the casts are exact.
        Ok(draws
            .into_iter()
            .map(|x| x.clamp(0, upper) as u32)
            .collect())
    }
}

impl CentralNoise for OpenDpNoise {
    fn laplace(&mut self, scale: f64, count: usize) -> Result<Vec<i64>, DpError> {
        ShiftedLaplace { scale, offset: 0 }.check_scale()?;
        if count == 0 {
            return Ok(Vec::new());
        }
        // opendp's vector discrete Laplace on `count` zeros: the draws themselves, unclamped.
        mechanisms::shifted_laplace_draws(scale, 0, count)
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
        PrivacyLoss {
            epsilon: self.epsilon + other.epsilon,
            delta: self.delta + other.delta,
        }
    }

    /// The zero-concentrated-DP ρ of the pure-ε part (`ρ = ε²/2`).
    pub fn rho(&self) -> f64 {
        self.epsilon * self.epsilon / 2.0
    }
}

/// ε of a `rho`-zCDP mechanism at the given `delta`, from opendp's `make_zCDP_to_approxDP` and
/// `make_fix_delta` (tighter than the textbook `ρ + 2√(ρ ln(1/δ))`).
///
/// The two conversions those combinators install in a privacy map are applied to `rho`
/// directly (`ConcentratedMeasure::convert`, then `FixDeltaMeasure::fix_delta`), so ρ is used
/// exactly rather than through a Gaussian measurement's rounded scale. `rho = 0` gives 0.
pub fn zcdp_epsilon(rho: f64, delta: f64) -> Result<f64, DpError> {
    if !(rho.is_finite() && rho >= 0.0) {
        return Err(invalid(format!("rho must be finite and >= 0, got {rho}")));
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(invalid(format!("delta must be in (0, 1), got {delta}")));
    }
    if rho == 0.0 {
        // opendp's search would return the smallest positive float instead of 0.
        return Ok(0.0);
    }
    mechanisms::zcdp_to_approx_epsilon(rho, delta)
}

/// The largest `rho` whose ε at `delta` ([`zcdp_epsilon`]) is at most `epsilon`: the ρ budget a
/// zCDP accountant may spend so that the composed loss converts to `(epsilon, delta)`-DP.
///
/// Bisection over [`zcdp_epsilon`], which increases with ρ. The result `ρ*` always satisfies
/// `zcdp_epsilon(ρ*, delta) ≤ epsilon` (it is the lower end of the bracket, so it is safe to use
/// as a cap), and `ρ*·(1 + 1e-13)` no longer does: `zcdp_epsilon(ρ*, delta)` equals `epsilon`
/// to about 1e-12 relative. The bracket starts at the inverse of the textbook bound
/// `ρ + 2√(ρ ln(1/δ))` (which lies above opendp's conversion) and at `epsilon` (since
/// `ε(ρ) > ρ`); both ends are checked, not assumed. `epsilon = 0` gives 0.
///
/// About 45 evaluations of [`zcdp_epsilon`] (a few ms each); results are memoised per
/// `(epsilon, delta)`, since a node asks for the same agreement caps on every run.
pub fn rho_for_epsilon(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(invalid(format!(
            "epsilon must be finite and >= 0, got {epsilon}"
        )));
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(invalid(format!("delta must be in (0, 1), got {delta}")));
    }
    if epsilon == 0.0 {
        return Ok(0.0);
    }
    let key = (epsilon.to_bits(), delta.to_bits());
    if let Some(rho) = rho_cache().lock().ok().and_then(|c| c.get(&key).copied()) {
        return Ok(rho);
    }
    let rho = bisect_rho(epsilon, delta)?;
    if let Ok(mut cache) = rho_cache().lock() {
        if cache.len() >= RHO_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(key, rho);
    }
    Ok(rho)
}

/// Memo of [`rho_for_epsilon`], keyed by the bits of `(epsilon, delta)`.
fn rho_cache() -> &'static Mutex<HashMap<(u64, u64), f64>> {
    static CACHE: OnceLock<Mutex<HashMap<(u64, u64), f64>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Entries kept by [`rho_cache`] before it is cleared (a node has a handful of agreements).
const RHO_CACHE_SIZE: usize = 256;

/// Upper bound on [`bisect_rho`]'s steps; it stops far earlier, at [`RHO_RELATIVE_WIDTH`].
const RHO_BISECTION_STEPS: usize = 200;

/// [`bisect_rho`] stops once the bracket is narrower than this fraction of its upper end.
const RHO_RELATIVE_WIDTH: f64 = 1e-13;

/// The bisection of [`rho_for_epsilon`] for `epsilon > 0` and `delta` in `(0, 1)`.
fn bisect_rho(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    // Invariant: zcdp_epsilon(lo) ≤ epsilon < zcdp_epsilon(hi).
    let ln_inv_delta = -delta.ln();
    let textbook = ((ln_inv_delta + epsilon).sqrt() - ln_inv_delta.sqrt()).powi(2);
    let mut lo = if textbook > 0.0 && zcdp_epsilon(textbook, delta)? <= epsilon {
        textbook
    } else {
        0.0
    };
    let mut hi = epsilon;
    let mut widenings = 0;
    while zcdp_epsilon(hi, delta)? <= epsilon {
        // Not expected (ε(ρ) > ρ), but keep the invariant rather than assume it.
        lo = hi;
        hi *= 2.0;
        widenings += 1;
        if widenings > 64 || !hi.is_finite() {
            return Err(DpError::OpenDp(format!(
                "no rho found whose epsilon at delta {delta} exceeds {epsilon}"
            )));
        }
    }
    for _ in 0..RHO_BISECTION_STEPS {
        let mid = lo + (hi - lo) / 2.0;
        if hi - lo <= hi * RHO_RELATIVE_WIDTH || mid <= lo || mid >= hi {
            break;
        }
        if zcdp_epsilon(mid, delta)? <= epsilon {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release charged nothing, for testing the sampler itself.
    struct TestRelease;

    impl Charged for TestRelease {
        fn charged_loss(&self) -> PrivacyLoss {
            PrivacyLoss::default()
        }
    }

    fn noise() -> OpenDpNoise {
        OpenDpNoise::for_release(&TestRelease)
    }

    fn is_invalid<T: std::fmt::Debug>(result: Result<T, DpError>) -> bool {
        matches!(result, Err(DpError::InvalidParameter(_)))
    }

    /// `P(Z ≥ T) = q^T / (1 + q)`, the one-sided tail.
    fn tail(scale: f64, offset: u32) -> f64 {
        let q = (-1.0 / scale).exp();
        q.powi(offset as i32) / (1.0 + q)
    }

    /// Variance `2q/(1 − q)²` of DiscreteLaplace(scale), checked against the pmf, and its fourth
    /// central moment summed from the pmf.
    fn variance_and_fourth_moment(scale: f64) -> (f64, f64) {
        let q = (-1.0 / scale).exp();
        let mass = (1.0 - q) / (1.0 + q);
        let (mut m2, mut m4) = (0.0, 0.0);
        for k in 1..(100.0 * scale) as i32 + 100 {
            let p = 2.0 * mass * q.powi(k);
            let k2 = f64::from(k) * f64::from(k);
            m2 += p * k2;
            m4 += p * k2 * k2;
        }
        let variance = 2.0 * q / ((1.0 - q) * (1.0 - q));
        assert!(
            (m2 / variance - 1.0).abs() < 1e-9,
            "pmf {m2} vs formula {variance}"
        );
        (variance, m4)
    }

    /// 200,000 draws at `scale` with clamping probability ≤ 2e-15 per draw: all in `[0, 2T]`,
    /// mean and variance of `draw − T` within 6 and 7 standard errors of the discrete Laplace's,
    /// and `half_width(0.05)` covering at least 95% up to 6 standard errors. Each bound fails
    /// falsely with probability below 1e-8 (CLT; the fourth moment is finite and known).
    fn check_noise_distribution(scale: f64) {
        const N: usize = 200_000;
        let dist = ShiftedLaplace::for_epsilon(1.0 / scale, 1, 1e-15).unwrap();
        assert_eq!(dist.scale, scale);
        let draws = noise().shifted(&dist, N).unwrap();
        assert_eq!(draws.len(), N);
        assert!(draws.iter().all(|&x| x <= 2 * dist.offset));

        let t = f64::from(dist.offset);
        let n = N as f64;
        let centred: Vec<f64> = draws.iter().map(|&x| f64::from(x) - t).collect();
        let mean = centred.iter().sum::<f64>() / n;
        let sample_var = centred.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let (variance, m4) = variance_and_fourth_moment(scale);

        let mean_bound = 6.0 * (variance / n).sqrt();
        assert!(
            mean.abs() <= mean_bound,
            "scale {scale}: mean {mean}, bound {mean_bound}"
        );
        let var_bound = 7.0 * ((m4 - variance * variance) / n).sqrt();
        assert!(
            (sample_var - variance).abs() <= var_bound,
            "scale {scale}: variance {sample_var} vs {variance}, bound {var_bound}"
        );

        let h = dist.half_width(0.05).unwrap() as f64;
        let covered = centred.iter().filter(|z| z.abs() <= h).count() as f64 / n;
        let cover_bound = 0.95 - 6.0 * (0.95 * 0.05 / n).sqrt();
        assert!(
            covered >= cover_bound,
            "scale {scale}: coverage {covered} of ±{h}"
        );
    }

    #[test]
    fn noise_distribution_at_scale_2() {
        check_noise_distribution(2.0);
    }

    #[test]
    fn noise_distribution_at_scale_10() {
        check_noise_distribution(10.0);
    }

    #[test]
    fn shifted_edge_cases() {
        let dist = ShiftedLaplace {
            scale: 2.0,
            offset: 50,
        };
        assert!(noise().shifted(&dist, 0).unwrap().is_empty());
        let no_room = ShiftedLaplace {
            scale: 2.0,
            offset: 0,
        };
        assert!(
            noise()
                .shifted(&no_room, 1000)
                .unwrap()
                .iter()
                .all(|&x| x == 0)
        );
        let widest = ShiftedLaplace {
            scale: 2.0,
            offset: ShiftedLaplace::MAX_OFFSET,
        };
        assert_eq!(noise().shifted(&widest, 3).unwrap().len(), 3);
    }

    #[test]
    fn epsilon_comes_from_the_privacy_map() {
        let dist = ShiftedLaplace {
            scale: 2.0,
            offset: 10,
        };
        assert_eq!(dist.epsilon(1).unwrap(), 0.5);
        assert_eq!(dist.epsilon(3).unwrap(), 1.5);
        assert_eq!(dist.epsilon(0).unwrap(), 0.0);
    }

    #[test]
    fn for_epsilon_round_trips() {
        for epsilon in [0.01, 0.1, 0.3, 0.5, 1.0, 2.0, 7.3] {
            for sensitivity in [1, 2, 10] {
                for delta in [0.2, 1e-3, 1e-9, 1e-100] {
                    let dist = ShiftedLaplace::for_epsilon(epsilon, sensitivity, delta).unwrap();
                    let achieved = dist.epsilon(sensitivity).unwrap();
                    assert!(achieved <= epsilon && achieved >= epsilon * (1.0 - 1e-12));
                    assert!((dist.scale * epsilon / f64::from(sensitivity) - 1.0).abs() < 1e-12);
                    assert!(dist.offset >= sensitivity);
                    assert!(dist.clamp_delta_for(sensitivity) <= delta);
                    if dist.offset > sensitivity {
                        let smaller = ShiftedLaplace {
                            offset: dist.offset - 1,
                            ..dist
                        };
                        assert!(smaller.clamp_delta_for(sensitivity) > delta);
                    }
                }
            }
        }
        // A known case: scale 2, δ = 1e-6 → smallest T with q^T/(1 + q) ≤ 1e-6 is 27.
        let dist = ShiftedLaplace::for_epsilon(0.5, 1, 1e-6).unwrap();
        assert_eq!(
            dist,
            ShiftedLaplace {
                scale: 2.0,
                offset: 27
            }
        );
    }

    #[test]
    fn clamp_delta_matches_the_tail_and_decreases() {
        for scale in [0.5, 1.0, 2.0] {
            let mut previous = f64::INFINITY;
            for offset in 1..300 {
                let delta = ShiftedLaplace { scale, offset }.clamp_delta();
                let expected = tail(scale, offset);
                assert!((delta / expected - 1.0).abs() < 1e-12, "{scale} {offset}");
                assert!(delta < previous);
                previous = delta;
            }
        }
        // Above scale ≈ 2.08 the upper atom adds to the tail, by less than a second tail.
        let mut previous = f64::INFINITY;
        for offset in 1..2000 {
            let delta = ShiftedLaplace {
                scale: 10.0,
                offset,
            }
            .clamp_delta();
            let one_tail = tail(10.0, offset);
            assert!(delta > one_tail && delta < 2.0 * one_tail);
            assert!(delta < previous);
            previous = delta;
        }
        // No underflow trouble for tiny values, and conservative degenerate answers.
        let tiny = ShiftedLaplace {
            scale: 1.0,
            offset: 700,
        }
        .clamp_delta();
        assert!((tiny.ln() - (-700.0 - (-1.0f64).exp().ln_1p())).abs() < 1e-9);
        assert_eq!(
            ShiftedLaplace {
                scale: f64::NAN,
                offset: 9
            }
            .clamp_delta(),
            1.0
        );
        assert_eq!(
            ShiftedLaplace {
                scale: 2.0,
                offset: 0
            }
            .clamp_delta(),
            1.0
        );
    }

    #[test]
    fn half_width_is_tight_and_monotone() {
        let mut previous_scale_h = 0;
        for scale in [0.5, 1.0, 2.0, 10.0, 100.0] {
            let dist = ShiftedLaplace { scale, offset: 1 };
            let q = (-1.0 / scale).exp();
            // P(|Z| ≥ k) = 2q^k/(1 + q) for k ≥ 1.
            let beyond = |k: u64| 2.0 * q.powi(k as i32) / (1.0 + q);
            let mut previous_alpha_h = 0;
            for alpha in [0.9, 0.5, 0.1, 0.05, 0.01, 1e-6] {
                let h = dist.half_width(alpha).unwrap();
                assert!(
                    beyond(h + 1) <= alpha * (1.0 + 1e-12),
                    "{scale} {alpha}: {h}"
                );
                if h >= 2 {
                    assert!(beyond(h - 1) > alpha, "{scale} {alpha}: {h} is not tight");
                }
                assert!(h >= previous_alpha_h);
                previous_alpha_h = h;
            }
            let h = dist.half_width(0.05).unwrap();
            assert!(h >= previous_scale_h);
            previous_scale_h = h;
        }
    }

    #[test]
    fn zcdp_epsilon_is_between_rho_and_the_textbook_bound() {
        for rho in [1e-4, 0.01, 0.125, 0.5, 2.0] {
            let mut previous = 0.0;
            for delta in [1e-3, 1e-6, 1e-9, 1e-12] {
                let epsilon = zcdp_epsilon(rho, delta).unwrap();
                let textbook = rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt();
                assert!(
                    epsilon > rho && epsilon < textbook,
                    "ρ {rho} δ {delta}: {epsilon}"
                );
                assert!(epsilon > previous);
                previous = epsilon;
            }
        }
        assert_eq!(zcdp_epsilon(0.0, 1e-6).unwrap(), 0.0);
    }

    #[test]
    fn rho_for_epsilon_round_trips_with_zcdp_epsilon() {
        for epsilon in [1e-3, 0.1, 0.5, 1.0, 2.5, 10.0, 100.0] {
            for delta in [1e-3, 5e-7, 1e-9, 1e-15] {
                let rho = rho_for_epsilon(epsilon, delta).unwrap();
                assert!(rho > 0.0 && rho < epsilon, "ε {epsilon} δ {delta}: ρ {rho}");
                let back = zcdp_epsilon(rho, delta).unwrap();
                assert!(
                    back <= epsilon,
                    "ε {epsilon} δ {delta}: {back} over the cap"
                );
                assert!(
                    (back / epsilon - 1.0).abs() < 1e-9,
                    "ε {epsilon} δ {delta}: ρ {rho} maps back to {back}"
                );
                // The largest such ρ: a slightly larger one goes over.
                let above = rho * (1.0 + 1e-12);
                assert!(zcdp_epsilon(above, delta).unwrap() > epsilon);
            }
        }
        assert_eq!(rho_for_epsilon(0.0, 1e-6).unwrap(), 0.0);
        // The other direction: ρ → ε → ρ.
        for rho in [1e-4, 0.01, 0.125, 2.0] {
            let epsilon = zcdp_epsilon(rho, 1e-6).unwrap();
            let back = rho_for_epsilon(epsilon, 1e-6).unwrap();
            assert!((back / rho - 1.0).abs() < 1e-9, "ρ {rho}: {back}");
        }
    }

    #[test]
    fn rho_for_epsilon_is_monotone() {
        // Increasing in ε at fixed δ.
        for delta in [1e-3, 5e-7, 1e-12] {
            let mut previous = 0.0;
            for epsilon in [0.01, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0] {
                let rho = rho_for_epsilon(epsilon, delta).unwrap();
                assert!(
                    rho > previous,
                    "δ {delta}: ε {epsilon} gives {rho} ≤ {previous}"
                );
                previous = rho;
            }
        }
        // Increasing in δ at fixed ε (a looser δ leaves more ρ).
        for epsilon in [0.1, 1.0, 10.0] {
            let mut previous = 0.0;
            for delta in [1e-15, 1e-9, 1e-6, 1e-3, 0.1] {
                let rho = rho_for_epsilon(epsilon, delta).unwrap();
                assert!(
                    rho > previous,
                    "ε {epsilon}: δ {delta} gives {rho} ≤ {previous}"
                );
                previous = rho;
            }
        }
        for (epsilon, delta) in [
            (-1.0, 1e-6),
            (f64::NAN, 1e-6),
            (f64::INFINITY, 1e-6),
            (1.0, 0.0),
            (1.0, 1.0),
            (1.0, f64::NAN),
        ] {
            assert!(
                is_invalid(rho_for_epsilon(epsilon, delta)),
                "{epsilon} {delta}"
            );
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        for (epsilon, sensitivity, delta) in [
            (0.0, 1, 1e-6),
            (-1.0, 1, 1e-6),
            (f64::NAN, 1, 1e-6),
            (f64::INFINITY, 1, 1e-6),
            (1e-320, 1, 1e-6),
            (1.0, 0, 1e-6),
            (1.0, 1, 0.0),
            (1.0, 1, 1.0),
            (1.0, 1, f64::NAN),
            (1e-9, 1, 1e-300),
        ] {
            let result = ShiftedLaplace::for_epsilon(epsilon, sensitivity, delta);
            assert!(is_invalid(result), "{epsilon} {sensitivity} {delta}");
        }

        let good = ShiftedLaplace {
            scale: 2.0,
            offset: 10,
        };
        for scale in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            let bad = ShiftedLaplace { scale, ..good };
            assert!(is_invalid(bad.epsilon(1)));
            assert!(is_invalid(bad.half_width(0.05)));
            assert!(is_invalid(noise().shifted(&bad, 10)));
        }
        for alpha in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(is_invalid(good.half_width(alpha)));
        }
        let too_wide = ShiftedLaplace {
            offset: ShiftedLaplace::MAX_OFFSET + 1,
            ..good
        };
        assert!(is_invalid(noise().shifted(&too_wide, 1)));

        for (rho, delta) in [
            (-1.0, 1e-6),
            (f64::NAN, 1e-6),
            (f64::INFINITY, 1e-6),
            (1.0, 0.0),
        ] {
            assert!(is_invalid(zcdp_epsilon(rho, delta)), "{rho} {delta}");
        }
        assert!(is_invalid(zcdp_epsilon(1.0, 1.0)));
    }
}
