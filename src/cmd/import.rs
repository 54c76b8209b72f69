//! `tandem import` and `tandem suppress`: people in and out of the node's audiences.

use anyhow::{Context, Result};
use tandem_node::home::Home;

use crate::cli::{ImportArgs, SuppressArgs};

/// `tandem import`.
pub async fn import(a: ImportArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let kind: tandem_identity::IdKind = a
        .source
        .id_kind
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut values = Vec::new();
    for spec in &a.values {
        let (column, bound) = match spec.split_once('=') {
            Some((c, u)) => (
                c.trim().to_string(),
                u.trim().parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("--value {spec}: the bound U must be a positive integer")
                })?,
            ),
            None => {
                let store = home.store()?;
                let bound = tandem_node::sums::import_bound(&store, &home.config.name, spec)?;
                (spec.trim().to_string(), bound)
            }
        };
        values.push(tandem_store::ValueSpec { column, bound });
    }
    let opts = tandem_store::ImportOptions {
        audience: a.audience,
        attributes: a.attributes,
        values,
        normaliser: home.normaliser(),
        id_encoding: a
            .source
            .id_encoding
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        encoding: tandem_store::TextEncoding::for_label(&a.encoding)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        delimiter: tandem_store::parse_delimiter(&a.delimiter)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        derived: derived(&a.band, &a.rfm)?,
        ..tandem_store::ImportOptions::new(a.source.id_column, kind)
    };
    let derived_sets: Vec<(String, Vec<String>)> = opts
        .derived
        .iter()
        .map(|d| (d.name().to_string(), d.labels()))
        .collect();
    let store_path = home.store_path();
    let file = a.source.file.clone();
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || -> Result<tandem_store::ImportReport> {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} importing {pos} rows ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let progress = |n: u64| bar.set_position(n);
        let mut store = tandem_store::Store::open(&store_path)?;
        let r = store.import_csv(&file, &opts, Some(&progress));
        bar.finish_and_clear();
        Ok(r?)
    })
    .await
    .context("import task panicked")??;
    let secs = started.elapsed().as_secs_f64();
    outln!(
        "imported {} of {} rows into audience {:?} in {:.2} s ({:.0} rows/s); identifiers stored as SHA-256 only",
        report.imported,
        report.rows,
        report.audience,
        secs,
        report.rows as f64 / secs.max(1e-9)
    );
    out!("{}", report.details());
    for (name, labels) in derived_sets {
        outln!(
            "derived column {name} (computed here, at import): its possible values, to list in an agreement: {}",
            labels.join(", ")
        );
    }
    Ok(())
}

/// The derived columns of `--band NAME=SOURCE:EDGES` and `--rfm NAME=RECENCY,FREQUENCY,MONETARY`.
fn derived(bands: &[String], rfm: &[String]) -> Result<Vec<tandem_store::Derive>> {
    let mut out = Vec::new();
    for spec in bands {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--band {spec:?}: expected NAME=SOURCE:EDGES"))?;
        let (source, edges) = rest
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--band {spec:?}: expected NAME=SOURCE:EDGES"))?;
        let edges = edges
            .split(',')
            .map(|e| {
                e.trim().parse::<f64>().map_err(|_| {
                    anyhow::anyhow!("--band {spec:?}: edge {:?} is not a number", e.trim())
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        let bands = tandem_analytics::Bands::new(&edges)
            .map_err(|e| anyhow::anyhow!("--band {spec:?}: {e}"))?;
        out.push(tandem_store::Derive::Band {
            name: name.trim().to_string(),
            source: source.trim().to_string(),
            bands,
        });
    }
    for spec in rfm {
        let bad = || anyhow::anyhow!("--rfm {spec:?}: expected NAME=RECENCY,FREQUENCY,MONETARY");
        let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
        let sources: Vec<String> = rest.split(',').map(|c| c.trim().to_string()).collect();
        let sources: [String; 3] = sources.try_into().map_err(|_| bad())?;
        out.push(tandem_store::Derive::Rfm {
            name: name.trim().to_string(),
            sources,
        });
    }
    Ok(out)
}

/// `tandem suppress`.
pub fn suppress(a: SuppressArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let kind: tandem_identity::IdKind = a
        .source
        .id_kind
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let encoding: tandem_identity::IdEncoding = a
        .source
        .id_encoding
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let normaliser = home.normaliser();
    let mut reader = csv::Reader::from_path(&a.source.file)
        .with_context(|| format!("reading {}", a.source.file.display()))?;
    let col = reader
        .headers()?
        .iter()
        .position(|h| h == a.source.id_column)
        .with_context(|| {
            format!(
                "{}: no column {:?}",
                a.source.file.display(),
                a.source.id_column
            )
        })?;
    let mut digests = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: line {}", a.source.file.display(), i + 2))?;
        let raw = row.get(col).unwrap_or("");
        let d = normaliser
            .digest_encoded(kind, encoding, raw)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", a.source.file.display(), i + 2))?;
        digests.push(d);
    }
    let removed = home.store()?.delete_digests(&digests, "cli:admin")?;
    outln!(
        "{} people suppressed: removed from {removed} audience rows; future imports and runs skip them",
        digests.len()
    );
    Ok(())
}
