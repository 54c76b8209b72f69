//! Return on ad spend (issue 13, `analyses-v1` §2.10.1): the peer's value column summed over the
//! overlap (`psi-sum-v1`, as `revenue`) against a spend the analyst supplies. The spend is
//! public — the analyst's own figure, not data of either party — so dividing by it is
//! post-processing. Option `spend`: one amount in the value column's unit (ROAS of the whole
//! run, row `all`), or `LABEL:AMOUNT,…` for some of my groups (one ROAS per group, over its
//! row of cells). Figures: each row's revenue and ROAS with 95% intervals (DP noise only:
//! the revenue of these customers, `descriptive`).

use std::collections::BTreeMap;

use tandem_analytics::{RoasResult, noise_share};

use super::revenue::{noisy_sums, value_form_with};
use super::{
    ALL, Analysis, Format, InputKind, InputSpec, NoisedCells, Releases, Report, analytics_error,
    check_option_keys, details_as, fmt_estimate, fmt_rows, render_with, table_footer_of,
    table_header, to_details,
};
use crate::error::{NodeError, Result};

/// The ROAS analysis.
pub struct Roas;

impl Analysis for Roas {
    fn name(&self) -> &'static str {
        "roas"
    }

    fn about(&self) -> &'static str {
        "Return on ad spend: the peer's value column (--peer-value) summed over the overlap against the spend you give (option spend), with 95% intervals"
    }

    fn form(&self) -> Vec<InputSpec> {
        value_form_with(vec![
            InputSpec::option(
                "spend",
                InputKind::Text,
                "Spend",
                "What the campaign cost, in the value column's unit (e.g. cents): one amount, or GROUP:AMOUNT,… for some of our groups",
            )
            .required(),
        ])
    }

    /// The released sums per cell, as `revenue` shows them.
    fn releases(&self) -> Releases {
        Releases::Sums
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    /// The spend is the analyst's own public figure: a stored run's revenue answers another
    /// spend (`rederive`), with nothing released or charged.
    fn local_options(&self) -> &'static [&'static str] {
        &["spend"]
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &["spend"])?;
        let spends = spends(options, &noised.grid.querier)?;
        let (_, sums, _) = noisy_sums(noised)?;
        let width = noised.grid.responder.len();
        let alpha = 1.0 - super::CONFIDENCE;
        let mut rows = Vec::with_capacity(spends.len());
        let mut used = Vec::new();
        for (group, spend) in spends {
            let cells = match noised.grid.querier.iter().position(|l| *l == group) {
                Some(r) => &sums[r * width..(r + 1) * width],
                None => &sums[..],
            };
            used.extend_from_slice(cells);
            rows.push(
                tandem_analytics::roas(&group, cells, spend, alpha).map_err(analytics_error)?,
            );
        }
        to_details(&RoasResult {
            rows,
            noise_share: noise_share(&used),
        })
    }
}

/// The spends of option `spend`: `[(all, amount)]` for one amount, else one per `LABEL:AMOUNT`
/// (422 `invalid_query` for a missing option, an unknown label, a label given twice, or an
/// amount that is not a positive number).
fn spends(options: &BTreeMap<String, String>, labels: &[String]) -> Result<Vec<(String, f64)>> {
    let text = options.get("spend").ok_or_else(|| {
        NodeError::invalid_query(
            "roas needs option spend=AMOUNT (in the value column's unit, e.g. cents) or spend=GROUP:AMOUNT,…",
        )
    })?;
    let amount = |group: &str, a: &str| -> Result<f64> {
        a.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                NodeError::invalid_query(format!(
                    "option spend: {group}'s spend {a:?} is not a positive number"
                ))
            })
    };
    if !text.contains(':') {
        return Ok(vec![(ALL.to_string(), amount(ALL, text)?)]);
    }
    let mut out: Vec<(String, f64)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (group, a) = part.rsplit_once(':').ok_or_else(|| {
            NodeError::invalid_query(format!("option spend: {part:?} is not GROUP:AMOUNT"))
        })?;
        let group = group.trim();
        if !labels.iter().any(|l| l == group) {
            return Err(NodeError::invalid_query(format!(
                "option spend: no group {group:?} of ours in this query (groups: {})",
                labels.join(", ")
            )));
        }
        if out.iter().any(|(g, _)| g == group) {
            return Err(NodeError::invalid_query(format!(
                "option spend: group {group:?} is given twice"
            )));
        }
        out.push((group.to_string(), amount(group, a)?));
    }
    if out.is_empty() {
        return Err(NodeError::invalid_query("option spend is empty"));
    }
    Ok(out)
}

