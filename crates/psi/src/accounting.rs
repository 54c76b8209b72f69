//! Privacy accounting of one run (spec §6).
//!
//! Neighbouring inputs differ by one customer added to or removed from one side. A responder
//! customer changes one cell count by 1 and one responder bucket size by 1; a querier
//! customer changes one querier bucket size by 1 (what the responder sees). Each party's loss
//! is the basic composition of the mechanisms that protect it.
//!
//! For the ledger's zCDP side (spec §6.1) each mechanism is `δ`-close to a pure `ε`-DP
//! mechanism, and pure `ε`-DP is `ε²/2`-zCDP (Bun & Steinke 2016, Prop. 1.4); zCDP composes by
//! adding ρ, so a party's ρ is the sum over its mechanisms, [`responder_rho`] and
//! [`querier_rho`] — not `(Σε)²/2` of the composed ε, which over-charges.

use tandem_dp::{PrivacyLoss, ShiftedLaplace};

use crate::{PsiError, RunParams};

/// Share of the responder's ε given to the cell counts (the rest protects its bucket sizes).
pub const CELL_SHARE: f64 = 0.75;

/// The loss of one mechanism with L1 sensitivity 1.
fn unit_loss(dist: &ShiftedLaplace) -> Result<PrivacyLoss, PsiError> {
    Ok(PrivacyLoss {
        epsilon: dist.epsilon(1)?,
        delta: dist.clamp_delta(),
    })
}

/// The responder's `(ε, δ)` for one run: cell noise plus responder bucket-size noise.
pub fn responder_loss(params: &RunParams) -> Result<PrivacyLoss, PsiError> {
    Ok(unit_loss(&params.cell_noise)?.compose(unit_loss(&params.responder_bucket_noise)?))
}

/// The querier's `(ε, δ)` for one run: its bucket-size noise.
pub fn querier_loss(params: &RunParams) -> Result<PrivacyLoss, PsiError> {
    unit_loss(&params.querier_bucket_noise)
}

/// ρ of one mechanism with L1 sensitivity 1: `ε²/2` of its pure part.
fn unit_rho(dist: &ShiftedLaplace) -> Result<f64, PsiError> {
    let epsilon = dist.epsilon(1)?;
    Ok(epsilon * epsilon / 2.0)
}

/// The responder's zCDP ρ for one run: `ε_C²/2 + ε_RB²/2` over the cell noise and its
/// bucket-size noise (at the default 3/4 : 1/4 split of ε = 1, 0.3125 instead of the 0.5 of
/// `(ε_C + ε_RB)²/2`). Valid for the pure parts; the clamping δ is [`responder_loss`]'s.
pub fn responder_rho(params: &RunParams) -> Result<f64, PsiError> {
    Ok(unit_rho(&params.cell_noise)? + unit_rho(&params.responder_bucket_noise)?)
}

/// The querier's zCDP ρ for one run: `ε_QB²/2` of its bucket-size noise.
pub fn querier_rho(params: &RunParams) -> Result<f64, PsiError> {
    unit_rho(&params.querier_bucket_noise)
}

/// The interval `[x̂ − h, x̂ + h]` (clipped below at 0) that holds the true cell count with
/// probability at least `1 − alpha`, `h = cell_noise.half_width(alpha)`. The error of a cell
/// is `clamp(Z, −T, T)`, never larger than `|Z|`, so the bound of the unclamped noise holds.
pub fn interval(params: &RunParams, estimate: i64, alpha: f64) -> Result<(i64, i64), PsiError> {
    let h = i64::try_from(params.cell_noise.half_width(alpha)?).unwrap_or(i64::MAX);
    Ok((
        estimate.saturating_sub(h).max(0),
        estimate.saturating_add(h).max(0),
    ))
}

impl RunParams {
    /// Parameters meeting per-run budgets: the responder's `responder_epsilon` is split
    /// [`CELL_SHARE`] (3/4) to the cells and 1/4 to its bucket sizes, the querier's
    /// `querier_epsilon` goes entirely to its bucket sizes; each of the three mechanisms gets
    /// `delta / 2` (so the responder's δ is at most `delta`, the querier's at most `delta / 2`).
    #[allow(clippy::too_many_arguments)]
    pub fn for_epsilon(
        agreement_id: [u8; 32],
        join_key: impl Into<String>,
        run_id: [u8; 16],
        querier_buckets: u32,
        responder_buckets: u32,
        querier_epsilon: f64,
        responder_epsilon: f64,
        delta: f64,
    ) -> Result<RunParams, PsiError> {
        let half_delta = delta / 2.0;
        let params = RunParams {
            agreement_id,
            join_key: join_key.into(),
            run_id,
            querier_buckets,
            responder_buckets,
            querier_bucket_noise: ShiftedLaplace::for_epsilon(querier_epsilon, 1, half_delta)?,
            responder_bucket_noise: ShiftedLaplace::for_epsilon(
                responder_epsilon * (1.0 - CELL_SHARE),
                1,
                half_delta,
            )?,
            cell_noise: ShiftedLaplace::for_epsilon(responder_epsilon * CELL_SHARE, 1, half_delta)?,
        };
        params.validate()?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9 item 3: ρ was charged from the composed ε, `(ε_C + ε_RB)²/2` (0.5 at ε = 1);
    /// the two mechanisms compose in zCDP as `ε_C²/2 + ε_RB²/2` (0.3125).
    #[test]
    fn rho_is_charged_per_mechanism() {
        let params =
            RunParams::for_epsilon([7; 32], "email/v1", [1; 16], 2, 3, 0.25, 1.0, 1e-9).unwrap();
        let composed = responder_loss(&params).unwrap();
        let rho = responder_rho(&params).unwrap();
        assert!((rho - 0.3125).abs() < 1e-9, "{rho}");
        assert!((composed.rho() - 0.5).abs() < 1e-9);
        let q = querier_rho(&params).unwrap();
        assert!((q - 0.25 * 0.25 / 2.0).abs() < 1e-12, "{q}");
        // Never more than the composed figure, and equal for a single mechanism.
        assert!(rho < composed.rho());
        assert!((q - querier_loss(&params).unwrap().rho()).abs() < 1e-15);
    }
}
