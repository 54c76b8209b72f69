//! Joint models fitted from differentially private marginals (`protocols/model-v1.md`).
//!
//! The querier holds categorical features, the responder a binary label. The modelling analysis
//! releases only noised cross-tabs over the overlap (psi-ca-v1 runs, planned by
//! [`MarginalPlan`]); everything here is post-processing of those counts:
//! - [`fit`]: a Private-PGM estimate of the overlap's joint distribution (McKenna, Sheldon,
//!   Miklau, ICML 2019), then naive Bayes and a logistic regression fitted to it, segment
//!   propensity/lift tables, and seeded parametric-bootstrap intervals;
//! - [`FittedModel`]: JSON-storable, re-scorable ([`FittedModel::score`],
//!   [`FittedModel::score_table`]) at no privacy cost;
//! - [`CrossTab`]: the raw signed estimates beside the consistent view, as CSV or JSON;
//! - [`fit_linear`]: linear regression from noisy sufficient statistics (AdaSSP's ridge rule).
//!
//! Pure: no I/O, no clock, no released noise (the bootstrap only simulates known noise).

#![forbid(unsafe_code)]

mod crosstab;
mod estimate;
mod fit;
mod linear;
mod logistic;
mod marginal;
mod model;
mod plan;
mod schema;

pub use crosstab::{CrossTab, CrossTabCell, CrossTabMarginal};
pub use fit::{FitOptions, FitReport, SegmentRow, fit, fit_exact};
pub use linear::{LinearFit, LinearOptions, NoisyStatistics, fit_linear};
pub use marginal::NoisyMarginal;
pub use model::{Coefficient, FeatureCoefficients, FittedModel, Interval, Method, ScoreRow};
pub use plan::{Budget, MarginalPlan, MarginalSpec, PlannedRun, Workload};
pub use schema::{Feature, MAX_DOMAIN_CELLS, Schema};

/// Errors of the modelling library.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The features or label are unusable (names the reason).
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A marginal plan or spec is unusable.
    #[error("invalid marginal plan: {0}")]
    InvalidPlan(String),
    /// A released marginal does not fit its spec or schema.
    #[error("invalid measurement: {0}")]
    Measurement(String),
    /// Bad fit options.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A stored model does not match its schema.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A record to score has the wrong arity or an unknown value.
    #[error("invalid record: {0}")]
    Record(String),
    /// No feature of that name.
    #[error("unknown feature {0:?}")]
    UnknownFeature(String),
    /// A solver failed.
    #[error("optimisation failed: {0}")]
    Optimisation(String),
    /// The DP layer refused a parameter (e.g. a run's ε or δ).
    #[error(transparent)]
    Dp(#[from] tandem_dp::DpError),
    /// JSON (de)serialisation failed (with line and column).
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// CSV writing failed.
    #[error("CSV: {0}")]
    Csv(String),
}

impl From<csv::Error> for ModelError {
    fn from(e: csv::Error) -> Self {
        ModelError::Csv(e.to_string())
    }
}
