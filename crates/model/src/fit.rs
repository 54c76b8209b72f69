//! The whole fit: estimate a consistent distribution from the noised marginals, fit naive Bayes
//! and logistic regression, tabulate segments, and put intervals on everything by a seeded
//! parametric bootstrap.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::crosstab::CrossTab;
use crate::estimate::{Estimate, Measurements, estimate};
use crate::logistic::{Logit, fit_logistic, fit_naive_bayes, wald_standard_errors};
use crate::marginal::NoiseSimulator;
use crate::model::{FittedModel, Interval, Method};
use crate::{ModelError, NoisyMarginal, Schema};

/// Options of [`fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Two-sided confidence level of every interval, in `(0, 1)`.
    pub confidence: f64,
    /// Parametric bootstrap replicates (0 gives zero-width intervals).
    pub bootstrap_replicates: usize,
    /// Seed of the bootstrap (the fit itself is deterministic).
    pub seed: u64,
    /// L-BFGS iterations for the distribution estimate.
    pub max_iterations: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            confidence: 0.95,
            bootstrap_replicates: 200,
            seed: 0,
            max_iterations: 200,
        }
    }
}

/// Propensity and lift of one feature value over the overlap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentRow {
    /// Feature name.
    pub feature: String,
    /// Value.
    pub value: String,
    /// Estimated overlap customers with this value.
    pub overlap: Interval,
    /// Of those, estimated customers with the label.
    pub with_label: Interval,
    /// `P(label | value)` over the overlap.
    pub propensity: Interval,
    /// Propensity divided by the overlap's base rate `P(label)`.
    pub lift: Interval,
}

/// Everything a fit produces. The inputs were the only release; all of this is
/// post-processing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Features and label.
    pub schema: Schema,
    /// Options used.
    pub options: FitOptions,
    /// Estimated overlap size `N̂`.
    pub overlap: Interval,
    /// `P(label)` over the overlap.
    pub base_rate: Interval,
    /// Naive Bayes.
    pub naive_bayes: FittedModel,
    /// Logistic regression.
    pub logistic: FittedModel,
    /// Per feature value propensity and lift, features in schema order.
    pub segments: Vec<SegmentRow>,
    /// The cross-tabs: raw signed estimates beside the consistent view.
    pub crosstab: CrossTab,
}

/// All fitted quantities of one (real or bootstrap) data set, flattened.
struct Stats {
    logistic: Logit,
    values: Vec<f64>,
}

/// Layout of [`Stats::values`]: NB (intercept, effects), LR (same), N̂, base rate, then per
/// feature value (overlap, with label, propensity, lift).
fn stats(schema: &Schema, est: &Estimate, warm: Option<&Logit>) -> Result<Stats, ModelError> {
    let counts = est.counts();
    let naive_bayes = fit_naive_bayes(schema, &counts);
    let logistic = fit_logistic(schema, &counts, warm)?;
    let mut values = Vec::new();
    for logit in [&naive_bayes, &logistic] {
        values.push(logit.intercept);
        for e in &logit.effects {
            values.extend_from_slice(e);
        }
    }
    let positives: f64 = counts.iter().skip(1).step_by(2).sum();
    let base_rate = positives / est.total;
    values.push(est.total);
    values.push(base_rate);
    for (j, f) in schema.features.iter().enumerate() {
        let mut by_value = vec![[0.0f64; 2]; f.values.len()];
        for c in 0..schema.combinations() {
            let v = schema.decode(c)[j];
            by_value[v][0] += counts[2 * c] + counts[2 * c + 1];
            by_value[v][1] += counts[2 * c + 1];
        }
        for [n, n1] in by_value {
            let propensity = if n > 0.0 { n1 / n } else { 0.0 };
            let lift = if base_rate > 0.0 {
                propensity / base_rate
            } else {
                0.0
            };
            values.extend_from_slice(&[n, n1, propensity, lift]);
        }
    }
    Ok(Stats { logistic, values })
}

