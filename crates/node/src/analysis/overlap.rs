//! The overlap: how many people both parties hold, by the querier's segment × the responder's
//! segment, each cell noised by the responder (discrete Laplace) with its 95% interval.

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_analytics::{Estimate, Noise, NoisyCount, OverlapColumn, OverlapRow};

use super::{
    Analysis, CellGrid, Format, Inputs, NoisedCells, Report, cells_csv, group_by_cells, short,
};
use crate::error::Result;
use crate::wire::BudgetView;

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

    fn cells(
        &self,
        agreement: &Agreement,
        querier: &str,
        responder: &str,
        inputs: &Inputs,
    ) -> Result<CellGrid> {
        group_by_cells(agreement, querier, responder, inputs)
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        Ok(match format {
            Format::Table => overlap_table(report),
            Format::Json => serde_json::to_string_pretty(report)?,
            Format::Csv => cells_csv(report),
        })
    }
}

/// Overlap rates against each side's sizes (`analyses-v1.md` §2.1): this node's sizes are exact
/// and local, the peer's are its noised bucket sizes; intervals at [`super::CONFIDENCE`] by the
/// delta method over the noised cells and sizes (`tandem_analytics::overlap`). Rates are
/// shares, estimate and interval clamped to `[0, 1]`; a rate is `null` — "too small to
/// estimate" — when its denominator is empty or its noised size's interval reaches 0 (the
/// counts themselves stay signed and unclamped).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverlapRates {
    /// Per bucket of this node: its exact size, the overlap with all of the peer and the rate.
    pub rows: Vec<OverlapRow>,
    /// Per bucket of the peer: its noised size, the overlap with all of this node and the rate.
    pub columns: Vec<OverlapColumn>,
    /// The whole overlap `|A ∩ B|`, persons.
    pub total: Estimate,
    /// `|A ∩ B| / |A|` (this node's size, exact); `null` for an empty audience.
    pub rate_of_mine: Option<Estimate>,
    /// `|A ∩ B| / |B|` (the peer's noised size); `null` (too small to estimate) when that
    /// size's interval reaches 0.
    pub rate_of_peer: Option<Estimate>,
}

/// The overlap rates of a run from its noised cells and this node's exact bucket sizes
/// (`my_sizes`, in the order of the grid's querier labels). Errors: 500 `internal` when the
/// shapes do not match the grid.
pub fn rates(noised: &NoisedCells<'_>, my_sizes: &[u64]) -> Result<OverlapRates> {
    let p = noised.params;
    let noise = |d: &tandem_dp::ShiftedLaplace| Noise::clamped_laplace(d.scale, d.offset);
    let internal = |e: tandem_analytics::AnalyticsError| crate::error::NodeError::internal(e);
    let (cell_noise, size_noise) = (
        noise(&p.cell_noise).map_err(internal)?,
        noise(&p.responder_bucket_noise).map_err(internal)?,
    );
    let c = noised.counts;
    let grid = tandem_analytics::Grid::new(
        noised.grid.querier.clone(),
        noised.grid.responder.clone(),
        c.noised
            .iter()
            .map(|&x| NoisyCount::new(x, cell_noise))
            .collect(),
        my_sizes.to_vec(),
        // The sizes carry the shifted draw `J_B ∈ [0, 2T]` (psi-ca-v1 §4): minus `T`, unbiased.
        c.responder_bucket_sizes_noised
            .iter()
            .map(|&n| {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                NoisyCount::new(n - i64::from(p.responder_bucket_noise.offset), size_noise)
            })
            .collect(),
    )
    .map_err(internal)?;
    let r = tandem_analytics::overlap(&grid, 1.0 - super::CONFIDENCE).map_err(internal)?;
    Ok(OverlapRates {
        rows: r.rows,
        columns: r.columns,
        total: r.total,
        rate_of_mine: r.rate_of_mine,
        rate_of_peer: r.rate_of_peer,
    })
}

/// A share as a percentage with its interval, or "too small to estimate".
fn percent(e: Option<&Estimate>) -> String {
    super::fmt_percent(e)
}

