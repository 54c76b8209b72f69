//! Lift: coverage of a planted lift, power at a large lift, p-value calibration at zero lift.

use super::{Sim, run_noise};
use crate::{Arm, Grid, NoisyCount, lift, lift_from_grid};

/// One simulated experiment: arms of `n` customers converting with `p_t` / `p_c`, conversions
/// released with the cell noise of responder ε `eps`.
fn experiment(sim: &mut Sim, n: u64, p_t: f64, p_c: f64, eps: f64) -> (Arm, Arm) {
    let (cell, _) = run_noise(eps);
    let test = sim.binomial(n, p_t);
    let control = sim.binomial(n, p_c);
    (
        Arm {
            name: "test".into(),
            size: n,
            conversions: sim.noisy(test, cell),
        },
        Arm {
            name: "control".into(),
            size: n,
            conversions: sim.noisy(control, cell),
        },
    )
}

#[test]
fn lift_interval_covers_a_planted_lift() {
    // ε = 0.1: noise s.d. ≈ 18.8 conversions per arm against a sampling s.d. of ≈ 23–26.
    let (runs, n, p_t, p_c) = (50, 6000, 0.13, 0.10);
    let (mut abs, mut rel, mut rates, mut significant) = (0, 0, 0, 0);
    for seed in 0..runs {
        let mut sim = Sim::new(1000 + seed);
        let (t, c) = experiment(&mut sim, n, p_t, p_c, 0.1);
        let r = lift(&t, &c, 0.05).unwrap();
        abs += usize::from(r.lift_abs.covers(p_t - p_c));
        rel += usize::from(r.lift_rel.unwrap().covers(p_t / p_c - 1.0));
        for (arm, p) in r.arms.iter().zip([p_t, p_c]) {
            rates += usize::from(arm.ci_low <= p && p <= arm.ci_high);
        }
        significant += usize::from(r.p_value < 0.05);
    }
    println!(
        "lift coverage over {runs} runs: lift_abs {abs}, lift_rel {rel}, arm rates {rates}/{}; \
         p < 0.05 in {significant}",
        2 * runs
    );
    assert!(abs >= 45 && rel >= 45, "lift_abs {abs}, lift_rel {rel}");
    assert!(rates >= 90, "arm rates {rates}");
    assert!(significant >= 40, "power {significant}/50");
}

#[test]
fn p_values_are_roughly_uniform_without_lift() {
    // Balanced (n = 2000: noise s.d. ≈ 1.4 × sampling s.d.) and noise-dominated (n = 300:
    // noise s.d. ≈ 3.6 × sampling s.d.), both at ε = 0.1 and a 10% conversion rate.
    for (n, seed0) in [(2000, 5000), (300, 7000)] {
        let runs = 200;
        let mut p: Vec<f64> = (0..runs)
            .map(|seed| {
                let mut sim = Sim::new(seed0 + seed);
                let (t, c) = experiment(&mut sim, n, 0.1, 0.1, 0.1);
                lift(&t, &c, 0.05).unwrap().p_value
            })
            .collect();
        p.sort_by(f64::total_cmp);
        // Kolmogorov–Smirnov distance to U(0, 1); the 1% critical value at 200 runs is ≈ 0.115.
        let m = p.len() as f64;
        let ks = p
            .iter()
            .enumerate()
            .map(|(i, &x)| (x - i as f64 / m).abs().max(((i + 1) as f64 / m - x).abs()))
            .fold(0.0, f64::max);
        let rejections = p.iter().filter(|&&x| x < 0.05).count();
        println!(
            "null p-values, n = {n} per arm, {runs} runs: KS distance {ks:.3}, \
             p < 0.05 in {rejections}"
        );
        assert!(ks < 0.115, "n = {n}: KS {ks}");
        assert!(
            rejections <= 20,
            "n = {n}: {rejections} rejections of 200 at 5%"
        );
    }
}

#[test]
fn lift_reads_a_grid_and_serialises_with_the_issue_names() {
    let (cell, size) = run_noise(1.0);
    let grid = Grid::new(
        vec!["test".into(), "control".into()],
        vec!["converted".into(), "not_converted".into()],
        vec![
            NoisyCount::new(130, cell),
            NoisyCount::new(800, cell),
            NoisyCount::new(100, cell),
            NoisyCount::new(820, cell),
        ],
        vec![1000, 1000],
        vec![NoisyCount::new(230, size), NoisyCount::new(1620, size)],
    )
    .unwrap();
    let r = lift_from_grid(&grid, "test", "control", "converted", Some("gold"), 0.05).unwrap();
    assert!((r.lift_abs.estimate - 0.03).abs() < 1e-12);
    assert!((r.lift_rel.unwrap().estimate - 0.3).abs() < 1e-12);
    let json = serde_json::to_value(&r).unwrap();
    for key in ["arms", "lift_abs", "lift_rel", "p_value"] {
        assert!(json.get(key).is_some(), "{key}");
    }
    for key in ["name", "size", "conversions", "rate", "ci_low", "ci_high"] {
        assert!(json["arms"][0].get(key).is_some(), "{key}");
    }
    for key in ["estimate", "ci_low", "ci_high"] {
        assert!(json["lift_abs"].get(key).is_some(), "{key}");
    }
    assert_eq!(json["segment"], "gold");
    assert!(lift_from_grid(&grid, "test", "nope", "converted", None, 0.05).is_err());
    let empty = Arm {
        name: "x".into(),
        size: 0,
        conversions: NoisyCount::exact(0),
    };
    assert!(lift(&empty, &empty, 0.05).is_err());
    // No test converters: lift_rel is −100% with a (linear-scale) interval that still carries
    // the sampling and both noises, clipped at −100%; no control converters: undefined.
    let arm = |name: &str, c: i64| Arm {
        name: name.into(),
        size: 1000,
        conversions: NoisyCount::new(c, cell),
    };
    let r = lift(&arm("t", 0), &arm("c", 100), 0.05).unwrap();
    let rel = r.lift_rel.unwrap();
    assert_eq!(rel.estimate, -1.0);
    assert!(rel.ci_low == -1.0 && rel.ci_high > -1.0, "{rel:?}");
    assert!(
        lift(&arm("t", 50), &arm("c", 0), 0.05)
            .unwrap()
            .lift_rel
            .is_none()
    );
}
