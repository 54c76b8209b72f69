//! Coverage of the descriptive analyses (affinity, reach, frequency, funnel, overlap, cohorts):
//! a fixed true grid, released many times with seeded noise; the truth of every figure is the
//! same analysis run on the exact grid.

use super::{Sim, run_noise};
use crate::{
    Estimate, Grid, Inference, Noise, NoisyCount, affinity, cohorts, frequency, funnel, overlap,
    reach,
};

const RUNS: u64 = 200;

/// My buckets in their order (the last one plays `other` for the funnel, which leaves it out).
const LEVELS: [&str; 4] = ["1", "2", "3", "4+"];

/// True cells (4 of my buckets × 3 of the peer's), my sizes, the peer's sizes.
const CELLS: [u64; 12] = [120, 40, 300, 80, 60, 150, 30, 90, 60, 200, 20, 100];
const MY_SIZES: [u64; 4] = [2000, 1500, 900, 2500];
const PEER_SIZES: [u64; 3] = [1000, 800, 1500];

fn grid(cells: Vec<NoisyCount>, peer_sizes: Vec<NoisyCount>) -> Grid {
    grid_of(&MY_SIZES, cells, peer_sizes)
}

/// A grid of my buckets `1`, `2`, `3`, `4+` (sizes `my_sizes`) × `converted`, `active`, `other`.
pub(super) fn grid_of(
    my_sizes: &[u64],
    cells: Vec<NoisyCount>,
    peer_sizes: Vec<NoisyCount>,
) -> Grid {
    Grid::new(
        ["1", "2", "3", "4+"].map(str::to_owned).to_vec(),
        ["converted", "active", "other"].map(str::to_owned).to_vec(),
        cells,
        my_sizes.to_vec(),
        peer_sizes,
    )
    .unwrap()
}

pub(super) fn exact() -> Grid {
    grid(
        CELLS.iter().map(|&c| NoisyCount::exact(c)).collect(),
        PEER_SIZES.iter().map(|&c| NoisyCount::exact(c)).collect(),
    )
}

fn released(sim: &mut Sim, cell: Noise, size: Noise) -> Grid {
    grid(
        CELLS.iter().map(|&c| sim.noisy(c, cell)).collect(),
        PEER_SIZES.iter().map(|&c| sim.noisy(c, size)).collect(),
    )
}

/// Every interval of a result, in a fixed order (via its JSON), paired with nothing else.
fn estimates(value: &serde_json::Value, out: &mut Vec<Estimate>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (Some(e), Some(lo), Some(hi)) = (
                map.get("estimate").and_then(|v| v.as_f64()),
                map.get("ci_low").and_then(|v| v.as_f64()),
                map.get("ci_high").and_then(|v| v.as_f64()),
            ) {
                out.push(Estimate {
                    estimate: e,
                    ci_low: lo,
                    ci_high: hi,
                });
            } else {
                map.values().for_each(|v| estimates(v, out));
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| estimates(v, out)),
        _ => {}
    }
}

fn all<T: serde::Serialize>(result: &T) -> Vec<Estimate> {
    let mut out = Vec::new();
    estimates(&serde_json::to_value(result).unwrap(), &mut out);
    out
}

/// Share of (run, figure) pairs whose interval holds the truth, and the worst figure's share.
fn coverage(name: &str, eps: f64, analysis: impl Fn(&Grid) -> Vec<Estimate>) -> (f64, f64) {
    let (cell, size) = run_noise(eps);
    let truth: Vec<f64> = analysis(&exact()).iter().map(|e| e.estimate).collect();
    let mut hits = vec![0u64; truth.len()];
    for seed in 0..RUNS {
        let mut sim = Sim::new(20_000 + seed);
        let got = analysis(&released(&mut sim, cell, size));
        assert_eq!(got.len(), truth.len(), "{name}: a figure went missing");
        for ((h, e), &t) in hits.iter_mut().zip(&got).zip(&truth) {
            *h += u64::from(e.covers(t));
        }
    }
    let total = hits.iter().sum::<u64>() as f64 / (RUNS as f64 * truth.len() as f64);
    let worst = hits.iter().copied().min().unwrap_or(0) as f64 / RUNS as f64;
    println!(
        "{name} (ε = {eps}): {} figures × {RUNS} runs, coverage {:.3}, worst figure {:.3}",
        truth.len(),
        total,
        worst
    );
    (total, worst)
}

fn check(name: &str, analysis: impl Fn(&Grid) -> Vec<Estimate> + Copy) {
    for eps in [1.0, 0.25] {
        let (total, worst) = coverage(name, eps, analysis);
        assert!(total >= 0.93, "{name} at ε = {eps}: coverage {total}");
        assert!(worst >= 0.88, "{name} at ε = {eps}: worst figure {worst}");
    }
}

#[test]
fn affinity_intervals_cover_the_truth() {
    check("affinity", |g| all(&affinity(g, "active", 0.05).unwrap()));
}

#[test]
fn reach_intervals_cover_the_truth() {
    check("reach", |g| all(&reach(g, 0.05).unwrap()));
}

#[test]
fn frequency_intervals_cover_the_truth() {
    check("frequency", |g| {
        all(&frequency(g, &LEVELS, Some("converted"), Inference::Descriptive, 0.05).unwrap())
    });
}

#[test]
fn funnel_intervals_cover_the_truth() {
    check("funnel", |g| {
        all(&funnel(g, &LEVELS[..3], "converted", Inference::Descriptive, 0.05).unwrap())
    });
}

#[test]
fn overlap_and_cohort_intervals_cover_the_truth() {
    check("overlap", |g| all(&overlap(g, 0.05).unwrap()));
    check("cohorts", |g| {
        all(&cohorts(g, Inference::Descriptive, 0.05).unwrap())
    });
}

/// Population inference: each cohort's customers are active at the peer with a propensity; the
/// rate's interval (noise + binomial sampling) covers the propensity.
#[test]
fn population_rates_cover_the_propensity() {
    let propensity = [0.3, 0.2, 0.1, 0.05];
    let (cell, size) = run_noise(0.25);
    let mut hits = 0;
    for seed in 0..RUNS {
        let mut sim = Sim::new(40_000 + seed);
        let active: Vec<u64> = MY_SIZES
            .iter()
            .zip(propensity)
            .map(|(&n, p)| sim.binomial(n, p))
            .collect();
        let cells = MY_SIZES
            .iter()
            .zip(&active)
            .flat_map(|(&n, &a)| [a, n / 2 - a / 2, n / 2 - a / 2])
            .map(|c| sim.noisy(c, cell))
            .collect();
        let peer = PEER_SIZES.iter().map(|&c| sim.noisy(c, size)).collect();
        let r = cohorts(&grid(cells, peer), Inference::Population, 0.05).unwrap();
        for (row, p) in r.rows.iter().zip(propensity) {
            hits += usize::from(row.flags[0].rate.unwrap().covers(p));
        }
    }
    let coverage = hits as f64 / (4 * RUNS) as f64;
    println!("cohort rates, population inference (ε = 0.25): coverage {coverage:.3}");
    assert!(coverage >= 0.92, "{coverage}");
}
