//! `tandem results list|show|export`: stored query results, re-read at no cost.

use anyhow::{Context, Result};
use tandem_node::analysis::Format;
use tandem_node::home::Home;

use super::time;
use crate::cli::{ExportFormat, ResultsCmd};

/// Who reads results from the command line (audit actor).
const ACTOR: &str = "cli:analyst";

/// `tandem results …`.
pub fn results(cmd: ResultsCmd) -> Result<()> {
    match cmd {
        ResultsCmd::List(a) => {
            let store = Home::open(&a.dir.dir)?.store()?;
            let agreement =
                tandem_node::agreements::resolve_filter(&store, a.agreement.as_deref())?;
            let list = tandem_node::results::list(&store, agreement.as_deref())?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                outln!("no stored results");
            }
            for r in list {
                outln!(
                    "{}  {}  {:<9} agreement {}  run {}  ε {:.4}{}",
                    r.result_id,
                    time(r.created_at_ms),
                    r.analysis,
                    short(&r.agreement_id),
                    short(&r.run_id),
                    r.epsilon_spent,
                    if r.cached { " (cached answer)" } else { "" }
                );
            }
        }
        ResultsCmd::Show { dir, id, json } => {
            let home = Home::open(&dir.dir)?;
            let mut store = home.store()?;
            if json {
                let r = tandem_node::results::show(&mut store, &id, ACTOR)?;
                outln!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let text = tandem_node::results::render(&mut store, &id, Format::Table, ACTOR)?;
                let r = tandem_node::results::list(&store, None)?
                    .into_iter()
                    .find(|r| r.result_id == id);
                if let Some(r) = r {
                    outln!(
                        "Result {} · stored {} · ε {:.4} spent by this node{} · parameters {}",
                        r.result_id,
                        time(r.created_at_ms),
                        r.epsilon_spent,
                        if r.cached { " (cached answer)" } else { "" },
                        r.params
                    );
                }
                out!("{text}");
            }
        }
        ResultsCmd::Export {
            dir,
            id,
            format,
            out,
            for_partner,
            epsilon,
        } => {
            let home = Home::open(&dir.dir)?;
            let format = match format {
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Json => Format::Json,
            };
            let mut store = home.store()?;
            let mut text = if for_partner {
                let export = tandem_node::results::partner_export(
                    &mut store,
                    &home.config.name,
                    &id,
                    epsilon,
                    ACTOR,
                )?;
                let n = &export.added_noise;
                eprintln!(
                    "Safe to share with {}: every cell carries this node's own noise (ε {}, δ {:e}, \
                     scale {:.3}, at most ±{}), charged to this node's budget as run {}. Keep \
                     this copy: each export draws fresh noise and is charged again.",
                    export.responder, n.epsilon, n.delta, n.scale, n.offset, n.run_id
                );
                tandem_node::results::render_partner_export(&export, format)?
            } else {
                // Rendered first: an unknown id is an error alone, without the sharing warning.
                let text = tandem_node::results::render(&mut store, &id, format, ACTOR)?;
                eprintln!(
                    "Querier-internal: do not share with the responder (it knows the noise it \
                     injected); use --for-partner for a copy safe to share."
                );
                text
            };
            if !text.ends_with('\n') {
                text.push('\n');
            }
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => out!("{text}"),
            }
        }
    }
    Ok(())
}

fn short(id: &str) -> &str {
    tandem_node::analysis::short(id)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command, ExportFormat, ResultsCmd};

    fn export_format(args: &[&str]) -> ExportFormat {
        let mut argv = vec!["tandem", "results", "export", "--dir", "n", "r1"];
        argv.extend(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Results(ResultsCmd::Export { format, .. }) => format,
            other => panic!("not an export: {other:?}"),
        }
    }

    #[test]
    fn export_writes_csv_unless_told_otherwise() {
        assert!(matches!(export_format(&[]), ExportFormat::Csv));
        assert!(matches!(
            export_format(&["--for-partner"]),
            ExportFormat::Csv
        ));
        assert!(matches!(
            export_format(&["--for-partner", "--format", "json"]),
            ExportFormat::Json
        ));
    }
}
