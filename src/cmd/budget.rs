//! `tandem budget` and `tandem runs`: the ledger and the run history.

use anyhow::Result;
use tandem_node::home::Home;

use crate::cli::ListArgs;

/// `tandem budget`.
pub fn budget(a: ListArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let views = tandem_node::compliance::budgets(
        &home.store()?,
        &home.config.name,
        a.agreement.as_deref(),
    )?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        for b in views {
            outln!(
                "{}  {:<9} {}{}: ε spent {:.4} of {} (reserved {:.4}) · ε left {:.4} · δ spent {:.2e} of {:.2e} · ρ {:.4}{} · {} bound tighter{}",
                b.agreement,
                b.status,
                b.party,
                match (b.refresh_days, &b.period_start) {
                    (Some(days), Some(start)) =>
                        format!(" (sliding {days}-day window, since {start})"),
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

/// `tandem runs`.
pub fn runs(a: ListArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let runs = home.store()?.runs(a.agreement.as_deref())?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        for r in runs {
            outln!(
                "{}  {:<9} {:<8} ε {:.4}  {}  {}",
                r.run_id,
                r.role,
                r.status,
                r.epsilon,
                tandem_node::analysis::short(&r.agreement_id),
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
