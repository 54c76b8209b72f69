//! Main-effects logit models over one-hot features: the logistic regression fitted to a
//! weighted table of feature combinations, and naive Bayes from label × feature marginals.
//!
//! Parameters: an intercept, then for each feature its non-reference values (reference = the
//! first value, coefficient 0). `log-odds(x) = β₀ + Σⱼ βⱼ[xⱼ]`.

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use crate::{ModelError, Schema};

/// Ridge on the non-intercept coefficients per unit of weight (`λ/2 ‖β‖²` with the
/// log-likelihood averaged over the table): keeps empty levels finite, negligible otherwise.
const RIDGE: f64 = 1e-6;

/// Jeffreys pseudo-count added to every label × value count in naive Bayes.
const NB_PSEUDO_COUNT: f64 = 0.5;

/// An intercept and per-feature, per-value log-odds contributions (reference value at 0).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Logit {
    pub(crate) intercept: f64,
    pub(crate) effects: Vec<Vec<f64>>,
}

impl Logit {
    #[cfg(test)]
    pub(crate) fn log_odds(&self, values: &[usize]) -> f64 {
        self.intercept
            + self
                .effects
                .iter()
                .zip(values)
                .map(|(e, &v)| e[v])
                .sum::<f64>()
    }

    fn from_parameters(schema: &Schema, beta: &[f64]) -> Self {
        let mut next = 1;
        let effects = schema
            .features
            .iter()
            .map(|f| {
                let mut e = vec![0.0; f.values.len()];
                for slot in e.iter_mut().skip(1) {
                    *slot = beta[next];
                    next += 1;
                }
                e
            })
            .collect();
        Logit {
            intercept: beta[0],
            effects,
        }
    }
}

