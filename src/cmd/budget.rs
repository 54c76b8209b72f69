//! `tandem budget` and `tandem runs`: the ledger and the run history.

use anyhow::Result;
use tandem_node::home::Home;

use crate::cli::ListArgs;

/// `tandem budget`.
pub fn budget(a: ListArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let store = home.store()?;
    // A mistyped id is an error, not an empty list; a unique prefix (the short id) will do.
    let agreement = tandem_node::agreements::resolve_filter(&store, a.agreement.as_deref())?;
    let views = tandem_node::compliance::budgets(&store, &home.config.name, agreement.as_deref())?;
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
        // The node-wide cap refuses runs the agreements above admit: show what it leaves.
        if let Some((cap, s)) = store.node_cap_status()? {
            outln!(
                "node-wide cap ([limits.node_budget], all agreements{}): ε spent {:.4} of {} · ε left {:.4} · δ spent {:.2e} {}",
                cap.window_ms
                    .map(|w| format!(", sliding {}-day window", w / 86_400_000))
                    .unwrap_or_default(),
                s.spent_epsilon,
                cap.epsilon,
                s.left_epsilon,
                s.spent_delta,
                cap.delta.map_or_else(
                    || "(not capped node-wide: each agreement caps its own)".to_string(),
                    |d| format!("of {d:.2e}")
                ),
            );
        }
    }
    Ok(())
}

/// `tandem runs`.
pub fn runs(a: ListArgs) -> Result<()> {
    let home = Home::open(&a.dir.dir)?;
    let store = home.store()?;
    let agreement = tandem_node::agreements::resolve_filter(&store, a.agreement.as_deref())?;
    let runs = store.runs(agreement.as_deref())?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        for r in runs {
            outln!("{}", line(&r));
        }
    }
    Ok(())
}

/// One run for `tandem runs`: id, start (UTC), role, status, analysis, what it cost, the
/// agreement's short id and the failure's reason.
fn line(r: &tandem_store::RunRecord) -> String {
    let params = serde_json::from_str::<serde_json::Value>(&r.params_json).unwrap_or_default();
    format!(
        "{}  {}  {:<9} {:<8} {:<10} {:<28}  agreement {}  {}",
        r.run_id,
        super::time(r.started_at_ms),
        r.role,
        r.status,
        params["analysis"].as_str().unwrap_or("-"),
        charge(r),
        tandem_node::analysis::short(&r.agreement_id),
        r.error.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

/// What a run cost this node's budget, for `tandem runs`: a failed run whose charge stayed (its
/// noised output may have left) shows its ε as spent like a finished one, a released reservation
/// and a refusal show that nothing was spent.
fn charge(r: &tandem_store::RunRecord) -> String {
    match r.charge.as_deref() {
        Some("spent") => format!("ε {:.4} spent", r.epsilon),
        Some("reserved") => format!("ε {:.4} reserved", r.epsilon),
        Some("released") => format!("ε 0 ({:.4} released)", r.epsilon),
        Some(other) => format!("ε {:.4} {other}", r.epsilon),
        None => "ε 0 (nothing charged)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{charge, line};

    #[test]
    fn a_failed_run_after_the_charge_shows_its_epsilon_spent() {
        let mut r = tandem_store::RunRecord {
            run_id: "r".into(),
            agreement_id: "a".into(),
            role: "querier".into(),
            actor: "cli".into(),
            params_json: "{}".into(),
            status: "failed".into(),
            epsilon: 0.25,
            delta: 0.0,
            rho: 0.0,
            fingerprint: None,
            charge: Some("spent".into()),
            route: None,
            started_at_ms: 0,
            ended_at_ms: None,
            result_json: None,
            output_sha256: None,
            error: Some("peer timed out".into()),
        };
        assert_eq!(charge(&r), "ε 0.2500 spent");
        r.params_json = r#"{"analysis":"overlap","epsilon":1.0}"#.into();
        r.started_at_ms = 1_796_000_938_469;
        // When, what and what it cost, beside the reason.
        assert_eq!(
            line(&r),
            "r  2026-11-30T01:08:58Z  querier   failed   overlap    ε 0.2500 spent                agreement a  peer timed out"
        );
        r.charge = Some("released".into());
        assert_eq!(charge(&r), "ε 0 (0.2500 released)");
        r.charge = None;
        assert_eq!(charge(&r), "ε 0 (nothing charged)");
    }
}
