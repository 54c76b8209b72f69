//! A distribution over the domain estimated to be consistent with the noised marginals, after
//! Private-PGM (McKenna, Sheldon, Miklau, "Graphical-model based estimation and inference for
//! differential privacy", ICML 2019): the log-linear model `P(x, y) ∝ exp(Σ_m θ_m(cell_m(x, y)))`
//! with one potential table per measured marginal, fitted by minimising the noise-weighted
//! squared error `½ Σ_m Σ_cells (N̂·μ_m(P) − ŷ_m)² / σ_m²` (their L2 loss) with L-BFGS (argmin).
//!
//! The domain is dense (`2 · Π kⱼ ≤ 2²⁰` cells), so marginals are plain sums; no junction tree.

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use crate::{ModelError, NoisyMarginal, Schema};

/// Tiny ridge on the potentials: keeps them finite where a noised count is ≤ 0 (the fit would
/// push that cell's probability to 0); `ρ‖θ‖²/2` with `ρ = 1e-6` is far below the data term.
const POTENTIAL_RIDGE: f64 = 1e-6;

/// Stop when an iteration lowers the cost by less than this. The cost is in χ² units (one
/// noise variance per unit), so 10⁻⁶ is far below the noise.
const COST_TOLERANCE: f64 = 1e-6;

/// Stop when the gradient's L2 norm is below this (same units per unit of potential).
const GRADIENT_TOLERANCE: f64 = 1e-4;

/// L-BFGS memory.
const LBFGS_MEMORY: usize = 10;

/// The measurements in the form the fit needs.
pub(crate) struct Measurements {
    /// Per marginal: the marginal cell of every domain cell.
    maps: Vec<Vec<u32>>,
    /// Per marginal: offset of its potential table in θ.
    offsets: Vec<usize>,
    /// Per marginal: number of cells.
    sizes: Vec<usize>,
    /// Per marginal: the noised counts.
    observed: Vec<Vec<f64>>,
    /// Per marginal: `1/σ²`.
    inv_var: Vec<f64>,
    /// Domain cells.
    cells: usize,
}

impl Measurements {
    pub(crate) fn new(schema: &Schema, marginals: &[NoisyMarginal]) -> Result<Self, ModelError> {
        if marginals.is_empty() {
            return Err(ModelError::Measurement("no marginals to fit".into()));
        }
        let cells = schema.cells();
        let mut maps = Vec::with_capacity(marginals.len());
        let mut offsets = Vec::with_capacity(marginals.len());
        let mut sizes = Vec::with_capacity(marginals.len());
        let mut offset = 0;
        for marginal in marginals {
            marginal.validate(schema)?;
            let map = (0..cells)
                .map(|cell| {
                    let values = schema.decode(cell / 2);
                    // Marginal cells ≤ MAX_CELLS = 2²⁰ fit a u32.
                    marginal.spec.cell_of(schema, &values, cell % 2) as u32
                })
                .collect();
            maps.push(map);
            offsets.push(offset);
            let size = marginal.spec.cells(schema);
            sizes.push(size);
            offset += size;
        }
        Ok(Measurements {
            maps,
            offsets,
            sizes,
            observed: marginals
                .iter()
                .map(|m| m.counts.iter().map(|&c| c as f64).collect())
                .collect(),
            inv_var: marginals.iter().map(|m| 1.0 / m.noise_variance()).collect(),
            cells,
        })
    }

    /// A copy with other observed counts (bootstrap replicates).
    pub(crate) fn with_observed(&self, observed: Vec<Vec<f64>>) -> Self {
        Measurements {
            maps: self.maps.clone(),
            offsets: self.offsets.clone(),
            sizes: self.sizes.clone(),
            observed,
            inv_var: self.inv_var.clone(),
            cells: self.cells,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.maps.len()
    }

    /// Marginal `m` of a vector over domain cells.
    pub(crate) fn project(&self, m: usize, domain: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.sizes[m]];
        for (&j, &v) in self.maps[m].iter().zip(domain) {
            out[j as usize] += v;
        }
        out
    }

