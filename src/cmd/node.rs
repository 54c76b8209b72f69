//! `tandem init`, `card`, `status`, `serve`: the node itself.

use std::path::Path;

use anyhow::Result;
use tandem_node::home::{Config, Home};

use crate::cli::InitArgs;

/// `tandem init`.
pub fn init(a: InitArgs) -> Result<()> {
    let url = a.url.unwrap_or_else(|| format!("https://{}", a.listen));
    let cfg = Config {
        name: a.name.clone(),
        listen: a.listen,
        public_url: url,
        region: a.region,
        default_region: a.default_region,
        default_country_code: a.default_country_code,
        max_message_bytes: 1 << 30,
        limits: Default::default(),
    };
    let summary = Home::init(&a.dir, cfg)?;
    Home::open(&a.dir)?.store()?;
    outln!("created node {} in {}", a.name, a.dir.display());
    outln!("signing key (ed25519)  {}", summary.key_fingerprint);
    outln!("TLS certificate SHA-256 {}", summary.tls_fingerprint);
    outln!(
        "\nGive your partner this block for the agreement (compare the fingerprints by phone):\n"
    );
    out!("{}", Home::open(&a.dir)?.party_card());
    Ok(())
}

/// `tandem card`.
pub fn card(dir: &Path) -> Result<()> {
    out!("{}", Home::open(dir)?.party_card());
    Ok(())
}

/// `tandem status`.
pub fn status(dir: &std::path::Path) -> Result<()> {
    let home = Home::open(dir)?;
    let store = home.store()?;
    outln!(
        "node {} · {} · key {}",
        home.config.name,
        home.config.public_url,
        home.key_fingerprint()
    );
    for a in store.audience_summary()? {
        outln!(
            "audience {:<12} {:<9} {} members",
            a.audience,
            a.id_kind,
            a.members
        );
    }
    let agreements = store.agreements()?;
    let active = agreements.iter().filter(|a| a.status == "active").count();
    outln!(
        "agreements: {} ({} active) · runs: {}",
        agreements.len(),
        active,
        store.runs(None)?.len()
    );
    Ok(())
}

/// `tandem serve`.
pub async fn serve(dir: &std::path::Path) -> Result<()> {
    let home = Home::open(dir)?;
    let interrupted = tandem_node::maintenance::recover(&home)?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "runs interrupted by a crash are recorded as failed; their budget stays charged"
        );
    }
    let (listener, addr) = tandem_node::server::bind(&home.config.listen).await?;
    tracing::info!(node = %home.config.name, %addr, key = %home.key_fingerprint(), "serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let maintenance = tokio::spawn(tandem_node::maintenance::run(home.clone(), stop_rx));
    let served = tandem_node::server::serve(&home, listener, shutdown_signal()).await;
    let _ = stop_tx.send(true);
    let _ = maintenance.await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
