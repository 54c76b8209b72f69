//! Printing reports for people (tables) and programs (JSON).

use std::fmt::Write;

use crate::ledger_head::BudgetView;
use crate::overlap::OverlapReport;

/// Renders an overlap report as a table.
pub fn overlap_table(r: &OverlapReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Overlap of {} × {} under agreement {}",
        r.querier,
        r.responder,
        short(&r.agreement_id)
    );
    let _ = writeln!(s, "Purpose: {}", r.purpose);
    let _ = writeln!(
        s,
        "Join key: {} · grouped by {}.{} × {}.{} · ε = {} · {}",
        r.join_key,
        r.querier,
        r.querier_column.as_deref().unwrap_or("all"),
        r.responder,
        r.responder_column.as_deref().unwrap_or("all"),
        r.epsilon,
        if r.cached {
            "cached answer (no budget spent)".to_string()
        } else {
            format!("run {}", short(&r.run_id))
        }
    );
    let show_truth = r.cells.iter().any(|c| c.truth.is_some());
    let w0 = r
        .cells
        .iter()
        .map(|c| c.querier_group.len())
        .max()
        .unwrap_or(0)
        .max(r.querier.len() + 1);
    let w1 = r
        .cells
        .iter()
        .map(|c| c.responder_group.len())
        .max()
        .unwrap_or(0)
        .max(r.responder.len() + 1);
    let _ = write!(
        s,
        "\n{:<w0$}  {:<w1$}  {:>10}  {:>21}",
        r.querier, r.responder, "overlap", "95% interval"
    );
    if show_truth {
        let _ = write!(s, "  {:>8}", "truth");
    }
    s.push('\n');
    for c in &r.cells {
        let value = if c.below_threshold {
            format!("< {}", r.threshold)
        } else {
            c.estimate.to_string()
        };
        let ci = if c.below_threshold {
            "—".to_string()
        } else {
            format!("[{}, {}]", c.ci_low, c.ci_high)
        };
        let _ = write!(
            s,
            "{:<w0$}  {:<w1$}  {:>10}  {:>21}",
            c.querier_group, c.responder_group, value, ci
        );
        if let Some(t) = c.truth {
            let _ = write!(s, "  {t:>8}");
        }
        s.push('\n');
    }
    s.push('\n');
    for b in [&r.querier_budget, &r.responder_budget] {
        let _ = writeln!(s, "{}", budget_line(b));
    }
    let _ = writeln!(s, "wall time {:.2} s", r.wall_s);
    s
}

fn budget_line(b: &BudgetView) -> String {
    format!(
        "budget {:<10} spent ε {:.4} (δ {:.1e}) this query · ε {:.4} spent in all · ε {:.4} left",
        b.party, b.epsilon_spent, b.delta_spent, b.epsilon_total_spent, b.epsilon_left
    )
}

/// The first 12 characters of a hex id.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
