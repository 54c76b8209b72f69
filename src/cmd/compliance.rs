//! `tandem report processing` and `tandem purge`: what a compliance officer runs.

use anyhow::Result;
use tandem_node::home::Home;

/// `tandem report processing`.
pub fn processing(dir: &std::path::Path, json: bool) -> Result<()> {
    let home = Home::open(dir)?;
    let records = tandem_node::compliance::processing_records(&home.store()?)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        out!("{}", tandem_node::compliance::processing_text(&records));
    }
    Ok(())
}

/// `tandem purge`.
pub fn purge(dir: &std::path::Path) -> Result<()> {
    let home = Home::open(dir)?;
    outln!("{}", tandem_node::compliance::purge(&home)?);
    Ok(())
}
