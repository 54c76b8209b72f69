//! Clamping and privacy accounting of one run (spec §6).
//!
//! Neighbouring inputs differ by one holder customer added or removed. Values are clamped to
//! `[0, U]` at import and a customer's point matches at most one cell, so the vector of cell
//! sums has L1 sensitivity `U` (and the sums of squares `U²`). Each cell gets independent noise
//! `clamp(T + Z, 0, 2T)`, `Z` discrete Laplace, so a run costs the holder the basic composition
//! of the sums' and the squares' mechanisms. The querier's data is not released (the holder
//! sees only uniform points), so the querier's loss is zero.

use tandem_dp::{PrivacyLoss, ShiftedLaplace};

use crate::{SumError, SumParams};

/// Share of the holder's ε given to the sums when squares are released too (the rest goes to
/// the squares).
pub const SUM_SHARE: f64 = 0.5;

/// A raw value clamped to `[0, bound]` (`bound = U`): what the holder encrypts. Negative
/// values (refunds) become 0 and values above `U` become `U`; the caller converts to the
/// column's integer unit first.
pub fn clamp_value(value: i64, bound: u32) -> u32 {
    // In [0, bound] ⊆ [0, u32::MAX] after the clamp, so the cast is exact.
    value.clamp(0, i64::from(bound)) as u32
}

/// The `(ε, δ)` of one mechanism at `sensitivity`.
fn loss(dist: &ShiftedLaplace, sensitivity: u32) -> Result<PrivacyLoss, SumError> {
    Ok(PrivacyLoss {
        epsilon: dist.epsilon(sensitivity)?,
        delta: dist.clamp_delta_for(sensitivity),
    })
}

/// The holder's `(ε, δ)` for one run: the cell sums at sensitivity `U`
/// (`ε = U / scale` from opendp's privacy map, `δ = sum_noise.clamp_delta_for(U)`), composed
/// with the sums of squares at sensitivity `U²` if released. Charged once per decryption
/// request, before answering it.
pub fn holder_loss(params: &SumParams) -> Result<PrivacyLoss, SumError> {
    params.validate()?;
    let sums = loss(&params.sum_noise, params.value_bound)?;
    match &params.square_noise {
        None => Ok(sums),
        // validate() keeps U ≤ 65535, so U² fits a u32.
        Some(dist) => Ok(sums.compose(loss(dist, params.squared_bound() as u32)?)),
    }
}

/// The interval `[x̂ − h, x̂ + h]` (clipped below at 0) that holds a cell's true sum with
/// probability at least `1 − alpha`, `h = dist.half_width(alpha)` (`dist` is `sum_noise` for
/// sums, `square_noise` for squares). The error is `clamp(Z, −T, T)`, never larger than `|Z|`.
pub fn interval(dist: &ShiftedLaplace, estimate: i64, alpha: f64) -> Result<(i64, i64), SumError> {
    let h = i64::try_from(dist.half_width(alpha)?).unwrap_or(i64::MAX);
    Ok((
        estimate.saturating_sub(h).max(0),
        estimate.saturating_add(h).max(0),
    ))
}

/// Variance of a released estimate's error, `Var(clamp(Z, −T, T)) ≤ Var(Z) = 2q/(1 − q)²`
/// with `q = e^(−1/scale)` (the bound; clamping only shrinks it): what an analysis combining
/// noised sums (averages, lift) uses for its standard errors. In the column's unit squared.
pub fn noise_variance(dist: &ShiftedLaplace) -> f64 {
    let q = (-1.0 / dist.scale).exp();
    2.0 * q / ((1.0 - q) * (1.0 - q))
}

impl SumParams {
    /// Parameters meeting a per-run holder budget `(epsilon, delta)`: without squares the sums
    /// get all of it; with squares, [`SUM_SHARE`] of ε and `δ/2` each. Noise is
    /// [`ShiftedLaplace::for_epsilon`] at sensitivity `U` (sums) and `U²` (squares).
    #[allow(clippy::too_many_arguments)]
    pub fn for_epsilon(
        agreement_id: [u8; 32],
        run_id: [u8; 16],
        psi_reply_digest: [u8; 32],
        column: impl Into<String>,
        cells: u32,
        value_bound: u32,
        squares: bool,
        epsilon: f64,
        delta: f64,
    ) -> Result<SumParams, SumError> {
        let (sum_epsilon, sum_delta) = if squares {
            (epsilon * SUM_SHARE, delta / 2.0)
        } else {
            (epsilon, delta)
        };
        let sum_noise = ShiftedLaplace::for_epsilon(sum_epsilon, value_bound, sum_delta)?;
        let square_noise = if squares {
            let u2 = u32::try_from(u64::from(value_bound) * u64::from(value_bound))
                .map_err(|_| SumError::InvalidParams("U² does not fit 32 bits".into()))?;
            Some(ShiftedLaplace::for_epsilon(
                epsilon * (1.0 - SUM_SHARE),
                u2,
                delta / 2.0,
            )?)
        } else {
            None
        };
        let params = SumParams {
            agreement_id,
            run_id,
            psi_reply_digest,
            column: column.into(),
            cells,
            value_bound,
            sum_noise,
            square_noise,
        };
        params.validate()?;
        Ok(params)
    }
}
