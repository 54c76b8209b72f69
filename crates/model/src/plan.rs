//! The marginal plan: which noised cross-tabs (PSI-CA runs) a model needs, their cells, and how
//! the privacy budget is split across them (see `protocols/model-v1.md` §2–3).

use serde::{Deserialize, Serialize};
use tandem_dp::ShiftedLaplace;
use tandem_psi::accounting::CELL_SHARE;

use crate::{ModelError, Schema};

/// One marginal: the cross-tab of some of the querier's features (a composite querier bucket,
/// mixed-radix over `features` in the order given) by the partner's label (responder buckets
/// `0` = without the label, `1` = with it) or, if `label` is false, by overlap membership only
/// (one responder bucket).
///
/// Cell `(gA, gB)` is at `gA · nB + gB`, as in psi-ca-v1's `CellCounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginalSpec {
    /// Feature indices into [`Schema::features`], distinct.
    pub features: Vec<usize>,
    /// Whether the responder splits its set by the label (2 buckets) or not (1 bucket).
    pub label: bool,
}

impl MarginalSpec {
    /// `nA = Π kⱼ` over the marginal's features (1 if it has none).
    pub fn querier_buckets(&self, schema: &Schema) -> usize {
        self.features
            .iter()
            .map(|&j| schema.features[j].values.len())
            .product()
    }

    /// `nB`: 2 with the label, 1 without.
    pub fn responder_buckets(&self) -> usize {
        if self.label { 2 } else { 1 }
    }

    /// `nA · nB`.
    pub fn cells(&self, schema: &Schema) -> usize {
        self.querier_buckets(schema) * self.responder_buckets()
    }

    /// The querier bucket `gA` of a customer with feature value indices `values` (one per
    /// schema feature): the mixed-radix index of its values of this marginal's features, the
    /// first listed most significant. This is how the querier buckets its set for the run.
    pub fn querier_bucket(&self, schema: &Schema, values: &[usize]) -> usize {
        self.features.iter().fold(0, |acc, &j| {
            acc * schema.features[j].values.len() + values[j]
        })
    }

    /// The marginal cell holding a domain cell (feature value indices `values`, label `y`).
    pub fn cell_of(&self, schema: &Schema, values: &[usize], y: usize) -> usize {
        let ga = self.querier_bucket(schema, values);
        if self.label { ga * 2 + y } else { ga }
    }

    /// Feature value indices (for this marginal's features) and label bucket of a marginal cell.
    pub fn decode_cell(&self, schema: &Schema, cell: usize) -> (Vec<usize>, Option<usize>) {
        let (mut ga, y) = if self.label {
            (cell / 2, Some(cell % 2))
        } else {
            (cell, None)
        };
        let mut values = vec![0; self.features.len()];
        for (slot, &j) in self.features.iter().enumerate().rev() {
            let k = schema.features[j].values.len();
            values[slot] = ga % k;
            ga /= k;
        }
        (values, y)
    }

    /// A readable name, e.g. `age_band × region × tier=gold` or `age_band × region × overlap`.
    pub fn name(&self, schema: &Schema) -> String {
        let mut parts: Vec<&str> = self
            .features
            .iter()
            .map(|&j| schema.features[j].name.as_str())
            .collect();
        parts.push(if self.label {
            schema.label.as_str()
        } else {
            "overlap"
        });
        parts.join(" × ")
    }

    /// Checks the feature indices against a schema.
    ///
    /// # Errors
    /// [`ModelError::InvalidPlan`] on an index out of range, a repeated feature, or a marginal
    /// with neither features nor the label.
    pub fn validate(&self, schema: &Schema) -> Result<(), ModelError> {
        if self.features.is_empty() && !self.label {
            return Err(ModelError::InvalidPlan(
                "a marginal needs a feature or the label".into(),
            ));
        }
        for (i, &j) in self.features.iter().enumerate() {
            if j >= schema.features.len() {
                return Err(ModelError::InvalidPlan(format!(
                    "feature index {j} is out of range"
                )));
            }
            if self.features[..i].contains(&j) {
                return Err(ModelError::InvalidPlan(format!(
                    "feature {:?} appears twice in one marginal",
                    schema.features[j].name
                )));
            }
        }
        Ok(())
    }
}

/// Which marginals to measure beyond label × each feature (always measured).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Feature pairs `(i, j)`, `i ≠ j`, each measured as `fᵢ × fⱼ × label`.
    pub pairs: Vec<(usize, usize)>,
    /// Also measure the joint of all features over the overlap (`Π kⱼ` querier buckets, one
    /// responder bucket). With it the estimated distribution has the overlap's exact feature
    /// joint up to noise, so the logistic fit approaches the maximum-likelihood fit on the joined
    /// rows (its sufficient statistics are `Xᵀy`, given by label × feature, and the rows' `X`).
    pub feature_joint: bool,
}

