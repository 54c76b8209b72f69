//! Budget policy: what a party may spend under an agreement and how its ledger entry is built.
//! The ledger itself (atomic check-and-charge, composition routes) is `tandem-store`'s; this
//! module derives its inputs from the agreement — per-query caps, the zCDP ρ cap, the budget
//! period — and the [`BudgetView`] a party signs after a run.

use tandem_agreement::Agreement;
use tandem_dp::PrivacyLoss;
use tandem_store::{BudgetStatus, NewRun, Store};

use crate::error::{NodeError, Result};
use crate::wire::{BudgetView, now_ms};

/// Milliseconds in a day, the unit of `budget_refresh_days`.
const DAY_MS: i64 = 86_400_000;

/// The ρ cap of the ledger's zCDP route for a party's budget: the largest total ρ whose ε at
/// half the δ cap is at most the ε cap (`tandem_dp::rho_for_epsilon(ε_total, δ_total / 2)`).
/// The other half of the δ cap is left for the runs' own δ. `None` when `delta_total` is 0
/// (zCDP converts to approximate DP only at δ > 0): then only basic composition applies.
pub fn rho_cap(budget: &tandem_agreement::Budget) -> Result<Option<f64>> {
    if budget.delta_total <= 0.0 {
        return Ok(None);
    }
    let rho = tandem_dp::rho_for_epsilon(budget.epsilon_total, budget.delta_total / 2.0)
        .map_err(|e| NodeError::bad_data(format!("the agreement's zCDP ρ cap: {e}")))?;
    Ok(Some(rho))
}

/// Start (Unix ms) of the budget window ending at `now_ms`: `now − P` with
/// `P = budget_refresh_days × 1 day` when the agreement refreshes budgets (a sliding window: any
/// `P` days hold at most the caps, so spending the cap just before a boundary and again just
/// after it is refused), else 0 (the caps apply over all charges).
pub fn budget_period_start(agreement: &Agreement, now_ms: i64) -> i64 {
    match agreement.terms.budget_refresh_days {
        Some(days) if days > 0 => now_ms.saturating_sub(i64::from(days) * DAY_MS),
        _ => 0,
    }
}

/// When a refused charge could next fit: which cap period refused and when it refreshes.
#[derive(Clone, Debug, PartialEq)]
pub struct Refresh {
    /// `lifetime` (the caps apply over all charges: they never refresh) or `window` (a
    /// sliding window of `budget_refresh_days`).
    pub period: &'static str,
    /// In a window: when its oldest charge leaves it (RFC 3339 UTC), freeing that charge's
    /// budget; `None` for a lifetime cap or an empty window.
    pub refreshes_at: Option<String>,
    /// The same in words, for the refusal's reason.
    pub text: String,
}

/// Which period a refusal of `entry` fell under and when the budget next refreshes there (the
/// agreement's charges, or those of the budget `account` that refused).
pub fn refresh(store: &Store, entry: &NewRun, account: Option<&str>) -> Result<Refresh> {
    if account == Some(tandem_store::NODE_ACCOUNT) {
        let window = store.node_cap()?.and_then(|c| c.window_ms);
        let Some(window) = window else {
            return Ok(Refresh {
                period: "lifetime",
                refreshes_at: None,
                text: "the node-wide cap is for the node's lifetime and does not refresh".into(),
            });
        };
        let oldest = store.oldest_charge_since("", account, now_ms() - window)?;
        let refreshes_at =
            oldest.and_then(|at| tandem_agreement::format_rfc3339((at + window).div_euclid(1000)));
        let days = window / DAY_MS;
        let text = match &refreshes_at {
            Some(at) => format!(
                "the node-wide cap is for a sliding {days}-day window; its oldest charge leaves it \
                 at {at}, freeing that charge"
            ),
            None => format!("the node-wide cap is for a sliding {days}-day window"),
        };
        return Ok(Refresh {
            period: "window",
            refreshes_at,
            text,
        });
    }
    if entry.budget_since_ms <= 0 {
        return Ok(Refresh {
            period: "lifetime",
            refreshes_at: None,
            text: "the cap is for the agreement's lifetime and does not refresh".into(),
        });
    }
    // The window is a whole number of days ending now (`budget_period_start`).
    let days = ((now_ms() - entry.budget_since_ms) as f64 / DAY_MS as f64).round() as i64;
    let oldest = store.oldest_charge_since(&entry.agreement_id, account, entry.budget_since_ms)?;
    let refreshes_at = oldest
        .and_then(|at| tandem_agreement::format_rfc3339((at + days * DAY_MS).div_euclid(1000)));
    let text = match &refreshes_at {
        Some(at) => format!(
            "the cap is for a sliding {days}-day window; its oldest charge leaves it at {at}, \
             freeing that charge"
        ),
        None => format!("the cap is for a sliding {days}-day window"),
    };
    Ok(Refresh {
        period: "window",
        refreshes_at,
        text,
    })
}

