//! What a compliance officer reads: budgets in every accounting (basic ε, zCDP ρ, ε at the
//! agreement's δ), and the record of processing per agreement (GDPR Art. 30, PIPL Arts. 55–56).

use crate::error::Result;
use serde::Serialize;
use tandem_agreement::Agreement;
use tandem_dp::PrivacyLoss;
use tandem_store::Store;

/// One agreement's budget as this node sees it: over all charges, or over the sliding window of
/// `budget_refresh_days` when the agreement sets it; each figure is the largest over the
/// agreement and the budget accounts it shares with other agreements with the same partner.
///
/// The ledger admits a run by one rule: `Σδ ≤ δ cap / 2`, and `Σε ≤ ε cap` (basic composition)
/// or `Σρ ≤ ρ cap` (zCDP, the ρ cap being the largest ρ whose ε at δ cap / 2 is the ε cap);
/// `protocols/psi-ca-v1.md` §6.1. Both are valid bounds on the same runs, so the loss is the
/// smaller of the two.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetReport {
    /// Agreement id.
    pub agreement: String,
    /// Agreement status.
    pub status: String,
    /// This node's party name.
    pub party: String,
    /// Length of the budget periods in days (`budget_refresh_days`), `None` when the budget
    /// never refreshes.
    pub refresh_days: Option<u32>,
    /// Start of the current sliding budget window (RFC 3339 UTC: now minus the period), whose
    /// runs the figures below count; `None` when the budget never refreshes (they count all).
    pub period_start: Option<String>,
    /// ε cap over the agreement's life (or each budget period, when it refreshes).
    pub epsilon_cap: f64,
    /// δ cap.
    pub delta_cap: f64,
    /// ε spent by basic composition (the sum of the runs' ε).
    pub epsilon_spent: f64,
    /// ε reserved by runs still in progress (included in `epsilon_spent`).
    pub epsilon_reserved: f64,
    /// δ spent (sum of the runs' δ).
    pub delta_spent: f64,
    /// zCDP ρ spent (pure-ε releases convert as ρ = ε²/2).
    pub rho_spent: f64,
    /// ρ cap of the ledger's zCDP route (`None` when the δ cap is 0: basic composition only).
    pub rho_cap: Option<f64>,
    /// ε of the spent ρ at half the δ cap (opendp's conversion), the zCDP route's bound; with
    /// the runs' own δ the total δ is `delta_cap / 2 + delta_spent`.
    pub epsilon_at_delta_from_rho: Option<f64>,
    /// The ε loss at the agreement's δ: the smaller of `epsilon_spent` and
    /// `epsilon_at_delta_from_rho` (the latter only while `delta_spent ≤ delta_cap / 2`, so that
    /// its total δ stays within the cap).
    pub epsilon_spent_effective: f64,
    /// Which bound gives `epsilon_spent_effective`: `basic` or `zcdp`.
    pub accounting: &'static str,
    /// ε left under the cap by basic composition (the zCDP route may admit runs past 0).
    pub epsilon_left: f64,
    /// Runs charged.
    pub runs: u64,
    /// About how many more queries like the last one fit ([`crate::budget::queries_left`]).
    pub queries_left_like_last: Option<u64>,
}

