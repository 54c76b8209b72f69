//! The overlap: how many people both parties hold, by the querier's segment × the responder's
//! segment, each cell noised by the responder (discrete Laplace) with its 95% interval.

use std::fmt::Write;

use tandem_agreement::Agreement;

use super::{
    Analysis, Cell, CellGrid, EpsilonSplit, Format, Inputs, NoisedCells, Report, bucket_labels,
    cells_csv, cells_with_intervals, short,
};
use crate::error::Result;
use crate::wire::{BudgetView, RunRequest};

/// Share of the analyst's ε that each side spends on its noised bucket sizes; the responder
/// spends the rest of its ε on the cell counts (see `protocols/psi-ca-v1.md`, accounting).
pub const BUCKET_SIZE_SHARE: f64 = 0.25;

/// The overlap analysis.
pub struct Overlap;

impl Analysis for Overlap {
    fn name(&self) -> &'static str {
        "overlap"
    }

    fn about(&self) -> &'static str {
        "Noised overlap with the peer's audience, by segment, with 95% intervals"
    }

    fn inputs(&self, request: &RunRequest) -> Inputs {
        Inputs {
            querier_group_by: request.querier_column.iter().cloned().collect(),
            responder_group_by: request.responder_column.iter().cloned().collect(),
            ..Inputs::default()
        }
    }

    fn cells(
        &self,
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

    fn sensitivity(&self) -> u32 {
        1
    }

    fn epsilon_split(&self) -> EpsilonSplit {
        EpsilonSplit {
            querier: BUCKET_SIZE_SHARE,
            responder: 1.0,
        }
    }

    fn outputs(&self, noised: &NoisedCells<'_>) -> Result<Vec<Cell>> {
        cells_with_intervals(noised)
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        Ok(match format {
            Format::Table => overlap_table(report),
            Format::Json => serde_json::to_string_pretty(report)?,
            Format::Csv => cells_csv(report),
        })
    }
}

/// Renders an overlap report as a table.
fn overlap_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Overlap of {} × {} under agreement {}",
        r.querier,
        r.responder,
        short(&r.agreement_id)
    );
    let _ = writeln!(s, "Purpose: {}", r.purpose);
    let _ = writeln!(
        s,
        "Join key: {} · grouped by {}.{} × {}.{} · ε = {} · {}",
        r.join_key,
        r.querier,
        r.querier_column.as_deref().unwrap_or("all"),
        r.responder,
        r.responder_column.as_deref().unwrap_or("all"),
        r.epsilon,
        if r.cached {
            "cached answer (no budget spent)".to_string()
        } else {
            format!("run {}", short(&r.run_id))
        }
    );
    let show_truth = r.cells.iter().any(|c| c.truth.is_some());
    let w0 = r
        .cells
        .iter()
        .map(|c| c.querier_group.len())
        .max()
        .unwrap_or(0)
        .max(r.querier.len() + 1);
    let w1 = r
        .cells
        .iter()
        .map(|c| c.responder_group.len())
        .max()
        .unwrap_or(0)
        .max(r.responder.len() + 1);
    let _ = write!(
        s,
        "\n{:<w0$}  {:<w1$}  {:>10}  {:>21}",
        r.querier, r.responder, "overlap", "95% interval"
    );
    if show_truth {
        let _ = write!(s, "  {:>8}", "truth");
    }
    s.push('\n');
    for c in &r.cells {
        let value = if c.below_threshold {
            format!("< {}", r.threshold)
        } else {
            c.estimate.to_string()
        };
        let ci = if c.below_threshold {
            "—".to_string()
        } else {
            format!("[{}, {}]", c.ci_low, c.ci_high)
        };
        let _ = write!(
            s,
            "{:<w0$}  {:<w1$}  {:>10}  {:>21}",
            c.querier_group, c.responder_group, value, ci
        );
        if let Some(t) = c.truth {
            let _ = write!(s, "  {t:>8}");
        }
        s.push('\n');
    }
    s.push('\n');
    if let Some((column, n)) = &r.querier_outside_value_set
        && *n > 0
    {
        let _ = writeln!(
            s,
            "note: {n} of {}'s members have a {column} value missing or outside the agreement's set and are counted in `other` (local figure, not sent to {})",
            r.querier, r.responder
        );
    }
    for b in [&r.querier_budget, &r.responder_budget] {
        let _ = writeln!(s, "{}", budget_line(b));
    }
    let _ = writeln!(s, "wall time {:.2} s", r.wall_s);
    s
}

fn budget_line(b: &BudgetView) -> String {
    format!(
        "budget {:<10} spent ε {:.4} (δ {:.1e}) this query · ε {:.4} spent in all · ε {:.4} left",
        b.party, b.epsilon_spent, b.delta_spent, b.epsilon_total_spent, b.epsilon_left
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(cells: Vec<Cell>) -> Report {
        Report {
            analysis: "overlap".into(),
            agreement_id: "ab".repeat(32),
            purpose: "test".into(),
            run_id: "01".repeat(16),
            cached: false,
            querier: "acme".into(),
            responder: "shopx".into(),
            join_key: "email".into(),
            querier_column: Some("seg".into()),
            responder_column: None,
            epsilon: 1.0,
            confidence: 0.95,
            threshold: 50,
            cells,
            querier_budget: BudgetView::default(),
            responder_budget: BudgetView::default(),
            querier_outside_value_set: Some(("seg".into(), 3)),
            wall_s: 0.5,
        }
    }

    fn cell(group: &str, estimate: i64) -> Cell {
        Cell {
            querier_group: group.into(),
            responder_group: "all".into(),
            estimate,
            ci_low: estimate - 10,
            ci_high: estimate + 10,
            below_threshold: estimate < 50,
            truth: None,
        }
    }

    #[test]
    fn renders_table_json_and_csv() {
        let r = report(vec![cell("x", 120), cell("y, z", 7)]);
        let table = Overlap.render(&r, Format::Table).expect("table");
        assert!(table.contains("Overlap of acme × shopx"), "{table}");
        assert!(
            table.contains("[110, 130]") && table.contains("< 50"),
            "{table}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&Overlap.render(&r, Format::Json).expect("json")).expect("parses");
        assert_eq!(json["cells"][0]["estimate"], 120);
        let csv = Overlap.render(&r, Format::Csv).expect("csv");
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                "querier_group,responder_group,estimate,ci_low,ci_high,below_threshold",
                "x,all,120,110,130,false",
                "\"y, z\",all,7,-3,17,true",
            ]
        );
    }

    #[test]
    fn declares_one_group_by_column_per_side_and_quarter_split() {
        let req = RunRequest {
            protocol: "psi-ca-v1".into(),
            analysis: "overlap".into(),
            join_key: "email".into(),
            querier_column: Some("seg".into()),
            responder_column: None,
            epsilon: 1.0,
            delta: 1e-9,
            identity_rules: "tandem-id-v1".into(),
            responder_value: None,
        };
        let inputs = Overlap.inputs(&req);
        assert_eq!(inputs.querier_group_by, ["seg"]);
        assert!(inputs.responder_group_by.is_empty() && inputs.querier_values.is_empty());
        assert_eq!(Overlap.epsilon_split().querier, 0.25);
        assert_eq!(Overlap.sensitivity(), 1);
    }
}
