//! `tandem query <analysis>`: any analysis of the registry, or its free preview.

use anyhow::Result;
use tandem_node::analysis::{self, Format, Query};
use tandem_node::error::NodeError;
use tandem_node::home::Home;

use crate::cli::QueryArgs;

/// `tandem query <analysis>`.
pub async fn query(a: QueryArgs) -> Result<()> {
    let analysis = analysis::find(&a.analysis)?;
    let home = Home::open(&a.dir.dir)?;
    let q = Query {
        agreement_id: a.agreement,
        join_key: a.join_key,
        group_by: a.group_by,
        peer_group_by: a.peer_group_by,
        peer_value: a.peer_value,
        epsilon: a.epsilon,
        fresh: a.fresh,
    };
    if a.preview {
        let p = tandem_node::querier::preview(&home.store()?, &home.config.name, analysis, &q)?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&p)?);
        } else {
            outln!(
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
    let report = tandem_node::querier::run_query(&home, analysis, &q, "cli:analyst")
        .await
        .map_err(explain)?;
    let format = match (a.json, a.csv) {
        (true, _) => Format::Json,
        (false, true) => Format::Csv,
        (false, false) => Format::Table,
    };
    let text = analysis.render(&report, format)?;
    if format == Format::Json {
        outln!("{text}");
    } else {
        out!("{text}");
    }
    Ok(())
}

/// A failed query for people: the code as the API would send it (the peer's own code for a
/// refusal it passed through, e.g. `budget_exceeded`), the HTTP status, the reason (which says
/// what became of this node's charge) and every detail (which cap, what is left) on its own line.
fn explain(e: NodeError) -> anyhow::Error {
    let mut text = format!(
        "{} ({}): {}",
        e.code_str(),
        e.status().as_u16(),
        e.message()
    );
    if let Some(peer) = e.peer_answer() {
        text += &format!("\n  refused by {} (its status {})", peer.peer, peer.status);
    }
    if let Some(serde_json::Value::Object(details)) = e.details() {
        for (key, value) in details {
            text += &format!("\n  {key}: {value}");
        }
    }
    anyhow::anyhow!(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_node::error::PeerAnswer;

    #[test]
    fn a_peer_budget_refusal_prints_its_code_cap_left_and_our_charge() {
        let e = NodeError::peer_refused(
            PeerAnswer {
                peer: "shopx".into(),
                status: 403,
                code: Some("budget_exceeded".into()),
            },
            "shopx answered 403 Forbidden: budget exceeded",
        )
        .with_details(serde_json::json!({"budget": "epsilon", "cap": 2.5, "left": 0.5}))
        .note("this node's own charge for run 01 (ε 0.25, δ 0e0) stands")
        .with_detail("querier_charge", serde_json::json!({"stands": true}));
        let text = format!("{:#}", explain(e));
        assert!(
            text.starts_with("budget_exceeded (403): shopx answered"),
            "{text}"
        );
        for part in [
            "refused by shopx (its status 403)",
            "cap: 2.5",
            "left: 0.5",
            "budget: \"epsilon\"",
            "own charge for run 01",
            "querier_charge: {\"stands\":true}",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
}
