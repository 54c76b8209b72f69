//! Streaming CSV import of an audience: normalise, hash, collect digests in a temporary table,
//! move them into a staging set in short chunk transactions and swap it in with one short
//! transaction (`member_sets.rs`). Reading the file (encoding, line endings, delimiter) is
//! `csv_source`'s part.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};
use tandem_audit::AuditEvent;
use tandem_identity::{IdEncoding, IdKind, Normaliser};

use crate::csv_source::{self, DecodeError, TextEncoding};
use crate::derive::{self, Derive};
use crate::member_sets;
use crate::{Store, StoreError, audience, audit_log, now_ms};

/// How often (in data rows) the progress callback is called.
const PROGRESS_EVERY: u64 = 10_000;

/// Distinct values counted per attribute column; rows with further values are counted together.
const MAX_DISTINCT: usize = 1_000;

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Audience to import into (default `"default"`).
    pub audience: String,
    /// Header name of the identifier column.
    pub id_column: String,
    /// Kind of identifier in that column: the join key the audience is stored under.
    pub id_kind: IdKind,
    /// How the column writes it: raw (default), or SHA-256 of the normalised identifier (hex or
    /// Base64) as partners following UID2 send it. Either way the stored digest is the same.
    pub id_encoding: IdEncoding,
    /// Text encoding of the file (default UTF-8; a byte-order mark takes precedence).
    pub encoding: TextEncoding,
    /// Field delimiter (default `,`).
    pub delimiter: u8,
    /// Header names of attribute columns to keep (segment, region, …); never identifiers.
    pub attributes: Vec<String>,
    /// Value columns to keep (revenue, orders, …) with their clamping bound `U`: each cell must
    /// be an integer in the column's unit; negatives (refunds) are stored as 0, an empty cell as
    /// 0, and a value above `U` fails the import (`protocols/psi-sum-v1.md` §4.1).
    pub values: Vec<ValueSpec>,
    /// Normalisation rules (e.g. default phone country code).
    pub normaliser: Normaliser,
    /// `true` (default): the import replaces the audience's members of this `id_kind`;
    /// `false`: adds to them.
    pub replace: bool,
    /// Principal recorded in the audit log (default `"cli:admin"`).
    pub actor: String,
    /// Columns derived at import from numeric columns (bands, RFM groups); stored and usable
    /// like attributes (default none).
    pub derived: Vec<Derive>,
}

impl ImportOptions {
    /// Defaults: audience `default`, raw identifiers, UTF-8, comma-separated, no attributes,
    /// default normaliser, replace, actor `cli:admin`.
    pub fn new(id_column: impl Into<String>, id_kind: IdKind) -> Self {
        ImportOptions {
            audience: "default".into(),
            id_column: id_column.into(),
            id_kind,
            id_encoding: IdEncoding::Raw,
            encoding: TextEncoding::default(),
            delimiter: b',',
            attributes: Vec::new(),
            values: Vec::new(),
            normaliser: Normaliser::default(),
            replace: true,
            actor: "cli:admin".into(),
            derived: Vec::new(),
        }
    }
}

/// A value column to import and the bound `U` its values are clamped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueSpec {
    /// Header name of the column.
    pub column: String,
    /// `U`: values lie in `[0, U]` once imported; at least 1.
    pub bound: u32,
}

/// Parses one value cell into `[0, bound]`: an integer (surrounding whitespace ignored), an empty
/// cell is 0, a negative value (a refund) becomes 0 (`protocols/psi-sum-v1.md` §4.1). Errors name
/// the value, the reason (not an integer, or above the bound) and what to do.
pub fn parse_value(text: &str, bound: u32) -> Result<u32, String> {
    parse_value_cell(text, bound).map(|(v, _)| v)
}

/// How a value cell was read, counted in [`ValueColumnReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueCell {
    /// An integer in `[0, U]`.
    InRange,
    /// Empty: read as 0.
    Empty,
    /// Negative (a refund): clamped to 0.
    Clamped,
}

