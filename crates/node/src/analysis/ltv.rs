//! Lifetime value by acquisition cohort (issue 13, `analyses-v1` §2.10.3): my cohort column (the
//! group-by, e.g. month of acquisition) × the partner's value column (`--peer-value`, summed
//! over the overlap by `psi-sum-v1`). Per cohort: the cohort's value at the partner `Σ Ŝ` over
//! its cells and the value per member `Σ Ŝ / n` over my exact cohort size (members who are not
//! the partner's customers count 0), with 95% intervals. Option `inference`: `descriptive`
//! (default: these members, DP noise only) or `population` (adds sampling; needs the agreement's
//! value column with `squares = true`, refused before any charge otherwise).

use std::collections::BTreeMap;

use tandem_analytics::{Inference, LtvCohort, LtvResult};

use super::revenue::{noisy_sums, value_form_with};
use super::{
    Analysis, Format, InputSpec, NoisedCells, Releases, Report, analytics_error, check_option_keys,
    details_as, fmt_estimate, fmt_ratio, fmt_rows, inference_input, inference_option, render_with,
    table_footer_of, table_header, to_details,
};
use crate::error::{NodeError, Result};

/// The LTV-by-cohort analysis.
pub struct Ltv;

impl Analysis for Ltv {
    fn name(&self) -> &'static str {
        "ltv"
    }

    fn about(&self) -> &'static str {
        "Lifetime value by my acquisition cohort: the peer's value (--peer-value) per member of each cohort, with 95% intervals"
    }

    fn form(&self) -> Vec<InputSpec> {
        value_form_with(vec![inference_input("descriptive")])
    }

    /// The released sums per cell, as `revenue` shows them.
    fn releases(&self) -> Releases {
        Releases::Sums
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &["inference"])?;
        let inference = inference_option(options, Inference::Descriptive)?;
        let (bound, sums, squares) = noisy_sums(noised)?;
        if inference == Inference::Population && squares.is_none() {
            return Err(NodeError::invalid_query(
                "ltv with inference=population needs the sums of squares, and the agreement's value column releases none: \
                 use inference=descriptive or set squares = true in a new agreement (nothing was spent)",
            ));
        }
        let width = noised.grid.responder.len();
        let cohorts: Vec<LtvCohort> = noised
            .grid
            .querier
            .iter()
            .enumerate()
            .map(|(r, label)| LtvCohort {
                cohort: label.clone(),
                members: noised.my_sizes.get(r).copied().unwrap_or(0),
                sums: sums[r * width..(r + 1) * width].to_vec(),
                squares: squares
                    .as_ref()
                    .map(|q| q[r * width..(r + 1) * width].to_vec()),
            })
            .collect();
        let result = tandem_analytics::ltv(&cohorts, inference, bound, 1.0 - super::CONFIDENCE)
            .map_err(analytics_error)?;
        to_details(&result)
    }
}

fn table(r: &Report) -> Result<String> {
    let l: LtvResult = details_as(r)?;
    let mut s = table_header(r, "Lifetime value by cohort");
    let rows: Vec<Vec<String>> = l
        .rows
        .iter()
        .map(|row| {
            vec![
                row.cohort.clone(),
                row.members.to_string(),
                fmt_estimate(Some(&row.value), 0),
                fmt_ratio(row.per_member.as_ref(), 1),
            ]
        })
        .collect();
    s += &fmt_rows(
        &[&r.querier, "members", "value [95%]", "per member [95%]"],
        &rows,
    );
    s += &format!(
        "value at the partner in the column's unit; per member over the cohort's exact size, members who are not the partner's customers counting 0 ({:?})\n",
        l.inference
    )
    .to_lowercase();
    s += &table_footer_of(r, &l.noise_share, "sums");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use tandem_psi::{CellCounts, RunParams};
    use tandem_sum::CellSums;
    use tandem_testkit::noise::SeededLaplace;

    use super::*;
    use crate::analysis::CellGrid;
    use crate::analysis::testing::{noised, options, value_plan, value_run};

    /// Three cohorts × two partner tiers with planted sums, through the node's analysis code:
    /// over 2 000 seeded runs (fixed seed) every cohort's value-per-member interval covers the
    /// planted `Σ S / n` at least 1 860 times (descriptive: noise only; the sum of two
    /// clamped Laplace errors with the Cornish–Fisher-corrected normal quantile; 1 860 is 4
    /// s.d. of a binomial(2 000, 0.95) below its mean).
    #[test]
    fn ltv_intervals_cover_planted_truths() {
        let grid = CellGrid {
            querier: vec!["2026-01".into(), "2026-02".into(), "2026-03".into()],
            responder: vec!["gold".into(), "other".into()],
        };
        let (psi, sum) = value_run(3, 2, (0.125, 0.5), 1000, false);
        let counts = CellCounts {
            querier_buckets: 3,
            responder_buckets: 2,
            noised: vec![100, 200, 50, 80, 20, 30],
            responder_bucket_sizes_noised: vec![300, 400],
        };
        let truth = [60_000i64, 41_000, 30_500, 12_000, 9_000, 4_000];
        let sizes = [800u64, 500, 200];
        let want: Vec<f64> = (0..3)
            .map(|r| (truth[2 * r] + truth[2 * r + 1]) as f64 / sizes[r] as f64)
            .collect();
        let mut noise = SeededLaplace::new(20_261_130);
        let mut covered = [0u32; 3];
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
                my_sizes: &sizes,
                sums: Some((&sum, &sums)),
            };
            let v = Ltv
                .derived(&noised, &options(&[]))
                .expect("derived")
                .expect("figures");
            let l: LtvResult = serde_json::from_value(v).expect("shape");
            for (k, row) in l.rows.iter().enumerate() {
                covered[k] += u32::from(row.per_member.expect("members").covers(want[k]));
            }
        }
        println!("ltv coverage of 2000: {covered:?}");
        assert!(covered.iter().all(|&c| c >= 1860), "{covered:?}");
    }

    /// `inference=population` without squares, or an unknown option, is refused on zero cells
    /// before anything is charged; with squares it passes.
    #[test]
    fn population_without_squares_is_refused_before_any_charge() {
        let grid = CellGrid {
            querier: vec!["2026-01".into(), "other".into()],
            responder: vec!["all".into()],
        };
        let psi = RunParams::for_epsilon([1; 32], "email/x", [2; 16], 2, 1, 0.125, 0.5, 1e-9)
            .expect("psi");
        let plan = value_plan;
        let check = |squares, pairs: &[(&str, &str)]| {
            crate::analysis::check_options(&Ltv, &grid, &psi, Some(&plan(squares)), &options(pairs))
        };
        check(false, &[]).expect("descriptive");
        check(true, &[("inference", "population")]).expect("population with squares");
        let e = check(false, &[("inference", "population")]).expect_err("no squares");
        assert_eq!(e.code_str(), "invalid_query");
        assert!(e.to_string().contains("squares = true"), "{e}");
        assert!(check(true, &[("months", "12")]).is_err());
    }
}