/// The total privacy budget of one model fit (one batch of runs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// ε the responder (label holder) spends over the whole batch.
    pub responder_epsilon: f64,
    /// ε the querier (feature holder) spends over the whole batch (its noised bucket sizes).
    pub querier_epsilon: f64,
    /// δ of the whole batch (for each party).
    pub delta: f64,
}

/// One planned PSI-CA run and its share of the budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// The marginal this run measures.
    pub spec: MarginalSpec,
    /// Readable name of the marginal.
    pub name: String,
    /// `nA`.
    pub querier_buckets: u32,
    /// `nB`.
    pub responder_buckets: u32,
    /// `nA · nB`.
    pub cells: u32,
    /// The run's `ε_B` (argument of `RunParams::for_epsilon`).
    pub responder_epsilon: f64,
    /// The run's `ε_A`.
    pub querier_epsilon: f64,
    /// The run's `δ`.
    pub delta: f64,
    /// The cell noise `RunParams::for_epsilon` will choose for these arguments
    /// (`ε_B · CELL_SHARE`, sensitivity 1, `δ/2`): what the fit's variances assume.
    pub cell_noise: ShiftedLaplace,
}

/// The marginals of one model fit and the ε split across them.
///
/// Split: the batch is `m` runs, each given `ε_B/m`, `ε_A/m` and `δ/m`; by basic sequential
/// composition the batch costs each party at most its total `(ε, δ)`. Inside a run psi-ca-v1 §6
/// spends 3/4 of `ε_B` on the cells and 1/4 on B's bucket sizes, so each cell count carries
/// discrete Laplace noise of scale `4m/(3ε_B)` clamped to `[−T, T]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarginalPlan {
    /// The modelling domain.
    pub schema: Schema,
    /// The batch budget.
    pub budget: Budget,
    /// The runs, in order: label × each feature, then the pairs, then the feature joint.
    pub runs: Vec<PlannedRun>,
}

