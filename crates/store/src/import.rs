//! Streaming CSV import of an audience: normalise, hash, insert digests, all in one transaction.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};
use tandem_audit::AuditEvent;
use tandem_identity::{IdKind, Normaliser};

use crate::{Store, StoreError, audience, audit_log, now_ms};

/// How often (in data rows) the progress callback is called.
const PROGRESS_EVERY: u64 = 10_000;

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Audience to import into (default `"default"`).
    pub audience: String,
    /// Header name of the identifier column.
    pub id_column: String,
    /// Kind of identifier in that column.
    pub id_kind: IdKind,
    /// Header names of attribute columns to keep (segment, region, …); never identifiers.
    pub attributes: Vec<String>,
    /// Normalisation rules (e.g. default phone country code).
    pub normaliser: Normaliser,
    /// `true` (default): the import replaces the audience's members of this `id_kind`;
    /// `false`: adds to them.
    pub replace: bool,
    /// Principal recorded in the audit log (default `"cli:admin"`).
    pub actor: String,
}

impl ImportOptions {
    /// Defaults: audience `default`, no attributes, default normaliser, replace, actor `cli:admin`.
    pub fn new(id_column: impl Into<String>, id_kind: IdKind) -> Self {
        ImportOptions {
            audience: "default".into(),
            id_column: id_column.into(),
            id_kind,
            attributes: Vec::new(),
            normaliser: Normaliser::default(),
            replace: true,
            actor: "cli:admin".into(),
        }
    }
}

/// Outcome of a successful import. `rows = imported + duplicates + suppressed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Audience imported into.
    pub audience: String,
    /// Identifier kind.
    pub id_kind: IdKind,
    /// Data rows read (header excluded).
    pub rows: u64,
    /// New members added.
    pub imported: u64,
    /// Rows whose identifier was already present (earlier in the file, or already in the
    /// audience when appending); the first occurrence is kept.
    pub duplicates: u64,
    /// Rows dropped because the identifier opted out.
    pub suppressed: u64,
    /// Members of this audience and kind after the import.
    pub members: u64,
}

struct Columns {
    id: usize,
    attributes: Vec<(String, usize)>,
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
                format!("no such column in the header (columns: {})", available()),
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
    Ok(Columns { id, attributes })
}

impl Store {
    /// Imports a CSV file (header row required) into an audience, streaming with constant
    /// memory. Each identifier is normalised and hashed with `tandem-identity`; only the 32-byte
    /// digest and the chosen attribute values are stored. Duplicates keep the first row;
    /// opted-out identifiers are dropped. Everything, including the `import.done` audit entry,
    /// happens in one transaction: any bad row (missing or empty identifier, identifier that does
    /// not normalise, wrong number of fields, invalid UTF-8) aborts the import with
    /// [`StoreError::Import`] naming file, line, column and reason, and leaves the store exactly
    /// as it was. `progress` is called with the number of rows read every 10,000 rows and at the end.
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
        let file = File::open(path).map_err(|e| fail(0, None, format!("cannot open: {e}")))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::Headers)
            .from_reader(std::io::BufReader::with_capacity(1 << 16, file));
        let csv_fail = |e: csv::Error| {
            let line = e.position().map_or(0, csv::Position::line);
            let reason = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => {
                    format!("expected {expected_len} fields like the header, found {len}")
                }
                csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
                _ => e.to_string(),
            };
            fail(line, None, reason)
        };
        let header = reader.headers().map_err(csv_fail)?.clone();
        let columns = find_columns(&header, opts, &fail)?;
        let kind = opts.id_kind.as_str();
        let now = now_ms();

        let cache_size: i64 = self
            .conn
            .pragma_query_value(None, "cache_size", |r| r.get(0))?;
        self.conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB for the bulk insert
        let result = (|| {
            let tx = self.write_tx()?;
            if opts.replace {
                tx.execute(
                    "DELETE FROM audience_members WHERE audience = ?1 AND id_kind = ?2",
                    params![opts.audience, kind],
                )?;
            }
            let (mut rows, mut inserted) = (0u64, 0u64);
            {
                let mut insert = tx.prepare(
                    "INSERT OR IGNORE INTO audience_members (audience, id_kind, digest, attrs) VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut record = csv::StringRecord::new();
                while reader.read_record(&mut record).map_err(csv_fail)? {
                    rows += 1;
                    let line = record.position().map_or(rows + 1, csv::Position::line);
                    let raw = record.get(columns.id).unwrap_or("");
                    if raw.trim().is_empty() {
                        return Err(fail(line, Some(&opts.id_column), "empty identifier".into()));
                    }
                    let digest = opts
                        .normaliser
                        .digest(opts.id_kind, raw)
                        .map_err(|e| fail(line, Some(&opts.id_column), e.to_string()))?;
                    let attrs = if columns.attributes.is_empty() {
                        None
                    } else {
                        let mut map = Map::with_capacity(columns.attributes.len());
                        for (name, i) in &columns.attributes {
                            let v = record.get(*i).unwrap_or("").trim();
                            map.insert(
                                name.clone(),
                                if v.is_empty() {
                                    Value::Null
                                } else {
                                    Value::from(v)
                                },
                            );
                        }
                        Some(Value::Object(map).to_string())
                    };
                    inserted += insert.execute(params![opts.audience, kind, digest, attrs])? as u64;
                    if rows.is_multiple_of(PROGRESS_EVERY)
                        && let Some(p) = progress
                    {
                        p(rows);
                    }
                }
            }
            if let Some(p) = progress {
                p(rows);
            }
            let suppressed = tx.execute(
                "DELETE FROM audience_members WHERE audience = ?1 AND id_kind = ?2
                   AND digest IN (SELECT digest FROM suppressed)",
                params![opts.audience, kind],
            )? as u64;
            let imported = inserted - suppressed;
            let members: u64 = tx.query_row(
                "SELECT COUNT(*) FROM audience_members WHERE audience = ?1 AND id_kind = ?2",
                params![opts.audience, kind],
                |r| r.get::<_, i64>(0),
            )? as u64;
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
            tx.execute(
                "INSERT INTO audiences (audience, id_kind, imported_at_ms, attributes_json) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (audience, id_kind) DO UPDATE SET imported_at_ms = excluded.imported_at_ms,
                                                              attributes_json = excluded.attributes_json",
                params![opts.audience, kind, now, json!(attributes).to_string()],
            )?;
            audience::bump_version(&tx)?;
            let duplicates = rows - inserted;
            audit_log::append(
                &tx,
                AuditEvent::now(
                    &opts.actor,
                    "import.done",
                    json!({
                        "audience": opts.audience,
                        "id_kind": kind,
                        "rows": rows,
                        "imported": imported,
                        "duplicates": duplicates,
                        "suppressed": suppressed,
                        "members": members,
                        "attributes": attributes,
                        "replace": opts.replace,
                        "rules": tandem_identity::RULES_VERSION,
                    }),
                ),
            )?;
            tx.commit()?;
            Ok(ImportReport {
                audience: opts.audience.clone(),
                id_kind: opts.id_kind,
                rows,
                imported,
                duplicates,
                suppressed,
                members,
            })
        })();
        self.conn.pragma_update(None, "cache_size", cache_size)?;
        result
    }
}
