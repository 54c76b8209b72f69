//! Export as JSON lines (verifiable) or CSV (for reading), and offline verification of a
//! JSON-lines export (spec §5).

use std::fmt;
use std::io::{BufRead, Write};
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::canonical::canonical_json;
use crate::checkpoint::Checkpoint;
use crate::entry::{Entry, object};
use crate::json_fields::Fields;
use crate::verify::{Verifier, VerifyError, VerifyReport};

/// Export file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One canonical JSON object per line; verifiable offline with [`verify_jsonl`].
    JsonLines,
    /// Flattened rows for spreadsheets; for reading, not for verification.
    Csv,
}

impl FromStr for ExportFormat {
    type Err = String;

    /// Accepts `jsonl` (or `json-lines`, `ndjson`) and `csv`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" | "json-lines" | "ndjson" => Ok(ExportFormat::JsonLines),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(format!("unknown export format {other:?}; use jsonl or csv")),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::JsonLines => "jsonl",
            ExportFormat::Csv => "csv",
        })
    }
}

/// Counts of what an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Entries written.
    pub entries: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

/// CSV header row (spec §5.2).
pub const CSV_HEADER: [&str; 12] = [
    "type",
    "seq",
    "at_unix_ms",
    "at_utc",
    "actor",
    "action",
    "agreement_id",
    "details",
    "prev_hash",
    "hash",
    "node_key",
    "signature",
];

enum Sink<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

/// Streaming writer: call [`Exporter::entry`] for entries in seq order and
/// [`Exporter::checkpoint`] right after the entry a checkpoint covers.
pub struct Exporter<W: Write> {
    sink: Sink<W>,
    summary: ExportSummary,
}

fn csv_err(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// Neutralises spreadsheet formula injection: a text cell starting with `= + - @`, tab or CR
/// gets a leading `'`.
fn cell(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

impl<W: Write> Exporter<W> {
    /// Starts an export; CSV writes its header row now.
    pub fn new(writer: W, format: ExportFormat) -> std::io::Result<Self> {
        let sink = match format {
            ExportFormat::JsonLines => Sink::Jsonl(writer),
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(writer);
                w.write_record(CSV_HEADER).map_err(csv_err)?;
                Sink::Csv(Box::new(w))
            }
        };
        Ok(Exporter {
            sink,
            summary: ExportSummary::default(),
        })
    }

    /// Writes one entry.
    pub fn entry(&mut self, e: &Entry) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Jsonl(w) => writeln!(w, "{}", canonical_json(&e.to_json_value()))?,
            Sink::Csv(w) => w
                .write_record([
                    "entry".to_string(),
                    e.seq.to_string(),
                    e.event.at_unix_ms.to_string(),
                    format_utc_ms(e.event.at_unix_ms),
                    cell(&e.event.actor),
                    cell(&e.event.action),
                    cell(e.event.agreement_id.as_deref().unwrap_or("")),
                    cell(&canonical_json(&e.event.details)),
                    hex::encode(e.prev_hash),
                    hex::encode(e.hash),
                    String::new(),
                    String::new(),
                ])
                .map_err(csv_err)?,
        }
        self.summary.entries += 1;
        Ok(())
    }

    /// Writes one checkpoint.
    pub fn checkpoint(&mut self, cp: &Checkpoint) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Jsonl(w) => writeln!(w, "{}", canonical_json(&cp.to_json_value()))?,
            Sink::Csv(w) => w
                .write_record([
                    "checkpoint".to_string(),
                    cp.seq.to_string(),
                    cp.at_unix_ms.to_string(),
                    format_utc_ms(cp.at_unix_ms),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    hex::encode(cp.head_hash),
                    cell(&cp.node_key),
                    cell(&cp.signature),
                ])
                .map_err(csv_err)?,
        }
        self.summary.checkpoints += 1;
        Ok(())
    }

    /// Flushes and returns what was written.
    pub fn finish(self) -> std::io::Result<ExportSummary> {
        match self.sink {
            Sink::Jsonl(mut w) => w.flush()?,
            Sink::Csv(mut w) => w.flush()?,
        }
        Ok(self.summary)
    }
}

/// Writes `entries` (in seq order) with each checkpoint placed right after the entry it
/// covers; checkpoints covering no supplied entry are not written.
pub fn export<W: Write>(
    writer: W,
    format: ExportFormat,
    entries: impl IntoIterator<Item = Entry>,
    checkpoints: &[Checkpoint],
) -> std::io::Result<ExportSummary> {
    let mut cps: Vec<&Checkpoint> = checkpoints.iter().collect();
    cps.sort_by_key(|c| c.seq);
    let mut next_cp = 0;
    let mut ex = Exporter::new(writer, format)?;
    for e in entries {
        while next_cp < cps.len() && cps[next_cp].seq < e.seq {
            next_cp += 1;
        }
        ex.entry(&e)?;
        while next_cp < cps.len() && cps[next_cp].seq == e.seq {
            ex.checkpoint(cps[next_cp])?;
            next_cp += 1;
        }
    }
    ex.finish()
}

/// Verifies a JSON-lines export offline, streaming (blank lines are skipped). Errors name the
/// first entry that does not verify, or the line that does not parse.
pub fn verify_jsonl<R: BufRead>(
    mut reader: R,
    node_key: Option<&VerifyingKey>,
) -> Result<VerifyReport, VerifyError> {
    let mut v = Verifier::new(node_key);
    let mut line = String::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| VerifyError::Read(format!("line {}: {e}", line_no + 1)))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let parse = |reason: String| VerifyError::Parse {
            line: line_no,
            reason,
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| parse(e.to_string()))?;
        let map = object(value).map_err(parse)?;
        match map.get("type").and_then(Value::as_str) {
            Some("entry") => {
                let entry = Entry::from_object(map).map_err(|e| parse(e.to_string()))?;
                v.entry(&entry)?;
            }
            Some("checkpoint") => {
                let cp = Checkpoint::from_object(map).map_err(|e| parse(e.to_string()))?;
                v.checkpoint(cp)?;
            }
            _ => {
                let mut f = Fields::new(map);
                let reason = f
                    .expect_type("entry")
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                return Err(parse(format!("{reason} (or \"checkpoint\")")));
            }
        }
    }
    v.finish()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms (proleptic Gregorian, UTC).
pub fn format_utc_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_utc_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_utc_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn csv_cells_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("token:alice"), "token:alice");
    }
}
