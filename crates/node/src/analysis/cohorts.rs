//! Cohorts (issue 12 item 8, `analyses-v1` §2.8): conversion or retention by my acquisition
//! cohort (the group-by column, e.g. month) × the partner's activity flag. One run; sensitivity
//! 1; the default split; each rate is one cell over the cohort's exact size. Option `inference`
//! (`descriptive`, the default, or `population`).

use std::collections::BTreeMap;

use tandem_analytics::{CohortResult, Inference};

use super::{
    Analysis, Format, InputSpec, NoisedCells, Report, analytics_error, analytics_grid,
    check_option_keys, details_as, fmt_estimate, fmt_percent, fmt_rows, inference_input,
    inference_option, render_with, table_footer, table_header, to_details, with_options,
};
use crate::error::Result;

/// The cohorts analysis.
pub struct Cohorts;

impl Analysis for Cohorts {
    fn name(&self) -> &'static str {
        "cohorts"
    }

    fn about(&self) -> &'static str {
        "Conversion or retention by my acquisition cohort × the peer's activity flag"
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    fn form(&self) -> Vec<InputSpec> {
        with_options(vec![inference_input("descriptive")])
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &["inference"])?;
        let inference = inference_option(options, Inference::Descriptive)?;
        let grid = analytics_grid(noised)?;
        let result = tandem_analytics::cohorts(&grid, inference, 1.0 - super::CONFIDENCE)
            .map_err(analytics_error)?;
        to_details(&result)
    }
}

fn table(r: &Report) -> Result<String> {
    let c: CohortResult = details_as(r)?;
    let mut s = table_header(r, "Cohorts");
    let flags: Vec<String> = c
        .rows
        .first()
        .map(|row| row.flags.iter().map(|f| f.flag.clone()).collect())
        .unwrap_or_default();
    let mut header = vec![r.querier.clone(), "size".into(), "overlap [95%]".into()];
    header.extend(flags.iter().map(|f| format!("{f} rate [95%]")));
    let rows: Vec<Vec<String>> = c
        .rows
        .iter()
        .map(|row| {
            let mut v = vec![
                row.cohort.clone(),
                row.size.to_string(),
                fmt_estimate(Some(&row.overlap), 0),
            ];
            v.extend(row.flags.iter().map(|f| fmt_percent(f.rate.as_ref())));
            v
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    s += &fmt_rows(&header, &rows);
    s += &format!("rates over the cohort's exact size ({:?})\n", c.inference).to_lowercase();
    s += &table_footer(r, &c.noise_share);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testing::{Planted, options};

    /// 100 seeded runs at ε 0.5: every cohort's active rate covers the planted rate in ≥ 88%.
    #[test]
    fn cohort_rates_cover_the_planted_truth() {
        let p = Planted::new(
            &["2026-01", "2026-02", "2026-03", "other"],
            &["active", "other"],
            &[120, 200, 80, 150, 40, 100, 0, 0],
            &[600, 500, 300, 0],
        );
        let t = tandem_analytics::cohorts(&p.truth_grid(), Inference::Descriptive, 0.05)
            .expect("truth");
        let runs = 100;
        let mut hits = [0usize; 3];
        for seed in 0..runs {
            let v = p
                .derive(&Cohorts, &options(&[]), 0.5, seed)
                .expect("derived");
            let c: CohortResult = serde_json::from_value(v).expect("shape");
            for (k, h) in hits.iter_mut().enumerate() {
                let truth = t.rows[k].flags[0].rate.expect("rate").estimate;
                *h += usize::from(c.rows[k].flags[0].rate.expect("rate").covers(truth));
            }
        }
        println!("cohorts coverage of {runs}: {hits:?}");
        assert!(
            hits.iter().all(|&h| h * 100 >= 88 * runs as usize),
            "{hits:?}"
        );
        let e = p
            .derive(&Cohorts, &options(&[("inference", "bayes")]), 1.0, 0)
            .expect_err("refused");
        assert_eq!(e.code_str(), "invalid_query");
    }
}
