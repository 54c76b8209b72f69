//! Hand-computed values on the exact grid of `descriptive` (the coverage tests take their truth
//! from the same code, so the formulas are checked here).
//!
//! Cells (rows `1`, `2`, `3`, `4+`; columns `converted`, `active`, `other`):
//! `[120, 40, 300; 80, 60, 150; 30, 90, 60; 200, 20, 100]`, row sums 460, 290, 180, 320,
//! column sums 430, 210, 610, total 1250; my sizes 2000, 1500, 900, 2500 (6900); peer sizes
//! 1000, 800, 1500 (3300).

use super::descriptive::exact;
use crate::{
    Estimate, Inference, affinity, cohorts, consistent_view, frequency, funnel, overlap, reach,
};

fn is(e: &Estimate, value: f64) {
    assert!(
        (e.estimate - value).abs() < 1e-9,
        "{} ≠ {value}",
        e.estimate
    );
    // Exact inputs give degenerate intervals.
    assert!((e.ci_low - value).abs() < 1e-9 && (e.ci_high - value).abs() < 1e-9);
}

#[test]
fn overlap_values() {
    let r = overlap(&exact(), 0.05).unwrap();
    is(r.cells[0].rate_of_mine.as_ref().unwrap(), 120.0 / 2000.0);
    is(r.cells[0].rate_of_peer.as_ref().unwrap(), 120.0 / 1000.0);
    is(&r.rows[1].overlap, 290.0);
    is(r.columns[2].rate.as_ref().unwrap(), 610.0 / 1500.0);
    is(&r.total, 1250.0);
    is(r.rate_of_mine.as_ref().unwrap(), 1250.0 / 6900.0);
    is(r.rate_of_peer.as_ref().unwrap(), 1250.0 / 3300.0);
    assert_eq!(r.noise_share.affected, 0);
}

#[test]
fn affinity_values() {
    let r = affinity(&exact(), "active", 0.05).unwrap();
    is(r.overall_share.as_ref().unwrap(), 210.0 / 1250.0);
    is(r.rows[0].share.as_ref().unwrap(), 40.0 / 460.0);
    is(
        r.rows[2].index.as_ref().unwrap(),
        100.0 * (90.0 / 180.0) / (210.0 / 1250.0),
    );
}

#[test]
fn reach_values() {
    let r = reach(&exact(), 0.05).unwrap();
    is(&r.union, 6900.0 + 3300.0 - 1250.0);
    is(&r.incremental, 3300.0 - 1250.0);
    is(r.incremental_share.as_ref().unwrap(), 2050.0 / 3300.0);
    is(&r.by_mine[0].union, 2000.0 + 3300.0 - 460.0);
    is(&r.by_mine[0].incremental, 3300.0 - 460.0);
    is(&r.by_peer[0].incremental, 1000.0 - 430.0);
    is(
        r.by_peer[0].incremental_share.as_ref().unwrap(),
        570.0 / 1000.0,
    );
}

#[test]
fn frequency_funnel_cohort_values() {
    let g = exact();
    let f = frequency(
        &g,
        &["1", "2", "3", "4+"],
        Some("converted"),
        Inference::Descriptive,
        0.05,
    )
    .unwrap();
    is(&f.rows[1].reach_at_least, 290.0 + 180.0 + 320.0);
    is(
        f.rows[1].reach_at_least_share.as_ref().unwrap(),
        790.0 / 3300.0,
    );
    is(f.rows[3].conversion_rate.as_ref().unwrap(), 200.0 / 2500.0);
    let u = funnel(
        &g,
        &["1", "2", "3"],
        "converted",
        Inference::Descriptive,
        0.05,
    )
    .unwrap();
    assert_eq!(u.stages.len(), 3);
    assert_eq!(u.stages[0].reached, 4400);
    assert_eq!(u.stages[1].step_rate, Some(2400.0 / 4400.0));
    is(&u.stages[0].purchasers, 230.0);
    is(u.stages[0].purchase_rate.as_ref().unwrap(), 230.0 / 4400.0);
    is(
        u.stages[2].purchase_rate_at_deepest.as_ref().unwrap(),
        30.0 / 900.0,
    );
    assert!(funnel(&g, &["1", "1"], "converted", Inference::Descriptive, 0.05).is_err());
    let c = cohorts(&g, Inference::Descriptive, 0.05).unwrap();
    is(c.rows[1].flags[1].rate.as_ref().unwrap(), 60.0 / 1500.0);
    // Population inference adds binomial sampling even to exact counts.
    let p = cohorts(&g, Inference::Population, 0.05).unwrap();
    let e = p.rows[1].flags[1].rate.unwrap();
    let half = 1.959_964 * (0.04f64 * 0.96 / 1500.0).sqrt();
    assert!((e.ci_high - e.estimate - half).abs() < 1e-5);
}

#[test]
fn consistent_view_of_an_exact_grid_is_the_grid() {
    let v = consistent_view(&exact()).unwrap();
    assert_eq!(
        v.cells,
        vec![120, 40, 300, 80, 60, 150, 30, 90, 60, 200, 20, 100]
    );
    assert_eq!(v.col_totals, vec![430, 210, 610]);
    assert_eq!(v.total, 1250);
}
