//! Analysis 9 of issue 12: segments built locally at import, as pure functions over a column.
//!
//! Their outputs are public value sets (`R1F1M1` … `R5F5M5`, the named RFM groups, the band
//! labels) that agreements can name as bucket values. They see one side's own data only and
//! release nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;

/// Quintile scores 1–5 of a column: `score = 1 + ⌊5·b/n⌋`, where `b` is the number of values
/// strictly worse than this one (lower when `higher_is_better`, else higher), so the best fifth
/// scores 5 and tied values share the lower score (the `PERCENT_RANK` convention; a heavily
/// tied column, such as many one-time buyers, fills fewer than five scores).
///
/// Errors: [`AnalyticsError::InvalidValue`] with the row of the first value that is not finite.
pub fn quintile_scores(values: &[f64], higher_is_better: bool) -> Result<Vec<u8>, AnalyticsError> {
    if let Some(row) = values.iter().position(|v| !v.is_finite()) {
        return Err(AnalyticsError::InvalidValue {
            row,
            reason: format!("value {} is not a finite number", values[row]),
        });
    }
    let key = |v: f64| if higher_is_better { v } else { -v };
    let mut sorted: Vec<f64> = values.iter().map(|&v| key(v)).collect();
    sorted.sort_by(f64::total_cmp);
    let n = values.len();
    Ok(values
        .iter()
        .map(|&v| {
            let worse = sorted.partition_point(|&s| s < key(v));
            (1 + 5 * worse / n) as u8
        })
        .collect())
}

/// An RFM score: recency, frequency and monetary quintiles, each 1–5 (5 = most recent, most
/// frequent, highest spend). Displays as `R5F4M3` (Hughes 1994, *Strategic Database
/// Marketing*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RfmScore {
    /// Recency quintile (5 = bought most recently).
    pub r: u8,
    /// Frequency quintile.
    pub f: u8,
    /// Monetary quintile.
    pub m: u8,
}

impl fmt::Display for RfmScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "R{}F{}M{}", self.r, self.f, self.m)
    }
}

/// Named RFM groups, from the recency score and the rounded mean of the frequency and monetary
/// scores `fm`, after the common 10-group RFM segment map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RfmGroup {
    /// `r ≥ 4`, `fm ≥ 4`.
    Champions,
    /// `r = 3`, `fm ≥ 4`.
    Loyal,
    /// `r ≥ 4`, `fm ∈ {2, 3}`.
    PotentialLoyalists,
    /// `r ≥ 4`, `fm = 1`.
    NewCustomers,
    /// `r = 3`, `fm ∈ {2, 3}`.
    NeedAttention,
    /// `r = 3`, `fm = 1`.
    AboutToSleep,
    /// `r ≤ 2`, `fm = 5`.
    CannotLoseThem,
    /// `r ≤ 2`, `fm = 4`.
    AtRisk,
    /// `r ≤ 2`, `fm ∈ {2, 3}`.
    Hibernating,
    /// `r ≤ 2`, `fm = 1`.
    Lost,
}

impl RfmGroup {
    /// Every group, in the order above (the public value set).
    pub const ALL: [RfmGroup; 10] = [
        RfmGroup::Champions,
        RfmGroup::Loyal,
        RfmGroup::PotentialLoyalists,
        RfmGroup::NewCustomers,
        RfmGroup::NeedAttention,
        RfmGroup::AboutToSleep,
        RfmGroup::CannotLoseThem,
        RfmGroup::AtRisk,
        RfmGroup::Hibernating,
        RfmGroup::Lost,
    ];

    /// The group's label (`snake_case`, as serialised).
    pub fn label(&self) -> &'static str {
        match self {
            RfmGroup::Champions => "champions",
            RfmGroup::Loyal => "loyal",
            RfmGroup::PotentialLoyalists => "potential_loyalists",
            RfmGroup::NewCustomers => "new_customers",
            RfmGroup::NeedAttention => "need_attention",
            RfmGroup::AboutToSleep => "about_to_sleep",
            RfmGroup::CannotLoseThem => "cannot_lose_them",
            RfmGroup::AtRisk => "at_risk",
            RfmGroup::Hibernating => "hibernating",
            RfmGroup::Lost => "lost",
        }
    }
}

impl RfmScore {
    /// The named group of this score (see [`RfmGroup`]).
    pub fn group(&self) -> RfmGroup {
        let fm = (u16::from(self.f) + u16::from(self.m)).div_ceil(2);
        match (self.r, fm) {
            (4.., 4..) => RfmGroup::Champions,
            (3, 4..) => RfmGroup::Loyal,
            (4.., 2..=3) => RfmGroup::PotentialLoyalists,
            (4.., _) => RfmGroup::NewCustomers,
            (3, 2..=3) => RfmGroup::NeedAttention,
            (3, _) => RfmGroup::AboutToSleep,
            (_, 5..) => RfmGroup::CannotLoseThem,
            (_, 4) => RfmGroup::AtRisk,
            (_, 2..=3) => RfmGroup::Hibernating,
            _ => RfmGroup::Lost,
        }
    }
}

