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
    let (q, preview, json, csv) = (to_query(&a), a.preview, a.json, a.csv);
    if preview {
        let p = tandem_node::querier::preview_with_peer(&home, analysis, &q).await?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&p)?);
        } else {
            outln!(
                "{} cells ({} × {} buckets) · 95% interval ± {} per cell's count{} · this node spends ε {:.4} (left {:.4}{}) · the peer spends ε {:.4} (its per-query cap {}){}",
                p.cells,
                p.querier_buckets,
                p.responder_buckets,
                p.half_width_95,
                match (p.value_half_width_95, &p.value_unit) {
                    (Some(h), Some(unit)) => format!(", ± {h} {unit} per cell's sum"),
                    _ => String::new(),
                },
                p.querier_cost.epsilon,
                p.querier_epsilon_left,
                p.querier_queries_left
                    .map(|n| format!(", about {n} more like this"))
                    .unwrap_or_default(),
                p.responder_cost.epsilon,
                p.responder_per_query_cap,
                if p.cached {
                    " · a stored answer exists: it would be returned at no cost if the peer's audience is unchanged (the run asks it first)"
                } else {
                    ""
                }
            );
            match (&p.responder_budget, &p.responder_budget_unknown) {
                (Some(b), _) if b.admits => outln!(
                    "{} would admit it: ε {:.4} left before this run",
                    b.party,
                    b.epsilon_left
                ),
                (Some(b), _) => outln!(
                    "{} would REFUSE it ({}): {} — nothing would be charged on either side",
                    b.party,
                    b.code.as_deref().unwrap_or("refused"),
                    b.reason.as_deref().unwrap_or_default()
                ),
                (None, Some(why)) => outln!("the peer's budget is unknown: {why}"),
                (None, None) => {}
            }
        }
        return Ok(());
    }
    // A streamed run's progress (records done / total, rate, ETA) on stderr, for a terminal.
    let before = tandem_node::stream::latest("querier").map(|p| p.run_id);
    let bar = indicatif::ProgressBar::new_spinner();
    let ticker = tokio::spawn({
        let bar = bar.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                if let Some(p) = tandem_node::stream::latest("querier")
                    && Some(&p.run_id) != before.as_ref()
                {
                    let eta = p.eta_s.map_or("?".to_string(), |s| format!("{s:.0} s"));
                    bar.set_message(format!(
                        "{}: {} of {} records, {:.0}/s, ETA {eta}",
                        p.phase, p.done, p.total, p.rate_per_s
                    ));
                    bar.tick();
                }
            }
        }
    });
    let report = tandem_node::querier::run_query(&home, analysis, &q, "cli:analyst").await;
    ticker.abort();
    bar.finish_and_clear();
    let report = report.map_err(explain)?;
    let format = match (json, csv) {
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
    // A first run's hash-cache fill finishes before this process exits (else it is lost).
    tandem_node::run::wait_for_hash_fills();
    Ok(())
}

/// The query of `tandem query` flags: `--arm-column` / `--peer-conversion-column` are lift's
/// names for the group-by columns, and the named lift flags and every `--option` become
/// `Query.options`.
fn to_query(a: &QueryArgs) -> Query {
    let mut options: std::collections::BTreeMap<String, String> =
        a.options.iter().cloned().collect();
    for (key, value) in [
        ("test_arm", &a.test_arm),
        ("control_arm", &a.control_arm),
        ("converted", &a.peer_converted_value),
    ] {
        if let Some(v) = value {
            options.insert(key.to_string(), v.clone());
        }
    }
    Query {
        agreement_id: a.agreement.clone(),
        join_key: a.join_key.clone(),
        group_by: a.arm_column.iter().chain(&a.group_by).cloned().collect(),
        peer_group_by: a
            .peer_conversion_column
            .clone()
            .map_or_else(|| a.peer_group_by.clone(), |c| vec![c]),
        peer_value: a.peer_value.clone(),
        epsilon: a.epsilon,
        fresh: a.fresh,
        options,
    }
}

/// A failed query for people: the code as the API would send it (the peer's own code for a
/// refusal it passed through, e.g. `budget_exceeded`), the HTTP status, the reason (which says
/// what became of this node's charge) and every detail (which cap, what is left) on its own line.
pub(crate) fn explain(e: NodeError) -> anyhow::Error {
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

    #[test]
    fn lift_flags_and_options_make_the_query() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "tandem",
            "query",
            "lift",
            "--dir",
            "n",
            "--agreement",
            "ab",
            "--arm-column",
            "arm",
            "--test-arm",
            "t",
            "--control-arm",
            "c",
            "--peer-conversion-column",
            "conv",
            "--peer-converted-value",
            "yes",
            "--option",
            "inference=population",
        ])
        .expect("parses");
        let crate::cli::Command::Query(a) = cli.command else {
            panic!("not a query");
        };
        let q = to_query(&a);
        assert_eq!(q.group_by, vec!["arm".to_string()]);
        assert_eq!(q.peer_group_by, vec!["conv".to_string()]);
        let o: Vec<(&str, &str)> = q
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            o,
            [
                ("control_arm", "c"),
                ("converted", "yes"),
                ("inference", "population"),
                ("test_arm", "t")
            ]
        );
        let mut args = vec!["tandem", "query", "lift", "--agreement", "ab"];
        args.extend(["--option", "novalue"]);
        assert!(crate::cli::Cli::try_parse_from(args).is_err());
        // The arm column first, then the segment columns: one lift per segment.
        let cli = crate::cli::Cli::try_parse_from([
            "tandem",
            "query",
            "lift",
            "--dir",
            "n",
            "--agreement",
            "ab",
            "--arm-column",
            "arm",
            "--group-by",
            "region",
        ])
        .expect("parses");
        let crate::cli::Command::Query(a) = cli.command else {
            panic!("not a query");
        };
        assert_eq!(to_query(&a).group_by, ["arm", "region"]);
    }
}
