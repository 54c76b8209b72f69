//! Analyses as modules. An [`Analysis`] declares what it reads on each side, the cells it
//! needs, its sensitivity and default ε split, how noised cells become its outputs (with
//! intervals), and how it renders. The [`REGISTRY`] lists them; `tandem query <analysis>`, the
//! API routes `/api/v1/query/<analysis>[/preview]` and the free preview all derive from it, and
//! the run engine (the querier and responder modules) is the same for every analysis.
//!
//! Adding an analysis: one file in this directory implementing [`Analysis`] (with its tests),
//! plus one line in [`REGISTRY`].

pub mod overlap;

use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_psi::{CellCounts, RunParams};

use crate::error::{NodeError, Result};
use crate::wire::{BudgetView, RunRequest};

/// Every analysis this node runs, by name. One line per analysis.
pub static REGISTRY: &[&dyn Analysis] = &[&overlap::Overlap];

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
    /// Querier's columns to group by (none: one bucket); cells are the cross product of their
    /// labels. JSON: a list of names, or (as before) one name or `null`; `"a,b"` also reads.
    #[serde(default, with = "crate::wire::columns")]
    pub group_by: Vec<String>,
    /// Responder's columns to group by, as [`Query::group_by`].
    #[serde(default, with = "crate::wire::columns")]
    pub peer_group_by: Vec<String>,
    /// ε of the run (split between the parties by [`Analysis::epsilon_split`]).
    pub epsilon: f64,
    /// Ignore a cached answer and spend budget on a fresh run (default false).
    #[serde(default)]
    pub fresh: bool,
}

/// The columns an analysis reads on each side. Group-by columns make the cells; value columns
/// (for sums and means) need a protocol beyond `psi-ca-v1` and are refused until one exists.
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
    /// Wall time of the run, seconds.
    pub wall_s: f64,
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
        let err = find("lift").err().map(|e| e.code_str().to_string());
        assert_eq!(err.as_deref(), Some("not_found"));
    }
}
