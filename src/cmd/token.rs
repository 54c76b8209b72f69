//! `tandem token create` and `tandem token revoke`.

use anyhow::Result;
use tandem_node::home::Home;

use crate::cli::TokenCmd;

/// `tandem token …`.
pub fn token(cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create { dir, name, role } => {
            let home = Home::open(&dir.dir)?;
            let secret = home.store()?.create_token(&name, &role, "cli:admin")?;
            outln!("token for {name} ({role}) — shown once, keep it secret:\n{secret}");
        }
        TokenCmd::Revoke { dir, name } => {
            let home = Home::open(&dir.dir)?;
            home.store()?.revoke_token(&name, "cli:admin")?;
            outln!("revoked {name}");
        }
    }
    Ok(())
}
