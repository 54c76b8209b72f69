//! Analyses as modules. An [`Analysis`] declares what it reads on each side, the cells it
//! needs, its sensitivity and default ε split, how noised cells become its outputs (with
//! intervals), and how it renders. The [`REGISTRY`] lists them; `tandem query <analysis>`, the
//! API routes `/api/v1/query/<analysis>[/preview]` and the free preview all derive from it, and
//! the run engine (the querier and responder modules) is the same for every analysis.
//!
//! Adding an analysis: one file in this directory implementing [`Analysis`] (with its tests),
//! plus one line in [`REGISTRY`].

pub mod affinity;
pub mod attribution;
pub mod cohorts;
pub mod frequency;
pub mod funnel;
pub mod lift;
pub mod ltv;
pub mod overlap;
pub mod reach;
pub mod revenue;
pub mod roas;
pub mod value_lift;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_psi::{CellCounts, RunParams};

use crate::error::{NodeError, Result};
use crate::wire::{BudgetView, RunRequest};

/// Every analysis this node runs, by name. One line per analysis.
pub static REGISTRY: &[&dyn Analysis] = &[
    &overlap::Overlap,
    &affinity::Affinity,
    &lift::Lift,
    &reach::Reach,
    &funnel::Funnel,
    &frequency::Frequency,
    &cohorts::Cohorts,
    &attribution::Attribution,
    &revenue::Revenue,
    &revenue::AverageValue,
    &roas::Roas,
    &value_lift::ValueLift,
    &ltv::Ltv,
];

/// The analysis called `name` (404 `not_found` naming the known ones).
pub fn find(name: &str) -> Result<&'static dyn Analysis> {
    REGISTRY
        .iter()
        .copied()
        .find(|a| a.name() == name)
        .ok_or_else(|| {
            NodeError::not_found(format!(
                "no analysis {name:?} (this node runs: {})",
                names().join(", ")
            ))
        })
}

/// The registered analyses' names.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|a| a.name()).collect()
}

/// The single bucket of a side that does not group.
pub const ALL: &str = "all";

/// What an analyst asks: the body of `POST /api/v1/query/<analysis>`, the flags of
/// `tandem query <analysis>`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Query {
    /// Agreement to act under: its hex id, or a unique prefix of at least 8 hex characters
    /// ([`crate::agreements::resolve_id`]).
    pub agreement_id: String,
    /// Join key kind (`email`, `phone`, …); defaults to the agreement's first.
    pub join_key: Option<String>,
    /// Querier's columns to group by (none: one bucket); cells are the cross product of their
    /// labels. JSON: a list of names, or (as before) one name or `null`; `"a,b"` also reads.
    #[serde(default, with = "crate::wire::columns")]
    #[schema(schema_with = crate::openapi::columns)]
    pub group_by: Vec<String>,
    /// Responder's columns to group by, as [`Query::group_by`].
    #[serde(default, with = "crate::wire::columns")]
    #[schema(schema_with = crate::openapi::columns)]
    pub peer_group_by: Vec<String>,
    /// Responder's value column to sum (value analyses: `revenue`, `average_value`).
    #[serde(default)]
    pub peer_value: Option<String>,
    /// ε of the run (split between the parties by [`Analysis::epsilon_split`]).
    pub epsilon: f64,
    /// Ignore a cached answer and spend budget on a fresh run (default false).
    #[serde(default)]
    pub fresh: bool,
    /// Analysis-specific inputs of the post-processing (e.g. lift's `test_arm`,
    /// `control_arm`, `converted`): public bucket labels and switches, never data. Each
    /// analysis documents its keys; an unknown key or label is refused before anything is spent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// The columns an analysis reads on each side. Group-by columns make the cells; a responder value
/// column (for sums and means) adds a `psi-sum-v1` run (`crate::sums`); querier value columns are
/// refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The querier's group-by columns (none: one bucket).
    pub querier_group_by: Vec<String>,
    /// The responder's group-by columns (none: one bucket).
    pub responder_group_by: Vec<String>,
    /// The querier's value columns.
    pub querier_values: Vec<String>,
    /// The responder's value columns.
    pub responder_values: Vec<String>,
}

/// How a run's ε is split between the parties (`psi-ca-v1.md` §6): each side spends its share
/// of the analyst's ε; within the responder's share the protocol gives ¾ to the cells and ¼ to
/// its bucket sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpsilonSplit {
    /// Share of ε the querier spends (on its noised bucket sizes).
    pub querier: f64,
    /// Share of ε the responder spends (cells and its bucket sizes).
    pub responder: f64,
}

impl EpsilonSplit {
    /// The split of a psi-ca-v1 count run (`psi-ca-v1.md` §6): the responder spends the analyst's
    /// ε, the querier [`overlap::BUCKET_SIZE_SHARE`] of it on its noised bucket sizes.
    pub const COUNTS: EpsilonSplit = EpsilonSplit {
        querier: overlap::BUCKET_SIZE_SHARE,
        responder: 1.0,
    };
}

/// The cells of a run: each side's bucket labels; cell `(i, j)` counts people in querier bucket
/// `i` and responder bucket `j`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellGrid {
    /// Querier bucket labels.
    pub querier: Vec<String>,
    /// Responder bucket labels.
    pub responder: Vec<String>,
}

impl CellGrid {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.querier.len() * self.responder.len()
    }

    /// No cells (never for a valid grid: each side has at least one bucket).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One cell of a report.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cell {
    /// Querier's bucket label.
    pub querier_group: String,
    /// Responder's bucket label.
    pub responder_group: String,
    /// Noised value (may be negative).
    pub estimate: i64,
    /// Lower end of the 95% interval.
    pub ci_low: i64,
    /// Upper end of the 95% interval.
    pub ci_high: i64,
    /// The noised value is below the agreement's reporting threshold: shown as `< threshold`.
    pub below_threshold: bool,
    /// The true count, only in the demo (which knows it because it made the data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<u64>,
}