    /// Inverse-variance weighted estimate of the overlap size `N` from the marginals' totals
    /// (each total has variance `cells · σ²`), at least 1.
    fn total(&self) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (obs, (&iv, &size)) in self
            .observed
            .iter()
            .zip(self.inv_var.iter().zip(&self.sizes))
        {
            let w = iv / size as f64;
            num += w * obs.iter().sum::<f64>();
            den += w;
        }
        (num / den).max(1.0)
    }

    fn parameters(&self) -> usize {
        self.sizes.iter().sum()
    }
}

/// The estimated distribution.
#[derive(Clone, Debug)]
pub(crate) struct Estimate {
    /// `N̂`: estimated overlap size.
    pub(crate) total: f64,
    /// `P̂` over domain cells (`combination · 2 + y`), summing to 1.
    pub(crate) probabilities: Vec<f64>,
    /// The fitted potentials (a warm start for refits).
    pub(crate) theta: Vec<f64>,
}

impl Estimate {
    /// Expected counts `N̂ · P̂`.
    pub(crate) fn counts(&self) -> Vec<f64> {
        self.probabilities.iter().map(|p| p * self.total).collect()
    }
}

struct Problem<'a> {
    data: &'a Measurements,
    total: f64,
}

/// Sweeps of iterative proportional fitting (Deming & Stephan 1940) that give L-BFGS its
/// starting point: each step sets one marginal of the model to the (clipped, normalised)
/// measurement exactly. It starts the fit near the answer whatever `N̂`, where a uniform start
/// leaves L-BFGS's line search with gradients of order `N̂²/σ²`.
const IPF_SWEEPS: usize = 5;

/// The smallest count a measured cell is clipped to in the IPF start (noised counts can be ≤ 0).
const IPF_FLOOR: f64 = 0.5;

impl Problem<'_> {
    fn probabilities(&self, theta: &[f64]) -> Vec<f64> {
        let d = self.data;
        let mut logits = vec![0.0; d.cells];
        for (map, &off) in d.maps.iter().zip(&d.offsets) {
            for (l, &j) in logits.iter_mut().zip(map) {
                *l += theta[off + j as usize];
            }
        }
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for l in &mut logits {
            *l = (*l - max).exp();
            sum += *l;
        }
        logits.iter_mut().for_each(|p| *p /= sum);
        logits
    }

    /// Per marginal: `(N̂·μ_m − ŷ_m)/σ_m²`, and the cost.
    fn residuals(&self, p: &[f64], theta: &[f64]) -> (Vec<Vec<f64>>, f64) {
        let d = self.data;
        let mut cost = 0.0;
        let residuals = (0..d.len())
            .map(|m| {
                let mu = d.project(m, p);
                mu.iter()
                    .zip(&d.observed[m])
                    .map(|(&mu, &y)| {
                        let r = self.total * mu - y;
                        cost += 0.5 * d.inv_var[m] * r * r;
                        r * d.inv_var[m]
                    })
                    .collect()
            })
            .collect();
        cost += 0.5 * POTENTIAL_RIDGE * theta.iter().map(|t| t * t).sum::<f64>();
        // Per person (÷ N̂), so gradients stay O(1) at any overlap size.
        (residuals, cost / self.total)
    }

    /// The IPF starting point.
    fn ipf_start(&self) -> Vec<f64> {
        let d = self.data;
        let mut theta = vec![0.0; d.parameters()];
        for _ in 0..IPF_SWEEPS {
            for m in 0..d.len() {
                let mu = d.project(m, &self.probabilities(&theta));
                let clipped: Vec<f64> = d.observed[m].iter().map(|y| y.max(IPF_FLOOR)).collect();
                let sum: f64 = clipped.iter().sum();
                for (j, (target, mu)) in clipped.iter().zip(mu).enumerate() {
                    theta[d.offsets[m] + j] += (target / sum).ln() - mu.max(f64::MIN_POSITIVE).ln();
                }
            }
        }
        theta
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, theta: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        let p = self.probabilities(theta);
        Ok(self.residuals(&p, theta).1)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, theta: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let d = self.data;
        let p = self.probabilities(theta);
        let (residuals, _) = self.residuals(&p, theta);
        // ∂cost/∂P(c) = N̂ Σ_m r_m(cell_m(c)); through the softmax,
        // ∂cost/∂logit(c) = P(c)·(g(c) − Σ P g).
        // Per person: N̂·r ÷ N̂.
        let mut g = vec![0.0; d.cells];
        for (map, r) in d.maps.iter().zip(&residuals) {
            for (gc, &j) in g.iter_mut().zip(map) {
                *gc += r[j as usize];
            }
        }
        let mean: f64 = g.iter().zip(&p).map(|(g, p)| g * p).sum();
        let mut grad: Vec<f64> = theta
            .iter()
            .map(|t| POTENTIAL_RIDGE * t / self.total)
            .collect();
        for (map, &off) in d.maps.iter().zip(&d.offsets) {
            for ((&j, &gc), &pc) in map.iter().zip(&g).zip(&p) {
                grad[off + j as usize] += pc * (gc - mean);
            }
        }
        Ok(grad)
    }
}