/// δ of a run: the smaller of the two parties' per-query δ (each side derives it from the
/// agreement; the responder refuses a request naming another).
pub fn run_delta(agreement: &Agreement) -> f64 {
    agreement
        .terms
        .parties
        .iter()
        .map(|p| p.budget.delta_per_query)
        .fold(f64::INFINITY, f64::min)
}

/// A party's budget terms (404 `not_found` if it is not a party).
fn party_budget(agreement: &Agreement, party: &str) -> Result<tandem_agreement::Budget> {
    Ok(agreement
        .terms
        .party(party)
        .ok_or_else(|| NodeError::not_found(format!("{party} is not a party to the agreement")))?
        .budget)
}

/// Refuses a loss over the party's per-query ε cap (422 `invalid_query`).
pub fn check_per_query_cap(agreement: &Agreement, party: &str, loss: PrivacyLoss) -> Result<()> {
    let budget = party_budget(agreement, party)?;
    if loss.epsilon > budget.epsilon_per_query + 1e-12 {
        return Err(NodeError::invalid_query(format!(
            "{party}: this query costs ε = {:.4}, over the agreement's per-query cap of {} \
             (a cap on each query, not a budget that refreshes: ask with a smaller ε)",
            loss.epsilon, budget.epsilon_per_query
        ))
        .with_details(serde_json::json!({
            "party": party, "cost": loss.epsilon, "per_query_cap": budget.epsilon_per_query,
            "period": "per_query",
        })));
    }
    Ok(())
}

/// What a ledger entry records about a run besides its loss.
pub struct EntryFor<'a> {
    /// This node's party.
    pub party: &'a str,
    /// `querier` or `responder`.
    pub role: &'a str,
    /// Run id (hex).
    pub run_id: &'a str,
    /// Who asked.
    pub actor: &'a str,
    /// The request, recorded as the run's parameters.
    pub params_json: String,
    /// Join key of the run: the ledger charges the budget account of the partner and this key.
    pub join_key: &'a str,
    /// The run's per-mechanism zCDP cost (`tandem_psi::accounting::querier_rho` /
    /// `responder_rho`), not `(Σε)²/2`.
    pub rho: f64,
}

/// `loss` with ε in the ledger's unit — 1e-9, rounded to nearest as the ledger charges it
/// (`tandem_store` ledger) — so that every public ε is the charge itself: ε = 1.2 split 1/4
/// reads 0.3, not the 0.29999999999999993 of the noise scale's round trip, and sums of such
/// figures are the sums of the agreement's decimals (`protocols/node-api-v1.md`, "Numbers").
/// δ (a clamping tail such as 4.228047569976182e-10, never a decimal of the agreement) is left
/// as computed.
pub fn as_charged(loss: PrivacyLoss) -> PrivacyLoss {
    PrivacyLoss {
        epsilon: (loss.epsilon * 1e9).round() / 1e9,
        delta: loss.delta,
    }
}

/// Ledger entry for a run, checked against the party's per-query cap. The ledger charges it to
/// the agreement and to the budget account of the partner and `e.join_key`, and admits it by
/// its one rule (`Σδ ≤ δ cap/2`, and `Σε ≤ ε cap` or `Σρ ≤ ρ cap` with [`rho_cap`]) over the
/// window [`budget_period_start`] (`protocols/psi-ca-v1.md` §6.1).
pub fn ledger_entry(agreement: &Agreement, e: EntryFor<'_>, loss: PrivacyLoss) -> Result<NewRun> {
    let loss = as_charged(loss);
    let budget = party_budget(agreement, e.party)?;
    check_per_query_cap(agreement, e.party, loss)?;
    Ok(NewRun {
        run_id: e.run_id.to_string(),
        agreement_id: agreement.id().to_string(),
        role: e.role.to_string(),
        join_key: Some(e.join_key.to_string()),
        actor: e.actor.to_string(),
        params_json: e.params_json,
        epsilon: loss.epsilon,
        delta: loss.delta,
        rho: e.rho,
        cap_epsilon: budget.epsilon_total,
        cap_delta: budget.delta_total,
        cap_rho: rho_cap(&budget)?,
        fingerprint: None,
        budget_since_ms: budget_period_start(agreement, now_ms()),
    })
}

/// ε the party has left under the agreement now (in the current period).
pub fn epsilon_left(store: &Store, agreement: &Agreement, party: &str) -> Result<f64> {
    let budget = party_budget(agreement, party)?;
    let status = store.budget(
        &agreement.id().to_string(),
        budget.epsilon_total,
        budget.delta_total,
        budget_period_start(agreement, now_ms()),
    )?;
    Ok(status.left_epsilon)
}