/// A finished query.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// The analysis that produced it.
    #[serde(default = "default_analysis")]
    pub analysis: String,
    /// The protocol the run spoke, as the agreement selects it (`psi-ca-v1` or `psi-ca-v2`;
    /// reports stored before this field read as `psi-ca-v1`).
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Agreement id.
    pub agreement_id: String,
    /// Purpose from the agreement.
    pub purpose: String,
    /// Run id (hex).
    pub run_id: String,
    /// The run that produced the numbers was cached (no budget spent now).
    pub cached: bool,
    /// Querier party.
    pub querier: String,
    /// Responder party.
    pub responder: String,
    /// Join key.
    pub join_key: String,
    /// Querier's grouping columns joined by `,` (kept for readers of one-column reports; see
    /// [`Report::querier_columns`]).
    pub querier_column: Option<String>,
    /// Responder's grouping columns joined by `,` (see [`Report::responder_columns`]).
    pub responder_column: Option<String>,
    /// Querier's grouping columns; a cell's `querier_group` joins one label of each with
    /// [`LABEL_SEPARATOR`] (`25-34|north`).
    #[serde(default)]
    pub querier_columns: Vec<String>,
    /// Responder's grouping columns, as [`Report::querier_columns`].
    #[serde(default)]
    pub responder_columns: Vec<String>,
    /// ε of the run.
    pub epsilon: f64,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// Minimum reporting threshold (on noised values).
    pub threshold: u64,
    /// The cells, row-major (querier group, then responder group).
    pub cells: Vec<Cell>,
    /// The querier's budget.
    pub querier_budget: BudgetView,
    /// The responder's budget (as it reported).
    pub responder_budget: BudgetView,
    /// The querier's grouping columns (joined by `,`) and how many of the querier's own members
    /// were counted in an `other` label because a value is missing or outside the agreement's
    /// public set (exact and local: this report is the querier's, the count never goes to the
    /// peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub querier_outside_value_set: Option<(String, u64)>,
    /// Overlap analyses: the overlap rate against each side's sizes, with intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub overlap_rates: Option<overlap::OverlapRates>,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// The options the derived figures were computed with (see [`Query::options`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// The analysis's derived figures ([`Analysis::derived`]) with their intervals and the
    /// noise-share indicator, as JSON (shape: the analysis's result type in `tandem-analytics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// When the run that produced these numbers was answered (RFC 3339, UTC); a cached answer
    /// shows the date of its run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// The responder's audience version its signed receipt named: a cached answer is reused
    /// only while the peer says this version is still current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_audience_version: Option<u64>,
    /// Always true: the report is for the querier only (see [`QUERIER_INTERNAL_NOTE`]).
    #[serde(default = "querier_internal")]
    pub querier_internal: bool,
    /// Why the report is querier-internal.
    #[serde(default = "querier_internal_note")]
    pub note: String,
}

/// Why a report must not be shared with the responder (psi-ca-v1 §8): the responder chose the
/// injected matches `K_c` of every cell, so it could subtract them from a shared report and
/// recover exact cell counts of the shared audience.
pub const QUERIER_INTERNAL_NOTE: &str = "querier-internal: do not share with the responder — it knows the noise it injected into every cell and could remove it to recover exact counts";

fn querier_internal() -> bool {
    true
}

fn querier_internal_note() -> String {
    QUERIER_INTERNAL_NOTE.to_string()
}

fn default_protocol() -> String {
    crate::wire::PROTOCOL.to_string()
}

fn default_analysis() -> String {
    overlap::Overlap.name().to_string()
}

impl Report {
    /// The querier's grouping columns as one label (`age_band|region`, or `all`), for tables;
    /// reads reports stored before `querier_columns` existed too.
    pub fn querier_columns_label(&self) -> String {
        columns_label(&self.querier_columns, self.querier_column.as_deref())
    }

    /// The responder's grouping columns as one label, as [`Report::querier_columns_label`].
    pub fn responder_columns_label(&self) -> String {
        columns_label(&self.responder_columns, self.responder_column.as_deref())
    }
}

fn columns_label(columns: &[String], legacy: Option<&str>) -> String {
    match (columns, legacy) {
        ([], None) => ALL.to_string(),
        ([], Some(c)) => c.replace(',', LABEL_SEPARATOR),
        (cs, _) => cs.join(LABEL_SEPARATOR),
    }
}

/// A side's grouping columns joined by `,` (`None` for none): the report's one-string form.
pub fn joined_columns(columns: &[String]) -> Option<String> {
    (!columns.is_empty()).then(|| columns.join(","))
}

/// Output formats of [`Analysis::render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Table,
    /// Pretty-printed JSON of the [`Report`].
    Json,
    /// One CSV row per cell, with a header.
    Csv,
}

/// The noised cell counts of a run, with what is needed to turn them into outputs.
pub struct NoisedCells<'a> {
    /// The cells' labels.
    pub grid: &'a CellGrid,
    /// The run's parameters (noise distributions, for intervals).
    pub params: &'a RunParams,
    /// The counts the querier's PSI state machine finished with.
    pub counts: &'a CellCounts,
    /// The agreement's minimum reporting threshold (on noised values).
    pub threshold: u64,
    /// The querier's own bucket sizes `|A_r|`, exact and local (never sent to the peer).
    pub my_sizes: &'a [u64],
    /// The noised cell sums of a value analysis (`psi-sum-v1`), with their parameters.
    pub sums: Option<(&'a tandem_sum::SumParams, &'a tandem_sum::CellSums)>,
}

/// Confidence of every interval a report shows.
pub const CONFIDENCE: f64 = 0.95;

/// What a run of an analysis releases per cell; picks the defaults of [`Analysis::inputs`],
/// [`Analysis::outputs`] and [`Analysis::form`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Releases {
    /// `psi-ca-v1` counts: every count analysis.
    Counts,
    /// Counts and the peer's value column summed per cell (`psi-sum-v1`): the value analyses,
    /// whose report cells are the released sums ([`revenue::sum_cells`]).
    Sums,
}

/// An analysis over `psi-ca-v1` cell counts.
pub trait Analysis: Sync {
    /// Name in CLI subcommands and routes (`[a-z_]+`).
    fn name(&self) -> &'static str;

    /// One line for `--help` and listings.
    fn about(&self) -> &'static str;

    /// What a run releases per cell. Default: [`Releases::Counts`].
    fn releases(&self) -> Releases {
        Releases::Counts
    }

    /// The columns the request reads on each side. Default: one group-by column list per side
    /// ([`group_by_inputs`]), and for [`Releases::Sums`] the peer's value column too.
    fn inputs(&self, request: &RunRequest) -> Inputs {
        match self.releases() {
            Releases::Counts => group_by_inputs(request),
            Releases::Sums => revenue::inputs(request),
        }
    }