fn parse_value_cell(text: &str, bound: u32) -> Result<(u32, ValueCell), String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok((0, ValueCell::Empty));
    }
    let value: i64 = text.parse().map_err(|_| {
        format!(
            "{text:?} is not an integer in the column's unit (write amounts in the agreement's \
             unit, e.g. cents: 1250 for 12.50)"
        )
    })?;
    if value > i64::from(bound) {
        return Err(format!(
            "{value} is above the bound U = {bound} for this column; values above U are refused, \
             not clamped (psi-sum-v1 §4.1). Fix the row (cap or correct the value at the source), \
             or raise U for this column in the agreement (its `values` table; or \
             --value COLUMN=U) to at least {value} and import again"
        ));
    }
    if value < 0 {
        return Ok((0, ValueCell::Clamped));
    }
    Ok((value as u32, ValueCell::InRange))
}

/// One value column of an import (`--value`): the bound used and how its cells were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueColumnReport {
    /// Column name.
    pub column: String,
    /// The bound `U` the cells were checked against (values lie in `[0, U]`).
    pub bound: u32,
    /// Cells with a negative value (refunds), stored as 0.
    pub clamped_to_zero: u64,
    /// Empty cells, stored as 0.
    pub empty: u64,
}

/// Outcome of a successful import. `rows = imported + duplicates + suppressed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Audience imported into.
    pub audience: String,
    /// Identifier kind.
    pub id_kind: IdKind,
    /// Text encoding the file was read in (the BOM's, if it had one), e.g. `UTF-8`.
    pub encoding: &'static str,
    /// Data rows with an identifier (header and empty rows excluded).
    pub rows: u64,
    /// Rows whose cells were all empty, skipped.
    pub empty_rows: u64,
    /// Repeated identifiers whose attribute values differ from those of the row kept (the
    /// first row in the file, or the member already in the audience when appending).
    pub conflicting_duplicates: u64,
    /// Line of the first such repeat.
    pub first_conflict_line: Option<u64>,
    /// Per attribute column, in the order given: its distinct values with their row counts.
    pub attribute_values: Vec<AttributeValues>,
    /// New members added.
    pub imported: u64,
    /// Rows whose identifier was already present (earlier in the file, or already in the
    /// audience when appending); the first occurrence is kept.
    pub duplicates: u64,
    /// Rows dropped because the identifier opted out.
    pub suppressed: u64,
    /// Members of this audience and kind after the import.
    pub members: u64,
    /// Value columns imported (`--value`), in the order given, with their bound and how many
    /// cells were clamped to 0 or empty.
    pub value_columns: Vec<ValueColumnReport>,
}

/// Distinct values shown per attribute column by [`ImportReport::details`].
const TOP_VALUES: usize = 10;

impl ImportReport {
    /// What a person should check after an import, one line each: the encoding read, empty
    /// rows skipped, rows dropped as repeats of an earlier row's identifier or as opted out,
    /// repeated identifiers with conflicting attributes (and which row won), per attribute
    /// column its most frequent values with counts, and per value column its bound and the
    /// cells clamped to 0. Values are the node's own data, printed locally only.
    pub fn details(&self) -> String {
        let mut out = format!("read as {}", self.encoding);
        if self.empty_rows > 0 {
            out.push_str(&format!("; {} empty rows skipped", self.empty_rows));
        }
        out.push('\n');
        if self.duplicates > 0 {
            out.push_str(&format!(
                "{} dropped as {} of an earlier row's identifier (the first kept; when appending: the member already stored)\n",
                counted(self.duplicates, "row", "rows"),
                if self.duplicates == 1 { "a repeat" } else { "repeats" },
            ));
        }
        if self.suppressed > 0 {
            out.push_str(&format!(
                "{} dropped: opted out (tandem suppress)\n",
                counted(self.suppressed, "row", "rows")
            ));
        }
        for v in &self.value_columns {
            out.push_str(&format!(
                "value column {}: bound U = {}; {} (refunds) clamped to 0, {} read as 0\n",
                v.column,
                v.bound,
                counted(v.clamped_to_zero, "negative cell", "negative cells"),
                counted(v.empty, "empty cell", "empty cells"),
            ));
        }
        if self.conflicting_duplicates > 0 {
            out.push_str(&format!(
                "{} repeated identifiers had attribute values different from the row kept (first at line {}); the first row of each identifier wins (when appending: the member already stored)\n",
                self.conflicting_duplicates,
                self.first_conflict_line.unwrap_or(0),
            ));
        }
        for col in &self.attribute_values {
            let shown: Vec<String> = col
                .counts
                .iter()
                .take(TOP_VALUES)
                .map(|(v, n)| {
                    format!(
                        "{} {n}",
                        v.as_deref()
                            .map_or("(empty)".to_owned(), |v| format!("{v:?}"))
                    )
                })
                .collect();
            let more = col.counts.len().saturating_sub(TOP_VALUES);
            out.push_str(&format!(
                "{}: {} distinct value{}: {}{}{}\n",
                col.column,
                col.counts.len(),
                if col.counts.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                },
                if col.uncounted_rows > 0 {
                    format!(
                        "; {} rows with further values not counted",
                        col.uncounted_rows
                    )
                } else {
                    String::new()
                },
            ));
        }
        out
    }
}

