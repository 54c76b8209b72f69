//! Value lift per arm (issue 13, `analyses-v1` §2.10.2): my side holds the arm (the group-by
//! column, as `lift`), the partner's the value column (`--peer-value`, summed over the overlap
//! by `psi-sum-v1` with its sums of squares). Per arm, the value per member `Ŝ/n` over my exact
//! arm size (members who are not the partner's customers count 0, as in Meta's Private Lift);
//! the difference and ratio test − control, with intervals for DP noise and sampling and a
//! Welch z-test p-value, the sampling variance from the released sums of squares.
//!
//! Needs the agreement's value column with `squares = true`: without squares there is no
//! variance for the interval or the test, and the query is refused (422 `invalid_query`)
//! before anything is charged. The partner's customers are not split (`peer_group_by` is
//! refused). Options: `test_arm` (default `test`), `control_arm` (default `control`). By
//! segment: a second group-by column of mine after the arm (`test|north` …) gives one lift per
//! segment with members in both arms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tandem_analytics::{ValueArm, ValueLiftResult};

use super::lift::segments;
use super::revenue::{noisy_sums, sums, value_form_with};
use super::{
    Analysis, Format, InputKind, InputSpec, LABEL_SEPARATOR, NoisedCells, Releases, Report,
    analytics_error, check_option_keys, details_as, fmt_estimate, fmt_ratio, fmt_rows, option,
    render_with, table_footer_of, table_header, to_details,
};
use crate::error::{NodeError, Result};

/// The value-lift analysis.
pub struct ValueLift;

impl Analysis for ValueLift {
    fn name(&self) -> &'static str {
        "value_lift"
    }

    fn about(&self) -> &'static str {
        "Value lift: the peer's value (--peer-value) per member of my test arm against my control arm, difference and ratio with intervals and a p-value (needs squares in the agreement)"
    }

    fn form(&self) -> Vec<InputSpec> {
        value_form_with(vec![
            InputSpec::option(
                "test_arm",
                InputKind::Text,
                "Test arm",
                "Our group-by value of the treated customers",
            )
            .default("test"),
            InputSpec::option(
                "control_arm",
                InputKind::Text,
                "Control arm",
                "Our group-by value of the held-out customers",
            )
            .default("control"),
        ])
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
        check_option_keys(options, &["test_arm", "control_arm"])?;
        if noised.grid.responder.len() != 1 {
            return Err(NodeError::invalid_query(
                "value_lift compares my arms over all of the partner's customers: leave peer_group_by out",
            ));
        }
        let (params, _) = sums(noised)?;
        let (bound, sums, squares) = noisy_sums(noised)?;
        let squares = squares.ok_or_else(|| {
            NodeError::invalid_query(format!(
                "value_lift needs the sums of squares of {:?} for its intervals and p-value, and the agreement releases none: \
                 set squares = true on that value column in a new agreement (nothing was spent)",
                params.column
            ))
        })?;
        let (test, control) = (
            option(options, "test_arm", "test"),
            option(options, "control_arm", "control"),
        );
        let alpha = 1.0 - super::CONFIDENCE;
        let labels = &noised.grid.querier;
        let arm = |label: &str| -> Result<ValueArm> {
            let r = labels.iter().position(|l| l == label).ok_or_else(|| {
                NodeError::invalid_query(format!(
                    "no arm {label:?} among our groups ({})",
                    labels.join(", ")
                ))
            })?;
            Ok(ValueArm {
                name: label.to_string(),
                size: noised.my_sizes.get(r).copied().unwrap_or(0),
                sum: sums[r],
                squares: squares[r],
            })
        };
        let segments = segments(labels);
        if segments.is_empty() {
            let result = tandem_analytics::value_lift(&arm(test)?, &arm(control)?, bound, alpha)
                .map_err(analytics_error)?;
            return to_details(&result);
        }
        let mut by_segment = Vec::new();
        for s in segments {
            let (t, c) = (
                arm(&format!("{test}{LABEL_SEPARATOR}{s}"))?,
                arm(&format!("{control}{LABEL_SEPARATOR}{s}"))?,
            );
            if t.size == 0 || c.size == 0 {
                continue;
            }
            let mut l =
                tandem_analytics::value_lift(&t, &c, bound, alpha).map_err(analytics_error)?;
            l.segment = Some(s.to_string());
            by_segment.push(l);
        }
        to_details(&ValueLiftBySegment { by_segment })
    }
}

