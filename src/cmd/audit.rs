//! `tandem audit verify` and `tandem audit export`.

use anyhow::{Context, Result};
use tandem_node::home::Home;

use crate::cli::{AuditCmd, ExportFormatArg};

/// `tandem audit …`.
pub fn audit(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify {
            dir,
            file,
            node_key,
        } => {
            let report = match (file, dir) {
                (Some(file), dir) => {
                    let key = match (node_key, dir) {
                        (Some(k), _) => Some(tandem_node::wire::verifying_key(&k)?),
                        (None, Some(d)) => Some(Home::open(&d)?.key.verifying_key()),
                        (None, None) => None,
                    };
                    let f = std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?;
                    tandem_audit::verify_jsonl(std::io::BufReader::new(f), key.as_ref())?
                }
                (None, Some(d)) => {
                    let home = Home::open(&d)?;
                    home.store()?
                        .verify_audit(Some(&home.key.verifying_key()))?
                }
                (None, None) => anyhow::bail!("name the node (--dir) or an exported file (--file)"),
            };
            // Entries after the last checkpoint are chained but could still be cut off the end.
            let uncovered = tandem_node::compliance::uncovered_entries(&report);
            outln!(
                "audit log verifies: {} entries, {} signed checkpoint(s), head {} at seq {}; {uncovered} newest entr{} not yet covered by a signed checkpoint",
                report.entries,
                report.checkpoints,
                hex::encode(report.head_hash),
                report
                    .last_seq
                    .map_or_else(|| "-".to_string(), |s| s.to_string()),
                if uncovered == 1 { "y" } else { "ies" }
            );
            Ok(())
        }
        AuditCmd::Export {
            dir,
            from,
            to,
            format,
            out,
        } => {
            let home = Home::open(&dir.dir)?;
            let mut store = home.store()?;
            store.checkpoint(&home.key)?;
            let format = match format {
                ExportFormatArg::Jsonl => tandem_audit::ExportFormat::JsonLines,
                ExportFormatArg::Csv => tandem_audit::ExportFormat::Csv,
            };
            let (from, to) = (parse_when(from.as_deref())?, parse_when(to.as_deref())?);
            match out {
                Some(path) => {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                    let summary = store.export_audit(&mut f, format, from, to)?;
                    eprintln!(
                        "wrote {}: {} entries, {} signed checkpoint(s)",
                        path.display(),
                        summary.entries,
                        summary.checkpoints
                    );
                }
                None => {
                    store.export_audit(&mut std::io::stdout().lock(), format, from, to)?;
                }
            }
            Ok(())
        }
    }
}

/// Parses `YYYY-MM-DD` or Unix milliseconds.
fn parse_when(s: Option<&str>) -> Result<Option<i64>> {
    let Some(s) = s else { return Ok(None) };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Some(ms));
    }
    let secs = tandem_agreement::parse_rfc3339(&format!("{s}T00:00:00Z"))
        .with_context(|| format!("{s:?} is neither YYYY-MM-DD nor Unix milliseconds"))?;
    Ok(Some(secs * 1000))
}