    /// The cells it needs, from the agreement's public value sets of the group-by columns
    /// (errors: 422 `invalid_query` for a column the agreement does not list). Default: the
    /// cross product of each side's group-by labels ([`group_by_cells`]).
    fn cells(
        &self,
        agreement: &Agreement,
        querier: &str,
        responder: &str,
        inputs: &Inputs,
    ) -> Result<CellGrid> {
        group_by_cells(agreement, querier, responder, inputs)
    }

    /// L1 sensitivity of each cell to one person (`psi-ca-v1` counts: 1, the default).
    fn sensitivity(&self) -> u32 {
        1
    }

    /// The default split of ε between the parties. Default: [`EpsilonSplit::COUNTS`].
    fn epsilon_split(&self) -> EpsilonSplit {
        EpsilonSplit::COUNTS
    }

    /// Turns noised cells into the report's cells, with intervals at [`CONFIDENCE`]. Default:
    /// every cell with its interval and threshold flag ([`cells_with_intervals`]); for
    /// [`Releases::Sums`], the released sums as `revenue` shows them ([`revenue::sum_cells`]).
    fn outputs(&self, noised: &NoisedCells<'_>) -> Result<Vec<Cell>> {
        match self.releases() {
            Releases::Counts => cells_with_intervals(noised),
            Releases::Sums => revenue::sum_cells(noised),
        }
    }

    /// Renders a report.
    fn render(&self, report: &Report, format: Format) -> Result<String>;

    /// The derived figures (indices, rates, lifts, credits … each with its interval at
    /// [`CONFIDENCE`], plus the noise-share indicator) from the noised cells, the peer's noised
    /// bucket sizes and this node's exact sizes, given the query's `options`; pure
    /// post-processing, no budget. `None` for an analysis whose figures are its cells.
    /// Errors: 422 `invalid_query` for an unknown option key or a label not in the grid (the
    /// querier checks options on zero cells before charging, see [`check_options`]).
    fn derived(
        &self,
        _noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &[])?;
        Ok(None)
    }

    /// Option keys that are querier-local public inputs of the post-processing only (ROAS's
    /// `spend`): not part of the released data, so they are left out of the cache key and a
    /// stored run answers a query that differs from it only in them, its figures derived anew
    /// from the stored report's cells ([`rederive`]) with nothing released or charged. An
    /// analysis naming any must derive its figures from its cells (for a value analysis, the
    /// sums) and the run's noise alone. Default: none.
    fn local_options(&self) -> &'static [&'static str] {
        &[]
    }

    /// The inputs its request takes, for forms (`GET /api/v1/analyses`; the console's Ask page
    /// draws its form from them). Default: the [`Query`] fields every analysis takes
    /// ([`common_inputs`]; for [`Releases::Sums`] with the peer's value column,
    /// `revenue::value_form`); an analysis with options of its own appends them.
    fn form(&self) -> Vec<InputSpec> {
        match self.releases() {
            Releases::Counts => common_inputs(),
            Releases::Sums => revenue::value_form(),
        }
    }
}

/// Checks `options` of `analysis` before anything is charged: runs [`Analysis::derived`] on the
/// query's grid with zero cells, unit sizes and the run's noise (and, for a value analysis, zero
/// sums under the run's `psi-sum-v1` parameters, with squares exactly when the agreement
/// releases them), so an unknown key or label, or a figure the agreement's value column cannot
/// give, is a 422 `invalid_query` that spends nothing.
pub fn check_options(
    analysis: &dyn Analysis,
    grid: &CellGrid,
    params: &RunParams,
    sum: Option<&crate::sums::SumPlan>,
    options: &BTreeMap<String, String>,
) -> Result<()> {
    derive_on(analysis, grid, params, sum, None, options).map(|_| ())
}

/// The figures of a stored value run's `report` derived anew with `options` that differ from
/// its own only in [`Analysis::local_options`]: [`Analysis::derived`] on the report's cells (the
/// released sums, as stored) under the run's `psi-sum-v1` noise, which `grid`, `params` and
/// `sum` (the query's, as for [`check_options`]) give again. Post-processing of released figures:
/// nothing is released or charged. Errors: 500 `internal` when the report's cells do not fit the
/// grid, else as [`Analysis::derived`].
pub fn rederive(
    analysis: &dyn Analysis,
    report: &Report,
    grid: &CellGrid,
    params: &RunParams,
    sum: Option<&crate::sums::SumPlan>,
    options: &BTreeMap<String, String>,
) -> Result<Option<serde_json::Value>> {
    if report.cells.len() != grid.len() || sum.is_none() {
        return Err(NodeError::internal(
            "a stored report to derive anew must be a value run with one cell per grid cell",
        ));
    }
    let sums = report.cells.iter().map(|c| c.estimate).collect();
    derive_on(analysis, grid, params, sum, Some(sums), options)
}

/// [`Analysis::derived`] on `grid` with zero counts, unit sizes and the run's noise; for a value
/// analysis the sums are `sums` (zero when `None`) under the run's `psi-sum-v1` parameters.
fn derive_on(
    analysis: &dyn Analysis,
    grid: &CellGrid,
    params: &RunParams,
    sum: Option<&crate::sums::SumPlan>,
    sums: Option<Vec<i64>>,
    options: &BTreeMap<String, String>,
) -> Result<Option<serde_json::Value>> {
    let mut placeholder = sum
        .map(|plan| crate::sums::placeholder(plan, params))
        .transpose()?;
    if let (Some((_, cell_sums)), Some(sums)) = (placeholder.as_mut(), sums) {
        cell_sums.sums = sums;
    }
    let counts = CellCounts {
        querier_buckets: grid.querier.len() as u32,
        responder_buckets: grid.responder.len() as u32,
        noised: vec![0; grid.len()],
        responder_bucket_sizes_noised: vec![
            u64::from(params.responder_bucket_noise.offset) + 1;
            grid.responder.len()
        ],
    };
    let sizes = vec![1; grid.querier.len()];
    let noised = NoisedCells {
        grid,
        params,
        counts: &counts,
        threshold: 0,
        my_sizes: &sizes,
        sums: placeholder.as_ref().map(|(p, s)| (p, s)),
    };
    analysis.derived(&noised, options)
}

/// Refuses an option key outside `known` (422 `invalid_query` naming the known ones).
pub fn check_option_keys(options: &BTreeMap<String, String>, known: &[&str]) -> Result<()> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) if known.is_empty() => Err(NodeError::invalid_query(format!(
            "unknown option {k:?}: this analysis takes no options"
        ))),
        Some(k) => Err(NodeError::invalid_query(format!(
            "unknown option {k:?} (this analysis takes: {})",
            known.join(", ")
        ))),
    }
}

