//! `tandem bench …`: benchmarks that print one JSON line.

use anyhow::{Context, Result};

/// `tandem bench psi --n N`: both PSI roles in one process on synthetic items.
pub async fn psi(n: usize) -> Result<()> {
    let report = tokio::task::spawn_blocking(move || {
        tandem_bench::run_with_noise(n, &mut tandem_node::release::benchmark_noise())
    })
    .await
    .context("benchmark panicked")??;
    outln!("{}", serde_json::to_string(&report)?);
    Ok(())
}
