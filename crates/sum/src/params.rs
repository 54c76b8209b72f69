//! Public run parameters and receiver limits (spec §2).

use serde::{Deserialize, Serialize};
use tandem_dp::ShiftedLaplace;

use crate::SumError;

/// Largest number of cells a run may ask to decrypt (the same cap as `psi-ca-v1`'s `nA·nB`).
pub const MAX_CELLS: u32 = 1 << 20;

/// Largest value bound `U` when sums of squares are released: `U²` is the squares' sensitivity,
/// which `tandem-dp` takes as a `u32`.
pub const MAX_SQUARED_BOUND: u32 = u16::MAX as u32;

/// The public parameters of one `psi-sum-v1` run, agreed by both parties before it starts and
/// bound into every message header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SumParams {
    /// Identifier of the collaboration agreement.
    pub agreement_id: [u8; 32],
    /// Fresh identifier of this run; never reused.
    pub run_id: [u8; 16],
    /// SHA-256 of the `psi-ca-v1` reply whose responder points the ciphertexts are attached to
    /// (binds the sums to exactly one matching).
    pub psi_reply_digest: [u8; 32],
    /// Name of the value column and its unit, e.g. `"revenue_cents"`; at most 255 bytes of UTF-8.
    pub column: String,
    /// Number of cells the querier asks to decrypt (the `psi-ca-v1` run's `nA·nB`), in
    /// `1..=`[`MAX_CELLS`].
    pub cells: u32,
    /// `U`: every value lies in `[0, U]` (clamped at import), so one customer moves a cell sum
    /// by at most `U` and a sum of squares by at most `U²`. At least 1; at most
    /// [`MAX_SQUARED_BOUND`] with squares.
    pub value_bound: u32,
    /// Noise on every cell sum: draws `clamp(T + Z, 0, 2T)`, `Z` discrete Laplace, calibrated at
    /// sensitivity `U` (the public offset is `O = T`).
    pub sum_noise: ShiftedLaplace,
    /// Noise on every cell sum of squares (sensitivity `U²`); `None` releases no squares.
    pub square_noise: Option<ShiftedLaplace>,
}

impl SumParams {
    /// Checks the parameters are usable: `1 ≤ cells ≤ MAX_CELLS`, `U ≥ 1` (and
    /// `U ≤ MAX_SQUARED_BOUND` with squares), a column name of at most 255 bytes, finite
    /// positive noise scales and offsets of at most [`ShiftedLaplace::MAX_OFFSET`].
    pub fn validate(&self) -> Result<(), SumError> {
        let invalid = |reason: &str| Err(SumError::InvalidParams(reason.to_owned()));
        if self.cells == 0 || self.cells > MAX_CELLS {
            return invalid("cells must be in 1..=2^20");
        }
        if self.value_bound == 0 {
            return invalid("value bound U must be at least 1");
        }
        if self.square_noise.is_some() && self.value_bound > MAX_SQUARED_BOUND {
            return invalid("value bound U above 65535 with sums of squares (U² must fit 32 bits)");
        }
        if self.column.len() > usize::from(u8::MAX) {
            return invalid("column name longer than 255 bytes");
        }
        for dist in std::iter::once(&self.sum_noise).chain(self.square_noise.as_ref()) {
            if !(dist.scale.is_finite() && dist.scale > 0.0) {
                return invalid("noise scale must be finite and > 0");
            }
            if dist.offset > ShiftedLaplace::MAX_OFFSET {
                return invalid("noise offset above ShiftedLaplace::MAX_OFFSET");
            }
        }
        Ok(())
    }

    /// Whether sums of squares are released.
    pub fn squares(&self) -> bool {
        self.square_noise.is_some()
    }

    /// Ciphertext components after `R`: `V` and, with squares, `V₂`.
    pub(crate) fn components(&self) -> usize {
        1 + usize::from(self.squares())
    }

    /// The sensitivity of the squares, `U²` (fits a `u32` once validated).
    pub(crate) fn squared_bound(&self) -> u64 {
        u64::from(self.value_bound) * u64::from(self.value_bound)
    }
}

/// Hard caps a receiver applies before allocating or computing anything for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of ciphertexts a values message may declare.
    pub max_points: usize,
    /// Largest plaintext the querier searches for per cell: its per-cell bound is
    /// `min(n_c·U + 2T, max_plaintext)`, so a discrete logarithm takes at most
    /// `max_plaintext / 2^baby_bits + 1` giant steps (2^20 at the defaults, about a second).
    pub max_plaintext: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_points: 50_000_000,
            max_plaintext: 1 << 36,
        }
    }
}