/// `1 row`, `2 rows`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The values one attribute column took in an import, counted over the rows with an
/// identifier (before duplicates and opt-outs are removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeValues {
    /// Column name.
    pub column: String,
    /// Up to 1,000 distinct values (`None`: empty cell) with their row counts, most frequent
    /// first, then by value.
    pub counts: Vec<(Option<String>, u64)>,
    /// Rows whose value was not among the first 1,000 distinct values seen.
    pub uncounted_rows: u64,
}

impl AttributeValues {
    /// Rows whose value is none of `public` (an agreement's public value set for this column):
    /// they are grouped as `other` in queries. Empty cells count as outside; `None` when values
    /// went uncounted, so the number is unknown.
    pub fn outside(&self, public: &[String]) -> Option<u64> {
        (self.uncounted_rows == 0).then(|| {
            self.counts
                .iter()
                .filter(|(v, _)| !v.as_ref().is_some_and(|v| public.contains(v)))
                .map(|(_, n)| n)
                .sum()
        })
    }
}

/// Counts of one attribute column while importing.
#[derive(Default)]
struct ValueCounter {
    counts: HashMap<Option<String>, u64>,
    uncounted: u64,
}

impl ValueCounter {
    fn add(&mut self, value: Option<&str>) {
        if let Some(n) = self.counts.get_mut(&value.map(str::to_owned)) {
            *n += 1;
        } else if self.counts.len() < MAX_DISTINCT {
            self.counts.insert(value.map(str::to_owned), 1);
        } else {
            self.uncounted += 1;
        }
    }

    fn finish(self, column: &str) -> AttributeValues {
        let mut counts: Vec<_> = self.counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        AttributeValues {
            column: column.to_owned(),
            counts,
            uncounted_rows: self.uncounted,
        }
    }
}

struct Columns {
    id: usize,
    attributes: Vec<(String, usize)>,
    values: Vec<(String, u32, usize)>,
}

