//! Frequency (issue 12 item 4, `analyses-v1` §2.4): my side's capped exposure count per person
//! (bucketed `1, 2, …, k+` at import) × the partner's presence (`all`) or conversion flag; reach
//! at `k+` and conversion rate by frequency. One run; sensitivity 1; the default split. Options:
//! `levels` (comma-separated, increasing; default my column's values without `other` and `0`),
//! `converted` (the peer's converting value; default as lift's when the peer groups by a
//! column that has one, else no conversion figures), `inference`.

use std::collections::BTreeMap;

use tandem_agreement::OTHER_LABEL;
use tandem_analytics::{FrequencyResult, Inference};

use super::{
    ALL, Analysis, Format, InputKind, InputSpec, NoisedCells, Report, analytics_error,
    analytics_grid, check_option_keys, converted_label, details_as, fmt_estimate, fmt_percent,
    fmt_rows, inference_input, inference_option, list_option, render_with, table_footer,
    table_header, to_details, with_options,
};
use crate::error::Result;

/// The frequency analysis.
pub struct Frequency;

impl Analysis for Frequency {
    fn name(&self) -> &'static str {
        "frequency"
    }

    fn about(&self) -> &'static str {
        "Reach at k+ exposures and conversion rate by exposure frequency"
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    fn form(&self) -> Vec<InputSpec> {
        with_options(vec![
            InputSpec::option(
                "levels",
                InputKind::Text,
                "Frequency levels",
                "Comma-separated, increasing (default: our column's values without other and 0)",
            ),
            InputSpec::option(
                "converted",
                InputKind::Text,
                "Partner's converting value",
                "The partner's group-by value of customers who converted (default: as lift; none when the partner does not split)",
            ),
            inference_input("descriptive"),
        ])
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &["levels", "converted", "inference"])?;
        let peer = &noised.grid.responder;
        // Presence only when the peer does not group, or groups by a column without a
        // converting value and none is named.
        let converted = match options.get("converted") {
            Some(v) => Some(v.clone()),
            None if peer.iter().any(|p| p == ALL) => None,
            None => converted_label(options, "converted", peer).ok(),
        };
        let inference = inference_option(options, Inference::Descriptive)?;
        let levels = list_option(options, "levels").unwrap_or_else(|| {
            let q = &noised.grid.querier;
            q.iter()
                .filter(|l| *l != OTHER_LABEL && *l != "0")
                .cloned()
                .collect()
        });
        let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
        let grid = analytics_grid(noised)?;
        let result = tandem_analytics::frequency(
            &grid,
            &levels,
            converted.as_deref(),
            inference,
            1.0 - super::CONFIDENCE,
        )
        .map_err(analytics_error)?;
        to_details(&result)
    }
}

fn table(r: &Report) -> Result<String> {
    let f: FrequencyResult = details_as(r)?;
    let mut s = table_header(r, "Frequency");
    let rows: Vec<Vec<String>> = f
        .rows
        .iter()
        .map(|row| {
            vec![
                row.bucket.clone(),
                row.exposed.to_string(),
                fmt_estimate(Some(&row.reach_at_least), 0),
                fmt_percent(row.reach_at_least_share.as_ref()),
                fmt_percent(row.conversion_rate.as_ref()),
            ]
        })
        .collect();
    s += &fmt_rows(
        &[
            "exposures",
            "exposed",
            "peer reach at ≥ k [95%]",
            "share of peer [95%]",
            "conversion [95%]",
        ],
        &rows,
    );
    s += &table_footer(r, &f.noise_share);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testing::{Planted, options};

    /// 100 seeded runs at ε 0.5: reach at `k+` and the conversion rate at every level cover the
    /// planted truth in ≥ 88%.
    #[test]
    fn frequency_covers_the_planted_truth() {
        let p = Planted::new(
            &["0", "1", "2", "3+", "other"],
            &["no", "yes", "other"],
            &[100, 10, 50, 400, 30, 100, 200, 40, 60, 100, 50, 20, 0, 0, 0],
            &[900, 1000, 500, 300, 0],
        );
        let levels = ["1", "2", "3+"];
        let t = tandem_analytics::frequency(
            &p.truth_grid(),
            &levels,
            Some("yes"),
            Inference::Descriptive,
            0.05,
        )
        .expect("truth");
        let runs = 100;
        let mut hits = [0usize; 6];
        for seed in 0..runs {
            let v = p
                .derive(&Frequency, &options(&[]), 0.5, seed)
                .expect("derived");
            let f: FrequencyResult = serde_json::from_value(v).expect("shape");
            for k in 0..3 {
                let (row, truth) = (&f.rows[k], &t.rows[k]);
                hits[k] += usize::from(row.reach_at_least.covers(truth.reach_at_least.estimate));
                let rate = truth.conversion_rate.expect("rate").estimate;
                hits[3 + k] += usize::from(row.conversion_rate.expect("rate").covers(rate));
            }
        }
        println!("frequency coverage of {runs}: {hits:?}");
        assert!(
            hits.iter().all(|&h| h * 100 >= 88 * runs as usize),
            "{hits:?}"
        );
    }
}