impl MarginalPlan {
    /// Plans label × each feature plus the workload's extra marginals, splitting `budget`
    /// equally.
    ///
    /// # Errors
    /// [`ModelError::InvalidPlan`] on a bad pair or a marginal over `MAX_CELLS` cells;
    /// [`ModelError::Dp`] if a run's ε or δ is out of range.
    pub fn new(schema: &Schema, workload: &Workload, budget: Budget) -> Result<Self, ModelError> {
        schema.validate()?;
        let mut specs: Vec<MarginalSpec> = (0..schema.features.len())
            .map(|j| MarginalSpec {
                features: vec![j],
                label: true,
            })
            .collect();
        for &(i, j) in &workload.pairs {
            let spec = MarginalSpec {
                features: vec![i.min(j), i.max(j)],
                label: true,
            };
            if i == j {
                return Err(ModelError::InvalidPlan(format!(
                    "pair ({i}, {j}) repeats a feature"
                )));
            }
            spec.validate(schema)?;
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
        if workload.feature_joint {
            specs.push(MarginalSpec {
                features: (0..schema.features.len()).collect(),
                label: false,
            });
        }
        Self::from_specs(schema, specs, budget)
    }

    /// Plans the given marginals (any cliques), splitting `budget` equally.
    ///
    /// # Errors
    /// As [`MarginalPlan::new`].
    pub fn from_specs(
        schema: &Schema,
        specs: Vec<MarginalSpec>,
        budget: Budget,
    ) -> Result<Self, ModelError> {
        schema.validate()?;
        if specs.is_empty() {
            return Err(ModelError::InvalidPlan("no marginals".into()));
        }
        let m = specs.len() as f64;
        let (eps_b, eps_a, delta) = (
            budget.responder_epsilon / m,
            budget.querier_epsilon / m,
            budget.delta / m,
        );
        let runs = specs
            .into_iter()
            .map(|spec| {
                spec.validate(schema)?;
                let cells = spec.cells(schema);
                if cells > tandem_psi::MAX_CELLS as usize {
                    return Err(ModelError::InvalidPlan(format!(
                        "marginal {} has {cells} cells, over MAX_CELLS",
                        spec.name(schema)
                    )));
                }
                Ok(PlannedRun {
                    name: spec.name(schema),
                    // All three fit in u32: cells ≤ MAX_CELLS = 2²⁰.
                    querier_buckets: spec.querier_buckets(schema) as u32,
                    responder_buckets: spec.responder_buckets() as u32,
                    cells: cells as u32,
                    responder_epsilon: eps_b,
                    querier_epsilon: eps_a,
                    delta,
                    cell_noise: ShiftedLaplace::for_epsilon(eps_b * CELL_SHARE, 1, delta / 2.0)?,
                    spec,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(MarginalPlan {
            schema: schema.clone(),
            budget,
            runs,
        })
    }

    /// Total cells over all runs.
    pub fn total_cells(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.cells)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Feature;

    fn schema() -> Schema {
        let f = |name: &str, k: usize| Feature {
            name: name.into(),
            values: (0..k).map(|v| format!("{name}{v}")).collect(),
        };
        Schema::new(
            vec![f("age", 4), f("region", 3), f("channel", 2)],
            "tier=gold",
        )
        .unwrap()
    }

    #[test]
    fn plan_splits_budget_equally_and_counts_cells() {
        let s = schema();
        let budget = Budget {
            responder_epsilon: 1.0,
            querier_epsilon: 0.5,
            delta: 1e-9,
        };
        let workload = Workload {
            pairs: vec![(1, 0), (0, 1)],
            feature_joint: true,
        };
        let plan = MarginalPlan::new(&s, &workload, budget).unwrap();
        // 3 label × feature, 1 pair (deduplicated), 1 joint.
        assert_eq!(plan.runs.len(), 5);
        let cells: Vec<u32> = plan.runs.iter().map(|r| r.cells).collect();
        assert_eq!(cells, vec![8, 6, 4, 24, 24]);
        assert_eq!(plan.total_cells(), 66);
        assert_eq!(plan.runs[3].name, "age × region × tier=gold");
        assert_eq!(plan.runs[4].name, "age × region × channel × overlap");
        let eps: f64 = plan.runs.iter().map(|r| r.responder_epsilon).sum();
        assert!((eps - 1.0).abs() < 1e-12);
        let delta: f64 = plan.runs.iter().map(|r| r.delta).sum();
        assert!((delta - 1e-9).abs() < 1e-20);
        for run in &plan.runs {
            // scale = 1 / (3/4 · ε_B / m) = 4m/3 for ε_B = 1.
            assert!((run.cell_noise.scale - 20.0 / 3.0).abs() < 1e-9);
        }
    }

    #[test]
    fn cell_indexing_matches_psi_layout() {
        let s = schema();
        let spec = MarginalSpec {
            features: vec![2, 0],
            label: true,
        };
        // channel = 1, age = 3, y = 1: gA = 1·4 + 3 = 7, cell = 7·2 + 1.
        assert_eq!(spec.cell_of(&s, &[3, 0, 1], 1), 15);
        assert_eq!(spec.decode_cell(&s, 15), (vec![1, 3], Some(1)));
    }

    #[test]
    fn rejects_bad_pairs() {
        let s = schema();
        let budget = Budget {
            responder_epsilon: 1.0,
            querier_epsilon: 1.0,
            delta: 1e-9,
        };
        let bad = Workload {
            pairs: vec![(0, 7)],
            feature_joint: false,
        };
        assert!(MarginalPlan::new(&s, &bad, budget).is_err());
        let same = Workload {
            pairs: vec![(1, 1)],
            feature_joint: false,
        };
        assert!(MarginalPlan::new(&s, &same, budget).is_err());
    }

    proptest::proptest! {
        /// Every domain cell lands in exactly the marginal cell that decodes back to its values,
        /// and each marginal's cells are all hit (the layout is a projection onto psi's grid).
        #[test]
        fn marginal_cells_project_the_domain(
            ks in proptest::collection::vec(2usize..5, 1..4),
            pick in proptest::collection::vec(proptest::bool::ANY, 4),
            label in proptest::bool::ANY,
        ) {
            let features = ks
                .iter()
                .enumerate()
                .map(|(j, &k)| Feature {
                    name: format!("f{j}"),
                    values: (0..k).map(|v| v.to_string()).collect(),
                })
                .collect();
            let s = Schema::new(features, "y").unwrap();
            let chosen: Vec<usize> = (0..ks.len()).filter(|&j| pick[j]).collect();
            let spec = MarginalSpec { features: chosen.clone(), label: label || chosen.is_empty() };
            let mut hit = vec![0usize; spec.cells(&s)];
            for cell in 0..s.cells() {
                let values = s.decode(cell / 2);
                let m = spec.cell_of(&s, &values, cell % 2);
                hit[m] += 1;
                let (marginal_values, y) = spec.decode_cell(&s, m);
                let expected: Vec<usize> = spec.features.iter().map(|&j| values[j]).collect();
                proptest::prop_assert_eq!(marginal_values, expected);
                proptest::prop_assert_eq!(y, spec.label.then_some(cell % 2));
            }
            proptest::prop_assert!(hit.iter().all(|&h| h == s.cells() / spec.cells(&s)));
        }
    }
}