/// Renders an overlap report as a table.
pub(crate) fn overlap_table(r: &Report) -> String {
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
        r.querier_columns_label(),
        r.responder,
        r.responder_columns_label(),
        r.epsilon,
        if r.cached {
            format!(
                "cached answer of run {} from {} (no budget spent)",
                short(&r.run_id),
                r.answered_at.as_deref().unwrap_or("an earlier run")
            )
        } else {
            format!("run {} · {}", short(&r.run_id), r.protocol)
        }
    );
    let _ = writeln!(s, "Note: {}", r.note);
    let show_truth = r.cells.iter().any(|c| c.truth.is_some());
    // With several columns a side's heading names them in label order (`acme age_band|region`).
    let heading = |party: &str, columns: &[String]| match columns {
        [_, _, ..] => format!("{party} {}", columns.join(super::LABEL_SEPARATOR)),
        _ => party.to_string(),
    };
    let (h0, h1) = (
        heading(&r.querier, &r.querier_columns),
        heading(&r.responder, &r.responder_columns),
    );
    let w0 = r
        .cells
        .iter()
        .map(|c| c.querier_group.len())
        .max()
        .unwrap_or(0)
        .max(h0.len() + 1);
    let w1 = r
        .cells
        .iter()
        .map(|c| c.responder_group.len())
        .max()
        .unwrap_or(0)
        .max(h1.len() + 1);
    let _ = write!(
        s,
        "\n{:<w0$}  {:<w1$}  {:>10}  {:>21}",
        h0, h1, "overlap", "95% interval"
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
    if let Some(rates) = &r.overlap_rates {
        let _ = writeln!(
            s,
            "Overlap rate (95% intervals): {} of {} (its {} members, exact) · {} of {} (its noised size)",
            percent(rates.rate_of_mine.as_ref()),
            r.querier,
            rates.rows.iter().map(|row| row.size).sum::<u64>(),
            percent(rates.rate_of_peer.as_ref()),
            r.responder,
        );
        for row in &rates.rows {
            let _ = writeln!(
                s,
                "  {} {:<w$}  size {:>8} (exact)   overlap {:>8.0}  rate {}",
                r.querier,
                row.mine,
                row.size,
                row.overlap.estimate,
                percent(row.rate.as_ref()),
                w = w0
            );
        }
        for col in &rates.columns {
            let _ = writeln!(
                s,
                "  {} {:<w$}  size {:>8} (noised)  overlap {:>8.0}  rate {}",
                r.responder,
                col.peer,
                col.size.estimate,
                col.overlap.estimate,
                percent(col.rate.as_ref()),
                w = w1
            );
        }
        s.push('\n');
    }
    if let Some((column, n)) = &r.querier_outside_value_set
        && *n > 0
    {
        let _ = writeln!(
            s,
            "note: {n} of {}'s members have no {column} value, or one outside the agreement's set, and are counted in `other` (local figure, not sent to {})",
            r.querier, r.responder
        );
    }
    for b in [&r.querier_budget, &r.responder_budget] {
        let _ = writeln!(s, "{}", budget_line(b));
    }
    let _ = writeln!(s, "wall time {:.2} s", r.wall_s);
    s
}

pub(crate) fn budget_line(b: &BudgetView) -> String {
    format!(
        "budget {:<10} spent ε {:.4} (δ {:.1e}) this query · ε {:.4} spent in all · ε {:.4} left{}",
        b.party,
        b.epsilon_spent,
        b.delta_spent,
        b.epsilon_total_spent,
        b.epsilon_left,
        b.queries_left_like_this
            .map(|n| format!(" · about {n} more like this"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::super::Cell;
    use super::*;
    use crate::wire::RunRequest;

    fn report(cells: Vec<Cell>) -> Report {
        Report {
            protocol: "psi-ca-v1".into(),
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
            querier_columns: vec!["seg".into()],
            responder_columns: Vec::new(),
            epsilon: 1.0,
            confidence: 0.95,
            threshold: 50,
            cells,
            querier_budget: BudgetView::default(),
            responder_budget: BudgetView::default(),
            querier_outside_value_set: Some(("seg".into(), 3)),
            overlap_rates: None,
            wall_s: 0.5,
            options: Default::default(),
            details: None,
            answered_at: Some("2026-11-29T12:00:00Z".into()),
            responder_audience_version: Some(4),
            querier_internal: true,
            note: crate::analysis::QUERIER_INTERNAL_NOTE.into(),
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

    /// Issue 9 items 4 and 6: every report says it is querier-internal (table and JSON), and a
    /// cached one shows the run and the date it comes from.
    #[test]
    fn reports_are_querier_internal_and_a_cached_one_shows_its_run_and_date() {
        let mut r = report(vec![cell("x", 120)]);
        let table = Overlap.render(&r, Format::Table).expect("table");
        assert!(table.contains("querier-internal"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&Overlap.render(&r, Format::Json).expect("json")).expect("parses");
        assert_eq!(json["querier_internal"], true);
        assert!(json["note"].as_str().expect("note").contains("responder"));
        r.cached = true;
        let table = Overlap.render(&r, Format::Table).expect("table");
        assert!(
            table.contains("cached answer of run 01010101")
                && table.contains("2026-11-29T12:00:00Z"),
            "{table}"
        );
        // Reports stored before these fields existed read as querier-internal too.
        let mut old = json.clone();
        for k in [
            "querier_internal",
            "note",
            "answered_at",
            "responder_audience_version",
        ] {
            old.as_object_mut().expect("object").remove(k);
        }
        let back: Report = serde_json::from_value(old).expect("old report");
        assert!(back.querier_internal && back.answered_at.is_none());
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
                "querier_group,responder_group,estimate,ci_low,ci_high,below_threshold,querier_internal",
                "x,all,120,110,130,false,true",
                "\"y, z\",all,7,-3,17,true,true",
            ]
        );
    }

    #[test]
    fn declares_one_group_by_column_per_side_and_quarter_split() {
        let req = RunRequest {
            protocol: "psi-ca-v1".into(),
            analysis: "overlap".into(),
            join_key: "email".into(),
            querier_columns: vec!["seg".into()],
            responder_columns: Vec::new(),
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
