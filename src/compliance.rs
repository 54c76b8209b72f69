//! What a compliance officer reads: budgets in every accounting (basic ε, zCDP ρ, ε at the
//! agreement's δ), and the record of processing per agreement (GDPR Art. 30, PIPL Arts. 55–56).

use anyhow::Result;
use serde::Serialize;
use tandem_agreement::Agreement;
use tandem_store::Store;

/// One agreement's budget as this node sees it.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetReport {
    /// Agreement id.
    pub agreement: String,
    /// Agreement status.
    pub status: String,
    /// This node's party name.
    pub party: String,
    /// ε cap over the agreement's life.
    pub epsilon_cap: f64,
    /// δ cap.
    pub delta_cap: f64,
    /// ε spent (basic composition, what the ledger enforces).
    pub epsilon_spent: f64,
    /// ε reserved by runs still in progress (included in `epsilon_spent`).
    pub epsilon_reserved: f64,
    /// δ spent.
    pub delta_spent: f64,
    /// zCDP ρ spent (pure-ε releases convert as ρ = ε²/2).
    pub rho_spent: f64,
    /// ε of the spent ρ at the agreement's δ cap (opendp's conversion); a second, often
    /// tighter view of the same loss when many small queries ran.
    pub epsilon_at_delta_from_rho: Option<f64>,
    /// ε left under the cap.
    pub epsilon_left: f64,
    /// Runs charged.
    pub runs: u64,
    /// About how many more queries like the last one fit.
    pub queries_left_like_last: Option<u64>,
}

/// Budgets of this node under each agreement (or one).
pub fn budgets(store: &Store, me: &str, only: Option<&str>) -> Result<Vec<BudgetReport>> {
    let mut out = Vec::new();
    for stored in store.agreements()? {
        if only.is_some_and(|id| id != stored.id) {
            continue;
        }
        let agreement: Agreement = serde_json::from_str(&stored.doc_json)?;
        let Some(party) = agreement.terms.party(me) else {
            continue;
        };
        let b = party.budget;
        let status = store.budget(&stored.id, b.epsilon_total, b.delta_total)?;
        let last_cost = store
            .runs(Some(&stored.id))?
            .into_iter()
            .filter(|r| r.epsilon > 0.0 && r.status != "failed")
            .map(|r| r.epsilon)
            .next_back();
        out.push(BudgetReport {
            agreement: stored.id.clone(),
            status: stored.status.clone(),
            party: me.to_string(),
            epsilon_cap: b.epsilon_total,
            delta_cap: b.delta_total,
            epsilon_spent: status.spent_epsilon,
            epsilon_reserved: status.reserved_epsilon,
            delta_spent: status.spent_delta,
            rho_spent: status.spent_rho,
            epsilon_at_delta_from_rho: tandem_dp::zcdp_epsilon(status.spent_rho, b.delta_total)
                .ok(),
            epsilon_left: status.left_epsilon,
            runs: status.runs,
            queries_left_like_last: last_cost
                .map(|c| (status.left_epsilon / c + 1e-9).floor() as u64),
        });
    }
    Ok(out)
}

/// The record of processing of one agreement.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessingRecord {
    /// Agreement id.
    pub agreement: String,
    /// Status.
    pub status: String,
    /// The parties: name, region, URL.
    pub parties: Vec<serde_json::Value>,
    /// Purpose of processing.
    pub purpose: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Cross-border transfer mechanism, when regions differ (PIPL Art. 38).
    pub transfer_mechanism: Option<String>,
    /// Reference to the personal-information impact assessment (PIPL Arts. 55–56).
    pub impact_assessment: Option<String>,
    /// Categories of data: join keys (hashed identifiers) and grouping columns.
    pub data_categories: Vec<String>,
    /// Retention of results and audiences, days.
    pub retention_days: u32,
    /// Expiry of the agreement.
    pub expires_at: String,
    /// Minimum reporting threshold on noised values.
    pub min_reporting_threshold: u64,
    /// Budget caps per party.
    pub budgets: serde_json::Value,
    /// Runs on this node under the agreement.
    pub runs: usize,
}