/// Fits naive Bayes and logistic regression to noised marginals over the overlap.
///
/// Input: the released cross-tabs of a [`crate::MarginalPlan`] (any set of marginals whose
/// specs fit `schema`), each with its run's cell noise. Steps:
/// 1. Private-PGM estimate `P̂` of the overlap's joint distribution of features and label, and
///    `N̂` (inverse-variance weighted marginal totals) — see `estimate`;
/// 2. naive Bayes from `N̂·P̂`'s label × feature marginals (non-negative, consistent margins);
/// 3. logistic regression by maximum likelihood on `N̂·P̂`;
/// 4. segments: per feature value, overlap, label count, propensity and lift;
/// 5. intervals: `B` replicates draw counts `~ Poisson(N̂·P̂)` per domain cell, take the
///    measured marginals, add simulated cell noise of the known distribution, and redo 1–4; each
///    interval is `estimate ± z·sd` over the replicates (normal bootstrap interval).
///
/// # Errors
/// [`ModelError::Measurement`] for marginals that do not fit the schema,
/// [`ModelError::InvalidPlan`] for bad specs, [`ModelError::Optimisation`] if a solver fails,
/// [`ModelError::InvalidOptions`] for a confidence outside `(0, 1)`.
pub fn fit(
    schema: &Schema,
    marginals: &[NoisyMarginal],
    options: &FitOptions,
) -> Result<FitReport, ModelError> {
    schema.validate()?;
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(ModelError::InvalidOptions(format!(
            "confidence must be in (0, 1), got {}",
            options.confidence
        )));
    }
    let data = Measurements::new(schema, marginals)?;
    let point_estimate = estimate(&data, None, options.max_iterations)?;
    let point = stats(schema, &point_estimate, None)?;

    let simulators = marginals
        .iter()
        .map(|m| NoiseSimulator::new(&m.noise))
        .collect::<Result<Vec<_>, _>>()?;
    let expected = point_estimate.counts();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut sum = vec![0.0; point.values.len()];
    let mut sum_sq = vec![0.0; point.values.len()];
    for _ in 0..options.bootstrap_replicates {
        let sample: Vec<f64> = expected
            .iter()
            .map(|&lambda| match Poisson::new(lambda) {
                Ok(poisson) => poisson.sample(&mut rng),
                Err(_) => 0.0,
            })
            .collect();
        let observed = (0..data.len())
            .map(|m| {
                data.project(m, &sample)
                    .into_iter()
                    .map(|c| c + simulators[m].sample(&mut rng) as f64)
                    .collect()
            })
            .collect();
        let replicate = data.with_observed(observed);
        let est = estimate(
            &replicate,
            Some(&point_estimate.theta),
            options.max_iterations,
        )?;
        let s = stats(schema, &est, Some(&point.logistic))?;
        for ((a, b), v) in sum.iter_mut().zip(sum_sq.iter_mut()).zip(&s.values) {
            *a += v;
            *b += v * v;
        }
    }
    let z = Normal::new(0.0, 1.0)
        .map_err(|e| ModelError::InvalidOptions(e.to_string()))?
        .inverse_cdf(0.5 + options.confidence / 2.0);
    let b = options.bootstrap_replicates as f64;
    let intervals: Vec<Interval> = point
        .values
        .iter()
        .enumerate()
        .map(|(i, &estimate)| {
            let sd = if options.bootstrap_replicates > 1 {
                ((sum_sq[i] - sum[i] * sum[i] / b) / (b - 1.0))
                    .max(0.0)
                    .sqrt()
            } else {
                0.0
            };
            Interval {
                estimate,
                lower: estimate - z * sd,
                upper: estimate + z * sd,
            }
        })
        .collect();

    let mut cursor = intervals.into_iter();
    let mut logit_intervals = || {
        let intercept = cursor.next();
        let effects: Vec<Vec<Interval>> = schema
            .features
            .iter()
            .map(|f| cursor.by_ref().take(f.values.len()).collect())
            .collect();
        (intercept, effects)
    };
    let (nb_intercept, nb_effects) = logit_intervals();
    let (lr_intercept, lr_effects) = logit_intervals();
    let missing = || ModelError::Optimisation("statistics layout mismatch".into());
    let nb = (nb_intercept.ok_or_else(missing)?, nb_effects);
    let lr = (lr_intercept.ok_or_else(missing)?, lr_effects);
    let overlap = non_negative(cursor.next().ok_or_else(missing)?);
    let base_rate = non_negative(cursor.next().ok_or_else(missing)?);
    let mut segments = Vec::new();
    for f in &schema.features {
        for value in &f.values {
            let mut next = || cursor.next().map(non_negative).ok_or_else(missing);
            segments.push(SegmentRow {
                feature: f.name.clone(),
                value: value.clone(),
                overlap: next()?,
                with_label: next()?,
                propensity: next()?,
                lift: next()?,
            });
        }
    }
    let confidence = options.confidence;
    Ok(FitReport {
        schema: schema.clone(),
        options: options.clone(),
        overlap,
        base_rate,
        naive_bayes: FittedModel::from_logit(Method::NaiveBayes, schema, confidence, &nb),
        logistic: FittedModel::from_logit(Method::LogisticRegression, schema, confidence, &lr),
        segments,
        crosstab: CrossTab::new(schema, marginals, &data, &point_estimate, confidence)?,
    })
}