/// The noised run as `tandem-analytics` reads it (spec `analyses-v1` §1.1): cells and the
/// peer's sizes with their noise distributions, this node's exact sizes.
pub fn analytics_grid(noised: &NoisedCells<'_>) -> Result<tandem_analytics::Grid> {
    let to_noise = |d: &tandem_dp::ShiftedLaplace| {
        tandem_analytics::Noise::clamped_laplace(d.scale, d.offset).map_err(analytics_error)
    };
    let cell = to_noise(&noised.params.cell_noise)?;
    let size = to_noise(&noised.params.responder_bucket_noise)?;
    let offset = noised.params.responder_bucket_noise.offset;
    let grid = tandem_analytics::Grid::new(
        noised.grid.querier.clone(),
        noised.grid.responder.clone(),
        noised
            .counts
            .noised
            .iter()
            .map(|&c| tandem_analytics::NoisyCount::new(c, cell))
            .collect(),
        noised.my_sizes.to_vec(),
        noised
            .counts
            .responder_bucket_sizes_noised
            .iter()
            .map(|&c| {
                // psi-ca-v1 §4.4: the querier sees `|B_g| + J_B[g]` with `J_B` shifted by its
                // offset `T`; the unbiased estimate subtracts it.
                let c = i64::try_from(c).unwrap_or(i64::MAX);
                tandem_analytics::NoisyCount::new(c - i64::from(offset), size)
            })
            .collect(),
    );
    grid.map_err(analytics_error)
}

/// An analytics error as 422 `invalid_query` (a label or option that does not fit the grid).
pub fn analytics_error(e: tandem_analytics::AnalyticsError) -> NodeError {
    NodeError::invalid_query(e.to_string())
}

/// The value of option `key`, or `default`.
pub fn option<'o>(options: &'o BTreeMap<String, String>, key: &str, default: &'o str) -> &'o str {
    options.get(key).map_or(default, String::as_str)
}

/// The peer bucket holding converters: option `key` if given, else the first of `1`, `yes`,
/// `true`, `converted`, `purchased` among the peer's labels (422 when none is).
pub fn converted_label(
    options: &BTreeMap<String, String>,
    key: &str,
    peer: &[String],
) -> Result<String> {
    if let Some(v) = options.get(key) {
        return Ok(v.clone());
    }
    ["1", "yes", "true", "converted", "purchased", "active"]
        .iter()
        .find(|c| peer.iter().any(|p| p == *c))
        .map(|c| (*c).to_string())
        .ok_or_else(|| {
            NodeError::invalid_query(format!(
                "name the peer's converting value with option {key}=VALUE (its values: {})",
                peer.join(", ")
            ))
        })
}

/// `inference=descriptive|population` (default `default`).
pub fn inference_option(
    options: &BTreeMap<String, String>,
    default: tandem_analytics::Inference,
) -> Result<tandem_analytics::Inference> {
    match options.get("inference").map(String::as_str) {
        None => Ok(default),
        Some("descriptive") => Ok(tandem_analytics::Inference::Descriptive),
        Some("population") => Ok(tandem_analytics::Inference::Population),
        Some(v) => Err(NodeError::invalid_query(format!(
            "option inference={v:?}: use descriptive or population"
        ))),
    }
}

/// A comma-separated list option, or `None` when absent.
pub fn list_option(options: &BTreeMap<String, String>, key: &str) -> Option<Vec<String>> {
    options.get(key).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// The derived figures of a report as the analysis's result type.
pub fn details_as<T: serde::de::DeserializeOwned>(report: &Report) -> Result<T> {
    let v = report.details.clone().ok_or_else(|| {
        NodeError::internal(format!(
            "the {} report has no derived figures",
            report.analysis
        ))
    })?;
    Ok(serde_json::from_value(v)?)
}

/// The derived figures as JSON.
pub fn to_details<T: Serialize>(value: &T) -> Result<Option<serde_json::Value>> {
    Ok(Some(serde_json::to_value(value)?))
}

/// The columns of an analysis that reads one group-by column per side (the querier's and the
/// responder's of the request), as every single-run analysis of the registry does.
pub fn group_by_inputs(request: &RunRequest) -> Inputs {
    Inputs {
        querier_group_by: request.querier_columns.clone(),
        responder_group_by: request.responder_columns.clone(),
        ..Inputs::default()
    }
}

/// The cells of a one-run analysis: each side's bucket labels of its group-by column.
pub fn group_by_cells(
    agreement: &Agreement,
    querier: &str,
    responder: &str,
    inputs: &Inputs,
) -> Result<CellGrid> {
    Ok(CellGrid {
        querier: bucket_labels(agreement, querier, &inputs.querier_group_by)?,
        responder: bucket_labels(agreement, responder, &inputs.responder_group_by)?,
    })
}

/// What kind of value an input takes (how a form asks for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// An agreement id (one of `GET /api/v1/agreements`).
    Agreement,
    /// One of the agreement's join keys.
    JoinKey,
    /// A column of the querier's (this node's) party in the agreement.
    OwnColumn,
    /// A column of the responder's (the peer's) party in the agreement.
    PeerColumn,
    /// ε, positive, at most the smaller per-query cap of the two parties.
    Epsilon,
    /// A number.
    Number,
    /// A whole number.
    Integer,
    /// True or false.
    Boolean,
    /// One of `choices`.
    Choice,
    /// Free text.
    Text,
}

/// One input of an analysis request: the JSON field `name` of the request body.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InputSpec {
    /// The request body's field.
    pub name: &'static str,
    /// What kind of value it takes.
    pub kind: InputKind,
    /// A label for people.
    pub label: &'static str,
    /// What it does, for people.
    pub about: &'static str,
    /// The request needs it.
    pub required: bool,
    /// The values a [`InputKind::Choice`] takes (empty otherwise).
    pub choices: Vec<&'static str>,
    /// The value used when it is left out (null: none).
    pub default: Option<serde_json::Value>,
    /// The input is one of the analysis's own: it goes inside the request's
    /// [`Query::options`] under `name`, as a string; otherwise it is a top-level [`Query`] field.
    pub option: bool,
}

