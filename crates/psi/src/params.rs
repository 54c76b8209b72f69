//! Public run parameters and receiver limits.

use serde::{Deserialize, Serialize};
use tandem_dp::ShiftedLaplace;

use crate::PsiError;

/// Largest number of cells `nA · nB` a run may have.
pub const MAX_CELLS: u64 = 1 << 20;

/// The public parameters of one run, agreed by both parties before it starts and bound into
/// every message header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    /// Identifier of the collaboration agreement (domain-separates the hash to the group).
    pub agreement_id: [u8; 32],
    /// Name of the join key and its normalisation rules (the node uses `"email/tandem-id-v1"`); at
    /// most 255 bytes of UTF-8.
    pub join_key: String,
    /// Fresh identifier of this run; never reused.
    pub run_id: [u8; 16],
    /// `nA`: number of querier buckets (segment values of the querier), at least 1.
    pub querier_buckets: u32,
    /// `nB`: number of responder buckets, at least 1.
    pub responder_buckets: u32,
    /// Noise on the querier's bucket sizes (junk points the querier adds per bucket).
    pub querier_bucket_noise: ShiftedLaplace,
    /// Noise on the responder's bucket sizes (junk points the responder adds per bucket).
    pub responder_bucket_noise: ShiftedLaplace,
    /// Noise on every cell count (matches the responder injects per cell, offset `T`).
    pub cell_noise: ShiftedLaplace,
}

impl RunParams {
    /// Checks the parameters are usable: at least one bucket per side and at most
    /// [`MAX_CELLS`] cells, a join key of at most
    /// 255 bytes, finite positive noise scales, and a number of injected slots that fits
    /// in 64 bits.
    pub fn validate(&self) -> Result<(), PsiError> {
        if self.querier_buckets == 0 || self.responder_buckets == 0 {
            return Err(PsiError::InvalidParams(
                "bucket counts must be at least 1".into(),
            ));
        }
        if u64::from(self.querier_buckets) * u64::from(self.responder_buckets) > MAX_CELLS {
            return Err(PsiError::InvalidParams(format!(
                "more than {MAX_CELLS} cells"
            )));
        }
        if self.join_key.len() > usize::from(u8::MAX) {
            return Err(PsiError::InvalidParams(
                "join key longer than 255 bytes".into(),
            ));
        }
        for (name, dist) in [
            ("querier_bucket_noise", &self.querier_bucket_noise),
            ("responder_bucket_noise", &self.responder_bucket_noise),
            ("cell_noise", &self.cell_noise),
        ] {
            if !(dist.scale.is_finite() && dist.scale > 0.0) {
                return Err(PsiError::InvalidParams(format!(
                    "{name}: scale must be finite and > 0"
                )));
            }
        }
        self.injected_total()
            .map(|_| ())
            .ok_or_else(|| PsiError::InvalidParams("too many injected slots".into()))
    }

    /// `2T`, the number of injected slots per cell.
    pub(crate) fn slots_per_cell(&self) -> u64 {
        2 * u64::from(self.cell_noise.offset)
    }

    /// `nA · nB`, the number of cells.
    pub(crate) fn cells(&self) -> usize {
        self.querier_buckets as usize * self.responder_buckets as usize
    }

    /// `2T·nA·nB`, injected slots on each side of the reply (`None` on overflow).
    pub(crate) fn injected_total(&self) -> Option<u64> {
        self.slots_per_cell()
            .checked_mul(u64::from(self.querier_buckets))?
            .checked_mul(u64::from(self.responder_buckets))
    }
}

/// Hard caps a receiver applies before allocating anything for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of points plus returned values a message may declare in total.
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_points: 50_000_000,
        }
    }
}