/// About how many more runs costing `cost` (ε, δ) and `rho` (its zCDP ρ) still fit the budget
/// `status` (the agreement and the budget accounts it shares with other agreements with the same
/// partner): the larger of the counts the ledger's two routes admit (`Σε ≤ cap_ε` and
/// `Σρ ≤ cap_ρ`, each with `Σδ ≤ cap_δ/2`; `protocols/psi-ca-v1.md` §6.1). `None` when the cost
/// is 0 (no limit to state). The one computation behind every "about N more queries" (`tandem
/// budget`, the preview, the signed budget view, the console), so they agree on the same state.
pub fn queries_left(status: &BudgetStatus, cost: PrivacyLoss, rho: f64) -> Option<u64> {
    /// How many runs of cost `cost` fit in `left` (`None` if the cost is 0: unlimited).
    fn fit(left: f64, cost: f64) -> Option<u64> {
        (cost > 0.0).then(|| (left.max(0.0) / cost + 1e-9).floor() as u64)
    }
    /// The smaller of two limits (`None` = unlimited).
    fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }
    if cost.epsilon <= 0.0 && cost.delta <= 0.0 {
        return None;
    }
    let delta = fit(status.left_delta, cost.delta);
    let basic = min(fit(status.left_epsilon, cost.epsilon), delta);
    // A run without ρ cannot take the zCDP route.
    let zcdp = status
        .cap_rho
        .filter(|_| rho > 0.0)
        .and_then(|cap| min(fit(cap - status.spent_rho, rho), delta));
    Some(basic.unwrap_or(0).max(zcdp.unwrap_or(0)))
}

/// The party's budget status now (in the current period), with the zCDP route's ρ cap.
pub fn status(store: &Store, agreement: &Agreement, party: &str) -> Result<BudgetStatus> {
    let budget = party_budget(agreement, party)?;
    Ok(store.budget_with_rho_cap(
        &agreement.id().to_string(),
        budget.epsilon_total,
        budget.delta_total,
        rho_cap(&budget)?,
        budget_period_start(agreement, now_ms()),
    )?)
}

/// The party's budget view after run `run_id` charged `charged`.
pub fn budget_view(
    store: &Store,
    agreement: &Agreement,
    party: &str,
    run_id: &str,
    charged: PrivacyLoss,
) -> Result<BudgetView> {
    let charged = as_charged(charged);
    let status = status(store, agreement, party)?;
    let run = store.run(run_id)?;
    let rho = run.as_ref().map_or(0.0, |r| r.rho);
    Ok(BudgetView {
        party: party.to_string(),
        epsilon_spent: charged.epsilon,
        delta_spent: charged.delta,
        epsilon_total_spent: status.spent_epsilon,
        epsilon_left: status.left_epsilon,
        rho_total_spent: status.spent_rho,
        route: run.and_then(|r| r.route),
        queries_left_like_this: queries_left(&status, charged, rho),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(left_epsilon: f64, left_delta: f64, cap_rho: Option<f64>, rho: f64) -> BudgetStatus {
        BudgetStatus {
            agreement_id: "a".into(),
            accounts: Vec::new(),
            cap_epsilon: 10.0,
            cap_delta: 2e-6,
            spent_epsilon: 10.0 - left_epsilon,
            spent_delta: 1e-6 - left_delta,
            spent_rho: rho,
            cap_rho,
            reserved_epsilon: 0.0,
            left_epsilon,
            left_delta,
            runs: 1,
        }
    }

    #[test]
    fn public_figures_are_the_ledger_charges_not_float_noise() {
        let split = PrivacyLoss {
            epsilon: 0.29999999999999993,
            delta: 6.7e-10,
        };
        assert_eq!(as_charged(split).epsilon, 0.3);
        assert_eq!(as_charged(split).delta, 6.7e-10);
        // Sums of such figures are the decimals a person adds.
        assert_eq!(as_charged(split).epsilon + 0.7, 1.0);
    }

    #[test]
    fn queries_left_takes_the_larger_route_each_bounded_by_delta() {
        let cost = PrivacyLoss {
            epsilon: 1.25,
            delta: 0.0,
        };
        // Basic composition: 8.75 / 1.25 = 7 exactly (no float shortfall to 6).
        assert_eq!(
            queries_left(&status(8.75, 5e-7, None, 0.0), cost, 0.78),
            Some(7)
        );
        // The zCDP route admits more: (4 - 1) / 0.5 = 6 > 0 by ε.
        assert_eq!(
            queries_left(&status(0.0, 5e-7, Some(4.0), 1.0), cost, 0.5),
            Some(6)
        );
        // δ limits both routes.
        let with_delta = PrivacyLoss {
            epsilon: 1.0,
            delta: 2e-7,
        };
        assert_eq!(
            queries_left(&status(9.0, 5e-7, Some(40.0), 0.0), with_delta, 0.5),
            Some(2)
        );
        // A free run: no number to state; an exhausted budget: 0.
        assert_eq!(
            queries_left(&status(9.0, 5e-7, None, 0.0), PrivacyLoss::default(), 0.0),
            None
        );
        assert_eq!(
            queries_left(&status(0.0, 5e-7, None, 0.0), cost, 0.0),
            Some(0)
        );
    }
}
