//! Attribution: Shapley values recover planted additive channel effects.

use super::{Sim, run_noise};
use crate::{
    AnalyticsError, Grid, Inference, NoisyCount, TouchRow, attribution, attribution_from_grid,
    touch_buckets, touch_label,
};

const BASELINE: f64 = 0.02;
const EFFECTS: [f64; 3] = [0.03, 0.01, 0.05];

fn channels() -> Vec<String> {
    ["search", "social", "video"].map(str::to_owned).to_vec()
}

/// One row per coalition (first = lowest channel, last = highest), `n` customers each,
/// converting with `BASELINE + Σ EFFECTS[i]`; coalitions in `skip` are left out.
fn rows(sim: &mut Sim, n: u64, eps: f64, skip: &[u8]) -> Vec<TouchRow> {
    let (cell, _) = run_noise(eps);
    (0u8..8)
        .filter(|s| !skip.contains(s))
        .map(|s| {
            let p = BASELINE
                + (0..3)
                    .filter(|i| s & (1 << i) != 0)
                    .map(|i| EFFECTS[i])
                    .sum::<f64>();
            let conv = sim.binomial(n, p);
            TouchRow {
                coalition: s,
                first: (s != 0).then(|| s.trailing_zeros() as u8),
                last: (s != 0).then(|| 7 - s.leading_zeros() as u8),
                size: n,
                conversions: sim.noisy(conv, cell),
            }
        })
        .collect()
}

#[test]
fn shapley_recovers_planted_channel_effects() {
    let runs = 30;
    let mut covered = 0;
    let mut total = 0;
    for seed in 0..runs {
        let mut sim = Sim::new(9000 + seed);
        let rows = rows(&mut sim, 3000, 0.5, &[]);
        let r = attribution(&channels(), &rows, Inference::Population, 0.05).unwrap();
        assert!(r.missing_coalitions.is_empty());
        for (credit, beta) in r.channels.iter().zip(EFFECTS) {
            covered += usize::from(credit.shapley.covers(beta));
            total += 1;
        }
        // Linear, first- and last-touch credits each share out the touched conversions.
        let sum = |f: &dyn Fn(&crate::ChannelCredit) -> f64| r.channels.iter().map(f).sum::<f64>();
        let conversions = r.conversions.estimate;
        assert!((sum(&|c| c.linear.estimate) - conversions).abs() < 1e-6);
        assert!((sum(&|c| c.first_touch.unwrap().estimate) - conversions).abs() < 1e-6);
        assert!((sum(&|c| c.last_touch.unwrap().estimate) - conversions).abs() < 1e-6);
    }
    println!("Shapley coverage of planted effects: {covered}/{total}");
    assert!(covered * 100 >= total * 88, "{covered}/{total}");
}

#[test]
fn missing_coalitions_fall_back_to_their_best_subset() {
    let mut sim = Sim::new(4);
    // Without {search, video} (0b101) and {search, social, video} (0b111).
    let rows = rows(&mut sim, 3000, 1.0, &[0b101, 0b111]);
    let r = attribution(&channels(), &rows, Inference::Population, 0.05).unwrap();
    assert_eq!(r.missing_coalitions, vec![0b101, 0b111]);
    // The game stays monotone enough for the strongest channel to keep the largest credit.
    let best = r
        .channels
        .iter()
        .max_by(|a, b| a.shapley.estimate.total_cmp(&b.shapley.estimate))
        .unwrap();
    assert_eq!(best.channel, "video");
}

#[test]
fn bad_touch_rows_are_refused() {
    let row = |coalition, first| TouchRow {
        coalition,
        first,
        last: None,
        size: 10,
        conversions: NoisyCount::exact(1),
    };
    let ch = channels();
    let refused = |rows: &[TouchRow]| {
        matches!(
            attribution(&ch, rows, Inference::Descriptive, 0.05),
            Err(AnalyticsError::InvalidParameter(_))
        )
    };
    assert!(refused(&[row(0b1000, None)]));
    assert!(refused(&[row(0b001, Some(1))]));
    assert!(refused(&[row(0, Some(0))]));
    let seven: Vec<String> = (0..7).map(|i| i.to_string()).collect();
    assert!(attribution(&seven, &[], Inference::Descriptive, 0.05).is_err());
    // No untouched customers: no baseline, Shapley values still given.
    let r = attribution(&ch, &[row(0b001, Some(0))], Inference::Descriptive, 0.05).unwrap();
    assert!(r.baseline_rate.is_none());
    assert!((r.channels[0].shapley.estimate - 0.1).abs() < 1e-12);
}