fn find_columns(
    header: &csv::StringRecord,
    opts: &ImportOptions,
    fail: &dyn Fn(u64, Option<&str>, String) -> StoreError,
) -> Result<Columns, StoreError> {
    let available = || header.iter().collect::<Vec<_>>().join(", ");
    let find = |name: &str| -> Result<usize, StoreError> {
        let mut hits = header
            .iter()
            .enumerate()
            .filter(|(_, h)| *h == name)
            .map(|(i, _)| i);
        match (hits.next(), hits.next()) {
            (Some(i), None) => Ok(i),
            (None, _) => Err(fail(
                1,
                Some(name),
                match csv_source::delimiter_hint(header, opts.delimiter) {
                    Some(hint) => format!("no such column in the header; {hint}"),
                    None => format!("no such column in the header (columns: {})", available()),
                },
            )),
            (Some(_), Some(_)) => Err(fail(
                1,
                Some(name),
                "column name appears more than once in the header".into(),
            )),
        }
    };
    let id = find(&opts.id_column)?;
    let mut seen = BTreeSet::new();
    let mut attributes = Vec::new();
    for name in &opts.attributes {
        if name == &opts.id_column {
            return Err(fail(
                1,
                Some(name),
                "the identifier column cannot also be an attribute".into(),
            ));
        }
        if seen.insert(name.as_str()) {
            attributes.push((name.clone(), find(name)?));
        }
    }
    let mut values = Vec::new();
    for spec in &opts.values {
        let name = &spec.column;
        if name == &opts.id_column || seen.contains(name.as_str()) {
            return Err(fail(
                1,
                Some(name),
                "a value column cannot also be the identifier or an attribute".into(),
            ));
        }
        if spec.bound == 0 {
            return Err(fail(
                1,
                Some(name),
                "the value bound U must be at least 1".into(),
            ));
        }
        if !values.iter().any(|(n, _, _)| n == name) {
            values.push((name.clone(), spec.bound, find(name)?));
        }
    }
    Ok(Columns {
        id,
        attributes,
        values,
    })
}

impl Store {
    /// Imports a CSV file (header row required) into an audience, streaming with constant
    /// memory. The file is decoded from `opts.encoding` (a byte-order mark takes precedence) and
    /// CR, LF and CRLF each end a line. Each identifier is normalised and hashed with
    /// `tandem-identity` (or, with [`IdEncoding::Sha256`], decoded); only the 32-byte digest and
    /// the chosen attribute values are stored. Rows whose cells are all empty are skipped and
    /// counted. A repeated identifier keeps its first row (when appending: the member already
    /// stored); repeats whose attribute values differ are counted. Opted-out identifiers are
    /// dropped. Rows are collected in a temporary table private to this connection, then moved
    /// into a staging set in transactions of 10,000 rows, so readers and the node's own writes
    /// never wait on a long import; one short transaction then swaps the new members in together
    /// with the `import.done` audit entry (readers see the old audience or the new one, never a
    /// mix). Appending fails with [`StoreError::Conflict`] if the audience was replaced or purged
    /// meanwhile. Any bad row (missing or empty identifier, identifier that does not normalise,
    /// wrong number of fields, bytes not valid in the encoding) aborts the import with
    /// [`StoreError::Import`] naming file, line, column and reason, and leaves the store as it
    /// was (the staging rows are deleted; if the process dies first, the next [`Store::open`]
    /// deletes them). `progress` is called with the number of rows read every 10,000 rows and at
    /// the end.
    pub fn import_csv(
        &mut self,
        path: &Path,
        opts: &ImportOptions,
        progress: Option<&dyn Fn(u64)>,
    ) -> Result<ImportReport, StoreError> {
        let file_path: PathBuf = path.to_path_buf();
        let fail = |line: u64, column: Option<&str>, reason: String| StoreError::Import {
            file: file_path.clone(),
            line,
            column: column.map(str::to_owned),
            reason,
        };
        if opts.audience.is_empty() {
            return Err(StoreError::Invalid("audience name is empty".into()));
        }
        let mut reader = csv_source::open(path, opts.encoding, opts.delimiter)
            .map_err(|e| fail(0, None, format!("cannot open: {e}")))?;
        let csv_fail = |e: csv::Error| {
            let line = e.position().map_or(0, csv::Position::line);
            match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => fail(
                    line,
                    None,
                    format!("expected {expected_len} fields like the header, found {len}"),
                ),
                csv::ErrorKind::Io(io) => {
                    match io.get_ref().and_then(|e| e.downcast_ref::<DecodeError>()) {
                        Some(bad) => {
                            let hint = csv_source::guess_encoding(path, bad.encoding)
                                .map(|h| format!("; {h}"))
                                .unwrap_or_default();
                            fail(bad.line, None, format!("{bad}{hint}"))
                        }
                        None => fail(line, None, format!("cannot read: {io}")),
                    }
                }
                _ => fail(line, None, e.to_string()),
            }
        };
        let header = reader.headers().map_err(csv_fail)?.clone();
        if header.iter().any(|h| h.contains('\0')) {
            let used = reader.get_ref().encoding();
            let hint = csv_source::guess_encoding(path, used)
                .unwrap_or_else(|| "set the file's encoding with --encoding".into());
            return Err(fail(
                1,
                None,
                format!(
                    "the header contains NUL characters, so it is not {}; {hint}",
                    used.name()
                ),
            ));
        }
        let columns = find_columns(&header, opts, &fail)?;
        let taken: Vec<&str> = std::iter::once(opts.id_column.as_str())
            .chain(opts.attributes.iter().map(String::as_str))
            .collect();
        let derived = derive::resolve(
            &opts.derived,
            &header,
            &taken,
            path,
            opts.encoding,
            opts.delimiter,
            &fail,
        )?;
        let kind = opts.id_kind.as_str();
        let now = now_ms();