/// RFM scores of a customer table given as three columns of one length: days since the last
/// purchase (fewer is better), number of purchases and total spend (more is better). Scores
/// are quintiles within this table ([`quintile_scores`]).
///
/// Errors: [`AnalyticsError::Shape`] when the lengths differ; [`AnalyticsError::InvalidValue`]
/// for a value that is not finite or negative (row of the first).
pub fn rfm_scores(
    recency_days: &[f64],
    frequency: &[f64],
    monetary: &[f64],
) -> Result<Vec<RfmScore>, AnalyticsError> {
    let n = recency_days.len();
    if frequency.len() != n || monetary.len() != n {
        return Err(AnalyticsError::Shape(format!(
            "RFM columns have {n}, {} and {} values",
            frequency.len(),
            monetary.len()
        )));
    }
    for col in [recency_days, frequency, monetary] {
        if let Some(row) = col.iter().position(|&v| v < 0.0) {
            return Err(AnalyticsError::InvalidValue {
                row,
                reason: format!("value {} is negative", col[row]),
            });
        }
    }
    let r = quintile_scores(recency_days, false)?;
    let f = quintile_scores(frequency, true)?;
    let m = quintile_scores(monetary, true)?;
    Ok((0..n)
        .map(|i| RfmScore {
            r: r[i],
            f: f[i],
            m: m[i],
        })
        .collect())
}

/// Bands of a numeric column: edges `e₀ < e₁ < … < e_k` make the bands `< e₀`, `[e₀, e₁)`, …,
/// `≥ e_k`. With integer edges the labels read `<18`, `18-24`, …, `65+`; otherwise
/// `<0.5`, `0.5-1.5`, …, `2.5+` (half-open, lower bound included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bands {
    edges: Vec<f64>,
    labels: Vec<String>,
}

impl Bands {
    /// Bands with generated labels. Errors: [`AnalyticsError::InvalidParameter`] unless the
    /// edges are finite, strictly increasing and at least one.
    pub fn new(edges: &[f64]) -> Result<Bands, AnalyticsError> {
        check_edges(edges)?;
        let integral = edges.iter().all(|e| e.fract() == 0.0);
        let mut labels = Vec::with_capacity(edges.len() + 1);
        labels.push(format!("<{}", edges[0]));
        for w in edges.windows(2) {
            labels.push(if integral {
                format!("{}-{}", w[0], w[1] - 1.0)
            } else {
                format!("{}-{}", w[0], w[1])
            });
        }
        labels.push(format!("{}+", edges[edges.len() - 1]));
        Ok(Bands {
            edges: edges.to_vec(),
            labels,
        })
    }

    /// Bands with given labels (one more than edges, all distinct).
    /// Errors: [`AnalyticsError::InvalidParameter`] for bad edges or labels.
    pub fn with_labels(edges: &[f64], labels: &[&str]) -> Result<Bands, AnalyticsError> {
        check_edges(edges)?;
        if labels.len() != edges.len() + 1 {
            return Err(AnalyticsError::InvalidParameter(format!(
                "{} edges need {} labels, got {}",
                edges.len(),
                edges.len() + 1,
                labels.len()
            )));
        }
        if (1..labels.len()).any(|i| labels[..i].contains(&labels[i])) {
            return Err(AnalyticsError::InvalidParameter(
                "band labels repeat".into(),
            ));
        }
        Ok(Bands {
            edges: edges.to_vec(),
            labels: labels.iter().map(|&l| l.to_owned()).collect(),
        })
    }

