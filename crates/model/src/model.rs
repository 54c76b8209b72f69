//! Stored models: coefficients with intervals, re-scoring and the score table.

use serde::{Deserialize, Serialize};

use crate::logistic::sigmoid;
use crate::{ModelError, Schema};

/// How a model was fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Naive Bayes from the consistent label × feature marginals.
    NaiveBayes,
    /// Main-effects logistic regression fitted to the distribution estimated from the marginals
    /// (Private-PGM, McKenna et al. ICML 2019).
    LogisticRegression,
    /// Non-private maximum-likelihood logistic regression on an exact table (reference only).
    ExactLogisticRegression,
}

/// A point estimate with a two-sided interval at the model's confidence level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Point estimate.
    pub estimate: f64,
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
}

impl Interval {
    /// Whether `x` lies in `[lower, upper]`.
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

/// One feature value's log-odds coefficient (relative to the feature's reference value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    /// The value.
    pub value: String,
    /// Coefficient in log-odds units; the reference value has `0` with a zero-width interval.
    pub log_odds: Interval,
}

/// A feature's coefficients, one per value in the schema's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureCoefficients {
    /// Feature name.
    pub feature: String,
    /// The reference value (its coefficient is 0).
    pub reference: String,
    /// One per value, in the schema's order (the first is the reference).
    pub values: Vec<Coefficient>,
}

/// A fitted model: JSON-storable and re-scorable locally at no privacy cost (post-processing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// Fitting method.
    pub method: Method,
    /// Sources of the method.
    pub source: String,
    /// Features and label.
    pub schema: Schema,
    /// Confidence level of the intervals, e.g. 0.95.
    pub confidence: f64,
    /// Intercept (log-odds of the label for all-reference features).
    pub intercept: Interval,
    /// Coefficients, one entry per feature in schema order.
    pub coefficients: Vec<FeatureCoefficients>,
}

/// One line of a score table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// One value per feature, in schema order.
    pub values: Vec<String>,
    /// Model log-odds of the label.
    pub log_odds: f64,
    /// Score: the modelled probability of the label, `1/(1 + e^(−log_odds))`.
    pub score: f64,
}

impl FittedModel {
    pub(crate) fn from_logit(
        method: Method,
        schema: &Schema,
        confidence: f64,
        intervals: &(Interval, Vec<Vec<Interval>>),
    ) -> Self {
        let source = match method {
            Method::NaiveBayes => {
                "naive Bayes on label × feature marginals made consistent by the \
                Private-PGM estimate (McKenna, Sheldon, Miklau, ICML 2019); intervals by \
                parametric bootstrap over sampling and the known cell noise"
                    .to_owned()
            }
            Method::LogisticRegression => "logistic regression (maximum likelihood) on the \
                distribution estimated from the noised marginals by Private-PGM (McKenna, \
                Sheldon, Miklau, ICML 2019); intervals by parametric bootstrap over sampling and \
                the known cell noise"
                .to_owned(),
            Method::ExactLogisticRegression => "non-private maximum-likelihood logistic \
                regression on an exact contingency table; Wald intervals"
                .to_owned(),
        };
        FittedModel {
            method,
            source,
            schema: schema.clone(),
            confidence,
            intercept: intervals.0,
            coefficients: schema
                .features
                .iter()
                .zip(&intervals.1)
                .map(|(f, ivs)| FeatureCoefficients {
                    feature: f.name.clone(),
                    reference: f.values[0].clone(),
                    values: f
                        .values
                        .iter()
                        .zip(ivs)
                        .map(|(v, iv)| Coefficient {
                            value: v.clone(),
                            log_odds: *iv,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Checks that the coefficients line up with the schema (e.g. after loading JSON).
    ///
    /// # Errors
    /// [`ModelError::InvalidSchema`] or [`ModelError::InvalidModel`].
    pub fn validate(&self) -> Result<(), ModelError> {
        self.schema.validate()?;
        if self.coefficients.len() != self.schema.features.len() {
            return Err(ModelError::InvalidModel(
                "one coefficient list per feature is needed".into(),
            ));
        }
        for (f, c) in self.schema.features.iter().zip(&self.coefficients) {
            let aligned = c.feature == f.name
                && c.values.len() == f.values.len()
                && c.values.iter().zip(&f.values).all(|(c, v)| &c.value == v)
                && c.values.iter().all(|c| c.log_odds.estimate.is_finite());
            if !aligned {
                return Err(ModelError::InvalidModel(format!(
                    "coefficients of feature {:?} do not match its values",
                    f.name
                )));
            }
        }
        if !self.intercept.estimate.is_finite() {
            return Err(ModelError::InvalidModel("intercept is not finite".into()));
        }
        Ok(())
    }

    /// Log-odds of the label for value indices (one per feature).
    fn log_odds_of(&self, values: &[usize]) -> f64 {
        self.intercept.estimate
            + self
                .coefficients
                .iter()
                .zip(values)
                .map(|(c, &v)| c.values[v].log_odds.estimate)
                .sum::<f64>()
    }

    /// Scores one record given as one value name per feature (schema order): the modelled
    /// probability of the label, in `[0, 1]`.
    ///
    /// # Errors
    /// [`ModelError::Record`] for a wrong arity or an unknown value; [`ModelError::InvalidModel`]
    /// if the model does not match its schema.
    pub fn score(&self, record: &[&str]) -> Result<f64, ModelError> {
        self.validate()?;
        let values = self.schema.value_indices(record)?;
        Ok(sigmoid(self.log_odds_of(&values)))
    }

    /// The score of every feature combination, highest score first (ties in combination
    /// order): the table a brand joins to its own customers locally.
    ///
    /// # Errors
    /// [`ModelError::InvalidModel`] if the model does not match its schema.
    pub fn score_table(&self) -> Result<Vec<ScoreRow>, ModelError> {
        self.validate()?;
        let mut rows: Vec<ScoreRow> = (0..self.schema.combinations())
            .map(|c| {
                let values = self.schema.decode(c);
                let log_odds = self.log_odds_of(&values);
                ScoreRow {
                    values: self
                        .schema
                        .features
                        .iter()
                        .zip(&values)
                        .map(|(f, &v)| f.values[v].clone())
                        .collect(),
                    log_odds,
                    score: sigmoid(log_odds),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(rows)
    }

    /// The model as pretty JSON.
    ///
    /// # Errors
    /// [`ModelError::Json`] (not expected for a valid model).
    pub fn to_json(&self) -> Result<String, ModelError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Loads a model from JSON and checks it.
    ///
    /// # Errors
    /// [`ModelError::Json`] with line and column, or the errors of [`FittedModel::validate`].
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let model: FittedModel = serde_json::from_str(json)?;
        model.validate()?;
        Ok(model)
    }
}
