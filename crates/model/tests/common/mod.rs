//! Synthetic overlap data with a planted logistic model, exact marginals, seeded discrete-Laplace
//! noise and AUC: shared by the integration tests and the benchmark example (which includes
//! this file by path). Test and benchmark use only; released noise comes from `tandem-dp`.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Geometric};
use tandem_dp::ShiftedLaplace;
use tandem_model::{Feature, FittedModel, MarginalPlan, NoisyMarginal, Schema};

/// Features (with their value probabilities) and the planted log-odds.
pub struct Planted {
    pub schema: Schema,
    /// Per feature, per value: probability of the value (the third feature's depend on the
    /// first's value, see [`Planted::draw`]).
    pub probabilities: Vec<Vec<f64>>,
    pub intercept: f64,
    /// Per feature, per value: log-odds effect (reference value 0).
    pub effects: Vec<Vec<f64>>,
}

fn feature(name: &str, values: &[&str]) -> Feature {
    Feature {
        name: name.into(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

impl Planted {
    /// Four features (5 × 4 × 3 × 2 = 120 combinations), label rate about 25 %.
    pub fn new() -> Self {
        let schema = Schema::new(
            vec![
                feature("age_band", &["18-24", "25-34", "35-44", "45-54", "55+"]),
                feature("region", &["north", "south", "east", "west"]),
                feature("channel", &["web", "store", "app"]),
                feature("member", &["no", "yes"]),
            ],
            "tier=gold",
        )
        .expect("valid schema");
        Planted {
            schema,
            probabilities: vec![
                vec![0.15, 0.25, 0.25, 0.2, 0.15],
                vec![0.4, 0.3, 0.2, 0.1],
                vec![0.5, 0.3, 0.2],
                vec![0.7, 0.3],
            ],
            intercept: -1.8,
            effects: vec![
                vec![0.0, 0.4, 0.8, 0.5, -0.3],
                vec![0.0, -0.4, 0.3, 0.6],
                vec![0.0, 0.5, -0.5],
                vec![0.0, 0.9],
            ],
        }
    }

    /// Planted log-odds of a combination.
    pub fn log_odds(&self, values: &[usize]) -> f64 {
        self.intercept
            + self
                .effects
                .iter()
                .zip(values)
                .map(|(e, &v)| e[v])
                .sum::<f64>()
    }

    /// One person: features (the channel leans to `app` for younger age bands, so features are
    /// correlated) and the label drawn from the planted model.
    pub fn draw<R: Rng>(&self, rng: &mut R) -> (Vec<usize>, usize) {
        let mut values = Vec::with_capacity(self.probabilities.len());
        for (j, probs) in self.probabilities.iter().enumerate() {
            let mut probs = probs.clone();
            if j == 2 && values[0] <= 1 {
                probs = vec![0.3, 0.2, 0.5];
            }
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut v = probs.len() - 1;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if u < acc {
                    v = i;
                    break;
                }
            }
            values.push(v);
        }
        let p = 1.0 / (1.0 + (-self.log_odds(&values)).exp());
        let y = usize::from(rng.random::<f64>() < p);
        (values, y)
    }

    /// Exact contingency table of `n` people: `counts[combination · 2 + y]`.
    pub fn table<R: Rng>(&self, n: usize, rng: &mut R) -> Vec<f64> {
        let mut counts = vec![0.0; self.schema.cells()];
        for _ in 0..n {
            let (values, y) = self.draw(rng);
            counts[self.schema.encode(&values) * 2 + y] += 1.0;
        }
        counts
    }
}

/// Discrete Laplace `clamp(G₁ − G₂, −T, T)` with `Gᵢ` geometric (seeded, test only).
pub fn discrete_laplace<R: Rng>(noise: &ShiftedLaplace, rng: &mut R) -> i64 {
    let p = -(-1.0 / noise.scale).exp_m1();
    let g = Geometric::new(p).expect("valid p");
    let z = g.sample(rng) as i64 - g.sample(rng) as i64;
    z.clamp(-i64::from(noise.offset), i64::from(noise.offset))
}

/// The plan's marginals of an exact table, each noised with its run's cell noise.
pub fn measure(plan: &MarginalPlan, counts: &[f64], rng: &mut StdRng) -> Vec<NoisyMarginal> {
    let schema = &plan.schema;
    plan.runs
        .iter()
        .map(|run| {
            let mut cells = vec![0i64; run.cells as usize];
            for (cell, &c) in counts.iter().enumerate() {
                let values = schema.decode(cell / 2);
                cells[run.spec.cell_of(schema, &values, cell % 2)] += c as i64;
            }
            for c in &mut cells {
                *c += discrete_laplace(&run.cell_noise, rng);
            }
            NoisyMarginal {
                spec: run.spec.clone(),
                counts: cells,
                noise: run.cell_noise,
            }
        })
        .collect()
}

/// AUC of a model's scores on a held-out exact table (Mann–Whitney, ties count ½).
pub fn auc(model: &FittedModel, schema: &Schema, held_out: &[f64]) -> f64 {
    let mut scored: Vec<(f64, f64, f64)> = (0..schema.combinations())
        .map(|c| {
            let values = schema.decode(c);
            let names: Vec<&str> = schema
                .features
                .iter()
                .zip(&values)
                .map(|(f, &v)| f.values[v].as_str())
                .collect();
            let score = model.score(&names).expect("scorable");
            (score, held_out[2 * c], held_out[2 * c + 1])
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (negatives, positives): (f64, f64) = scored
        .iter()
        .fold((0.0, 0.0), |(n, p), s| (n + s.1, p + s.2));
    let mut below_negatives = 0.0;
    let mut area = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        let (mut neg, mut pos) = (0.0, 0.0);
        while j < scored.len() && scored[j].0 == scored[i].0 {
            neg += scored[j].1;
            pos += scored[j].2;
            j += 1;
        }
        area += pos * (below_negatives + 0.5 * neg);
        below_negatives += neg;
        i = j;
    }
    area / (positives * negatives)
}

/// The planted coefficients in the model's layout: (intercept, per feature per value).
pub fn coverage(model: &FittedModel, planted: &Planted) -> (usize, usize) {
    let mut covered = usize::from(model.intercept.contains(planted.intercept));
    let mut total = 1;
    for (fc, effects) in model.coefficients.iter().zip(&planted.effects) {
        for (c, &e) in fc.values.iter().zip(effects).skip(1) {
            total += 1;
            covered += usize::from(c.log_odds.contains(e));
        }
    }
    (covered, total)
}