/// Fits the estimated distribution, starting from `warm` potentials if given.
pub(crate) fn estimate(
    data: &Measurements,
    warm: Option<&[f64]>,
    max_iterations: u64,
) -> Result<Estimate, ModelError> {
    let total = data.total();
    let problem = Problem { data, total };
    let init = match warm {
        Some(theta) if theta.len() == data.parameters() => theta.to_vec(),
        _ => problem.ipf_start(),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), LBFGS_MEMORY)
        .with_tolerance_grad(GRADIENT_TOLERANCE / total)
        .and_then(|s| s.with_tolerance_cost(COST_TOLERANCE / total))
        .map_err(|e| ModelError::Optimisation(e.to_string()))?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(init).max_iters(max_iterations))
        .run()
        .map_err(|e| ModelError::Optimisation(format!("estimating the distribution: {e}")))?;
    let theta = result
        .state()
        .get_best_param()
        .cloned()
        .ok_or_else(|| ModelError::Optimisation("no parameters returned".into()))?;
    let probabilities = Problem { data, total }.probabilities(&theta);
    Ok(Estimate {
        total,
        probabilities,
        theta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Feature, MarginalSpec};
    use tandem_dp::ShiftedLaplace;

    fn setup() -> (Schema, Vec<NoisyMarginal>) {
        let f = |name: &str, k: usize| Feature {
            name: name.into(),
            values: (0..k).map(|v| v.to_string()).collect(),
        };
        let schema = Schema::new(vec![f("a", 3), f("b", 2)], "y").unwrap();
        let noise = ShiftedLaplace {
            scale: 2.0,
            offset: 40,
        };
        // Exact counts of a fixed table, measured without noise (the fit still weighs by σ²).
        let table: Vec<f64> = (0..schema.cells())
            .map(|c| 50.0 + 37.0 * ((c * 7) % 5) as f64)
            .collect();
        let specs = [
            MarginalSpec {
                features: vec![0],
                label: true,
            },
            MarginalSpec {
                features: vec![1],
                label: true,
            },
            MarginalSpec {
                features: vec![0, 1],
                label: false,
            },
        ];
        let marginals = specs
            .iter()
            .map(|spec| {
                let mut counts = vec![0i64; spec.cells(&schema)];
                for (cell, &c) in table.iter().enumerate() {
                    counts[spec.cell_of(&schema, &schema.decode(cell / 2), cell % 2)] += c as i64;
                }
                NoisyMarginal {
                    spec: spec.clone(),
                    counts,
                    noise,
                }
            })
            .collect();
        (schema, marginals)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (schema, marginals) = setup();
        let data = Measurements::new(&schema, &marginals).unwrap();
        let problem = Problem {
            data: &data,
            total: data.total(),
        };
        let theta: Vec<f64> = (0..data.parameters())
            .map(|i| ((i * 13) % 7) as f64 * 0.1)
            .collect();
        let grad = problem.gradient(&theta).unwrap();
        for i in 0..theta.len() {
            let h = 1e-6;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (problem.cost(&up).unwrap() - problem.cost(&down).unwrap()) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-4 * (1.0 + grad[i].abs()),
                "{i}: {numeric} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn consistent_marginals_are_reproduced() {
        let (schema, marginals) = setup();
        let data = Measurements::new(&schema, &marginals).unwrap();
        let est = estimate(&data, None, 200).unwrap();
        let counts = est.counts();
        for (m, marginal) in marginals.iter().enumerate() {
            for (fitted, &observed) in data.project(m, &counts).iter().zip(&marginal.counts) {
                assert!(
                    (fitted - observed as f64).abs() < 0.05,
                    "{fitted} vs {observed}"
                );
            }
        }
    }
}