fn table(r: &Report) -> Result<String> {
    let d: RoasResult = details_as(r)?;
    let mut s = table_header(r, "Return on ad spend");
    let rows: Vec<Vec<String>> = d
        .rows
        .iter()
        .map(|row| {
            vec![
                row.group.clone(),
                format!("{:.0}", row.spend),
                fmt_estimate(Some(&row.revenue), 0),
                fmt_estimate(Some(&row.roas), 2),
            ]
        })
        .collect();
    s += &fmt_rows(&[&r.querier, "spend", "revenue [95%]", "ROAS [95%]"], &rows);
    s += "revenue of the overlap at the partner (DP noise only); ROAS = revenue / spend, both in the value column's unit\n";
    s += &table_footer_of(r, &d.noise_share, "sums");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::CellGrid;
    use crate::analysis::testing::{noised, options, value_plan, value_run};
    use tandem_psi::{CellCounts, RunParams};
    use tandem_sum::CellSums;
    use tandem_testkit::noise::SeededLaplace;

    /// ROAS of two groups and of the whole run: over 2 000 seeded runs (fixed seed) the 95%
    /// intervals cover the planted ROAS at least 1 860 times each. The one-cell group's interval
    /// is normal with the Cornish–Fisher correction, which over-covers a single Laplace term
    /// (`3.06·s` against the exact `3.00·s`), and the sum of several cells is close to normal;
    /// 1 860 is 4 standard deviations of a binomial(2 000, 0.95) below its mean.
    #[test]
    fn roas_intervals_cover_planted_truths() {
        let grid = CellGrid {
            querier: vec!["north".into(), "south".into()],
            responder: vec!["gold".into(), "other".into()],
        };
        let (psi, sum) = value_run(2, 2, (0.25, 1.0), 1000, false);
        let counts = CellCounts {
            querier_buckets: 2,
            responder_buckets: 2,
            noised: vec![300, 40, 200, 100],
            responder_bucket_sizes_noised: vec![900, 300],
        };
        let truth = [151_234i64, 9_876, 80_000, 40_500];
        let (spend_n, spend_s, spend_all) = (50_000.0, 30_000.0, 100_000.0);
        let want = [
            (truth[0] + truth[1]) as f64 / spend_n,
            (truth[2] + truth[3]) as f64 / spend_s,
            truth.iter().sum::<i64>() as f64 / spend_all,
        ];
        let mut noise = SeededLaplace::new(20_261_129);
        let mut covered = [0u32; 3];
        let by_group = options(&[("spend", "north:50000, south:30000")]);
        let whole = options(&[("spend", "100000")]);
        for _ in 0..2000 {
            let sums = CellSums {
                sums: noised(&mut noise, &sum.sum_noise, &truth),
                squares: None,
            };
            let noised = NoisedCells {
                grid: &grid,
                params: &psi,
                counts: &counts,
                threshold: 0,
                my_sizes: &[500, 500],
                sums: Some((&sum, &sums)),
            };
            let parse = |v: Option<serde_json::Value>| -> RoasResult {
                serde_json::from_value(v.expect("figures")).expect("shape")
            };
            let g = parse(Roas.derived(&noised, &by_group).expect("derived"));
            let w = parse(Roas.derived(&noised, &whole).expect("derived"));
            assert_eq!((g.rows.len(), w.rows[0].group.as_str()), (2, "all"));
            for (k, row) in g.rows.iter().chain(&w.rows).enumerate() {
                covered[k] += u32::from(row.roas.covers(want[k]));
            }
        }
        println!("roas coverage of 2000: {covered:?}");
        assert!(covered.iter().all(|&c| c >= 1860), "{covered:?}");
    }

    /// A missing, malformed or unknown-group spend is refused by `check_options` on zero cells,
    /// before anything is charged.
    #[test]
    fn bad_spends_are_refused_before_any_charge() {
        let grid = CellGrid {
            querier: vec!["north".into(), "south".into()],
            responder: vec!["all".into()],
        };
        let psi = RunParams::for_epsilon([1; 32], "email/x", [2; 16], 2, 1, 0.25, 1.0, 1e-9)
            .expect("psi");
        let plan = value_plan(false);
        let check = |pairs: &[(&str, &str)]| {
            crate::analysis::check_options(&Roas, &grid, &psi, Some(&plan), &options(pairs))
        };
        check(&[("spend", "1000")]).expect("one amount");
        check(&[("spend", "north:10,south:20.5")]).expect("per group");
        for bad in [
            vec![],
            vec![("spend", "0")],
            vec![("spend", "-5")],
            vec![("spend", "lots")],
            vec![("spend", "east:10")],
            vec![("spend", "north:10,north:20")],
            vec![("spend", "1000"), ("budget", "1")],
        ] {
            let e = check(&bad).expect_err("refused");
            assert_eq!(e.code_str(), "invalid_query", "{bad:?}: {e}");
        }
    }
}
