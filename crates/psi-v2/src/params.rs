//! Public run parameters, receiver limits and the privacy accounting of one run (spec §2, §7).

use serde::{Deserialize, Serialize};
use tandem_dp::{PrivacyLoss, ShiftedLaplace};

use crate::PsiV2Error;

/// Largest number of cells `nA · nB` a run may have.
pub const MAX_CELLS: u64 = 1 << 16;

/// Share of the responder's ε given to the cell counts (the rest protects its bucket sizes), as
/// in `psi-ca-v1`.
pub const CELL_SHARE: f64 = 0.75;

/// Share of the querier's ε given to its dummy matches (what a semi-honest responder sees of the
/// querier's segment counts); the rest protects the querier's bucket sizes.
pub const QUERIER_CELL_SHARE: f64 = 0.5;

/// The public parameters of one run (spec §2), agreed before it starts and bound into every
/// message header and the Fiat–Shamir transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    /// Identifier of the collaboration agreement (domain-separates the hash to the group).
    pub agreement_id: [u8; 32],
    /// Name of the join key and its normalisation rules; at most 255 bytes of UTF-8.
    pub join_key: String,
    /// Fresh identifier of this run; never reused.
    pub run_id: [u8; 16],
    /// `nA`: number of querier buckets, at least 1.
    pub querier_buckets: u32,
    /// `nB`: number of responder buckets, at least 1.
    pub responder_buckets: u32,
    /// `(s_QB, T_QB)`: junk points the querier adds per bucket.
    pub querier_bucket_noise: ShiftedLaplace,
    /// `(s_QC, T_QC)`: seed (dummy) matches the querier adds per cell; `2·T_QC` slots per cell.
    pub querier_cell_noise: ShiftedLaplace,
    /// `(s_RB, T_RB)`: junk points the responder adds per bucket.
    pub responder_bucket_noise: ShiftedLaplace,
    /// `s_C`: scale of the responder's central, unclamped discrete-Laplace cell noise.
    pub cell_scale: f64,
}

impl RunParams {
    /// Checks the parameters are usable: at least one bucket per side and at most
    /// [`MAX_CELLS`] cells, a join key of at most 255 bytes, finite positive scales and seed
    /// slot counts that fit in 64 bits.
    pub fn validate(&self) -> Result<(), PsiV2Error> {
        let invalid = |s: &str| Err(PsiV2Error::InvalidParams(s.into()));
        if self.querier_buckets == 0 || self.responder_buckets == 0 {
            return invalid("bucket counts must be at least 1");
        }
        if u64::from(self.querier_buckets) * u64::from(self.responder_buckets) > MAX_CELLS {
            return invalid("too many cells");
        }
        if self.join_key.len() > usize::from(u8::MAX) {
            return invalid("join key longer than 255 bytes");
        }
        for scale in [
            self.querier_bucket_noise.scale,
            self.querier_cell_noise.scale,
            self.responder_bucket_noise.scale,
            self.cell_scale,
        ] {
            if !(scale.is_finite() && scale > 0.0) {
                return invalid("noise scales must be finite and > 0");
            }
        }
        for offset in [
            self.querier_bucket_noise.offset,
            self.querier_cell_noise.offset,
            self.responder_bucket_noise.offset,
        ] {
            if offset > ShiftedLaplace::MAX_OFFSET {
                return invalid("noise offset too large");
            }
        }
        if self.seed_slots_per_querier_bucket().is_none()
            || self.seed_slots_per_responder_bucket().is_none()
        {
            return invalid("too many seed slots");
        }
        Ok(())
    }

    /// `2·T_QC`, seed slots per cell.
    pub(crate) fn slots_per_cell(&self) -> u64 {
        2 * u64::from(self.querier_cell_noise.offset)
    }

    /// `2·T_QC·nB`: seed slots in every querier bucket.
    pub(crate) fn seed_slots_per_querier_bucket(&self) -> Option<u64> {
        self.slots_per_cell()
            .checked_mul(u64::from(self.responder_buckets))
    }