impl InputSpec {
    /// An analysis's own input: key `name` of [`Query::options`], optional, no choices or default.
    pub fn option(
        name: &'static str,
        kind: InputKind,
        label: &'static str,
        about: &'static str,
    ) -> InputSpec {
        InputSpec {
            name,
            kind,
            label,
            about,
            required: false,
            choices: Vec::new(),
            default: None,
            option: true,
        }
    }

    /// The request needs it.
    pub fn required(mut self) -> InputSpec {
        self.required = true;
        self
    }

    /// A [`InputKind::Choice`] among `choices`.
    pub fn choices(mut self, choices: &[&'static str]) -> InputSpec {
        self.kind = InputKind::Choice;
        self.choices = choices.to_vec();
        self
    }

    /// The value used when it is left out.
    pub fn default(mut self, value: &str) -> InputSpec {
        self.default = Some(serde_json::Value::String(value.to_string()));
        self
    }
}

/// The `inference` option of the analyses that offer both readings (`analyses-v1` §1.2),
/// defaulting to `default` (`descriptive` or `population`).
pub fn inference_input(default: &str) -> InputSpec {
    InputSpec::option(
        "inference",
        InputKind::Choice,
        "Inference",
        "descriptive: about these customers; population: about the population they are drawn from (wider intervals)",
    )
    .choices(&["descriptive", "population"])
    .default(default)
}

/// [`common_inputs`] followed by an analysis's own `options`.
pub fn with_options(options: Vec<InputSpec>) -> Vec<InputSpec> {
    let mut all = common_inputs();
    all.extend(options);
    all
}

/// The inputs of [`Query`], which every analysis takes.
pub fn common_inputs() -> Vec<InputSpec> {
    let input = |name, kind, label, about, required| InputSpec {
        name,
        kind,
        label,
        about,
        required,
        choices: Vec::new(),
        default: None,
        option: false,
    };
    vec![
        input(
            "agreement_id",
            InputKind::Agreement,
            "Agreement",
            "The agreement to ask under",
            true,
        ),
        input(
            "group_by",
            InputKind::OwnColumn,
            "Split our customers by",
            "One of our columns in the agreement (none: everyone in one group)",
            false,
        ),
        input(
            "peer_group_by",
            InputKind::PeerColumn,
            "Split the partner's customers by",
            "One of the partner's columns in the agreement (none: everyone in one group)",
            false,
        ),
        input(
            "join_key",
            InputKind::JoinKey,
            "Match customers on",
            "The identifier both sides match on (none: the agreement's first)",
            false,
        ),
        input(
            "epsilon",
            InputKind::Epsilon,
            "Privacy budget for this question (ε)",
            "Larger ε: narrower intervals, more budget spent",
            true,
        ),
    ]
}

/// An analysis as `GET /api/v1/analyses` lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AnalysisInfo {
    /// Its name (in routes and `tandem query <name>`).
    pub name: &'static str,
    /// One line saying what it answers.
    pub about: &'static str,
    /// Where to run it (`POST`, body: the inputs as JSON).
    pub endpoint: String,
    /// Where to preview it for free (`POST`, same body).
    pub preview_endpoint: String,
    /// The inputs its request takes.
    pub inputs: Vec<InputSpec>,
}

/// Every registered analysis with its inputs.
pub fn catalogue() -> Vec<AnalysisInfo> {
    REGISTRY
        .iter()
        .map(|a| AnalysisInfo {
            name: a.name(),
            about: a.about(),
            endpoint: format!("/api/v1/query/{}", a.name()),
            preview_endpoint: format!("/api/v1/query/{}/preview", a.name()),
            inputs: a.form(),
        })
        .collect()
}

/// Joins the labels of several grouping columns in a bucket label (`25-34|north`).
pub const LABEL_SEPARATOR: &str = "|";

/// The most cells a run may have: `psi-ca-v1`'s limit on querier × responder buckets.
pub const MAX_CELLS: u64 = tandem_psi::MAX_CELLS;

/// Bucket labels of a side grouped by `columns`: the cross product of each column's public
/// values plus `other` (first column slowest, labels joined by [`LABEL_SEPARATOR`]), or `[all]`
/// for no column. Errors: the agreement's error for a column it does not list for `party`, 422
/// `invalid_query` when the product exceeds [`MAX_CELLS`] (naming both numbers) or a column
/// is named twice.
pub fn bucket_labels(
    agreement: &Agreement,
    party: &str,
    columns: &[String],
) -> Result<Vec<String>> {
    let per_column = columns
        .iter()
        .map(|c| agreement.bucket_labels(party, c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(NodeError::invalid_query(format!(
                "{party}: column {c:?} is named twice"
            )));
        }
    }
    let n = per_column
        .iter()
        .fold(1u64, |n, labels| n.saturating_mul(labels.len() as u64));
    if n > MAX_CELLS {
        return Err(NodeError::invalid_query(format!(
            "{party}: grouping by {} makes {n} buckets, over the limit of {MAX_CELLS} cells",
            columns.join(", ")
        )));
    }
    let mut labels = vec![String::new()];
    for (i, column) in per_column.iter().enumerate() {
        labels = labels
            .iter()
            .flat_map(|prefix| {
                column.iter().map(move |l| {
                    if i == 0 {
                        l.clone()
                    } else {
                        format!("{prefix}{LABEL_SEPARATOR}{l}")
                    }
                })
            })
            .collect();
    }
    if columns.is_empty() {
        labels = vec![ALL.to_string()];
    }
    Ok(labels)
}

/// Checks a grid's cell count against [`MAX_CELLS`] before anything is charged. Errors: 422
/// `invalid_query` naming the count (`querier buckets × responder buckets`) and the limit.
pub fn check_cell_limit(querier_buckets: usize, responder_buckets: usize) -> Result<()> {
    let cells = (querier_buckets as u64).saturating_mul(responder_buckets as u64);
    if cells > MAX_CELLS {
        return Err(NodeError::invalid_query(format!(
            "the request makes {cells} cells ({querier_buckets} × {responder_buckets} buckets), \
             over psi-ca-v1's limit of {MAX_CELLS} cells; group by fewer columns or columns \
             with fewer values"
        )));
    }
    Ok(())
}

/// The first 12 characters of a hex id.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The cells of `noised` with their intervals at [`CONFIDENCE`] and the threshold flag.
pub fn cells_with_intervals(noised: &NoisedCells<'_>) -> Result<Vec<Cell>> {
    let threshold = i64::try_from(noised.threshold).unwrap_or(i64::MAX);
    grid_cells(noised.grid, |_, ga, gb| {
        let estimate = noised.counts.get(ga, gb);
        let (ci_low, ci_high) =
            tandem_psi::accounting::interval(noised.params, estimate, 1.0 - CONFIDENCE)?;
        Ok((
            (estimate, ci_low, ci_high),
            threshold > 0 && estimate < threshold,
        ))
    })
}