        // Staged import (member_sets.rs): rows are collected in a temporary table private to
        // this connection (no database lock), moved into a staging set in short sorted chunk
        // transactions, and swapped in by one short transaction. Readers and other writers never
        // wait on the import.
        let lock = self.sets_lock_shared()?;
        let based_on = member_sets::live_set(&self.conn, &opts.audience, kind)?;
        let cache_size: i64 = self
            .conn
            .pragma_query_value(None, "cache_size", |r| r.get(0))?;
        let temp_cache_size: i64 =
            self.conn
                .pragma_query_value(Some("temp"), "cache_size", |r| r.get(0))?;
        // 64 MiB for the bulk insert.
        self.conn
            .pragma_update(Some("temp"), "cache_size", -65_536)?;
        self.conn.pragma_update(None, "cache_size", -65_536)?;
        let mut staging = None;
        let result = (|| {
            self.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS import_rows (
                     digest BLOB PRIMARY KEY, attrs TEXT, old INTEGER NOT NULL
                 ) WITHOUT ROWID, STRICT;
                 DELETE FROM temp.import_rows;",
            )?;
            let tx = self.conn.unchecked_transaction()?; // writes the temp database only
            if !opts.replace
                && let Some(live) = based_on
            {
                tx.execute(
                    "INSERT INTO temp.import_rows (digest, attrs, old)
                     SELECT digest, attrs, 1 FROM main.audience_members WHERE set_id = ?1",
                    [live],
                )?;
            }
            let (mut rows, mut inserted, mut empty_rows) = (0u64, 0u64, 0u64);
            let (mut conflicting_duplicates, mut first_conflict_line) = (0u64, None);
            let mut counters: Vec<ValueCounter> = (0..columns.attributes.len() + derived.len())
                .map(|_| ValueCounter::default())
                .collect();
            let mut value_columns: Vec<ValueColumnReport> = columns
                .values
                .iter()
                .map(|(name, bound, _)| ValueColumnReport {
                    column: name.clone(),
                    bound: *bound,
                    clamped_to_zero: 0,
                    empty: 0,
                })
                .collect();
            {
                let mut insert = tx.prepare(
                    "INSERT OR IGNORE INTO temp.import_rows (digest, attrs, old) VALUES (?1, ?2, 0)",
                )?;
                let mut kept =
                    tx.prepare("SELECT attrs FROM temp.import_rows WHERE digest = ?1")?;
                let mut record = csv::StringRecord::new();
                while reader.read_record(&mut record).map_err(csv_fail)? {
                    let line = record.position().map_or(0, csv::Position::line);
                    if record.iter().all(|cell| cell.trim().is_empty()) {
                        empty_rows += 1;
                        continue;
                    }
                    rows += 1;
                    let raw = record.get(columns.id).unwrap_or("");
                    if raw.trim().is_empty() {
                        return Err(fail(line, Some(&opts.id_column), "empty identifier".into()));
                    }
                    let digest = opts
                        .normaliser
                        .digest_encoded(opts.id_kind, opts.id_encoding, raw)
                        .map_err(|e| fail(line, Some(&opts.id_column), e.to_string()))?;
                    let attrs = if columns.attributes.is_empty()
                        && derived.is_empty()
                        && columns.values.is_empty()
                    {
                        None
                    } else {
                        let mut map = Map::with_capacity(columns.attributes.len());
                        for (d, counter) in derived
                            .iter()
                            .zip(counters.iter_mut().skip(columns.attributes.len()))
                        {
                            let v = d.value(&record, rows as usize - 1, line, &header, &fail)?;
                            counter.add(v.as_deref());
                            map.insert(d.name.clone(), v.map_or(Value::Null, Value::from));
                        }
                        for ((name, i), counter) in columns.attributes.iter().zip(&mut counters) {
                            let v = record.get(*i).unwrap_or("").trim();
                            counter.add((!v.is_empty()).then_some(v));
                            map.insert(
                                name.clone(),
                                if v.is_empty() {
                                    Value::Null
                                } else {
                                    Value::from(v)
                                },
                            );
                        }
                        for ((name, bound, i), report) in
                            columns.values.iter().zip(&mut value_columns)
                        {
                            let (v, cell) = parse_value_cell(record.get(*i).unwrap_or(""), *bound)
                                .map_err(|reason| fail(line, Some(name), reason))?;
                            match cell {
                                ValueCell::Clamped => report.clamped_to_zero += 1,
                                ValueCell::Empty => report.empty += 1,
                                ValueCell::InRange => {}
                            }
                            map.insert(name.clone(), Value::from(v));
                        }
                        Some(Value::Object(map).to_string())
                    };
                    let added = insert.execute(params![digest, attrs])? as u64;
                    inserted += added;
                    if added == 0 && attrs.is_some() {
                        let stored: Option<String> =
                            kept.query_row(params![digest], |r| r.get(0))?;
                        if stored != attrs {
                            conflicting_duplicates += 1;
                            first_conflict_line.get_or_insert(line);
                        }
                    }
                    if rows.is_multiple_of(PROGRESS_EVERY)
                        && let Some(p) = progress
                    {
                        p(rows);
                    }
                }
            }
            tx.commit()?;
            if let Some(p) = progress {
                p(rows);
            }
            let set_id = self.create_staging_set(&opts.audience, kind, now)?;
            staging = Some(set_id);
            let (imported, suppressed) = self.move_staged_rows(set_id)?;
            debug_assert_eq!(imported + suppressed, inserted);
            let names = columns
                .attributes
                .iter()
                .map(|(name, _)| name.as_str())
                .chain(derived.iter().map(|d| d.name.as_str()));
            let attribute_values: Vec<AttributeValues> = counters
                .into_iter()
                .zip(names)
                .map(|(c, name)| c.finish(name))
                .collect();
            let report = ImportReport {
                audience: opts.audience.clone(),
                id_kind: opts.id_kind,
                encoding: reader.get_ref().encoding().name(),
                rows,
                empty_rows,
                conflicting_duplicates,
                first_conflict_line,
                attribute_values,
                imported,
                duplicates: rows - inserted,
                suppressed,
                members: 0,
                value_columns,
            };
            self.swap_in(set_id, based_on, report, &columns, opts, now)
        })();
        let _ = self
            .conn
            .execute_batch("DROP TABLE IF EXISTS temp.import_rows");
        match &result {
            // The old live set, now retired; errors leave it to the next open's cleanup.
            Ok(_) => {
                let _ = self.delete_retired_sets();
            }
            Err(_) => {
                if let Some(set_id) = staging {
                    let _ = self.delete_set(set_id);
                }
            }
        }
        drop(lock);
        self.truncate_wal();
        self.conn.pragma_update(None, "cache_size", cache_size)?;
        self.conn
            .pragma_update(Some("temp"), "cache_size", temp_cache_size)?;
        result
    }

    /// The import's one short transaction: checks the staging set is intact and (when
    /// appending) that the audience was not replaced meanwhile, makes it `live`, retires the
    /// old set, records the audience and audits `import.done`.
    fn swap_in(
        &mut self,
        staging: i64,
        based_on: Option<i64>,
        mut report: ImportReport,
        columns: &Columns,
        opts: &ImportOptions,
        now: i64,
    ) -> Result<ImportReport, StoreError> {
        let kind = opts.id_kind.as_str();
        let tx = self.eager_write_tx()?;
        let members: Option<i64> = tx
            .query_row(
                "SELECT members FROM member_sets WHERE set_id = ?1 AND state = 'staging'",
                [staging],
                |r| r.get(0),
            )
            .optional()?;
        let members = members.ok_or_else(|| {
            StoreError::Conflict(format!(
                "the import's staging set {staging} was removed while it ran"
            ))
        })?;
        let live = member_sets::live_set(&tx, &opts.audience, kind)?;
        if !opts.replace && live != based_on {
            return Err(StoreError::Conflict(format!(
                "audience {:?} ({kind}) was replaced or purged while this import appended to it; \
                 nothing was imported, run the import again",
                opts.audience
            )));
        }
        tx.execute(
            "UPDATE member_sets SET state = 'retired' WHERE audience = ?1 AND id_kind = ?2 AND state = 'live'",
            params![opts.audience, kind],
        )?;
        tx.execute(
            "UPDATE member_sets SET state = 'live' WHERE set_id = ?1",
            [staging],
        )?;
        report.members = members as u64;
        let mut attributes: BTreeSet<String> = if opts.replace {
            BTreeSet::new()
        } else {
            tx.query_row(
                "SELECT attributes_json FROM audiences WHERE audience = ?1 AND id_kind = ?2",
                params![opts.audience, kind],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|s| audience::parse_attributes(&s))
            .transpose()?
            .unwrap_or_default()
        };
        attributes.extend(columns.attributes.iter().map(|(n, _)| n.clone()));
        attributes.extend(opts.derived.iter().map(|d| d.name().to_string()));
        // Value columns and their bounds: appending keeps the larger bound (every stored value
        // is within it).
        let mut bounds: std::collections::BTreeMap<String, u32> = if opts.replace {
            Default::default()
        } else {
            tx.query_row(
                "SELECT value_bounds_json FROM audiences WHERE audience = ?1 AND id_kind = ?2",
                params![opts.audience, kind],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|s| audience::parse_value_bounds(&s))
            .transpose()?
            .unwrap_or_default()
        };
        for (name, bound, _) in &columns.values {
            let b = bounds.entry(name.clone()).or_insert(*bound);
            *b = (*b).max(*bound);
        }
        tx.execute(
            "INSERT INTO audiences (audience, id_kind, imported_at_ms, attributes_json, value_bounds_json)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (audience, id_kind) DO UPDATE SET imported_at_ms = excluded.imported_at_ms,
                                                          attributes_json = excluded.attributes_json,
                                                          value_bounds_json = excluded.value_bounds_json",
            params![
                opts.audience,
                kind,
                now,
                json!(attributes).to_string(),
                json!(bounds).to_string()
            ],
        )?;
        audience::bump_version(&tx, &opts.audience, kind)?;
        audit_log::append(
            &tx,
            AuditEvent::now(
                &opts.actor,
                "import.done",
                json!({
                    "audience": opts.audience,
                    "id_kind": kind,
                    "id_encoding": opts.id_encoding.as_str(),
                    "encoding": report.encoding,
                    "rows": report.rows,
                    "empty_rows": report.empty_rows,
                    "conflicting_duplicates": report.conflicting_duplicates,
                    "imported": report.imported,
                    "duplicates": report.duplicates,
                    "suppressed": report.suppressed,
                    "members": report.members,
                    "attributes": attributes,
                    "values": bounds,
                    "replace": opts.replace,
                    "rules": tandem_identity::RULES_VERSION,
                }),
            ),
        )?;
        tx.commit()?;
        Ok(report)
    }
}
