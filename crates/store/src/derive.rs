//! Segments built at import (issue 12): columns derived locally from the file's numeric
//! columns while importing, so that they can be public value sets of an agreement without a
//! spreadsheet step. Bands of a numeric column (`age` → `age_band`) are computed row by row;
//! RFM groups need each customer's quintiles in the whole file, so a first pass reads the three
//! columns. A value that is not a number stops the import at its line and column.

use std::path::Path;

use tandem_analytics::{Bands, rfm_scores};

use crate::StoreError;
use crate::csv_source;

/// A column derived at import.
#[derive(Clone, Debug, PartialEq)]
pub enum Derive {
    /// `name` = the band of numeric column `source` (an empty cell stays empty, so `other`).
    Band {
        /// The derived column's name.
        name: String,
        /// The numeric column it is computed from.
        source: String,
        /// The bands (`Bands::new(&[18, 25, …])`: `<18`, `18-24`, …, `65+`).
        bands: Bands,
    },
    /// `name` = the RFM group (`champions`, `loyal`, … `lost`; `tandem_analytics::RfmGroup`)
    /// from quintiles within the file of recency (days since the last purchase, fewer is
    /// better), frequency and monetary value.
    Rfm {
        /// The derived column's name.
        name: String,
        /// Recency, frequency and monetary columns, in that order.
        sources: [String; 3],
    },
}

impl Derive {
    /// The derived column's name.
    pub fn name(&self) -> &str {
        match self {
            Derive::Band { name, .. } | Derive::Rfm { name, .. } => name,
        }
    }

    /// The values this column can take, in order: what an agreement lists as its public set.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Derive::Band { bands, .. } => bands.labels().to_vec(),
            Derive::Rfm { .. } => RFM_GROUPS.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn sources(&self) -> Vec<&str> {
        match self {
            Derive::Band { source, .. } => vec![source],
            Derive::Rfm { sources, .. } => sources.iter().map(String::as_str).collect(),
        }
    }
}

/// The RFM groups' labels, best first.
const RFM_GROUPS: [&str; 10] = [
    "champions",
    "loyal",
    "potential_loyalists",
    "new_customers",
    "need_attention",
    "about_to_sleep",
    "cannot_lose_them",
    "at_risk",
    "hibernating",
    "lost",
];

/// A derived column resolved against the file's header.
pub(crate) struct Resolved {
    pub(crate) name: String,
    rule: Rule,
}

enum Rule {
    Band {
        index: usize,
        bands: Bands,
    },
    /// One label per data row, in file order (rows whose cells are all empty are not counted).
    Precomputed(Vec<&'static str>),
}

type Fail<'a> = &'a dyn Fn(u64, Option<&str>, String) -> StoreError;

/// Reads `cell` as a number (surrounding whitespace ignored).
fn number(cell: &str, line: u64, column: &str, fail: Fail<'_>) -> Result<f64, StoreError> {
    let v = cell.trim();
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| fail(line, Some(column), format!("{v:?} is not a number")))
}

/// Resolves the derived columns against `header` (errors: a missing source column, a name that
/// is already a column of the import), running the first pass over the file for RFM.
pub(crate) fn resolve(
    derived: &[Derive],
    header: &csv::StringRecord,
    taken: &[&str],
    path: &Path,
    encoding: csv_source::TextEncoding,
    delimiter: u8,
    fail: Fail<'_>,
) -> Result<Vec<Resolved>, StoreError> {
    let find = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            fail(
                1,
                Some(name),
                "no such column in the header (needed by a derived column)".into(),
            )
        })
    };
    let mut out = Vec::new();
    let mut names: Vec<&str> = taken.to_vec();
    for d in derived {
        if names.contains(&d.name()) || header.iter().any(|h| h == d.name()) {
            return Err(fail(
                1,
                Some(d.name()),
                "the derived column's name is already a column of the file or of this import"
                    .into(),
            ));
        }
        names.push(d.name());
        let indices = d
            .sources()
            .iter()
            .map(|s| find(s))
            .collect::<Result<Vec<_>, _>>()?;
        let rule = match d {
            Derive::Band { bands, .. } => Rule::Band {
                index: indices[0],
                bands: bands.clone(),
            },
            Derive::Rfm { sources, .. } => {
                let mut reader = csv_source::open(path, encoding, delimiter)
                    .map_err(|e| fail(0, None, format!("cannot open: {e}")))?;
                let mut columns: [Vec<f64>; 3] = Default::default();
                let mut lines = Vec::new();
                let mut record = csv::StringRecord::new();
                // Errors reading the file are reported by the import's own pass; here they
                // just end the first pass.
                while reader.read_record(&mut record).unwrap_or(false) {
                    if record.iter().all(|cell| cell.trim().is_empty()) {
                        continue;
                    }
                    let line = record.position().map_or(0, csv::Position::line);
                    for ((col, &i), source) in columns.iter_mut().zip(&indices).zip(sources) {
                        col.push(number(record.get(i).unwrap_or(""), line, source, fail)?);
                    }
                    lines.push(line);
                }
                let scores =
                    rfm_scores(&columns[0], &columns[1], &columns[2]).map_err(|e| match e {
                        tandem_analytics::AnalyticsError::InvalidValue { row, reason } => fail(
                            lines.get(row).copied().unwrap_or(0),
                            None,
                            format!("RFM: {reason}"),
                        ),
                        other => fail(0, None, format!("RFM: {other}")),
                    })?;
                Rule::Precomputed(scores.iter().map(|s| s.group().label()).collect())
            }
        };
        out.push(Resolved {
            name: d.name().to_string(),
            rule,
        });
    }
    Ok(out)
}