    /// The usual marketing age bands: `<18`, `18-24`, `25-34`, `35-44`, `45-54`, `55-64`, `65+`.
    pub fn age() -> Bands {
        Bands {
            edges: vec![18.0, 25.0, 35.0, 45.0, 55.0, 65.0],
            labels: ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// Capped counts, for exposure frequency: `0`, `1`, …, `cap−1`, `cap+` (edges `1 … cap`;
    /// a fractional count falls in the band of its integer part). Errors:
    /// [`AnalyticsError::InvalidParameter`] for `cap = 0`.
    pub fn frequency(cap: u32) -> Result<Bands, AnalyticsError> {
        if cap == 0 {
            return Err(AnalyticsError::InvalidParameter(
                "frequency cap must be at least 1".into(),
            ));
        }
        let mut labels: Vec<String> = (0..cap).map(|i| i.to_string()).collect();
        labels.push(format!("{cap}+"));
        Ok(Bands {
            edges: (1..=cap).map(f64::from).collect(),
            labels,
        })
    }

    /// The labels, lowest band first: the public value set of the banded column.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The band of `value`. Errors: [`AnalyticsError::InvalidValue`] (row 0) for a value that
    /// is not a number.
    pub fn band(&self, value: f64) -> Result<&str, AnalyticsError> {
        if value.is_nan() {
            return Err(AnalyticsError::InvalidValue {
                row: 0,
                reason: "value is not a number".into(),
            });
        }
        let i = self.edges.partition_point(|&e| e <= value);
        Ok(&self.labels[i])
    }

    /// The band of every value of a column. Errors: [`AnalyticsError::InvalidValue`] with the
    /// row of the first value that is not a number.
    pub fn band_column(&self, values: &[f64]) -> Result<Vec<&str>, AnalyticsError> {
        values
            .iter()
            .enumerate()
            .map(|(row, &v)| {
                self.band(v).map_err(|e| match e {
                    AnalyticsError::InvalidValue { reason, .. } => {
                        AnalyticsError::InvalidValue { row, reason }
                    }
                    other => other,
                })
            })
            .collect()
    }
}

fn check_edges(edges: &[f64]) -> Result<(), AnalyticsError> {
    if edges.is_empty()
        || edges.iter().any(|e| !e.is_finite())
        || edges.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(AnalyticsError::InvalidParameter(
            "band edges must be finite, strictly increasing and at least one".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintiles_split_ten_values_in_pairs() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(
            quintile_scores(&v, true).unwrap(),
            vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
        assert_eq!(
            quintile_scores(&v, false).unwrap(),
            vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
        );
        // Ties share the lower score.
        assert_eq!(
            quintile_scores(&[1.0, 1.0, 1.0, 1.0, 2.0], true).unwrap(),
            vec![1, 1, 1, 1, 5]
        );
        assert!(matches!(
            quintile_scores(&[1.0, f64::NAN], true),
            Err(AnalyticsError::InvalidValue { row: 1, .. })
        ));
    }

    #[test]
    fn rfm_scores_and_groups() {
        let rec: Vec<f64> = (0..10).map(|i| f64::from(i) * 30.0).collect();
        let freq: Vec<f64> = (0..10).map(|i| f64::from(10 - i)).collect();
        let spend: Vec<f64> = (0..10).map(|i| f64::from(100 * (10 - i))).collect();
        let s = rfm_scores(&rec, &freq, &spend).unwrap();
        assert_eq!(s[0].to_string(), "R5F5M5");
        assert_eq!(s[0].group(), RfmGroup::Champions);
        assert_eq!(s[9].to_string(), "R1F1M1");
        assert_eq!(s[9].group(), RfmGroup::Lost);
        let g = RfmScore { r: 1, f: 5, m: 4 };
        assert_eq!(g.group(), RfmGroup::CannotLoseThem);
        assert_eq!(
            RfmScore { r: 5, f: 1, m: 1 }.group().label(),
            "new_customers"
        );
        assert!(matches!(
            rfm_scores(&rec, &freq[..3], &spend),
            Err(AnalyticsError::Shape(_))
        ));
        let mut neg = spend.clone();
        neg[4] = -1.0;
        assert!(matches!(
            rfm_scores(&rec, &freq, &neg),
            Err(AnalyticsError::InvalidValue { row: 4, .. })
        ));
    }

    #[test]
    fn every_score_has_a_group() {
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    let g = RfmScore { r, f, m }.group();
                    assert!(RfmGroup::ALL.contains(&g));
                }
            }
        }
    }

    #[test]
    fn age_bands() {
        let b = Bands::age();
        assert_eq!(
            b.band_column(&[17.0, 18.0, 24.9, 25.0, 64.0, 65.0, 99.0])
                .unwrap(),
            vec!["<18", "18-24", "18-24", "25-34", "55-64", "65+", "65+"]
        );
        assert_eq!(
            Bands::new(&[18.0, 25.0, 35.0]).unwrap().labels(),
            &["<18", "18-24", "25-34", "35+"]
        );
        assert_eq!(
            Bands::new(&[0.5, 1.5]).unwrap().labels(),
            &["<0.5", "0.5-1.5", "1.5+"]
        );
        assert!(matches!(
            b.band_column(&[30.0, f64::NAN]),
            Err(AnalyticsError::InvalidValue { row: 1, .. })
        ));
        assert!(Bands::new(&[3.0, 3.0]).is_err());
        let f = Bands::frequency(3).unwrap();
        assert_eq!(f.labels(), &["0", "1", "2", "3+"]);
        assert_eq!(
            f.band_column(&[0.0, 1.0, 2.0, 3.0, 40.0]).unwrap(),
            vec!["0", "1", "2", "3+", "3+"]
        );
        assert!(Bands::frequency(0).is_err());
        assert!(Bands::with_labels(&[10.0], &["low", "low"]).is_err());
        assert_eq!(
            Bands::with_labels(&[10.0], &["low", "high"])
                .unwrap()
                .band(10.0)
                .unwrap(),
            "high"
        );
    }
}
