//! Benchmark of issue 14: AUC on held-out synthetic people of the DP logistic regression (and
//! naive Bayes) fitted from noised marginals, against the non-private logistic regression on the
//! joined rows, for ε ∈ {0.25, 0.5, 1, 2} and overlap ∈ {10k, 100k, 1M}, plus the share of the
//! planted coefficients inside the DP model's 95 % intervals.
//!
//! `cargo run --release -p tandem-model --example auc_benchmark [-- --runs R --replicates B
//! --max-overlap N]` prints a markdown table, then one JSON object per cell, each line prefixed
//! by `json: `. The non-private fit is the row-level MLE (computed on the rows' exact table).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Planted, auc, coverage, measure};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tandem_model::{Budget, FitOptions, MarginalPlan, Workload, fit, fit_exact};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = arg("--runs", 3);
    let replicates = arg("--replicates", 50);
    let max_overlap = arg("--max-overlap", 1_000_000);
    let planted = Planted::new();
    let held_out = planted.table(200_000, &mut StdRng::seed_from_u64(999));
    println!("Planted logistic model, 4 features (5×4×3×2 = 120 combinations), label rate ≈ 25 %.");
    println!(
        "Workload: label × each feature + the features' joint over the overlap (5 runs, ε split equally);"
    );
    println!(
        "{runs} seeded runs per cell (mean; min in brackets), {replicates} bootstrap replicates, 200k held-out people.\n"
    );
    println!(
        "| overlap | ε | AUC non-private | AUC DP logistic | Δ | AUC DP naive Bayes | planted coefs in 95 % CI | fit s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut json = Vec::new();
    for overlap in [10_000usize, 100_000, 1_000_000] {
        if overlap > max_overlap {
            continue;
        }
        for epsilon in [0.25, 0.5, 1.0, 2.0] {
            let (mut exact_sum, mut dp_sum, mut nb_sum, mut min_delta) = (0.0, 0.0, 0.0, f64::MAX);
            let (mut covered, mut total, mut seconds) = (0, 0, 0.0);
            for run in 0..runs {
                let seed = (overlap as u64) * 1000 + (epsilon * 100.0) as u64 * 10 + run as u64;
                let mut rng = StdRng::seed_from_u64(seed);
                let train = planted.table(overlap, &mut rng);
                let plan = MarginalPlan::new(
                    &planted.schema,
                    &Workload {
                        pairs: vec![],
                        feature_joint: true,
                    },
                    Budget {
                        responder_epsilon: epsilon,
                        querier_epsilon: epsilon,
                        delta: 1e-9,
                    },
                )?;
                let marginals = measure(&plan, &train, &mut rng);
                let start = Instant::now();
                let report = fit(
                    &planted.schema,
                    &marginals,
                    &FitOptions {
                        bootstrap_replicates: replicates,
                        seed,
                        ..FitOptions::default()
                    },
                )?;
                seconds += start.elapsed().as_secs_f64();
                let exact = fit_exact(&planted.schema, &train, 0.95)?;
                let a_exact = auc(&exact, &planted.schema, &held_out);
                let a_dp = auc(&report.logistic, &planted.schema, &held_out);
                let a_nb = auc(&report.naive_bayes, &planted.schema, &held_out);
                exact_sum += a_exact;
                dp_sum += a_dp;
                nb_sum += a_nb;
                min_delta = min_delta.min(a_dp - a_exact);
                let (c, t) = coverage(&report.logistic, &planted);
                covered += c;
                total += t;
            }
            let r = runs as f64;
            let (a_exact, a_dp, a_nb) = (exact_sum / r, dp_sum / r, nb_sum / r);
            println!(
                "| {overlap} | {epsilon} | {a_exact:.4} | {a_dp:.4} | {:+.4} (worst {min_delta:+.4}) | {a_nb:.4} | {covered}/{total} | {:.2} |",
                a_dp - a_exact,
                seconds / r
            );
            json.push(format!(
                "{{\"overlap\":{overlap},\"epsilon\":{epsilon},\"auc_non_private\":{a_exact:.5},\"auc_dp_logistic\":{a_dp:.5},\"auc_dp_naive_bayes\":{a_nb:.5},\"worst_delta\":{min_delta:.5},\"covered\":{covered},\"coefficients\":{total},\"fit_seconds\":{:.3}}}",
                seconds / r
            ));
        }
    }
    println!();
    for line in json {
        println!("json: {line}");
    }
    Ok(())
}