    /// `2·T_QC·nA`: seed images in every responder bucket.
    pub(crate) fn seed_slots_per_responder_bucket(&self) -> Option<u64> {
        self.slots_per_cell()
            .checked_mul(u64::from(self.querier_buckets))
    }

    /// `nA · nB`.
    pub(crate) fn cells(&self) -> usize {
        self.querier_buckets as usize * self.responder_buckets as usize
    }

    /// Parameters meeting per-run budgets (spec §7): the responder's `responder_epsilon` is split
    /// [`CELL_SHARE`] to the cells (pure, unclamped) and the rest to its bucket sizes; the
    /// querier's `querier_epsilon` is split [`QUERIER_CELL_SHARE`] to its seed matches and the
    /// rest to its bucket sizes; each clamped mechanism gets `delta / 2`.
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
    ) -> Result<RunParams, PsiV2Error> {
        let half_delta = delta / 2.0;
        let cell = ShiftedLaplace::for_epsilon(responder_epsilon * CELL_SHARE, 1, half_delta)?;
        let params = RunParams {
            agreement_id,
            join_key: join_key.into(),
            run_id,
            querier_buckets,
            responder_buckets,
            querier_bucket_noise: ShiftedLaplace::for_epsilon(
                querier_epsilon * (1.0 - QUERIER_CELL_SHARE),
                1,
                half_delta,
            )?,
            querier_cell_noise: ShiftedLaplace::for_epsilon(
                querier_epsilon * QUERIER_CELL_SHARE,
                1,
                half_delta,
            )?,
            responder_bucket_noise: ShiftedLaplace::for_epsilon(
                responder_epsilon * (1.0 - CELL_SHARE),
                1,
                half_delta,
            )?,
            cell_scale: cell.scale,
        };
        params.validate()?;
        Ok(params)
    }
}

/// Hard caps a receiver applies before allocating anything for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of points a message may declare in total.
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_points: 20_000_000,
        }
    }
}

/// The loss of one clamped mechanism with L1 sensitivity 1.
fn unit_loss(dist: &ShiftedLaplace) -> Result<PrivacyLoss, PsiV2Error> {
    Ok(PrivacyLoss {
        epsilon: dist.epsilon(1)?,
        delta: dist.clamp_delta(),
    })
}

/// ε of the responder's central cell noise: opendp's privacy map of the discrete Laplace at
/// `s_C` for sensitivity 1; δ = 0 (no clamp).
pub fn cell_loss(params: &RunParams) -> Result<PrivacyLoss, PsiV2Error> {
    let epsilon = ShiftedLaplace {
        scale: params.cell_scale,
        offset: 0,
    }
    .epsilon(1)?;
    Ok(PrivacyLoss {
        epsilon,
        delta: 0.0,
    })
}

/// The responder's `(ε_C + ε_RB, δ_RB)` for one run, against any querier (spec §7).
pub fn responder_loss(params: &RunParams) -> Result<PrivacyLoss, PsiV2Error> {
    Ok(cell_loss(params)?.compose(unit_loss(&params.responder_bucket_noise)?))
}

/// The responder's zCDP ρ: `ε_C²/2 + ε_RB²/2` (pure parts; δ_RB is [`responder_loss`]'s).
pub fn responder_rho(params: &RunParams) -> Result<f64, PsiV2Error> {
    let c = cell_loss(params)?.epsilon;
    let b = params.responder_bucket_noise.epsilon(1)?;
    Ok(c * c / 2.0 + b * b / 2.0)
}

/// The querier's `(ε_QB + ε_QC, δ_QB + δ_QC)` for one run, against a semi-honest responder
/// only (spec §6, §7).
pub fn querier_loss(params: &RunParams) -> Result<PrivacyLoss, PsiV2Error> {
    Ok(unit_loss(&params.querier_bucket_noise)?.compose(unit_loss(&params.querier_cell_noise)?))
}

/// The querier's zCDP ρ: `ε_QB²/2 + ε_QC²/2`.
pub fn querier_rho(params: &RunParams) -> Result<f64, PsiV2Error> {
    let b = params.querier_bucket_noise.epsilon(1)?;
    let c = params.querier_cell_noise.epsilon(1)?;
    Ok(b * b / 2.0 + c * c / 2.0)
}