#[test]
fn shapley_values_by_hand() {
    let row = |coalition: u8, conversions: u64| TouchRow {
        coalition,
        first: None,
        last: None,
        size: 1000,
        conversions: NoisyCount::exact(conversions),
    };
    // Additive rates 0.02 + 0.03·search + 0.01·social + 0.05·video: φ = the effects exactly.
    let additive: Vec<TouchRow> = (0u8..8)
        .map(|s| {
            let per_mille = 20
                + [30, 10, 50]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| s & (1 << i) != 0)
                    .map(|(_, e)| e)
                    .sum::<u64>();
            row(s, per_mille)
        })
        .collect();
    let r = attribution(&channels(), &additive, Inference::Descriptive, 0.05).unwrap();
    for (c, beta) in r.channels.iter().zip(EFFECTS) {
        assert!((c.shapley.estimate - beta).abs() < 1e-12);
        assert_eq!(c.shapley.ci_low, c.shapley.ci_high);
        assert_eq!(c.reach, 4000);
    }
    // Two channels with an interaction: v({0}) = 0.03, v({1}) = 0.01, v({0, 1}) = 0.06 over a
    // baseline of 0.02; φ₀ = (0.03 + (0.06 − 0.01))/2 = 0.04, φ₁ = (0.01 + (0.06 − 0.03))/2 = 0.02.
    let two = ["a", "b"].map(str::to_owned);
    let rows = [row(0, 20), row(1, 50), row(2, 30), row(3, 80)];
    let r = attribution(&two, &rows, Inference::Descriptive, 0.05).unwrap();
    assert!((r.channels[0].shapley.estimate - 0.04).abs() < 1e-12);
    assert!((r.channels[1].shapley.estimate - 0.02).abs() < 1e-12);
    // Linear: coalition {a, b}'s 80 converters split 40/40.
    assert!((r.channels[0].linear.estimate - 90.0).abs() < 1e-12);
    assert!((r.channels[0].shapley_conversions.estimate - 0.04 * 2000.0).abs() < 1e-9);
}

#[test]
fn touch_buckets_label_the_composite_column() {
    let ch = channels();
    let plain = touch_buckets(&ch, false).unwrap();
    assert_eq!(plain.len(), 8);
    assert_eq!(plain[0].label, "none");
    assert_eq!(plain[5].label, "search+video");
    let full = touch_buckets(&ch, true).unwrap();
    // 1 + 3·1 + 3·4 + 1·9
    assert_eq!(full.len(), 25);
    assert_eq!(
        touch_label(&ch, 0b101, Some(2), Some(0)),
        "search+video|video|search"
    );
    assert!(full.iter().any(|b| b.label == "search+video|video|search"));
    let six: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    assert_eq!(touch_buckets(&six, true).unwrap().len(), 673);
    for bad in [
        vec!["a+b".to_owned()],
        vec!["a".into(), "a".into()],
        vec!["none".into()],
    ] {
        assert!(touch_buckets(&bad, false).is_err());
    }
}

#[test]
fn attribution_reads_a_grid_and_leaves_other_out() {
    let ch = channels();
    let mut mine: Vec<String> = touch_buckets(&ch, true)
        .unwrap()
        .into_iter()
        .map(|b| b.label)
        .collect();
    mine.push("other".into());
    let n = mine.len();
    let (cell, size) = super::run_noise(1.0);
    let grid = Grid::new(
        mine,
        vec!["yes".into(), "other".into()],
        (0..n)
            .flat_map(|_| [NoisyCount::new(10, cell), NoisyCount::new(50, cell)])
            .collect(),
        vec![200; n],
        vec![NoisyCount::new(260, size), NoisyCount::new(1300, size)],
    )
    .unwrap();
    let r = attribution_from_grid(&grid, &ch, "yes", Inference::Population, 0.05).unwrap();
    // 24 touched buckets of 10 converters; "none" and "other" are not touched conversions.
    assert!((r.conversions.estimate - 240.0).abs() < 1e-9);
    assert!(r.missing_coalitions.is_empty());
    assert!(r.channels[0].first_touch.is_some());
    assert!(attribution_from_grid(&grid, &ch, "no", Inference::Population, 0.05).is_err());
}