/// Value lift per segment of mine (`details` of a value lift grouped by arm and a segment).
#[derive(Debug, Serialize, Deserialize)]
pub struct ValueLiftBySegment {
    /// One lift per segment with members in both arms, in label order.
    pub by_segment: Vec<ValueLiftResult>,
}

fn table(r: &Report) -> Result<String> {
    let lifts = match details_as::<ValueLiftBySegment>(r) {
        Ok(b) => b.by_segment,
        Err(_) => vec![details_as::<ValueLiftResult>(r)?],
    };
    let mut s = table_header(r, "Value lift");
    let (mut cells, mut affected) = (0, 0);
    for l in &lifts {
        if let Some(seg) = &l.segment {
            s += &format!("\nsegment {seg}\n");
        }
        let rows: Vec<Vec<String>> = l
            .arms
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.size.to_string(),
                    a.sum.to_string(),
                    fmt_estimate(Some(&a.per_member), 1),
                ]
            })
            .collect();
        s += &fmt_rows(
            &["arm", "members", "value (sum)", "per member [95%]"],
            &rows,
        );
        s += &format!(
            "\ndifference per member  {}\nratio test/control     {}\np-value (two-sided, no difference)  {}\n",
            fmt_estimate(Some(&l.difference), 1),
            fmt_ratio(l.ratio.as_ref(), 3),
            if l.p_value < 1e-4 {
                "< 0.0001".to_string()
            } else {
                format!("{:.4}", l.p_value)
            }
        );
        cells += l.noise_share.cells;
        affected += l.noise_share.affected;
    }
    s += "values per member of each arm (members who are not the partner's customers count 0); intervals and test account for the DP noise and for sampling\n";
    let share = tandem_analytics::NoiseShare {
        cells,
        affected,
        share: if cells == 0 {
            0.0
        } else {
            affected as f64 / cells as f64
        },
    };
    s += &table_footer_of(r, &share, "sums");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use tandem_dp::NoiseSource;
    use tandem_psi::{CellCounts, RunParams};
    use tandem_sum::CellSums;
    use tandem_testkit::noise::SeededLaplace;

    use super::*;
    use crate::analysis::CellGrid;
    use crate::analysis::testing::{options, value_plan, value_run};

    /// The planted population: a member of arm `a` is the partner's customer with probability
    /// `p[a]`, and a customer's value is uniform on `0..=U`. The expected value per member is
    /// `p·U/2`.
    const P: [f64; 2] = [0.35, 0.25];
    const U: u32 = 1000;

    /// Through the node's analysis code: 2 000 seeded runs (fixed seeds) each draw 2 000 + 2 000
    /// members from the planted population, sum their values and squares exactly, add
    /// `psi-sum-v1` noise at ε 1 (sums 0.5, of which squares take half), and derive the
    /// figures. Half the runs plant the difference: there the intervals are Wald intervals
    /// (normal approximation of the sampling mean, n = 2 000), so their coverage is about, not
    /// at least, 95%; each must cover the population truth at least 920 times of 1 000
    /// (binomial(1 000, 0.95) has s.d. 6.9: 920 is 4.4 s.d. below the mean). The other half
    /// plant no difference (both arms at 0.3): the p-value falls below 0.05 in at most 80 of
    /// 1 000 runs (mean 50, s.d. 6.9).
    #[test]
    fn value_lift_intervals_cover_planted_truths() {
        let grid = CellGrid {
            querier: vec!["test".into(), "control".into()],
            responder: vec!["all".into()],
        };
        let (psi, sum) = value_run(2, 1, (0.125, 0.5), U, true);
        let sq = sum.square_noise.expect("squares");
        let counts = CellCounts {
            querier_buckets: 2,
            responder_buckets: 1,
            noised: vec![700, 500],
            responder_bucket_sizes_noised: vec![2000],
        };
        let n = 2000u64;
        let mean = |p: f64| p * f64::from(U) / 2.0;
        let (truth_t, truth_c) = (mean(P[0]), mean(P[1]));
        let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_129);
        let mut noise = SeededLaplace::new(7);
        let (mut cover, mut false_alarms) = ([0u32; 4], 0u32);
        let runs = 2000;
        for run in 0..runs {
            // Even runs: the planted difference; odd runs also check the test under none.
            let null = run % 2 == 1;
            let mut s = [0i64; 2];
            let mut q = [0i64; 2];
            for a in 0..2 {
                let p = if null { 0.3 } else { P[a] };
                for _ in 0..n {
                    if rng.random_bool(p) {
                        let v = i64::from(rng.random_range(0..=U));
                        s[a] += v;
                        q[a] += v * v;
                    }
                }
            }
            let ds = noise.shifted(&sum.sum_noise, 2).expect("draws");
            let dq = noise.shifted(&sq, 2).expect("draws");
            let t = i64::from(sum.sum_noise.offset);
            let tq = i64::from(sq.offset);
            let sums = CellSums {
                sums: vec![s[0] + i64::from(ds[0]) - t, s[1] + i64::from(ds[1]) - t],
                squares: Some(vec![
                    q[0] + i64::from(dq[0]) - tq,
                    q[1] + i64::from(dq[1]) - tq,
                ]),
            };
            let noised = NoisedCells {
                grid: &grid,
                params: &psi,
                counts: &counts,
                threshold: 0,
                my_sizes: &[n, n],
                sums: Some((&sum, &sums)),
            };
            let v = ValueLift
                .derived(&noised, &options(&[]))
                .expect("derived")
                .expect("figures");
            let l: ValueLiftResult = serde_json::from_value(v).expect("shape");
            if null {
                false_alarms += u32::from(l.p_value < 0.05);
                continue;
            }
            let ratio = l.ratio.expect("ratio");
            for (k, hit) in [
                l.arms[0].per_member.covers(truth_t),
                l.arms[1].per_member.covers(truth_c),
                l.difference.covers(truth_t - truth_c),
                ratio.covers(truth_t / truth_c),
            ]
            .into_iter()
            .enumerate()
            {
                cover[k] += u32::from(hit);
            }
        }
        println!("value_lift coverage of 1000: {cover:?}, false alarms of 1000: {false_alarms}");
        assert!(cover.iter().all(|&c| c >= 920), "{cover:?}");
        assert!(false_alarms <= 80, "{false_alarms}");
    }

    /// Without squares in the agreement, with the partner's customers split, or with an unknown
    /// arm, the query is refused by `check_options` on zero cells: before anything is charged.
    #[test]
    fn refused_before_any_charge_without_squares() {
        let grid = |peer: &[&str]| CellGrid {
            querier: vec!["test".into(), "control".into()],
            responder: peer.iter().map(|s| s.to_string()).collect(),
        };
        let psi = RunParams::for_epsilon([1; 32], "email/x", [2; 16], 2, 1, 0.125, 0.5, 1e-9)
            .expect("psi");
        let plan = value_plan;
        let none = options(&[]);
        let check = |g: &CellGrid, squares, o: &BTreeMap<String, String>| {
            crate::analysis::check_options(&ValueLift, g, &psi, Some(&plan(squares)), o)
        };
        check(&grid(&["all"]), true, &none).expect("fine with squares");
        let e = check(&grid(&["all"]), false, &none).expect_err("no squares");
        assert_eq!(e.code_str(), "invalid_query");
        assert!(e.to_string().contains("squares = true"), "{e}");
        let psi2 = RunParams::for_epsilon([1; 32], "email/x", [2; 16], 2, 2, 0.125, 0.5, 1e-9)
            .expect("psi");
        let e = crate::analysis::check_options(
            &ValueLift,
            &grid(&["gold", "other"]),
            &psi2,
            Some(&plan(true)),
            &none,
        )
        .expect_err("peer split");
        assert!(e.to_string().contains("peer_group_by"), "{e}");
        let e = check(&grid(&["all"]), true, &options(&[("test_arm", "exposed")]))
            .expect_err("unknown arm");
        assert_eq!(e.code_str(), "invalid_query");
    }
}