/// A report's cells in grid order (querier bucket major): `figure(i, ga, gb)` gives cell `i`'s
/// `(estimate, ci_low, ci_high)` and its threshold flag; the labels come from `grid`.
pub(crate) fn grid_cells(
    grid: &CellGrid,
    mut figure: impl FnMut(usize, u32, u32) -> Result<((i64, i64, i64), bool)>,
) -> Result<Vec<Cell>> {
    let mut out = Vec::with_capacity(grid.len());
    for (ga, qa) in grid.querier.iter().enumerate() {
        for (gb, rb) in grid.responder.iter().enumerate() {
            let ((estimate, ci_low, ci_high), below_threshold) =
                figure(out.len(), ga as u32, gb as u32)?;
            out.push(Cell {
                querier_group: qa.clone(),
                responder_group: rb.clone(),
                estimate,
                ci_low,
                ci_high,
                below_threshold,
                truth: None,
            });
        }
    }
    Ok(out)
}

/// The report's cells as CSV (`querier_group,responder_group,estimate,ci_low,ci_high,
/// below_threshold[,truth],querier_internal`; see [`cells_csv_rows`]).
pub fn cells_csv(report: &Report) -> String {
    cells_csv_rows(&report.cells, report.querier_internal)
}

/// One CSV row per cell with a header; the last column, `querier_internal`, is `true` on every
/// row of a stored report (do not share it with the responder, psi-ca-v1 §8.7) and `false` on
/// a partner export's (re-noised by the querier, safe to share).
pub fn cells_csv_rows(cells: &[Cell], querier_internal: bool) -> String {
    let show_truth = cells.iter().any(|c| c.truth.is_some());
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut s =
        String::from("querier_group,responder_group,estimate,ci_low,ci_high,below_threshold");
    s.push_str(if show_truth { ",truth" } else { "" });
    s.push_str(",querier_internal\n");
    for c in cells {
        s += &format!(
            "{},{},{},{},{},{}",
            quote(&c.querier_group),
            quote(&c.responder_group),
            c.estimate,
            c.ci_low,
            c.ci_high,
            c.below_threshold
        );
        if show_truth {
            s += &format!(",{}", c.truth.map(|t| t.to_string()).unwrap_or_default());
        }
        s += &format!(",{querier_internal}\n");
    }
    s
}

/// The first lines of an analysis table: title, purpose, join key, columns, ε and whether the
/// answer was cached.
pub fn table_header(r: &Report, title: &str) -> String {
    let mut s = format!(
        "{title}: {} × {} under agreement {}\nPurpose: {}\n",
        r.querier,
        r.responder,
        short(&r.agreement_id),
        r.purpose
    );
    s += &format!(
        "Join key: {} · {}.{} × {}.{} · ε = {} · {}\n",
        r.join_key,
        r.querier,
        r.querier_column.as_deref().unwrap_or(ALL),
        r.responder,
        r.responder_column.as_deref().unwrap_or(ALL),
        r.epsilon,
        if r.cached {
            format!(
                "cached answer of run {} (no budget spent)",
                short(&r.run_id)
            )
        } else {
            format!("run {} · {}", short(&r.run_id), r.protocol)
        }
    );
    s
}

/// The last lines of an analysis table: the noise-share indicator, the budgets, the wall time.
pub fn table_footer(r: &Report, noise: &tandem_analytics::NoiseShare) -> String {
    table_footer_of(r, noise, "counts")
}

/// [`table_footer`] whose noise share is over the released `what` (`counts`, or `sums` for the
/// value analyses).
pub fn table_footer_of(r: &Report, noise: &tandem_analytics::NoiseShare, what: &str) -> String {
    let mut s = format!(
        "\nnoise share: {} of {} released {what} ({:.0}%) have noise s.d. above 10% of their estimate\n",
        noise.affected,
        noise.cells,
        noise.share * 100.0
    );
    s += &budget_footer(r);
    s
}

/// The last lines of every table: both sides' budgets and the run's wall time.
pub fn budget_footer(r: &Report) -> String {
    let mut s = String::new();
    for b in [&r.querier_budget, &r.responder_budget] {
        s += &overlap::budget_line(b);
        s.push('\n');
    }
    s += &format!("wall time {:.2} s\n", r.wall_s);
    s
}

/// `estimate [low, high]` of a derived figure, with `digits` decimals (`—` for none).
pub fn fmt_estimate(e: Option<&tandem_analytics::Estimate>, digits: usize) -> String {
    match e {
        None => "—".to_string(),
        Some(e) => format!(
            "{:.digits$} [{:.digits$}, {:.digits$}]",
            e.estimate, e.ci_low, e.ci_high
        ),
    }
}

/// A ratio-like figure (index, ratio, value per member) as [`fmt_estimate`], [`TOO_SMALL`]
/// for none.
pub fn fmt_ratio(e: Option<&tandem_analytics::Estimate>, digits: usize) -> String {
    e.map_or_else(|| TOO_SMALL.to_string(), |e| fmt_estimate(Some(e), digits))
}

/// A rate or share as `12.3% [10.1%, 14.6%]` ([`TOO_SMALL`] for none).
pub fn fmt_percent(e: Option<&tandem_analytics::Estimate>) -> String {
    match e {
        None => TOO_SMALL.to_string(),
        Some(e) => format!(
            "{:.1}% [{:.1}%, {:.1}%]",
            e.estimate * 100.0,
            e.ci_low * 100.0,
            e.ci_high * 100.0
        ),
    }
}

/// What a rate, share, index or ratio reads as when it has no estimate (`null` in JSON): a
/// denominator is empty or too small against its noise (its interval reaches 0). The one rule
/// of `tandem_analytics` (spec `analyses-v1` §1.3, "known range") also clamps every such
/// figure's estimate and interval into its range (rates `[0, 1]`).
pub const TOO_SMALL: &str = "too small to estimate";

