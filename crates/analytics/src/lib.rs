//! The statistics of Tandem's analyst workflows (issue 12): every analysis is post-processing of
//! the noised cell counts one psi-ca-v1 run releases, so this crate is pure — no I/O, no
//! cryptography, no randomness, no node types. The node's analysis registry builds a [`Grid`]
//! (or the inputs of [`lift()`] / [`attribution()`]) from a run and calls one function here; the
//! spec is `protocols/analyses-v1.md`.
//!
//! * [`noise`]: [`NoisyCount`] (estimate + known noise distribution), [`Estimate`] intervals,
//!   the ADH-style [`noise_share`] indicator.
//! * [`grid`]: [`Grid`], the querier's view of a run, and its [`consistent_view`].
//! * Analyses: [`overlap()`], [`affinity`], [`reach`], [`frequency`], [`funnel`], [`lift()`],
//!   [`attribution()`], [`cohorts`]; import-time segments in [`segments`].
//! * Value figures over `psi-sum-v1` sums in [`value`]: [`roas()`], [`value_lift`], [`ltv`].
//!
//! Signed unbiased estimates stay primary throughout; every derived figure carries a
//! `1 − alpha` interval whose method each function documents.
//!
//! ```
//! use tandem_analytics::{Grid, Noise, NoisyCount, lift_from_grid};
//!
//! // Responder ε = 1: cells at scale 1/(3/4), the peer's sizes at scale 1/(1/4).
//! let cell = Noise::clamped_laplace(4.0 / 3.0, 29).unwrap();
//! let size = Noise::clamped_laplace(4.0, 86).unwrap();
//! let grid = Grid::new(
//!     vec!["test".into(), "control".into()],
//!     vec!["converted".into(), "other".into()],
//!     [1302, 8711, 1005, 8990].map(|c| NoisyCount::new(c, cell)).to_vec(),
//!     vec![10_000, 10_000],
//!     [2309, 17_700].map(|c| NoisyCount::new(c, size)).to_vec(),
//! )
//! .unwrap();
//! let lift = lift_from_grid(&grid, "test", "control", "converted", None, 0.05).unwrap();
//! assert!(lift.lift_abs.ci_low > 0.0 && lift.p_value < 1e-6);
//! let json = serde_json::to_string(&lift).unwrap(); // {"segment":null,"arms":[{"name":"test",…
//! assert!(json.contains("\"lift_rel\""));
//! ```

#![forbid(unsafe_code)]

pub mod attribution;
pub mod conversion;
pub mod grid;
pub mod lift;
pub mod noise;
pub mod overlap;
pub mod segments;
pub mod value;

#[cfg(test)]
mod tests;

pub use attribution::{
    AttributionResult, ChannelCredit, MAX_CHANNELS, TouchBucket, TouchRow, attribution,
    attribution_from_grid, touch_buckets, touch_label,
};
pub use conversion::{
    CohortCell, CohortResult, CohortRow, FrequencyResult, FrequencyRow, FunnelResult, FunnelStage,
    Inference, cohorts, frequency, funnel,
};
pub use grid::{ConsistentView, Grid, consistent_view, project_to_simplex};
pub use lift::{Arm, ArmResult, LiftResult, lift, lift_from_grid};
pub use noise::{CountInterval, Estimate, Noise, NoiseShare, NoisyCount, noise_share};
pub use overlap::{
    AffinityResult, AffinityRow, OverlapCell, OverlapColumn, OverlapResult, OverlapRow,
    PeerReachRow, ReachResult, ReachRow, affinity, overlap, reach,
};
pub use segments::{Bands, RfmGroup, RfmScore, quintile_scores, rfm_scores};
pub use value::{
    LtvCohort, LtvResult, LtvRow, RoasResult, RoasRow, ValueArm, ValueArmResult, ValueLiftResult,
    ltv, roas, value_lift,
};

/// Errors of the analytics layer. Messages name the offending parameter, label or row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticsError {
    /// Lengths or labels of the inputs do not fit together.
    #[error("shape: {0}")]
    Shape(String),
    /// A bucket label the analysis needs is not in the grid.
    #[error("unknown {what} {label:?}")]
    UnknownLabel {
        /// `my bucket` or `peer bucket`.
        what: &'static str,
        /// The label asked for.
        label: String,
    },
    /// A parameter is out of its range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A value of an input column is unusable (0-based row).
    #[error("row {row}: {reason}")]
    InvalidValue {
        /// 0-based row of the value.
        row: usize,
        /// What is wrong with it.
        reason: String,
    },
}
