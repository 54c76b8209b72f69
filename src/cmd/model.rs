//! `tandem model …`: fit a model from noised marginals (charged run by run), then show, score,
//! export and list it for free.

use anyhow::Result;
use tandem_node::home::Home;
use tandem_node::model::{self, ModelRequest, Which};

use crate::cli::{ModelCmd, ModelFitArgs};
use crate::cmd::query::explain;

/// `tandem model …`.
pub async fn model(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Fit(a) => fit(a).await,
        ModelCmd::Show(a) => {
            let record = model::load(&Home::open(&a.dir.dir)?.store()?, &a.id)?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                out!("{}", record.render());
            }
            Ok(())
        }
        ModelCmd::ScoreTable(a) => {
            let record = model::load(&Home::open(&a.dir.dir)?.store()?, &a.id)?;
            let which = if a.naive_bayes {
                Which::NaiveBayes
            } else {
                Which::Logistic
            };
            if a.csv {
                out!("{}", record.score_table_csv(which)?);
                return Ok(());
            }
            let names: Vec<&str> = record
                .fit
                .schema
                .features
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            outln!("{:<40} {:>9} {:>7}", names.join(" · "), "log-odds", "score");
            for row in record.score_table(which)? {
                outln!(
                    "{:<40} {:>9.3} {:>7.4}",
                    row.values.join(" · "),
                    row.log_odds,
                    row.score
                );
            }
            Ok(())
        }
        ModelCmd::Export(a) => {
            let record = model::load(&Home::open(&a.dir.dir)?.store()?, &a.id)?;
            outln!("{}", serde_json::to_string_pretty(&record)?);
            Ok(())
        }
        ModelCmd::Crosstab(a) => {
            let record = model::load(&Home::open(&a.dir.dir)?.store()?, &a.id)?;
            let text = if a.json {
                record.fit.crosstab.to_json()?
            } else {
                record.fit.crosstab.to_csv()?
            };
            out!("{text}");
            if a.json {
                outln!("");
            }
            Ok(())
        }
        ModelCmd::List(a) => {
            let store = Home::open(&a.dir.dir)?.store()?;
            let agreement =
                tandem_node::agreements::resolve_filter(&store, a.agreement.as_deref())?;
            let list = model::list(&store, agreement.as_deref())?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for m in list {
                outln!(
                    "{}  P({} | {})  ε {}  {} runs",
                    m.model_id,
                    m.label,
                    m.features.join(", "),
                    m.epsilon,
                    m.run_ids.len()
                );
            }
            Ok(())
        }
    }
}

async fn fit(a: ModelFitArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let pairs = a
        .pairs
        .iter()
        .map(|p| {
            p.split_once(':')
                .map(|(x, y)| (x.to_string(), y.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--pairs {p:?}: expected a:b"))
        })
        .collect::<Result<Vec<_>>>()?;
    let req = ModelRequest {
        agreement_id: a.agreement,
        join_key: a.join_key,
        features: a.features,
        peer_label: a.peer_label,
        pairs,
        feature_joint: Some(!a.no_feature_joint),
        epsilon: a.epsilon,
        fresh: a.fresh,
    };
    if a.preview {
        let p = model::preview(&home.store()?, &home.config.name, &req).map_err(explain)?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&p)?);
            return Ok(());
        }
        outln!(
            "{} marginals, batch ε {} split equally",
            p.marginals.len(),
            p.epsilon
        );
        for m in &p.marginals {
            outln!(
                "  {:<36} ε {:.4} · {:>3} cells · ± {} per cell · this node ε {:.4}, peer ε {:.4}{}",
                m.name,
                m.epsilon,
                m.cells,
                m.half_width_95,
                m.querier_cost.epsilon,
                m.responder_cost.epsilon,
                if m.cached {
                    " · stored answer, no cost"
                } else {
                    ""
                }
            );
        }
        outln!(
            "in all: this node spends ε {:.4} (left {:.4}) · the peer spends ε {:.4} (left {:.4} as it last reported)",
            p.querier_cost.epsilon,
            p.querier_epsilon_left,
            p.responder_cost.epsilon,
            p.responder_epsilon_left
        );
        return Ok(());
    }
    let record = model::fit(&home, &req, "cli:analyst")
        .await
        .map_err(explain)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        out!("{}", record.render());
        outln!(
            "\nstored as model {} · `tandem model show|score-table|export|crosstab {}` are free",
            record.model_id,
            record.model_id
        );
    }
    Ok(())
}