/// The parameter index of each feature value (`None` for reference values).
fn parameter_index(schema: &Schema) -> (Vec<Vec<Option<usize>>>, usize) {
    let mut next = 1;
    let index = schema
        .features
        .iter()
        .map(|f| {
            (0..f.values.len())
                .map(|v| {
                    (v > 0).then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        })
        .collect();
    (index, next)
}

/// The weighted table: per feature combination, its active parameters and label weights.
struct Table {
    rows: Vec<(Vec<usize>, f64, f64)>,
    parameters: usize,
    weight: f64,
}

impl CostFunction for Table {
    type Param = Vec<f64>;
    type Output = f64;

    /// Mean negative log-likelihood plus ridge.
    fn cost(&self, beta: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        let mut nll = 0.0;
        for (active, w0, w1) in &self.rows {
            let eta: f64 = active.iter().map(|&i| beta[i]).sum();
            // w1·log(1+e^−η) + w0·log(1+e^η)
            nll += w1 * softplus(-eta) + w0 * softplus(eta);
        }
        let ridge: f64 = beta[1..].iter().map(|b| b * b).sum();
        Ok(nll / self.weight + 0.5 * RIDGE * ridge)
    }
}

impl Gradient for Table {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, beta: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let mut grad = vec![0.0; self.parameters];
        for (active, w0, w1) in &self.rows {
            let eta: f64 = active.iter().map(|&i| beta[i]).sum();
            let residual = (w0 + w1) * sigmoid(eta) - w1;
            for &i in active {
                grad[i] += residual;
            }
        }
        for (i, g) in grad.iter_mut().enumerate() {
            *g /= self.weight;
            if i > 0 {
                *g += RIDGE * beta[i];
            }
        }
        Ok(grad)
    }
}

/// Fits the main-effects logistic regression by maximum likelihood to a table of expected
/// counts over the domain (`counts[combination · 2 + y]`, non-negative), with L-BFGS.
///
/// On the exact counts of joined rows this is the ordinary row-level MLE (the likelihood of rows
/// with equal features and label is the same term, multiplied by their number).
pub(crate) fn fit_logistic(
    schema: &Schema,
    counts: &[f64],
    warm: Option<&Logit>,
) -> Result<Logit, ModelError> {
    let (index, parameters) = parameter_index(schema);
    let mut weight = 0.0;
    let rows: Vec<(Vec<usize>, f64, f64)> = (0..schema.combinations())
        .filter_map(|c| {
            let (w0, w1) = (counts[2 * c].max(0.0), counts[2 * c + 1].max(0.0));
            if w0 + w1 <= 0.0 {
                return None;
            }
            weight += w0 + w1;
            let values = schema.decode(c);
            let active = std::iter::once(0)
                .chain(values.iter().zip(&index).filter_map(|(&v, idx)| idx[v]))
                .collect();
            Some((active, w0, w1))
        })
        .collect();
    if weight <= 0.0 {
        return Err(ModelError::Optimisation("the table is empty".into()));
    }
    let init = match warm {
        Some(logit) => {
            let mut beta = vec![logit.intercept];
            for e in &logit.effects {
                beta.extend_from_slice(&e[1..]);
            }
            beta
        }
        None => vec![0.0; parameters],
    };
    let table = Table {
        rows,
        parameters,
        weight,
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(1e-10)
        .and_then(|s| s.with_tolerance_cost(1e-15))
        .map_err(|e| ModelError::Optimisation(e.to_string()))?;
    let result = Executor::new(table, solver)
        .configure(|state| state.param(init).max_iters(500))
        .run()
        .map_err(|e| ModelError::Optimisation(format!("logistic regression: {e}")))?;
    let beta = result
        .state()
        .get_best_param()
        .cloned()
        .ok_or_else(|| ModelError::Optimisation("no parameters returned".into()))?;
    Ok(Logit::from_parameters(schema, &beta))
}

/// Wald standard errors of a logistic fit on a table of counts: the square roots of the
/// diagonal of the inverse observed information `(Σ_x w_x p_x(1 − p_x) z_x z_xᵀ)⁻¹`
/// (nalgebra Cholesky), in the parameter order intercept, then non-reference values.
pub(crate) fn wald_standard_errors(
    schema: &Schema,
    counts: &[f64],
    logit: &Logit,
) -> Result<Vec<f64>, ModelError> {
    let (index, parameters) = parameter_index(schema);
    let mut info = nalgebra::DMatrix::<f64>::zeros(parameters, parameters);
    for c in 0..schema.combinations() {
        let w = counts[2 * c].max(0.0) + counts[2 * c + 1].max(0.0);
        if w <= 0.0 {
            continue;
        }
        let values = schema.decode(c);
        let mut eta = logit.intercept;
        let mut active = vec![0];
        for ((&v, idx), e) in values.iter().zip(&index).zip(&logit.effects) {
            eta += e[v];
            active.extend(idx[v]);
        }
        let p = sigmoid(eta);
        let h = w * p * (1.0 - p);
        for &a in &active {
            for &b in &active {
                info[(a, b)] += h;
            }
        }
    }
    let inverse = info
        .cholesky()
        .ok_or_else(|| ModelError::Optimisation("the information matrix is singular".into()))?
        .inverse();
    Ok((0..parameters).map(|i| inverse[(i, i)].sqrt()).collect())
}

/// Naive Bayes from the consistent label × feature marginals of a table of expected counts:
/// `log-odds(x) = log P(y=1)/P(y=0) + Σⱼ log P(xⱼ|y=1)/P(xⱼ|y=0)`, with a Jeffreys pseudo-count
/// of ½ on every label × value count, rewritten against the reference values.
pub(crate) fn fit_naive_bayes(schema: &Schema, counts: &[f64]) -> Logit {
    let mut by_value: Vec<Vec<[f64; 2]>> = schema
        .features
        .iter()
        .map(|f| vec![[0.0; 2]; f.values.len()])
        .collect();
    for c in 0..schema.combinations() {
        let values = schema.decode(c);
        for (j, &v) in values.iter().enumerate() {
            for y in 0..2 {
                by_value[j][v][y] += counts[2 * c + y].max(0.0);
            }
        }
    }
    let mut intercept = 0.0;
    let mut effects = Vec::with_capacity(by_value.len());
    for (j, table) in by_value.iter().enumerate() {
        let k = table.len() as f64;
        let totals = [0, 1].map(|y| table.iter().map(|c| c[y]).sum::<f64>() + NB_PSEUDO_COUNT * k);
        let log_ratio: Vec<f64> = table
            .iter()
            .map(|c| {
                ((c[1] + NB_PSEUDO_COUNT) / totals[1]).ln()
                    - ((c[0] + NB_PSEUDO_COUNT) / totals[0]).ln()
            })
            .collect();
        if j == 0 {
            // Prior from the first feature's table (all tables share the label totals).
            intercept += (totals[1] / totals[0]).ln();
        }
        intercept += log_ratio[0];
        effects.push(log_ratio.iter().map(|r| r - log_ratio[0]).collect());
    }
    Logit { intercept, effects }
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Feature;

    fn schema() -> Schema {
        let f = |name: &str, k: usize| Feature {
            name: name.into(),
            values: (0..k).map(|v| format!("{v}")).collect(),
        };
        Schema::new(vec![f("a", 3), f("b", 2)], "y").unwrap()
    }

    #[test]
    fn logistic_recovers_a_saturated_main_effects_table() {
        // Counts that follow a main-effects logit exactly: the MLE is the generating model.
        let s = schema();
        let truth = Logit {
            intercept: -1.0,
            effects: vec![vec![0.0, 0.7, -0.4], vec![0.0, 1.2]],
        };
        let mut counts = vec![0.0; s.cells()];
        for c in 0..s.combinations() {
            let p = sigmoid(truth.log_odds(&s.decode(c)));
            counts[2 * c] = 1000.0 * (1.0 - p);
            counts[2 * c + 1] = 1000.0 * p;
        }
        let fit = fit_logistic(&s, &counts, None).unwrap();
        assert!((fit.intercept - truth.intercept).abs() < 1e-3, "{fit:?}");
        for (e, t) in fit.effects.iter().zip(&truth.effects) {
            for (a, b) in e.iter().zip(t) {
                assert!((a - b).abs() < 1e-3, "{fit:?}");
            }
        }
    }

    #[test]
    fn naive_bayes_matches_hand_computed_odds() {
        // One feature: naive Bayes is the saturated model, odds = n1/n0 per value (+½ each).
        let s = Schema::new(
            vec![Feature {
                name: "a".into(),
                values: vec!["p".into(), "q".into()],
            }],
            "y",
        )
        .unwrap();
        let counts = [99.5, 9.5, 49.5, 29.5];
        let nb = fit_naive_bayes(&s, &counts);
        assert!((nb.log_odds(&[0]) - (10.0f64 / 100.0).ln()).abs() < 1e-12);
        assert!((nb.log_odds(&[1]) - (30.0f64 / 50.0).ln()).abs() < 1e-12);
    }
}