/// The non-private reference: maximum-likelihood logistic regression on an exact contingency
/// table the caller holds (`counts[combination · 2 + y]`, e.g. its own joined rows in a
/// benchmark), with Wald intervals. Equal to the row-level MLE. Not for released data: the
/// counts are used as they are.
///
/// # Errors
/// [`ModelError::Measurement`] for a table of the wrong size or with negative or non-finite
/// counts, [`ModelError::InvalidOptions`] for a confidence outside `(0, 1)`,
/// [`ModelError::Optimisation`] if the fit fails or the information matrix is singular.
pub fn fit_exact(
    schema: &Schema,
    counts: &[f64],
    confidence: f64,
) -> Result<FittedModel, ModelError> {
    schema.validate()?;
    if counts.len() != schema.cells() || !counts.iter().all(|c| c.is_finite() && *c >= 0.0) {
        return Err(ModelError::Measurement(format!(
            "an exact table needs {} non-negative counts",
            schema.cells()
        )));
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(ModelError::InvalidOptions(format!(
            "confidence must be in (0, 1), got {confidence}"
        )));
    }
    let logit = fit_logistic(schema, counts, None)?;
    let se = wald_standard_errors(schema, counts, &logit)?;
    let z = Normal::new(0.0, 1.0)
        .map_err(|e| ModelError::InvalidOptions(e.to_string()))?
        .inverse_cdf(0.5 + confidence / 2.0);
    let interval = |estimate: f64, se: f64| Interval {
        estimate,
        lower: estimate - z * se,
        upper: estimate + z * se,
    };
    let mut next = 1;
    let effects = logit
        .effects
        .iter()
        .map(|e| {
            e.iter()
                .enumerate()
                .map(|(v, &b)| {
                    if v == 0 {
                        interval(0.0, 0.0)
                    } else {
                        next += 1;
                        interval(b, se[next - 1])
                    }
                })
                .collect()
        })
        .collect();
    Ok(FittedModel::from_logit(
        Method::ExactLogisticRegression,
        schema,
        confidence,
        &(interval(logit.intercept, se[0]), effects),
    ))
}

/// Clips an interval of a non-negative quantity at 0.
fn non_negative(iv: Interval) -> Interval {
    Interval {
        estimate: iv.estimate.max(0.0),
        lower: iv.lower.max(0.0),
        upper: iv.upper.max(0.0),
    }
}