/// Records of processing for every agreement on this node.
pub fn processing_records(store: &Store) -> Result<Vec<ProcessingRecord>> {
    let mut out = Vec::new();
    for stored in store.agreements()? {
        let a: Agreement = serde_json::from_str(&stored.doc_json)?;
        let t = &a.terms;
        let mut categories: Vec<String> = t
            .join_keys
            .iter()
            .map(|k| format!("{k} (SHA-256, join key, never output)"))
            .collect();
        for p in &t.parties {
            for (col, values) in &p.columns {
                categories.push(format!(
                    "{}.{col} ({} public values + other)",
                    p.name,
                    values.len()
                ));
            }
        }
        out.push(ProcessingRecord {
            agreement: stored.id.clone(),
            status: stored.status.clone(),
            parties: t
                .parties
                .iter()
                .map(|p| serde_json::json!({"name": p.name, "region": p.region, "url": p.url}))
                .collect(),
            purpose: t.purpose.clone(),
            legal_basis: t.legal_basis.clone(),
            transfer_mechanism: t.transfer_mechanism.clone(),
            impact_assessment: t.impact_assessment.clone(),
            data_categories: categories,
            retention_days: t.retention_days,
            expires_at: t.expires_at.clone(),
            min_reporting_threshold: t.min_reporting_threshold,
            budgets: t
                .parties
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        serde_json::to_value(p.budget).unwrap_or_default(),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            runs: store.runs(Some(&stored.id))?.len(),
        });
    }
    Ok(out)
}

/// Renders the records of processing for reading.
pub fn processing_text(records: &[ProcessingRecord]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for r in records {
        let _ = writeln!(
            s,
            "Record of processing — agreement {} ({})",
            r.agreement, r.status
        );
        let parties: Vec<String> = r
            .parties
            .iter()
            .map(|p| {
                format!(
                    "{} [{}]",
                    p["name"].as_str().unwrap_or(""),
                    p["region"].as_str().unwrap_or("")
                )
            })
            .collect();
        let _ = writeln!(s, "  parties (joint handlers):  {}", parties.join(", "));
        let _ = writeln!(s, "  purpose:                   {}", r.purpose);
        let _ = writeln!(s, "  legal basis:               {}", r.legal_basis);
        if let Some(m) = &r.transfer_mechanism {
            let _ = writeln!(s, "  cross-border transfer:     {m}");
        }
        let _ = writeln!(
            s,
            "  data categories:           {}",
            r.data_categories.join("; ")
        );
        let _ = writeln!(
            s,
            "  recipients of output:      the querying party only, noised aggregates (no membership)"
        );
        let _ = writeln!(
            s,
            "  retention:                 {} days (audit log kept ≥ 3 years)",
            r.retention_days
        );
        let _ = writeln!(s, "  expires:                   {}", r.expires_at);
        let _ = writeln!(
            s,
            "  reporting threshold:       {} (applied to noised values)",
            r.min_reporting_threshold
        );
        let _ = writeln!(s, "  privacy budgets:           {}", r.budgets);
        let _ = writeln!(s, "  runs on this node:         {}\n", r.runs);
    }
    s
}

/// Applies retention: results and audiences older than the longest retention among this node's
/// agreements are deleted (an audience may serve several agreements); the audit log, the runs
/// and the ledger are kept. Returns a line for the operator.
pub fn purge(home: &crate::home::Home) -> Result<String> {
    let mut store = home.store()?;
    let mut days: Option<u32> = None;
    for stored in store.agreements()? {
        let a: Agreement = serde_json::from_str(&stored.doc_json)?;
        days = Some(days.map_or(a.terms.retention_days, |d| d.max(a.terms.retention_days)));
    }
    let Some(days) = days else {
        return Ok("no agreements: nothing has a retention period yet, nothing purged".to_string());
    };
    let cutoff = crate::wire::now_ms() - i64::from(days) * 86_400_000;
    let r = store.purge(cutoff, "node:retention")?;
    Ok(format!(
        "retention {days} days: {} results cleared, {} audiences ({} members) deleted; the audit log is kept",
        r.results_cleared,
        r.audiences_deleted.len(),
        r.members_deleted
    ))
}