/// Renders rows as a left-aligned first column and right-aligned others.
pub fn fmt_rows(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i == 0 {
                s += c;
                s += &" ".repeat(pad);
            } else {
                s += "  ";
                s += &" ".repeat(pad);
                s += c;
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = String::from("\n");
    s += &line(header.to_vec());
    for r in rows {
        s += &line(r.iter().map(String::as_str).collect());
    }
    s
}

/// Renders a report with derived figures: `table` for people, the whole report as JSON, or
/// the cells as CSV.
pub fn render_with(
    report: &Report,
    format: Format,
    table: impl FnOnce(&Report) -> Result<String>,
) -> Result<String> {
    Ok(match format {
        Format::Table => table(report)?,
        Format::Json => serde_json::to_string_pretty(report)?,
        Format::Csv => cells_csv(report),
    })
}

/// Test helpers: planted cell counts through a run's noise (seeded), for coverage tests of the
/// derived figures.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use tandem_dp::NoiseSource;
    use tandem_psi::{CellCounts, RunParams};

    use super::{Analysis, CellGrid, NoisedCells};
    use crate::error::Result;

    /// The parameters of a planted value run over `querier × responder` buckets: the count run
    /// at ε `(querier, responder)`, and `psi-sum-v1` sums of `revenue_cents` with bound `bound`
    /// at ε 0.5 (squares when asked), δ 10⁻⁹.
    pub fn value_run(
        querier: u32,
        responder: u32,
        eps: (f64, f64),
        bound: u32,
        squares: bool,
    ) -> (RunParams, tandem_sum::SumParams) {
        let psi = RunParams::for_epsilon(
            [1; 32], "email/x", [2; 16], querier, responder, eps.0, eps.1, 1e-9,
        )
        .expect("psi");
        let sum = tandem_sum::SumParams::for_epsilon(
            [1; 32],
            [2; 16],
            [3; 32],
            "revenue_cents",
            querier * responder,
            bound,
            squares,
            0.5,
            1e-9,
        )
        .expect("sum");
        (psi, sum)
    }

    /// `truth` released once under `dist` (seeded): each plus a fresh clamped error.
    pub fn noised(
        noise: &mut tandem_testkit::noise::SeededLaplace,
        dist: &tandem_dp::ShiftedLaplace,
        truth: &[i64],
    ) -> Vec<i64> {
        let t = i64::from(dist.offset);
        let draws = noise.shifted(dist, truth.len()).expect("draws");
        truth
            .iter()
            .zip(&draws)
            .map(|(s, &d)| s + i64::from(d) - t)
            .collect()
    }

    /// The plan of [`value_run`]'s sums (bound 1000), as `check_options` takes it.
    pub fn value_plan(squares: bool) -> crate::sums::SumPlan {
        crate::sums::SumPlan {
            column: "revenue_cents".into(),
            unit: "cents".into(),
            bound: 1000,
            squares,
            epsilon: 0.5,
            delta: 1e-9,
        }
    }

    /// Options from pairs.
    pub fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A planted run: true overlap cells (row-major), my sizes, the peer's sizes.
    pub struct Planted {
        pub grid: CellGrid,
        pub cells: Vec<u64>,
        pub my_sizes: Vec<u64>,
        pub peer_sizes: Vec<u64>,
    }

    impl Planted {
        /// The peer's sizes are twice its column sums (half of its customers are not mine).
        pub fn new(mine: &[&str], peer: &[&str], cells: &[u64], my_sizes: &[u64]) -> Planted {
            let nc = peer.len();
            let peer_sizes = (0..nc)
                .map(|c| 2 * cells.iter().skip(c).step_by(nc).sum::<u64>())
                .collect();
            Planted {
                grid: CellGrid {
                    querier: mine.iter().map(|s| s.to_string()).collect(),
                    responder: peer.iter().map(|s| s.to_string()).collect(),
                },
                cells: cells.to_vec(),
                my_sizes: my_sizes.to_vec(),
                peer_sizes,
            }
        }

        /// The grid without noise (the truth every figure is compared with).
        pub fn truth_grid(&self) -> tandem_analytics::Grid {
            tandem_analytics::Grid::new(
                self.grid.querier.clone(),
                self.grid.responder.clone(),
                self.cells
                    .iter()
                    .map(|&c| tandem_analytics::NoisyCount::exact(c))
                    .collect(),
                self.my_sizes.clone(),
                self.peer_sizes
                    .iter()
                    .map(|&c| tandem_analytics::NoisyCount::exact(c))
                    .collect(),
            )
            .expect("planted grid")
        }

        /// One run at `epsilon` (the default split) with noise seeded by `seed`: the
        /// analysis's derived figures.
        pub fn derive(
            &self,
            analysis: &dyn Analysis,
            options: &BTreeMap<String, String>,
            epsilon: f64,
            seed: u64,
        ) -> Result<serde_json::Value> {
            let split = analysis.epsilon_split();
            let params = RunParams::for_epsilon(
                [7; 32],
                "email/tandem-id-v1",
                [1; 16],
                self.grid.querier.len() as u32,
                self.grid.responder.len() as u32,
                epsilon * split.querier,
                epsilon * split.responder,
                1e-9,
            )?;
            let mut noise = tandem_testkit::noise::SeededLaplace::new(seed);
            let draw = |dist: &tandem_dp::ShiftedLaplace,
                        truth: &[u64],
                        n: &mut tandem_testkit::noise::SeededLaplace| {
                let d = n.shifted(dist, truth.len()).expect("draws");
                truth
                    .iter()
                    .zip(d)
                    .map(|(&t, z)| t as i64 + i64::from(z) - i64::from(dist.offset))
                    .collect::<Vec<i64>>()
            };
            let cells = draw(&params.cell_noise, &self.cells, &mut noise);
            let sizes = draw(&params.responder_bucket_noise, &self.peer_sizes, &mut noise);
            // The querier sees the sizes with the junk's offset in (psi-ca-v1 §4.4).
            let size_offset = i64::from(params.responder_bucket_noise.offset);
            let counts = CellCounts {
                querier_buckets: self.grid.querier.len() as u32,
                responder_buckets: self.grid.responder.len() as u32,
                noised: cells,
                responder_bucket_sizes_noised: sizes
                    .iter()
                    .map(|&s| (s + size_offset).max(0) as u64)
                    .collect(),
            };
            let noised = NoisedCells {
                grid: &self.grid,
                params: &params,
                counts: &counts,
                threshold: 0,
                my_sizes: &self.my_sizes,
                sums: None,
            };
            super::check_options(analysis, &self.grid, &params, None, options)?;
            Ok(analysis.derived(&noised, options)?.unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API bodies: a single string (as before), a list, a comma-separated string, `null` or
    /// nothing.
    #[test]
    fn query_group_by_reads_a_string_or_a_list() {
        let q = |body: &str| -> Query { serde_json::from_str(body).expect("query parses") };
        let old = q(r#"{"agreement_id":"ab","group_by":"seg","peer_group_by":null,"epsilon":1}"#);
        assert_eq!(
            (old.group_by, old.peer_group_by),
            (vec!["seg".into()], vec![])
        );
        let list = q(r#"{"agreement_id":"ab","group_by":["age_band","region"],
            "peer_group_by":"tier, channel","epsilon":1}"#);
        assert_eq!(list.group_by, ["age_band", "region"]);
        assert_eq!(list.peer_group_by, ["tier", "channel"]);
        let none = q(r#"{"agreement_id":"ab","epsilon":1}"#);
        assert!(none.group_by.is_empty() && none.peer_group_by.is_empty());
    }

    #[test]
    fn several_columns_make_the_cross_product_of_their_labels() {
        let agreement = tandem_testkit::AgreementBuilder::new()
            .party(
                tandem_testkit::PartySpec::seeded("acme", 1)
                    .column("age", &["young", "old"])
                    .column("region", &["north"]),
            )
            .party(tandem_testkit::PartySpec::seeded("shopx", 2))
            .agreement();
        let labels =
            bucket_labels(&agreement, "acme", &["age".into(), "region".into()]).expect("labels");
        assert_eq!(
            labels,
            [
                "young|north",
                "young|other",
                "old|north",
                "old|other",
                "other|north",
                "other|other"
            ]
        );
        assert_eq!(
            bucket_labels(&agreement, "acme", &[]).expect("all"),
            ["all"]
        );
        let twice = bucket_labels(&agreement, "acme", &["age".into(), "age".into()]);
        assert!(twice.is_err());
        assert!(bucket_labels(&agreement, "acme", &["tier".into()]).is_err());
    }

    #[test]
    fn registry_names_are_unique_and_found() {
        let mut n = names();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), REGISTRY.len());
        for a in REGISTRY {
            assert_eq!(find(a.name()).map(|f| f.name()).ok(), Some(a.name()));
            assert!(
                a.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        let err = find("uplift").err().map(|e| e.code_str().to_string());
        assert_eq!(err.as_deref(), Some("not_found"));
    }

    /// A plan with squares for a value analysis (what `sums::plan` gives under an agreement that
    /// lists the peer's value column with squares), none for a count analysis.
    fn sum_plan(a: &dyn Analysis) -> Option<crate::sums::SumPlan> {
        let value = a.form().iter().any(|i| i.name == "peer_value");
        value.then(|| crate::sums::SumPlan {
            column: "revenue_cents".into(),
            unit: "cents".into(),
            bound: 1000,
            squares: true,
            epsilon: 0.5,
            delta: 1e-9,
        })
    }

    /// The keys `derived` accepts, read off its refusal of a key no analysis takes.
    fn accepted_option_keys(a: &dyn Analysis, grid: &CellGrid, params: &RunParams) -> Vec<String> {
        let probe = BTreeMap::from([("no_such_option".to_string(), "x".to_string())]);
        let err = check_options(a, grid, params, sum_plan(a).as_ref(), &probe)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown option"), "{}: {err}", a.name());
        match err.split_once("this analysis takes: ") {
            Some((_, keys)) => keys
                .trim_end_matches(')')
                .split(", ")
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        }
    }

    #[test]
    fn every_form_offers_exactly_the_options_its_analysis_reads() {
        let grid = CellGrid {
            querier: ["test", "control", "other"].map(String::from).to_vec(),
            responder: ["no", "yes", "other"].map(String::from).to_vec(),
        };
        let params =
            RunParams::for_epsilon([7; 32], "email/tandem-id-v1", [1; 16], 3, 3, 0.5, 0.5, 1e-9)
                .expect("params");
        for a in REGISTRY {
            let form = a.form();
            let mut offered: Vec<String> = form
                .iter()
                .filter(|i| i.option)
                .map(|i| i.name.to_string())
                .collect();
            let mut accepted = accepted_option_keys(*a, &grid, &params);
            offered.sort();
            accepted.sort();
            assert_eq!(offered, accepted, "{}", a.name());
            for i in form.iter().filter(|i| i.option) {
                // Each offered key passes the key check (its value may still not fit this grid).
                let value = i
                    .default
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .or(i.choices.first().copied())
                    .unwrap_or("x");
                let one = BTreeMap::from([(i.name.to_string(), value.to_string())]);
                if let Err(e) = check_options(*a, &grid, &params, sum_plan(*a).as_ref(), &one) {
                    assert!(
                        !e.to_string().contains("unknown option"),
                        "{}: {e}",
                        a.name()
                    );
                }
                assert!(
                    i.kind != InputKind::Choice || i.choices.iter().all(|c| !c.is_empty()),
                    "{}",
                    i.name
                );
            }
            // Common inputs are Query fields, never options; a value analysis adds the Query
            // field `peer_value`.
            let fields: Vec<&str> = form.iter().filter(|i| !i.option).map(|i| i.name).collect();
            let common: Vec<&str> = common_inputs().iter().map(|i| i.name).collect();
            assert!(fields.starts_with(&common), "{}", a.name());
            assert!(
                fields[common.len()..].iter().all(|f| *f == "peer_value"),
                "{}: {fields:?}",
                a.name()
            );
        }
    }

    #[test]
    fn the_catalogue_lists_every_analysis_with_the_query_fields_it_takes() {
        let listed = catalogue();
        assert_eq!(listed.iter().map(|a| a.name).collect::<Vec<_>>(), names());
        for a in &listed {
            let inputs: Vec<&str> = a.inputs.iter().map(|i| i.name).collect();
            for common in [
                "agreement_id",
                "group_by",
                "peer_group_by",
                "join_key",
                "epsilon",
            ] {
                assert!(inputs.contains(&common), "{}: {common}", a.name);
            }
            assert!(a.endpoint.ends_with(a.name));
            // Every common input is a field of the request body.
            let body = serde_json::to_value(Query {
                agreement_id: String::new(),
                join_key: None,
                group_by: Vec::new(),
                peer_group_by: Vec::new(),
                peer_value: None,
                epsilon: 1.0,
                fresh: false,
                options: Default::default(),
            })
            .expect("json");
            for i in common_inputs() {
                assert!(body.get(i.name).is_some(), "{}", i.name);
            }
        }
    }
}
