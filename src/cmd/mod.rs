//! What each CLI command does: one module per command group, each a thin layer over
//! `tandem-node`.

mod agreement;
mod audit;
mod bench;
mod budget;
mod compliance;
mod demo;
mod import;
mod model;
mod node;
mod query;
mod results;
mod token;

use anyhow::Result;

use crate::cli::{BenchCmd, Command, ReportCmd};

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Init(a) => node::init(a),
        Command::Card(d) => node::card(&d.dir),
        Command::Status(d) => node::status(&d.dir),
        Command::Serve(d) => node::serve(&d.dir).await,
        Command::Import(a) => import::import(a).await,
        Command::Suppress(a) => import::suppress(a),
        Command::Agreement(cmd) => agreement::agreement(cmd).await,
        Command::Query(a) => query::query(a).await,
        Command::Results(cmd) => results::results(cmd),
        Command::Model(cmd) => model::model(cmd).await,
        Command::Budget(a) => budget::budget(a),
        Command::Runs(a) => budget::runs(a),
        Command::Audit(cmd) => audit::audit(cmd),
        Command::Token(cmd) => token::token(cmd),
        Command::Purge(a) => compliance::purge(&a.dir.dir),
        Command::Report(ReportCmd::Processing { dir, json }) => {
            compliance::processing(&dir.dir, json)
        }
        Command::Demo(a) => demo::demo(a).await,
        Command::Bench(BenchCmd::Psi { n }) => bench::psi(n).await,
    }
}

/// Unix ms as RFC 3339 UTC (to the second).
fn time(ms: i64) -> String {
    tandem_agreement::format_rfc3339(ms.div_euclid(1000)).unwrap_or_else(|| ms.to_string())
}
