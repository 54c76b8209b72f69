//! `tandem agreement …`: propose, accept, import, list, show.

use std::path::Path;

use anyhow::{Context, Result};
use tandem_node::agreements::Delivery;
use tandem_node::home::Home;

use crate::cli::AgreementCmd;

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
        Delivery::Delivered => outln!("delivered to {peer}'s node; {delivered_next}"),
        Delivery::Written(path, why) => outln!(
            "{peer}'s node is not reachable ({why}).\nHand {peer} this file: {}\n{peer} then runs: {offline_next} --file {}",
            path.display(),
            path.display()
        ),
    }
}

/// `tandem agreement …`.
pub async fn agreement(cmd: AgreementCmd) -> Result<()> {
    match cmd {
        AgreementCmd::Propose {
            dir,
            file,
            peer_url,
        } => propose(&dir.dir, &file, peer_url.as_deref()).await,
        AgreementCmd::Accept { dir, id, file } => {
            accept(&dir.dir, id.as_deref(), file.as_deref()).await
        }
        AgreementCmd::Import { dir, file } => import(&dir.dir, &file),
        AgreementCmd::List(l) => list(&l.dir.dir, l.json),
        AgreementCmd::Show { dir, id } => show(&dir.dir, &id),
    }
}

/// Tells the operator which older agreements share the new one's budget.
fn note_shared_budget(home: &Home, a: &tandem_agreement::Agreement) -> Result<()> {
    for note in tandem_node::agreements::shared_budget_notes(&home.store()?, a)? {
        eprintln!("note: {note}");
    }
    Ok(())
}

async fn propose(dir: &Path, file: &Path, peer_url: Option<&str>) -> Result<()> {
    let home = Home::open(dir)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (a, d) = tandem_node::agreements::propose(&home, &text, peer_url).await?;
    outln!("proposed agreement {}", a.id());
    if let Some(own) = a.terms.party(&home.config.name)
        && own.url.trim_end_matches('/') != home.config.public_url.trim_end_matches('/')
    {
        eprintln!(
            "warning: the agreement gives this node's url as {} but its config says public_url = {}: \
             the peer calls the agreement's url",
            own.url, home.config.public_url
        );
    }
    note_shared_budget(&home, &a)?;
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

async fn accept(dir: &Path, id: Option<&str>, file: Option<&Path>) -> Result<()> {
    let home = Home::open(dir)?;
    let (a, d) = tandem_node::agreements::accept(&home, id, file).await?;
    outln!(
        "agreement {} is signed by both parties and active here",
        a.id()
    );
    note_shared_budget(&home, &a)?;
    print_delivery(
        &d,
        &a,
        &home.config.name,
        "the agreement is active on both nodes",
        "tandem agreement import --dir <its dir>",
    );
    Ok(())
}

fn import(dir: &Path, file: &Path) -> Result<()> {
    let home = Home::open(dir)?;
    let a = tandem_node::agreements::import(&home, file)?;
    outln!(
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

fn list(dir: &Path, json: bool) -> Result<()> {
    let home = Home::open(dir)?;
    let list = home.store()?.agreements()?;
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|a| serde_json::json!({"id": a.id, "status": a.status, "agreement": serde_json::from_str::<serde_json::Value>(&a.doc_json).ok(), "protocol": tandem_node::v2::protocol_summary(&a.doc_json)}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for a in list {
            let (purpose, protocol) =
                serde_json::from_str::<tandem_agreement::Agreement>(&a.doc_json)
                    .map(|x| (x.terms.purpose, x.terms.protocol.as_str()))
                    .unwrap_or_default();
            outln!("{}  {:<9} {:<9} {}", a.id, a.status, protocol, purpose);
        }
    }
    Ok(())
}

fn show(dir: &Path, id: &str) -> Result<()> {
    let store = Home::open(dir)?.store()?;
    let id = tandem_node::agreements::resolve_id(&store, id)?;
    let a = store
        .agreement(&id)?
        .with_context(|| format!("unknown agreement {id}"))?;
    let v: serde_json::Value = serde_json::from_str(&a.doc_json)?;
    let summary = tandem_node::v2::protocol_summary(&a.doc_json);
    let said = |role: &str| {
        summary["threat_model"][role]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    };
    outln!(
        "status: {}\nprotocol: {}\n  as responder: {}\n  as querier: {}\n{}",
        a.status,
        summary["protocol"].as_str().unwrap_or("?"),
        said("responder"),
        said("querier"),
        serde_json::to_string_pretty(&v)?
    );
    Ok(())
}
