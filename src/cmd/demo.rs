//! `tandem demo`: two nodes on loopback, an overlap report next to the truth.

use anyhow::Result;

use crate::cli::DemoArgs;

/// `tandem demo`.
pub async fn demo(a: DemoArgs) -> Result<()> {
    let json = a.json;
    let args = tandem_node::demo::DemoArgs {
        querier_size: a.querier_size,
        responder_size: a.responder_size,
        overlap: a.overlap,
        epsilon: a.epsilon,
        keep: a.keep,
    };
    let say = |msg: String| {
        if !json {
            eprintln!("{msg}");
        }
    };
    let outcome = tandem_node::demo::run(args, &say).await?;
    if json {
        let v = tandem_node::demo::outcome_json(&outcome);
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("{}", tandem_node::demo::outcome_text(&outcome)?);
    }
    Ok(())
}