impl Resolved {
    /// The derived value of data row `row` (0-based, rows with all cells empty not counted) at
    /// `line`; `None` for an empty source cell of a band.
    pub(crate) fn value(
        &self,
        record: &csv::StringRecord,
        row: usize,
        line: u64,
        header: &csv::StringRecord,
        fail: Fail<'_>,
    ) -> Result<Option<String>, StoreError> {
        match &self.rule {
            Rule::Band { index, bands } => {
                let cell = record.get(*index).unwrap_or("").trim();
                if cell.is_empty() {
                    return Ok(None);
                }
                let column = header.get(*index).unwrap_or("");
                let x = number(cell, line, column, fail)?;
                let label = bands
                    .band(x)
                    .map_err(|e| fail(line, Some(column), e.to_string()))?;
                Ok(Some(label.to_string()))
            }
            Rule::Precomputed(labels) => Ok(labels.get(row).map(|l| l.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_identity::IdKind;

    use super::*;
    use crate::{ImportOptions, Store};

    fn options(derived: Vec<Derive>) -> ImportOptions {
        ImportOptions {
            derived,
            ..ImportOptions::new("email", IdKind::Email)
        }
    }

    fn age_band() -> Derive {
        Derive::Band {
            name: "age_band".into(),
            source: "age".into(),
            bands: Bands::new(&[18.0, 25.0, 35.0, 45.0, 55.0, 65.0]).expect("bands"),
        }
    }

    #[test]
    fn a_banded_column_is_imported_with_the_right_bands() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store");
        let file = dir.path().join("people.csv");
        std::fs::write(
            &file,
            "email,age\na@x.com,17\nb@x.com,18\nc@x.com, 24.9\nd@x.com,65\ne@x.com,\n,\nf@x.com,40\n",
        )
        .expect("write");
        let report = store
            .import_csv(&file, &options(vec![age_band()]), None)
            .expect("import");
        assert_eq!(report.imported, 6);
        let mut got: Vec<Option<String>> = store
            .members("default", IdKind::Email, Some("age_band"))
            .expect("members")
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        got.sort();
        let want = [
            None,
            Some("18-24"),
            Some("18-24"),
            Some("35-44"),
            Some("65+"),
            Some("<18"),
        ];
        let mut want: Vec<Option<String>> = want.iter().map(|v| v.map(str::to_string)).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(
            age_band().labels(),
            ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
        );
    }

    #[test]
    fn a_non_numeric_value_names_its_line_and_column_and_imports_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store");
        let file = dir.path().join("people.csv");
        std::fs::write(&file, "email,age\na@x.com,30\nb@x.com,thirty\n").expect("write");
        let err = store
            .import_csv(&file, &options(vec![age_band()]), None)
            .expect_err("refused");
        match &err {
            StoreError::Import {
                line,
                column,
                reason,
                ..
            } => {
                assert_eq!((*line, column.as_deref()), (3, Some("age")), "{err}");
                assert!(reason.contains("\"thirty\" is not a number"), "{err}");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(store.members("default", IdKind::Email, None).is_err());
        // RFM reads the whole file first: the same error, before anything is staged.
        std::fs::write(&file, "email,r,f,m\na@x.com,3,1,10\nb@x.com,4,2,x\n").expect("write");
        let rfm = Derive::Rfm {
            name: "rfm".into(),
            sources: ["r".into(), "f".into(), "m".into()],
        };
        let err = store
            .import_csv(&file, &options(vec![rfm]), None)
            .expect_err("refused");
        assert!(
            matches!(&err, StoreError::Import { line: 3, column: Some(c), .. } if c == "m"),
            "{err}"
        );
        assert!(store.members("default", IdKind::Email, None).is_err());
    }

    #[test]
    fn rfm_groups_are_derived_from_quintiles_in_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store");
        let file = dir.path().join("people.csv");
        let mut csv = String::from("email,recency_days,frequency,monetary\n");
        for i in 0..50 {
            // i = 0 bought most recently, most often, most: a champion; i = 49 is lost.
            csv += &format!("p{i}@x.com,{},{},{}\n", i, 50 - i, 1000 - 10 * i);
        }
        std::fs::write(&file, csv).expect("write");
        let rfm = Derive::Rfm {
            name: "rfm".into(),
            sources: ["recency_days".into(), "frequency".into(), "monetary".into()],
        };
        store
            .import_csv(&file, &options(vec![rfm.clone()]), None)
            .expect("import");
        let values: Vec<String> = store
            .members("default", IdKind::Email, Some("rfm"))
            .expect("members")
            .into_iter()
            .filter_map(|(_, v)| v)
            .collect();
        assert_eq!(values.len(), 50);
        let count = |label: &str| values.iter().filter(|v| *v == label).count();
        // Quintiles of 10: i < 20 score R 4–5 and F, M 4–5 (champions); i ≥ 40 score 1 on all
        // three (lost); 30 ≤ i < 40 score 2 (hibernating).
        assert_eq!(
            (count("champions"), count("hibernating"), count("lost")),
            (20, 10, 10),
            "{values:?}"
        );
        assert!(values.iter().all(|v| rfm.labels().contains(v)));
    }
}
