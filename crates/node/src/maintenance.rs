//! What a serving node does on its own: at start it records runs a crash interrupted (their
//! budget stays charged), then it signs an audit checkpoint whenever the log has grown (checked
//! every [`CHECKPOINT_EVERY`]) and at shutdown, and applies retention every [`PURGE_EVERY`].

use std::time::Duration;

use crate::error::Result;

use crate::home::Home;

/// How often the node checks whether the audit log needs a new signed checkpoint.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// How often retention is applied.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Startup recovery: runs left `started` by a crash become `failed`, charges kept.
pub fn recover(home: &Home) -> Result<u64> {
    Ok(home.store()?.fail_interrupted_runs()?)
}

/// Signs a checkpoint if entries were appended since `last_seq`; returns the new head seq.
pub fn checkpoint_if_grown(home: &Home, last_seq: Option<u64>) -> Result<Option<u64>> {
    let mut store = home.store()?;
    let head = store.audit_head()?.map(|e| e.seq);
    if head.is_some() && head != last_seq {
        store.checkpoint(&home.key)?;
    }
    Ok(head)
}

/// Runs the periodic tasks until `stop` flips; signs a final checkpoint.
pub async fn run(home: Home, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut checkpoint_tick = tokio::time::interval(CHECKPOINT_EVERY);
    let mut purge_tick = tokio::time::interval(PURGE_EVERY);
    let mut last_seq = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = checkpoint_tick.tick() => {
                let h = home.clone();
                match tokio::task::spawn_blocking(move || checkpoint_if_grown(&h, last_seq)).await {
                    Ok(Ok(seq)) => last_seq = seq,
                    Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "audit checkpoint failed"),
                    Err(e) => tracing::error!(error = %e, "audit checkpoint task failed"),
                }
            }
            _ = purge_tick.tick() => {
                let h = home.clone();
                match tokio::task::spawn_blocking(move || crate::compliance::purge(&h)).await {
                    Ok(Ok(line)) => tracing::info!(%line, "retention applied"),
                    Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "retention purge failed"),
                    Err(e) => tracing::error!(error = %e, "retention task failed"),
                }
            }
        }
    }
    let h = home.clone();
    match tokio::task::spawn_blocking(move || checkpoint_if_grown(&h, last_seq)).await {
        Ok(Ok(_)) => tracing::info!("audit log checkpoint signed at shutdown"),
        Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "final audit checkpoint failed"),
        Err(e) => tracing::error!(error = %e, "final audit checkpoint task failed"),
    }
}
