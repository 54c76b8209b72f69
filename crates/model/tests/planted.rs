//! Small-scale, seeded statistical checks of the fit on synthetic data with a planted logistic
//! model (the benchmark example runs the same at scale).

mod common;

use common::{Planted, auc, coverage, measure};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tandem_model::{
    Budget, FitOptions, FittedModel, MarginalPlan, Method, Workload, fit, fit_exact,
};

const OVERLAP: usize = 20_000;

fn plan(planted: &Planted, epsilon: f64) -> MarginalPlan {
    let budget = Budget {
        responder_epsilon: epsilon,
        querier_epsilon: epsilon,
        delta: 1e-9,
    };
    let workload = Workload {
        pairs: vec![],
        feature_joint: true,
    };
    MarginalPlan::new(&planted.schema, &workload, budget).expect("plan")
}

#[test]
fn dp_logistic_auc_is_close_to_non_private_and_intervals_cover() {
    let planted = Planted::new();
    let mut rng = StdRng::seed_from_u64(20261129);
    let train = planted.table(OVERLAP, &mut rng);
    let held_out = planted.table(OVERLAP, &mut rng);
    let plan = plan(&planted, 1.0);
    let marginals = measure(&plan, &train, &mut rng);
    let options = FitOptions {
        bootstrap_replicates: 30,
        seed: 1,
        ..FitOptions::default()
    };
    let report = fit(&planted.schema, &marginals, &options).expect("fit");
    let exact = fit_exact(&planted.schema, &train, 0.95).expect("exact fit");

    let auc_exact = auc(&exact, &planted.schema, &held_out);
    let auc_dp = auc(&report.logistic, &planted.schema, &held_out);
    let auc_nb = auc(&report.naive_bayes, &planted.schema, &held_out);
    // At 20k people and ε = 1 the DP fit ranks almost as well; loose bounds for CI.
    assert!(auc_exact > 0.65, "non-private AUC {auc_exact}");
    assert!(
        auc_dp > auc_exact - 0.02,
        "DP {auc_dp} vs exact {auc_exact}"
    );
    assert!(
        auc_nb > auc_exact - 0.04,
        "NB {auc_nb} vs exact {auc_exact}"
    );

    // 11 planted parameters, 95 % intervals: expect ~10.5; "most" is ≥ 8.
    let (covered, total) = coverage(&report.logistic, &planted);
    assert!(
        covered >= 8,
        "{covered}/{total} planted coefficients covered"
    );
    let (covered_exact, _) = coverage(&exact, &planted);
    assert!(
        covered_exact >= 8,
        "exact fit covers {covered_exact}/{total}"
    );

    // The overlap size and base rate are recovered.
    assert!(
        report.overlap.contains(OVERLAP as f64)
            || (report.overlap.estimate - OVERLAP as f64).abs() < 200.0
    );
    let true_rate = train.iter().skip(1).step_by(2).sum::<f64>() / OVERLAP as f64;
    assert!((report.base_rate.estimate - true_rate).abs() < 0.01);
}

#[test]
fn segments_crosstab_and_score_table_are_consistent() {
    let planted = Planted::new();
    let mut rng = StdRng::seed_from_u64(7);
    let train = planted.table(5_000, &mut rng);
    let plan = plan(&planted, 0.5);
    let marginals = measure(&plan, &train, &mut rng);
    let options = FitOptions {
        bootstrap_replicates: 5,
        seed: 2,
        ..FitOptions::default()
    };
    let report = fit(&planted.schema, &marginals, &options).expect("fit");

    // Segments: one row per feature value; overlaps of a feature add up to N̂.
    assert_eq!(report.segments.len(), 5 + 4 + 3 + 2);
    let age_total: f64 = report.segments[..5]
        .iter()
        .map(|s| s.overlap.estimate)
        .sum();
    assert!((age_total - report.overlap.estimate).abs() < 1e-6 * age_total);
    for s in &report.segments {
        assert!((0.0..=1.0).contains(&s.propensity.estimate));
        let lift = s.propensity.estimate / report.base_rate.estimate;
        assert!((s.lift.estimate - lift).abs() < 1e-9);
    }

    // Cross-tab: raw cells as released, consistent cells non-negative and summing to N̂.
    assert_eq!(report.crosstab.marginals.len(), plan.runs.len());
    for (m, released) in report.crosstab.marginals.iter().zip(&marginals) {
        let raw: Vec<i64> = m.cells.iter().map(|c| c.raw_estimate).collect();
        assert_eq!(raw, released.counts);
        assert!(m.cells.iter().all(|c| c.consistent_estimate >= 0.0));
        let total: f64 = m.cells.iter().map(|c| c.consistent_estimate).sum();
        assert!((total - report.crosstab.overlap).abs() < 1e-6 * total);
    }
    let csv = report.crosstab.to_csv().expect("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("marginal,cell,features,label,raw_estimate,consistent_estimate,noise_sd,half_width")
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("age_band × tier=gold,0,age_band=18-24,false,"))
    );
    assert_eq!(csv.lines().count(), 1 + plan.total_cells() as usize);
    assert!(report.crosstab.to_json().is_ok());

    // Models: JSON round trip, re-scoring, and a full, ordered score table.
    for model in [&report.logistic, &report.naive_bayes] {
        let json = model.to_json().expect("json");
        let back = FittedModel::from_json(&json).expect("round trip");
        // serde_json's float parsing may differ from the stored value in the last ulp.
        assert_eq!(back.method, model.method);
        let table = back.score_table().expect("table");
        let original = model.score_table().expect("table");
        for (a, b) in table.iter().zip(&original) {
            assert_eq!(a.values, b.values);
            assert!((a.score - b.score).abs() < 1e-12);
        }
        assert_eq!(table.len(), 120);
        assert!(table.windows(2).all(|w| w[0].score >= w[1].score));
        let top: Vec<&str> = table[0].values.iter().map(String::as_str).collect();
        assert!((back.score(&top).expect("score") - table[0].score).abs() < 1e-12);
    }
    assert_eq!(report.logistic.method, Method::LogisticRegression);
    assert!(report.logistic.score(&["18-24", "north"]).is_err());
    assert!(
        report
            .logistic
            .score(&["18-24", "north", "web", "maybe"])
            .is_err()
    );
}

#[test]
fn rejects_marginals_that_do_not_fit_the_schema() {
    let planted = Planted::new();
    let mut rng = StdRng::seed_from_u64(3);
    let train = planted.table(1_000, &mut rng);
    let plan = plan(&planted, 1.0);
    let mut marginals = measure(&plan, &train, &mut rng);
    marginals[0].counts.pop();
    let err = fit(&planted.schema, &marginals, &FitOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("age_band × tier=gold has 9 cells, expected 10"),
        "{err}"
    );
    assert!(fit(&planted.schema, &[], &FitOptions::default()).is_err());
    let tampered = r#"{"method":"naive_bayes"}"#;
    assert!(FittedModel::from_json(tampered).is_err());
}
