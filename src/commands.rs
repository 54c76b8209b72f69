//! What each CLI command does.

use anyhow::{Context, Result};

use crate::agreements::Delivery;
use crate::cli::{
    AgreementCmd, AuditCmd, BenchCmd, Command, ExportFormatArg, ImportArgs, ListArgs, QueryCmd,
    ReportCmd, SuppressArgs, TokenCmd,
};
use crate::home::{Config, Home};
use crate::overlap::OverlapQuery;

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Init(a) => {
            let url = a.url.unwrap_or_else(|| format!("https://{}", a.listen));
            let cfg = Config {
                name: a.name.clone(),
                listen: a.listen,
                public_url: url,
                region: a.region,
                default_country_code: a.default_country_code,
                max_message_bytes: 1 << 30,
            };
            let summary = Home::init(&a.dir, cfg)?;
            Home::open(&a.dir)?.store()?;
            println!("created node {} in {}", a.name, a.dir.display());
            println!("signing key (ed25519)  {}", summary.key_fingerprint);
            println!("TLS certificate SHA-256 {}", summary.tls_fingerprint);
            println!(
                "\nGive your partner this block for the agreement (compare the fingerprints by phone):\n"
            );
            print!("{}", Home::open(&a.dir)?.party_card());
            Ok(())
        }
        Command::Card(d) => {
            print!("{}", Home::open(&d.dir)?.party_card());
            Ok(())
        }
        Command::Status(d) => status(&d.dir),
        Command::Import(a) => import(a).await,
        Command::Agreement(cmd) => agreement(cmd).await,
        Command::Serve(d) => serve(&d.dir).await,
        Command::Query(QueryCmd::Overlap(a)) => {
            let home = Home::open(&a.dir.dir)?;
            let q = OverlapQuery {
                agreement_id: a.agreement,
                join_key: a.join_key,
                group_by: a.group_by,
                peer_group_by: a.peer_group_by,
                epsilon: a.epsilon,
                fresh: a.fresh,
            };
            if a.preview {
                let p = crate::querier::preview(&home.store()?, &home.config.name, &q)?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&p)?);
                } else {
                    println!(
                        "{} cells · 95% interval ± {} per cell · this node spends ε {:.4} (left {:.4}) · the peer spends ε {:.4} (its per-query cap {}){}",
                        p.cells,
                        p.half_width_95,
                        p.querier_cost.epsilon,
                        p.querier_epsilon_left,
                        p.responder_cost.epsilon,
                        p.responder_per_query_cap,
                        if p.cached {
                            " · a stored answer exists: it would be returned at no cost"
                        } else {
                            ""
                        }
                    );
                }
                return Ok(());
            }
            let report = crate::querier::run_query(&home, &q, "cli:analyst").await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", crate::report::overlap_table(&report));
            }
            Ok(())
        }
        Command::Budget(a) => budget(a),
        Command::Runs(a) => runs(a),
        Command::Audit(cmd) => audit(cmd),
        Command::Token(cmd) => token(cmd),
        Command::Purge(a) => {
            let home = Home::open(&a.dir.dir)?;
            let report = crate::compliance::purge(&home)?;
            println!("{report}");
            Ok(())
        }
        Command::Report(ReportCmd::Processing { dir, json }) => {
            let home = Home::open(&dir.dir)?;
            let records = crate::compliance::processing_records(&home.store()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print!("{}", crate::compliance::processing_text(&records));
            }
            Ok(())
        }
        Command::Suppress(a) => suppress(a),
        Command::Demo(a) => crate::demo::run(a).await,
        Command::Bench(BenchCmd::Psi { n }) => {
            let report = tokio::task::spawn_blocking(move || {
                tandem_bench::run_with_noise(n, &mut tandem_dp::OpenDpNoise)
            })
            .await
            .context("benchmark panicked")??;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

async fn import(a: ImportArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let kind: tandem_identity::IdKind = a
        .source
        .id_kind
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = tandem_store::ImportOptions {
        audience: a.audience,
        attributes: a.attributes,
        normaliser: home.normaliser(),
        ..tandem_store::ImportOptions::new(a.source.id_column, kind)
    };
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
    println!(
        "imported {} of {} rows into audience {:?} ({} repeated identifiers counted once) in {:.2} s ({:.0} rows/s); identifiers stored as SHA-256 only",
        report.imported,
        report.rows,
        report.audience,
        report.duplicates,
        secs,
        report.rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Tells the operator where a signed agreement went and what the other side does next.
fn print_delivery(
    d: &Delivery,
    a: &tandem_agreement::Agreement,
    me: &str,
    delivered_next: &str,
    offline_next: &str,
) {
    let peer = a
        .terms
        .peer_of(me)
        .map(|p| p.name.as_str())
        .unwrap_or("the peer");
    match d {
        Delivery::Delivered => println!("delivered to {peer}'s node; {delivered_next}"),
        Delivery::Written(path, why) => println!(
            "{peer}'s node is not reachable ({why}).\nHand {peer} this file: {}\n{peer} then runs: {offline_next} --file {}",
            path.display(),
            path.display()
        ),
    }
}

async fn agreement(cmd: AgreementCmd) -> Result<()> {
    match cmd {
        AgreementCmd::Propose {
            dir,
            file,
            peer_url,
        } => {
            let home = Home::open(&dir.dir)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (a, d) = crate::agreements::propose(&home, &text, peer_url.as_deref()).await?;
            println!("proposed agreement {}", a.id());
            print_delivery(
                &d,
                &a,
                &home.config.name,
                &format!(
                    "it accepts with: tandem agreement accept --dir <its dir> {}",
                    a.id()
                ),
                "tandem agreement accept --dir <its dir>",
            );
            Ok(())
        }
        AgreementCmd::Accept { dir, id, file } => {
            let home = Home::open(&dir.dir)?;
            let (a, d) = crate::agreements::accept(&home, id.as_deref(), file.as_deref()).await?;
            println!(
                "agreement {} is signed by both parties and active here",
                a.id()
            );
            print_delivery(
                &d,
                &a,
                &home.config.name,
                "the agreement is active on both nodes",
                "tandem agreement import --dir <its dir>",
            );
            Ok(())
        }
        AgreementCmd::Import { dir, file } => {
            let home = Home::open(&dir.dir)?;
            let a = crate::agreements::import(&home, &file)?;
            println!(
                "imported agreement {} ({})",
                a.id(),
                if a.is_fully_signed() {
                    "active"
                } else {
                    "proposed: accept it to activate"
                }
            );
            Ok(())
        }
        AgreementCmd::List(l) => {
            let home = Home::open(&l.dir.dir)?;
            let list = home.store()?.agreements()?;
            if l.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|a| serde_json::json!({"id": a.id, "status": a.status, "agreement": serde_json::from_str::<serde_json::Value>(&a.doc_json).ok()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for a in list {
                    let purpose = serde_json::from_str::<tandem_agreement::Agreement>(&a.doc_json)
                        .map(|x| x.terms.purpose)
                        .unwrap_or_default();
                    println!("{}  {:<9} {}", a.id, a.status, purpose);
                }
            }
            Ok(())
        }
        AgreementCmd::Show { dir, id } => {
            let home = Home::open(&dir.dir)?;
            let a = home
                .store()?
                .agreement(&id)?
                .with_context(|| format!("unknown agreement {id}"))?;
            let v: serde_json::Value = serde_json::from_str(&a.doc_json)?;
            println!(
                "status: {}\n{}",
                a.status,
                serde_json::to_string_pretty(&v)?
            );
            Ok(())
        }
    }
}

fn budget(a: ListArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let views =
        crate::compliance::budgets(&home.store()?, &home.config.name, a.agreement.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        for b in views {
            println!(
                "{}  {:<9} {}{}: ε spent {:.4} of {} (reserved {:.4}) · ε left {:.4} · δ spent {:.2e} of {:.2e} · ρ {:.4}{} · {} bound tighter{}",
                b.agreement,
                b.status,
                b.party,
                match (b.refresh_days, &b.period_start) {
                    (Some(days), Some(start)) =>
                        format!(" (period since {start}, {days}-day refresh)"),
                    (Some(days), None) => format!(" ({days}-day refresh)"),
                    _ => String::new(),
                },
                b.epsilon_spent,
                b.epsilon_cap,
                b.epsilon_reserved,
                b.epsilon_left,
                b.delta_spent,
                b.delta_cap,
                b.rho_spent,
                b.epsilon_at_delta_from_rho
                    .map(|e| format!(" (zCDP: ε {e:.3} at δ/2)"))
                    .unwrap_or_default(),
                if b.accounting == "zcdp" {
                    "zCDP"
                } else {
                    "basic"
                },
                b.queries_left_like_last
                    .map(|n| format!(" · about {n} more queries like the last"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(())
}

fn runs(a: ListArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let runs = home.store()?.runs(a.agreement.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        for r in runs {
            println!(
                "{}  {:<9} {:<8} ε {:.4}  {}  {}",
                r.run_id,
                r.role,
                r.status,
                r.epsilon,
                crate::report::short(&r.agreement_id),
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

async fn serve(dir: &std::path::Path) -> Result<()> {
    let home = Home::open(dir)?;
    let interrupted = crate::maintenance::recover(&home)?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "runs interrupted by a crash are recorded as failed; their budget stays charged"
        );
    }
    let (listener, addr) = crate::server::bind(&home.config.listen).await?;
    tracing::info!(node = %home.config.name, %addr, key = %home.key_fingerprint(), "serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let maintenance = tokio::spawn(crate::maintenance::run(home.clone(), stop_rx));
    let served = crate::server::serve(&home, listener, shutdown_signal()).await;
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

fn status(dir: &std::path::Path) -> Result<()> {
    let home = Home::open(dir)?;
    let store = home.store()?;
    println!(
        "node {} · {} · key {}",
        home.config.name,
        home.config.public_url,
        home.key_fingerprint()
    );
    for a in store.audience_summary()? {
        println!(
            "audience {:<12} {:<9} {} members",
            a.audience, a.id_kind, a.members
        );
    }
    let agreements = store.agreements()?;
    let active = agreements.iter().filter(|a| a.status == "active").count();
    println!(
        "agreements: {} ({} active) · runs: {}",
        agreements.len(),
        active,
        store.runs(None)?.len()
    );
    Ok(())
}

fn audit(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify {
            dir,
            file,
            node_key,
        } => {
            let report = match (file, dir) {
                (Some(file), dir) => {
                    let key = match (node_key, dir) {
                        (Some(k), _) => Some(crate::wire::verifying_key(&k)?),
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
            println!(
                "audit log verifies: {} entries, {} signed checkpoint(s), head {} at seq {}",
                report.entries,
                report.checkpoints,
                hex::encode(report.head_hash),
                report
                    .last_seq
                    .map_or_else(|| "-".to_string(), |s| s.to_string())
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

fn token(cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create { dir, name, role } => {
            let home = Home::open(&dir.dir)?;
            let secret = home.store()?.create_token(&name, &role, "cli:admin")?;
            println!("token for {name} ({role}) — shown once, keep it secret:\n{secret}");
        }
        TokenCmd::Revoke { dir, name } => {
            let home = Home::open(&dir.dir)?;
            home.store()?.revoke_token(&name, "cli:admin")?;
            println!("revoked {name}");
        }
    }
    Ok(())
}

fn suppress(a: SuppressArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let kind: tandem_identity::IdKind = a
        .source
        .id_kind
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
            .digest(kind, raw)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", a.source.file.display(), i + 2))?;
        digests.push(d);
    }
    let removed = home.store()?.delete_digests(&digests, "cli:admin")?;
    println!(
        "{} people suppressed: removed from {removed} audience rows; future imports and runs skip them",
        digests.len()
    );
    Ok(())
}
