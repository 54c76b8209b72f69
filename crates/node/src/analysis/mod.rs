//! Analyses as modules. An [`Analysis`] declares what it reads on each side, the cells it
//! needs, its sensitivity and default ε split, how noised cells become its outputs (with
//! intervals), and how it renders. The [`REGISTRY`] lists them; `tandem query <analysis>`, the
//! API routes `/api/v1/query/<analysis>[/preview]` and the free preview all derive from it, and
//! the run engine (the querier and responder modules) is the same for every analysis.
//!
//! Adding an analysis: one file in this directory implementing [`Analysis`] (with its tests),
//! plus one line in [`REGISTRY`].

pub mod overlap;
pub mod revenue;

use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_psi::{CellCounts, RunParams};

use crate::error::{NodeError, Result};
use crate::wire::{BudgetView, RunRequest};

/// Every analysis this node runs, by name. One line per analysis.
pub static REGISTRY: &[&dyn Analysis] =
    &[&overlap::Overlap, &revenue::Revenue, &revenue::AverageValue];

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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Query {
    /// Agreement to act under (hex id).
    pub agreement_id: String,
    /// Join key kind (`email`, `phone`, …); defaults to the agreement's first.
    pub join_key: Option<String>,
    /// Querier's column to group by (None: one bucket).
    pub group_by: Option<String>,
    /// Responder's column to group by (None: one bucket).
    pub peer_group_by: Option<String>,
    /// Responder's value column to sum (value analyses: `revenue`, `average_value`).
    #[serde(default)]
    pub peer_value: Option<String>,
    /// ε of the run (split between the parties by [`Analysis::epsilon_split`]).
    pub epsilon: f64,
    /// Ignore a cached answer and spend budget on a fresh run (default false).
    #[serde(default)]
    pub fresh: bool,
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The analysis that produced it.
    #[serde(default = "default_analysis")]
    pub analysis: String,
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
    /// Querier's column.
    pub querier_column: Option<String>,
    /// Responder's column.
    pub responder_column: Option<String>,
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
    /// The querier's grouping column and how many of the querier's own members were counted in
    /// its `other` group because their value is missing or outside the agreement's public set
    /// (exact and local: this report is the querier's, the count never goes to the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub querier_outside_value_set: Option<(String, u64)>,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
}

fn default_analysis() -> String {
    overlap::Overlap.name().to_string()
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
    /// The noised cell sums of a value analysis (`psi-sum-v1`), with their parameters.
    pub sums: Option<(&'a tandem_sum::SumParams, &'a tandem_sum::CellSums)>,
}

/// Confidence of every interval a report shows.
pub const CONFIDENCE: f64 = 0.95;

/// An analysis over `psi-ca-v1` cell counts.
pub trait Analysis: Sync {
    /// Name in CLI subcommands and routes (`[a-z_]+`).
    fn name(&self) -> &'static str;

    /// One line for `--help` and listings.
    fn about(&self) -> &'static str;

    /// The columns the request reads on each side.
    fn inputs(&self, request: &RunRequest) -> Inputs;

    /// The cells it needs, from the agreement's public value sets of the group-by columns
    /// (errors: 422 `invalid_query` for a column the agreement does not list).
    fn cells(
        &self,
        agreement: &Agreement,
        querier: &str,
        responder: &str,
        inputs: &Inputs,
    ) -> Result<CellGrid>;

    /// L1 sensitivity of each cell to one person (`psi-ca-v1` counts: 1).
    fn sensitivity(&self) -> u32;

    /// The default split of ε between the parties.
    fn epsilon_split(&self) -> EpsilonSplit;

    /// Turns noised cells into the report's cells, with intervals at [`CONFIDENCE`].
    fn outputs(&self, noised: &NoisedCells<'_>) -> Result<Vec<Cell>>;

    /// Renders a report.
    fn render(&self, report: &Report, format: Format) -> Result<String>;
}

/// Bucket labels of a side grouped by `columns` (at most one today): the column's public values
/// plus `other`, or `[all]`.
pub fn bucket_labels(
    agreement: &Agreement,
    party: &str,
    columns: &[String],
) -> Result<Vec<String>> {
    match columns {
        [] => Ok(vec![ALL.to_string()]),
        [c] => Ok(agreement.bucket_labels(party, c)?),
        _ => Err(NodeError::invalid_query(format!(
            "{party}: grouping by several columns ({}) is not supported yet; name one",
            columns.join(", ")
        ))),
    }
}

/// The first 12 characters of a hex id.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The cells of `noised` with their intervals at [`CONFIDENCE`] and the threshold flag.
pub fn cells_with_intervals(noised: &NoisedCells<'_>) -> Result<Vec<Cell>> {
    let threshold = i64::try_from(noised.threshold).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(noised.grid.len());
    for (ga, qa) in noised.grid.querier.iter().enumerate() {
        for (gb, rb) in noised.grid.responder.iter().enumerate() {
            let estimate = noised.counts.get(ga as u32, gb as u32);
            let (ci_low, ci_high) =
                tandem_psi::accounting::interval(noised.params, estimate, 1.0 - CONFIDENCE)?;
            out.push(Cell {
                querier_group: qa.clone(),
                responder_group: rb.clone(),
                estimate,
                ci_low,
                ci_high,
                below_threshold: threshold > 0 && estimate < threshold,
                truth: None,
            });
        }
    }
    Ok(out)
}

/// The report's cells as CSV (`querier_group,responder_group,estimate,ci_low,ci_high,
/// below_threshold[,truth]`).
pub fn cells_csv(report: &Report) -> String {
    let show_truth = report.cells.iter().any(|c| c.truth.is_some());
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut s =
        String::from("querier_group,responder_group,estimate,ci_low,ci_high,below_threshold");
    s.push_str(if show_truth { ",truth\n" } else { "\n" });
    for c in &report.cells {
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
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = find("lift").err().map(|e| e.code_str().to_string());
        assert_eq!(err.as_deref(), Some("not_found"));
    }
}
