//! The modelling domain: the querier's categorical features (public value sets) and the
//! partner's binary label, and the dense cell indexing every other module shares.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// The largest dense domain (`2 · Π kⱼ` cells) a model may span: psi-ca-v1's `MAX_CELLS` (2²⁰),
/// so the all-features cross-tab is always one legal PSI-CA run.
pub const MAX_DOMAIN_CELLS: usize = tandem_psi::MAX_CELLS as usize;

/// One categorical feature on the querier's side, with its public value set (order is the
/// bucket order; the first value is the reference level of the regression coefficients).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Column name, e.g. `age_band`.
    pub name: String,
    /// Public values, at least 2, distinct, e.g. `["18-24", "25-34", ...]`.
    pub values: Vec<String>,
}

/// Features (querier side) and a binary label (responder side, e.g. `tier=gold`).
///
/// Domain cells are indexed `combination · 2 + y`, where `combination` is the mixed-radix index
/// of the feature values (feature 0 most significant) and `y ∈ {0, 1}` is the label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The querier's features, in order.
    pub features: Vec<Feature>,
    /// Name of the partner's binary label, e.g. `tier=gold`.
    pub label: String,
}

impl Schema {
    /// Checks and builds a schema.
    ///
    /// # Errors
    /// [`ModelError::InvalidSchema`] if there are no features, a feature has fewer than 2 values,
    /// names or values repeat, or the domain exceeds [`MAX_DOMAIN_CELLS`].
    pub fn new(features: Vec<Feature>, label: impl Into<String>) -> Result<Self, ModelError> {
        let schema = Schema {
            features,
            label: label.into(),
        };
        schema.validate()?;
        Ok(schema)
    }

    /// Re-checks a schema (e.g. after deserialisation); see [`Schema::new`].
    ///
    /// # Errors
    /// As [`Schema::new`].
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.features.is_empty() {
            return Err(invalid("at least one feature is needed"));
        }
        let mut cells: usize = 2;
        for (j, feature) in self.features.iter().enumerate() {
            if self.features[..j].iter().any(|f| f.name == feature.name) {
                return Err(invalid(&format!("feature {:?} is repeated", feature.name)));
            }
            if feature.values.len() < 2 {
                return Err(invalid(&format!(
                    "feature {:?} needs at least 2 values",
                    feature.name
                )));
            }
            for (i, value) in feature.values.iter().enumerate() {
                if feature.values[..i].contains(value) {
                    return Err(invalid(&format!(
                        "feature {:?} repeats value {value:?}",
                        feature.name
                    )));
                }
            }
            cells = cells
                .checked_mul(feature.values.len())
                .filter(|&c| c <= MAX_DOMAIN_CELLS)
                .ok_or_else(|| {
                    invalid(&format!(
                        "the domain 2·Πkⱼ exceeds {MAX_DOMAIN_CELLS} cells at feature {:?}",
                        feature.name
                    ))
                })?;
        }
        Ok(())
    }

    /// `Π kⱼ`: the number of feature combinations.
    pub fn combinations(&self) -> usize {
        self.features.iter().map(|f| f.values.len()).product()
    }

    /// `2 · Π kⱼ`: the number of domain cells.
    pub fn cells(&self) -> usize {
        2 * self.combinations()
    }

    /// Value indices (one per feature) of a feature combination index.
    pub fn decode(&self, mut combination: usize) -> Vec<usize> {
        let mut values = vec![0; self.features.len()];
        for (j, feature) in self.features.iter().enumerate().rev() {
            let k = feature.values.len();
            values[j] = combination % k;
            combination /= k;
        }
        values
    }

    /// Feature combination index of value indices (one per feature, each in range).
    pub fn encode(&self, values: &[usize]) -> usize {
        self.features
            .iter()
            .zip(values)
            .fold(0, |acc, (f, &v)| acc * f.values.len() + v)
    }

    /// Index of a feature by name.
    ///
    /// # Errors
    /// [`ModelError::UnknownFeature`].
    pub fn feature_index(&self, name: &str) -> Result<usize, ModelError> {
        self.features
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| ModelError::UnknownFeature(name.to_owned()))
    }

    /// Value indices of a record given as one value name per feature (in feature order).
    ///
    /// # Errors
    /// [`ModelError::Record`] on a wrong arity or a value outside a feature's public set.
    pub fn value_indices(&self, record: &[&str]) -> Result<Vec<usize>, ModelError> {
        if record.len() != self.features.len() {
            return Err(ModelError::Record(format!(
                "expected {} values (one per feature), got {}",
                self.features.len(),
                record.len()
            )));
        }
        self.features
            .iter()
            .zip(record)
            .map(|(f, value)| {
                f.values.iter().position(|v| v == value).ok_or_else(|| {
                    ModelError::Record(format!(
                        "value {value:?} is not among feature {:?}'s values",
                        f.name
                    ))
                })
            })
            .collect()
    }
}

fn invalid(reason: &str) -> ModelError {
    ModelError::InvalidSchema(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn schema() -> Schema {
        Schema::new(
            vec![
                Feature {
                    name: "age".into(),
                    values: vec!["a".into(), "b".into(), "c".into()],
                },
                Feature {
                    name: "region".into(),
                    values: vec!["n".into(), "s".into()],
                },
            ],
            "gold",
        )
        .unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = schema();
        assert_eq!(s.combinations(), 6);
        for c in 0..s.combinations() {
            assert_eq!(s.encode(&s.decode(c)), c);
        }
        assert_eq!(s.decode(3), vec![1, 1]);
        assert_eq!(s.value_indices(&["c", "s"]).unwrap(), vec![2, 1]);
    }

    #[test]
    fn rejects_bad_schemas_and_records() {
        let one_value = Feature {
            name: "x".into(),
            values: vec!["only".into()],
        };
        assert!(Schema::new(vec![one_value], "y").is_err());
        assert!(Schema::new(vec![], "y").is_err());
        let s = schema();
        assert!(s.value_indices(&["a"]).is_err());
        assert!(s.value_indices(&["z", "n"]).is_err());
        let wide = Feature {
            name: "w".into(),
            values: (0..1025).map(|i| i.to_string()).collect(),
        };
        let mut w2 = wide.clone();
        w2.name = "w2".into();
        assert!(Schema::new(vec![wide, w2], "y").is_err());
    }
}
