//! `tandem query <analysis>`: any analysis of the registry, or its free preview.

use anyhow::Result;
use tandem_node::analysis::{self, Format, Query};
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
    let report = tandem_node::querier::run_query(&home, analysis, &q, "cli:analyst").await?;
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
