//! Funnel (issue 12 item 5, `analyses-v1` §2.5): my side's *deepest stage reached* (one column,
//! so sensitivity stays 1) × the partner's purchase flag; stage-by-stage counts (mine, exact)
//! and conversion from each stage (noised purchasers over exact stage sizes). One run; the
//! default split. Options: `stages` (comma-separated, shallowest first; default my column's
//! values without `other`, in the agreement's order), `purchased` (the peer's purchase value;
//! default as lift's `converted`), `inference`.

use std::collections::BTreeMap;

use tandem_agreement::OTHER_LABEL;
use tandem_analytics::{FunnelResult, Inference};

use super::{
    Analysis, Format, InputKind, InputSpec, NoisedCells, Report, analytics_error, analytics_grid,
    check_option_keys, converted_label, details_as, fmt_estimate, fmt_percent, fmt_rows,
    inference_input, inference_option, list_option, render_with, table_footer, table_header,
    to_details, with_options,
};
use crate::error::Result;

/// The funnel analysis.
pub struct Funnel;

impl Analysis for Funnel {
    fn name(&self) -> &'static str {
        "funnel"
    }

    fn about(&self) -> &'static str {
        "Funnel: my deepest stage reached × the peer's purchase flag, conversion from each stage"
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    fn form(&self) -> Vec<InputSpec> {
        with_options(vec![
            InputSpec::option(
                "stages",
                InputKind::Text,
                "Stages",
                "Comma-separated, shallowest first (default: our column's values without other)",
            ),
            InputSpec::option(
                "purchased",
                InputKind::Text,
                "Partner's purchase value",
                "The partner's group-by value of customers who purchased (default: the first of 1, yes, true, converted, purchased, active it lists)",
            ),
            inference_input("descriptive"),
        ])
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &["stages", "purchased", "inference"])?;
        let purchased = converted_label(options, "purchased", &noised.grid.responder)?;
        let inference = inference_option(options, Inference::Descriptive)?;
        let stages = list_option(options, "stages").unwrap_or_else(|| {
            let q = &noised.grid.querier;
            q.iter().filter(|l| *l != OTHER_LABEL).cloned().collect()
        });
        let stages: Vec<&str> = stages.iter().map(String::as_str).collect();
        let grid = analytics_grid(noised)?;
        let result = tandem_analytics::funnel(
            &grid,
            &stages,
            &purchased,
            inference,
            1.0 - super::CONFIDENCE,
        )
        .map_err(analytics_error)?;
        to_details(&result)
    }
}

fn table(r: &Report) -> Result<String> {
    let f: FunnelResult = details_as(r)?;
    let mut s = table_header(r, "Funnel");
    let rows: Vec<Vec<String>> = f
        .stages
        .iter()
        .map(|st| {
            vec![
                st.stage.clone(),
                st.reached.to_string(),
                st.step_rate
                    .map_or("—".into(), |x| format!("{:.1}%", x * 100.0)),
                fmt_estimate(Some(&st.purchasers), 0),
                fmt_percent(st.purchase_rate.as_ref()),
            ]
        })
        .collect();
    s += &fmt_rows(
        &[
            "stage",
            "reached",
            "step",
            "purchasers [95%]",
            "conversion [95%]",
        ],
        &rows,
    );
    s += "reached and step rates are this node's own exact counts\n";
    s += &table_footer(r, &f.noise_share);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testing::{Planted, options};

    /// 100 seeded runs at ε 0.5: conversion from every stage covers the planted truth in ≥ 88%.
    #[test]
    fn funnel_conversion_covers_the_planted_truth() {
        let p = Planted::new(
            &["visit", "cart", "checkout", "other"],
            &["no", "yes", "other"],
            &[500, 20, 300, 200, 60, 140, 80, 120, 40, 0, 0, 0],
            &[1500, 800, 500, 0],
        );
        let stages = ["visit", "cart", "checkout"];
        let t = tandem_analytics::funnel(
            &p.truth_grid(),
            &stages,
            "yes",
            Inference::Descriptive,
            0.05,
        )
        .expect("truth");
        let runs = 100;
        let mut hits = [0usize; 3];
        for seed in 0..runs {
            let v = p
                .derive(&Funnel, &options(&[]), 0.5, seed)
                .expect("derived");
            let f: FunnelResult = serde_json::from_value(v).expect("shape");
            assert_eq!(f.stages.len(), 3);
            for (k, h) in hits.iter_mut().enumerate() {
                let truth = t.stages[k].purchase_rate.expect("rate").estimate;
                *h += usize::from(f.stages[k].purchase_rate.expect("rate").covers(truth));
            }
        }
        println!("funnel coverage of {runs}: {hits:?}");
        assert!(
            hits.iter().all(|&h| h * 100 >= 88 * runs as usize),
            "{hits:?}"
        );
        let e = p
            .derive(&Funnel, &options(&[("stages", "visit,pay")]), 1.0, 0)
            .expect_err("refused");
        assert_eq!(e.code_str(), "invalid_query");
    }
}