/// Budgets of every agreement (or only `only`) for party `me`.
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
        let cap_rho = crate::budget::rho_cap(&b)?;
        let since = crate::budget::budget_period_start(&agreement, crate::wire::now_ms());
        let status = store.budget_with_rho_cap(
            &stored.id,
            b.epsilon_total,
            b.delta_total,
            cap_rho,
            since,
        )?;
        let refresh_days = agreement.terms.budget_refresh_days;
        let period_start =
            refresh_days.and_then(|_| tandem_agreement::format_rfc3339(since.div_euclid(1000)));
        let half_delta = b.delta_total / 2.0;
        let from_rho = if cap_rho.is_some() {
            Some(tandem_dp::zcdp_epsilon(status.spent_rho, half_delta)?)
        } else {
            None
        };
        let (effective, accounting) = match from_rho {
            Some(e) if e < status.spent_epsilon && status.spent_delta <= half_delta => (e, "zcdp"),
            _ => (status.spent_epsilon, "basic"),
        };
        let last = store
            .runs(Some(&stored.id))?
            .into_iter()
            .rfind(|r| r.epsilon > 0.0 && r.status != "failed");
        let queries_left = last.and_then(|last| {
            crate::budget::queries_left(
                &status,
                PrivacyLoss {
                    epsilon: last.epsilon,
                    delta: last.delta,
                },
                last.rho,
            )
        });
        out.push(BudgetReport {
            agreement: stored.id.clone(),
            status: stored.status.clone(),
            party: me.to_string(),
            refresh_days,
            period_start,
            epsilon_cap: b.epsilon_total,
            delta_cap: b.delta_total,
            epsilon_spent: status.spent_epsilon,
            epsilon_reserved: status.reserved_epsilon,
            delta_spent: status.spent_delta,
            rho_spent: status.spent_rho,
            rho_cap: status.cap_rho,
            epsilon_at_delta_from_rho: from_rho,
            epsilon_spent_effective: effective,
            accounting,
            epsilon_left: status.left_epsilon,
            runs: status.runs,
            queries_left_like_last: queries_left,
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
    /// Days after which the caps refresh (`budget_refresh_days`); `None`: never, the caps
    /// apply over the agreement's whole life.
    pub budget_refresh_days: Option<u32>,
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
            budget_refresh_days: t.budget_refresh_days,
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
        let budgets: Vec<String> = r
            .budgets
            .as_object()
            .into_iter()
            .flatten()
            .map(|(party, b)| {
                format!(
                    "{party}: ε {} per query, {} in all; δ {} per query, {} in all",
                    b["epsilon_per_query"],
                    b["epsilon_total"],
                    b["delta_per_query"],
                    b["delta_total"]
                )
            })
            .collect();
        let _ = writeln!(s, "  privacy budgets:           {}", budgets.join(" · "));
        let _ = writeln!(
            s,
            "  budget refresh:            {}",
            r.budget_refresh_days.map_or_else(
                || "none: the caps apply over all runs with this partner".to_string(),
                |d| format!("every {d} days (caps per sliding window: a loss per period)")
            )
        );
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

/// The result of verifying this node's audit log (`tandem audit verify --dir`,
/// `POST /api/v1/audit/verify`): the hash chain from genesis and every signed checkpoint, against
/// this node's key (`tandem_store::Store::verify_audit`).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditVerification {
    /// The whole log verifies.
    pub ok: bool,
    /// Entries checked (`None` when verification stopped at a problem).
    pub entries: Option<u64>,
    /// Signed checkpoints checked (`None` when verification stopped at a problem).
    pub checkpoints: Option<u64>,
    /// Seq of the newest entry.
    pub last_seq: Option<u64>,
    /// Seq of the newest entry a signed checkpoint covers.
    pub last_checkpoint_seq: Option<u64>,
    /// The newest entries no signed checkpoint covers yet: the chain protects them against
    /// alteration but not against being cut off the end until the next checkpoint (the node
    /// signs one every minute the log grew, and at shutdown).
    pub uncovered_entries: Option<u64>,
    /// The first entry that does not verify (seq), when the problem is about one entry.
    pub first_bad_entry: Option<u64>,
    /// What does not verify, for people.
    pub problem: Option<String>,
}

impl AuditVerification {
    /// The verification's outcome as reported.
    pub fn new(
        result: std::result::Result<tandem_audit::VerifyReport, tandem_audit::VerifyError>,
    ) -> AuditVerification {
        match result {
            Ok(r) => AuditVerification {
                ok: true,
                entries: Some(r.entries),
                checkpoints: Some(r.checkpoints),
                uncovered_entries: Some(uncovered_entries(&r)),
                last_seq: r.last_seq,
                last_checkpoint_seq: r.last_checkpoint_seq,
                first_bad_entry: None,
                problem: None,
            },
            Err(e) => AuditVerification {
                ok: false,
                entries: None,
                checkpoints: None,
                last_seq: None,
                last_checkpoint_seq: None,
                uncovered_entries: None,
                first_bad_entry: e.seq(),
                problem: Some(e.to_string()),
            },
        }
    }
}

/// How many of the newest entries of a verified log no signed checkpoint covers.
pub fn uncovered_entries(r: &tandem_audit::VerifyReport) -> u64 {
    match (r.last_seq, r.last_checkpoint_seq) {
        (None, _) => 0,
        (Some(_), None) => r.entries,
        (Some(last), Some(covered)) => last.saturating_sub(covered),
    }
}

/// Verifies this node's audit log against its own key (read-only: signs no checkpoint).
pub fn verify_audit(home: &crate::home::Home) -> Result<AuditVerification> {
    let store = home.store()?;
    Ok(AuditVerification::new(
        store.verify_audit(Some(&home.key.verifying_key())),
    ))
}

#[cfg(test)]
mod tests {
    use tandem_agreement::Agreement;
    use tandem_dp::PrivacyLoss;
    use tandem_store::StoreError;
    use tandem_testkit::{AgreementBuilder, PartySpec};

    use crate::budget::{EntryFor, ledger_entry};

    /// An active agreement where acme's budget is ε 10, δ 1e-6 (ε ≤ 1 a query), in a fresh store.
    fn setup() -> (tempfile::TempDir, tandem_store::Store, Agreement) {
        setup_with(None)
    }

    /// [`setup`] with budgets refreshing every `refresh_days`.
    fn setup_with(
        refresh_days: Option<u32>,
    ) -> (tempfile::TempDir, tandem_store::Store, Agreement) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = tandem_store::Store::open(dir.path()).expect("store");
        let mut builder = AgreementBuilder::new()
            .purpose("budget views")
            .party(
                PartySpec::seeded("acme", 1)
                    .column("seg", &["a", "b"])
                    .epsilon(1.0, 10.0),
            )
            .party(
                PartySpec::seeded("shopx", 2)
                    .column("tier", &["a", "b"])
                    .epsilon(1.0, 10.0),
            );
        if let Some(days) = refresh_days {
            builder = builder.refresh_days(days);
        }
        let agreement = builder.agreement();
        tandem_testkit::store_active(&mut store, &agreement);
        (dir, store, agreement)
    }

    /// Charges one acme run of `epsilon` (δ 1e-9) as the node would.
    fn charge(
        store: &mut tandem_store::Store,
        agreement: &Agreement,
        i: usize,
        epsilon: f64,
    ) -> Result<(), StoreError> {
        store
            .begin_run(&acme_run(agreement, i, epsilon))
            .map(|_| ())
    }

    /// The ledger entry of one acme run of `epsilon` (δ 1e-9, ρ = ε²/2) as the node makes it.
    fn acme_run(agreement: &Agreement, i: usize, epsilon: f64) -> tandem_store::NewRun {
        let loss = PrivacyLoss {
            epsilon,
            delta: 1e-9,
        };
        let entry = EntryFor {
            party: "acme",
            role: "querier",
            run_id: &format!("r{i}"),
            actor: "test",
            params_json: "{}".into(),
            join_key: "email",
            rho: epsilon * epsilon / 2.0,
        };
        let run = ledger_entry(agreement, entry, loss).expect("ledger entry");
        assert!(run.cap_rho.is_some_and(|r| (r - 1.478441918).abs() < 1e-8));
        run
    }

    #[test]
    fn both_routes_are_reported_and_the_tighter_one_wins() {
        let (_dir, mut store, agreement) = setup();
        for i in 0..3 {
            charge(&mut store, &agreement, i, 0.1).expect("fits");
        }
        let view = &super::budgets(&store, "acme", None).expect("budgets")[0];
        // Three runs: basic composition (0.3) is tighter than zCDP at δ/2 (≈ 0.9).
        assert_eq!(
            (view.accounting, view.epsilon_spent_effective),
            ("basic", 0.3)
        );
        let from_rho = view.epsilon_at_delta_from_rho.expect("zCDP figure");
        assert!(from_rho > 0.3 && from_rho < 1.5, "{from_rho}");
        // …but zCDP fits more of them: ⌊(1.4784 − 0.015) / 0.005⌋ = 292 > basic's 97.
        assert_eq!(view.queries_left_like_last, Some(292));

        for i in 3..295 {
            charge(&mut store, &agreement, i, 0.1).expect("fits by one route");
        }
        let err = charge(&mut store, &agreement, 295, 0.1).expect_err("both exhausted");
        assert!(
            matches!(err, StoreError::BudgetExceeded { zcdp: Some(_), .. }),
            "{err}"
        );
        let view = &super::budgets(&store, "acme", None).expect("budgets")[0];
        // Σε = 29.5 by basic composition, but zCDP bounds the loss within the cap of 10.
        assert!((view.epsilon_spent - 29.5).abs() < 1e-9);
        assert_eq!(view.accounting, "zcdp");
        assert!(
            view.epsilon_spent_effective <= 10.0 && view.epsilon_spent_effective > 9.9,
            "{view:?}"
        );
        assert_eq!(view.queries_left_like_last, Some(0));
    }

    #[test]
    fn budget_windows_slide_and_are_off_by_default() {
        use crate::budget::budget_period_start;
        // 2027-01-15T08:00:00Z.
        let now = 1_800_000_000_000;
        let (_dir, store, whole_life) = setup();
        assert_eq!(budget_period_start(&whole_life, now), 0);
        let view = &super::budgets(&store, "acme", None).expect("budgets")[0];
        assert_eq!(
            (view.refresh_days, view.period_start.as_deref()),
            (None, None)
        );
        let record = &super::processing_records(&store).expect("records")[0];
        assert_eq!(record.budget_refresh_days, None);

        let (_dir, mut store, monthly) = setup_with(Some(30));
        assert_ne!(monthly.id(), whole_life.id());
        // The window is the 30 days before now, not an epoch-aligned period.
        assert_eq!(budget_period_start(&monthly, now), now - 30 * 86_400_000);
        assert_eq!(
            tandem_agreement::format_rfc3339(budget_period_start(&monthly, now) / 1000).as_deref(),
            Some("2026-12-16T08:00:00Z")
        );

        // The views report the current window, and count the runs in it.
        charge(&mut store, &monthly, 0, 0.5).expect("fits");
        let view = &super::budgets(&store, "acme", None).expect("budgets")[0];
        assert_eq!(view.refresh_days, Some(30));
        let shown = view.period_start.as_deref().expect("window start");
        let shown_ms = tandem_agreement::parse_rfc3339(shown).expect("RFC 3339") * 1000;
        assert!(
            (shown_ms - budget_period_start(&monthly, crate::wire::now_ms())).abs() <= 2000,
            "{shown}"
        );
        assert_eq!((view.epsilon_spent, view.runs), (0.5, 1));
        let record = &super::processing_records(&store).expect("records")[0];
        assert_eq!(record.budget_refresh_days, Some(30));
        assert!(
            super::processing_text(std::slice::from_ref(record)).contains("every 30 days"),
            "{}",
            super::processing_text(std::slice::from_ref(record))
        );
    }

    /// Issue 9 item 2: with epoch-aligned periods a querier could spend the full cap at 23:59 on
    /// the last day of a period and again at 00:00 of the next. The window slides, so the second
    /// spend is refused.
    #[test]
    fn the_full_cap_just_before_and_just_after_a_period_boundary_is_refused() {
        use crate::budget::budget_period_start;
        let (_dir, mut store, monthly) = setup_with(Some(30));
        // ε cap 10 at ε = 1 a query: ten runs, then both routes are spent (Σρ = 5 > 1.48).
        for i in 0..10 {
            charge(&mut store, &monthly, i, 1.0).expect("fits");
        }
        assert!(charge(&mut store, &monthly, 10, 1.0).is_err());
        // The first instant of the next epoch-aligned 30-day period, when the old rule reset.
        let period_ms = 30 * 86_400_000;
        let next_period = (crate::wire::now_ms() / period_ms + 1) * period_ms;
        let mut at_midnight = acme_run(&monthly, 11, 1.0);
        at_midnight.budget_since_ms = budget_period_start(&monthly, next_period);
        let err = store
            .begin_run(&at_midnight)
            .expect_err("no reset at the boundary");
        assert!(
            matches!(err, StoreError::BudgetExceeded { spent, .. } if spent == 10.0),
            "{err}"
        );
        // Thirty days after the spend, the window has moved past it.
        let mut later = acme_run(&monthly, 12, 1.0);
        later.budget_since_ms =
            budget_period_start(&monthly, crate::wire::now_ms() + period_ms + 1);
        store.begin_run(&later).expect("the window moved on");
    }

    #[test]
    fn audit_verification_counts_the_entries_no_checkpoint_covers_and_names_the_bad_one() {
        use super::{AuditVerification, uncovered_entries};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = tandem_store::Store::open(dir.path()).expect("store");
        let key = tandem_audit::SigningKey::from_bytes(&[7; 32]);
        let event = || tandem_store::AuditEvent::now("test", "test.event", serde_json::json!({}));
        let verify = |store: &tandem_store::Store| {
            AuditVerification::new(store.verify_audit(Some(&key.verifying_key())))
        };
        for _ in 0..3 {
            store.append_audit(event()).expect("append");
        }
        let v = verify(&store);
        assert!(v.ok);
        assert_eq!(v.uncovered_entries, v.entries);
        store.checkpoint(&key).expect("checkpoint");
        let covered = verify(&store);
        assert_eq!(covered.uncovered_entries, Some(0));
        for _ in 0..2 {
            store.append_audit(event()).expect("append");
        }
        let v = verify(&store);
        assert_eq!((v.ok, v.uncovered_entries), (true, Some(2)));
        assert_eq!(v.checkpoints, Some(1));
        let report = store
            .verify_audit(Some(&key.verifying_key()))
            .expect("verifies");
        assert_eq!(uncovered_entries(&report), 2);

        let bad = AuditVerification::new(Err(tandem_audit::VerifyError::BadHash { seq: 4 }));
        assert_eq!((bad.ok, bad.first_bad_entry), (false, Some(4)));
        assert!(bad.problem.is_some_and(|p| p.contains("entry 4")));
    }
}
