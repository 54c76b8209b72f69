//! The noised cross-tab export for data scientists who fit their own models: every released
//! cell's raw signed estimate beside the consistent (projected) view.

use serde::{Deserialize, Serialize};

use crate::estimate::{Estimate, Measurements};
use crate::{MarginalSpec, ModelError, NoisyMarginal, Schema};

/// One cell of an exported marginal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossTabCell {
    /// `(feature, value)` of the cell, in the marginal's feature order.
    pub features: Vec<(String, String)>,
    /// `Some(true)` for the label's bucket, `Some(false)` for the rest of the responder's set,
    /// `None` for a marginal over overlap membership only.
    pub label: Option<bool>,
    /// The released signed estimate (may be negative): the raw, primary number.
    pub raw_estimate: i64,
    /// The consistent view: `N̂ · P̂`'s marginal (non-negative; all marginals agree on shared
    /// margins). Post-processing for display and modelling, never a replacement of the raw one.
    pub consistent_estimate: f64,
}

/// One exported marginal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossTabMarginal {
    /// Readable name, e.g. `age_band × tier=gold`.
    pub name: String,
    /// The marginal.
    pub spec: MarginalSpec,
    /// Standard deviation of each raw estimate's noise.
    pub noise_sd: f64,
    /// `h`: `[raw − h, raw + h]` holds the true count with the export's confidence (psi-ca-v1
    /// §6, from opendp's accuracy of the run's cell noise).
    pub half_width: u64,
    /// Cells in the run's `[gA · nB + gB]` order.
    pub cells: Vec<CrossTabCell>,
}

/// All released marginals of a fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossTab {
    /// Confidence level of the half-widths.
    pub confidence: f64,
    /// Estimated overlap size `N̂` behind the consistent view.
    pub overlap: f64,
    /// The marginals.
    pub marginals: Vec<CrossTabMarginal>,
}

impl CrossTab {
    pub(crate) fn new(
        schema: &Schema,
        marginals: &[NoisyMarginal],
        data: &Measurements,
        est: &Estimate,
        confidence: f64,
    ) -> Result<Self, ModelError> {
        let counts = est.counts();
        let marginals = marginals
            .iter()
            .enumerate()
            .map(|(m, marginal)| {
                let consistent = data.project(m, &counts);
                let cells = marginal
                    .counts
                    .iter()
                    .zip(consistent)
                    .enumerate()
                    .map(|(cell, (&raw, consistent))| {
                        let (values, y) = marginal.spec.decode_cell(schema, cell);
                        CrossTabCell {
                            features: marginal
                                .spec
                                .features
                                .iter()
                                .zip(values)
                                .map(|(&j, v)| {
                                    let f = &schema.features[j];
                                    (f.name.clone(), f.values[v].clone())
                                })
                                .collect(),
                            label: y.map(|y| y == 1),
                            raw_estimate: raw,
                            consistent_estimate: consistent,
                        }
                    })
                    .collect();
                Ok(CrossTabMarginal {
                    name: marginal.spec.name(schema),
                    spec: marginal.spec.clone(),
                    noise_sd: marginal.noise_variance().sqrt(),
                    half_width: marginal.noise.half_width(1.0 - confidence)?,
                    cells,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(CrossTab {
            confidence,
            overlap: est.total,
            marginals,
        })
    }

    /// CSV with a header row and one row per cell: `marginal, cell, features` (`name=value`
    /// joined by `;`), `label` (`true`/`false`/empty), `raw_estimate`, `consistent_estimate`,
    /// `noise_sd`, `half_width`.
    ///
    /// # Errors
    /// [`ModelError::Csv`] (not expected when writing to memory).
    pub fn to_csv(&self) -> Result<String, ModelError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record([
            "marginal",
            "cell",
            "features",
            "label",
            "raw_estimate",
            "consistent_estimate",
            "noise_sd",
            "half_width",
        ])?;
        for marginal in &self.marginals {
            for (i, cell) in marginal.cells.iter().enumerate() {
                let features: Vec<String> = cell
                    .features
                    .iter()
                    .map(|(f, v)| format!("{f}={v}"))
                    .collect();
                writer.write_record([
                    marginal.name.clone(),
                    i.to_string(),
                    features.join(";"),
                    cell.label.map(|l| l.to_string()).unwrap_or_default(),
                    cell.raw_estimate.to_string(),
                    format!("{:.3}", cell.consistent_estimate),
                    format!("{:.3}", marginal.noise_sd),
                    marginal.half_width.to_string(),
                ])?;
            }
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| ModelError::Csv(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| ModelError::Csv(e.to_string()))
    }

    /// The export as pretty JSON.
    ///
    /// # Errors
    /// [`ModelError::Json`] (not expected).
    pub fn to_json(&self) -> Result<String, ModelError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}
