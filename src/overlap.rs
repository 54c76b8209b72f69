//! The overlap query: the querier's side (load, bucket, start PSI, call the peer, finish, record)
//! and the responder's side (authenticate, check the agreement and budget, answer). Both sides
//! charge their own ledger *before* anything they compute leaves the node.

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::PrivacyLoss;
use tandem_psi::RunParams;
use tandem_store::{NewRun, Store, StoreError};

use crate::ledger_head::{BudgetView, SignedHead};

/// The single bucket used when a side does not group.
pub const ALL: &str = "all";
/// Share of the analyst's ε that each side spends on its noised bucket sizes; the responder
/// spends the rest on the cell counts (see `protocols/psi-ca-v1.md`, accounting).
pub const BUCKET_SIZE_SHARE: f64 = 0.25;

/// What an analyst asks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverlapQuery {
    /// Agreement to act under (hex id).
    pub agreement_id: String,
    /// Join key kind (`email`, `phone`, …); defaults to the agreement's first.
    pub join_key: Option<String>,
    /// Querier's column to group by (None: one bucket).
    pub group_by: Option<String>,
    /// Responder's column to group by (None: one bucket).
    pub peer_group_by: Option<String>,
    /// ε of the run (the responder spends all of it, the querier its bucket-size share).
    pub epsilon: f64,
    /// Ignore a cached answer and spend budget on a fresh run (default false).
    #[serde(default)]
    pub fresh: bool,
}

/// The request the querier sends with its first PSI message (JSON part of the frame).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Protocol name, `psi-ca-v1`.
    pub protocol: String,
    /// Join key kind.
    pub join_key: String,
    /// Querier's grouping column.
    pub querier_column: Option<String>,
    /// Responder's grouping column.
    pub responder_column: Option<String>,
    /// ε of the run.
    pub epsilon: f64,
    /// δ of each mechanism's clamping, from the agreement.
    pub delta: f64,
    /// Identifier normalisation rules the querier hashed with (`tandem-id-v1`); the responder
    /// refuses a run under other rules rather than report a silently smaller overlap.
    pub identity_rules: String,
}

impl RunRequest {
    /// The protocol parameters both sides derive from the request — never taken from the peer.
    pub fn params(
        &self,
        agreement: &Agreement,
        run_id: [u8; 16],
        querier: &str,
        responder: &str,
    ) -> Result<RunParams> {
        let n_a = bucket_labels(agreement, querier, self.querier_column.as_deref())?.len() as u32;
        let n_b =
            bucket_labels(agreement, responder, self.responder_column.as_deref())?.len() as u32;
        // The hash-to-curve domain names the join key *and* the identifier rules version, so
        // digests made under different normalisation rules can never match by accident.
        Ok(RunParams::for_epsilon(
            agreement.id().0,
            format!("{}/{}", self.join_key, self.identity_rules),
            run_id,
            n_a,
            n_b,
            self.epsilon * BUCKET_SIZE_SHARE,
            self.epsilon,
            self.delta,
        )?)
    }
}

/// What the querier sends beside its first PSI message (the JSON part of the frame).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunOpening {
    /// The query.
    pub request: RunRequest,
    /// The querier's ledger after reserving this run, signed.
    pub querier_head: SignedHead,
}

/// What the responder returns beside its PSI reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    /// ε/δ the responder charged for this run.
    pub charged: PrivacyLoss,
    /// The responder's ledger after the run, signed.
    pub head: SignedHead,
}

/// One cell of the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    /// Querier's bucket label.
    pub querier_group: String,
    /// Responder's bucket label.
    pub responder_group: String,
    /// Noised overlap (may be negative).
    pub estimate: i64,
    /// Lower end of the 95% interval.
    pub ci_low: i64,
    /// Upper end of the 95% interval.
    pub ci_high: i64,
    /// The noised value is below the agreement's reporting threshold: shown as `< threshold`.
    pub below_threshold: bool,
    /// The true count, only in the demo (which knows it because it made the data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<u64>,
}

/// A finished overlap query.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverlapReport {
    /// Agreement id.
    pub agreement_id: String,
    /// Purpose from the agreement.
    pub purpose: String,
    /// Run id (hex).
    pub run_id: String,
    /// The run that produced the numbers was cached (no budget spent now).
    pub cached: bool,
    /// Querier party.
    pub querier: String,
    /// Responder party.
    pub responder: String,
    /// Join key.
    pub join_key: String,
    /// Querier's column.
    pub querier_column: Option<String>,
    /// Responder's column.
    pub responder_column: Option<String>,
    /// ε of the run.
    pub epsilon: f64,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// Minimum reporting threshold (on noised values).
    pub threshold: u64,
    /// The cells, row-major (querier group, then responder group).
    pub cells: Vec<Cell>,
    /// The querier's budget.
    pub querier_budget: BudgetView,
    /// The responder's budget (as it reported).
    pub responder_budget: BudgetView,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
}

/// Bucket labels of a side: the column's public values plus `other`, or `[all]`.
pub fn bucket_labels(
    agreement: &Agreement,
    party: &str,
    column: Option<&str>,
) -> Result<Vec<String>> {
    match column {
        None => Ok(vec![ALL.to_string()]),
        Some(c) => Ok(agreement.bucket_labels(party, c)?),
    }
}

/// Loads this node's audience for `join_key` and groups the digests into the side's buckets.
pub fn load_buckets(
    store: &Store,
    agreement: &Agreement,
    party: &str,
    join_key: &str,
    column: Option<&str>,
) -> Result<Vec<Vec<[u8; 32]>>> {
    let kind: tandem_identity::IdKind = join_key.parse().map_err(|e| anyhow!("{e}"))?;
    let n = bucket_labels(agreement, party, column)?.len();
    let mut buckets = vec![Vec::new(); n];
    for (digest, value) in store.members("default", kind, column)? {
        let b = match column {
            None => 0,
            Some(c) => agreement.bucket_of(party, c, value.as_deref())? as usize,
        };
        buckets[b].push(digest);
    }
    Ok(buckets)
}

/// Loads an agreement this node may act under now, and its own and the peer's names.
pub fn active_agreement(store: &Store, id: &str, me: &str) -> Result<(Agreement, String)> {
    let stored = store
        .agreement(id)?
        .with_context(|| format!("unknown agreement {id}"))?;
    if stored.status != "active" {
        bail!(
            "agreement {id} is {} (both parties must sign it first)",
            stored.status
        );
    }
    let agreement: Agreement =
        serde_json::from_str(&stored.doc_json).context("stored agreement does not parse")?;
    agreement.check_active(crate::wire::now_ms() / 1000)?;
    let peer = agreement
        .terms
        .peer_of(me)
        .with_context(|| format!("this node ({me}) is not a party to agreement {id}"))?
        .name
        .clone();
    Ok((agreement, peer))
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

/// Checks a request against the agreement: the join key and columns it lists (minimum
/// necessity: only listed columns, only their public value sets), a positive ε, the agreement's
/// δ and this node's identifier rules.
pub fn check_request(
    agreement: &Agreement,
    querier: &str,
    responder: &str,
    req: &RunRequest,
) -> Result<()> {
    let keys = &agreement.terms.join_keys;
    if !keys.iter().any(|k| k == &req.join_key) {
        bail!(
            "join key {:?} is not in the agreement (allowed: {})",
            req.join_key,
            keys.join(", ")
        );
    }
    if req.delta != run_delta(agreement) {
        bail!(
            "the request's δ {} is not the agreement's per-query δ {}",
            req.delta,
            run_delta(agreement)
        );
    }
    if req.identity_rules != tandem_identity::RULES_VERSION {
        bail!(
            "the querier hashed identifiers with rules {:?}, this node with {:?}: identifiers hash differently under different rules, so both nodes must run the same tandem release and re-import their audiences after upgrading (`tandem import`)",
            req.identity_rules,
            tandem_identity::RULES_VERSION
        );
    }
    bucket_labels(agreement, querier, req.querier_column.as_deref())?;
    bucket_labels(agreement, responder, req.responder_column.as_deref())?;
    if !(req.epsilon.is_finite() && req.epsilon > 0.0) {
        bail!("epsilon must be a positive number, got {}", req.epsilon);
    }
    Ok(())
}

/// The ρ cap of the ledger's zCDP route for a party's budget: the largest total ρ whose ε at
/// half the δ cap is at most the ε cap (`tandem_dp::rho_for_epsilon(ε_total, δ_total / 2)`).
/// The other half of the δ cap is left for the runs' own δ. `None` when `delta_total` is 0
/// (zCDP converts to approximate DP only at δ > 0): then only basic composition applies.
pub fn rho_cap(budget: &tandem_agreement::Budget) -> Result<Option<f64>> {
    if budget.delta_total <= 0.0 {
        return Ok(None);
    }
    let rho = tandem_dp::rho_for_epsilon(budget.epsilon_total, budget.delta_total / 2.0)
        .context("computing the agreement's zCDP ρ cap")?;
    Ok(Some(rho))
}

/// Milliseconds in a day, the unit of `budget_refresh_days`.
const DAY_MS: i64 = 86_400_000;

/// Start (Unix ms) of the budget period containing `now_ms`: `⌊now / P⌋ · P` with
/// `P = budget_refresh_days × 1 day` when the agreement refreshes budgets, else 0 (the caps
/// apply over the agreement's whole life). Aligned to the Unix epoch, so both nodes find the
/// same periods without coordinating.
pub fn budget_period_start(agreement: &Agreement, now_ms: i64) -> i64 {
    match agreement.terms.budget_refresh_days {
        Some(days) if days > 0 => {
            let period_ms = i64::from(days) * DAY_MS;
            now_ms.div_euclid(period_ms) * period_ms
        }
        _ => 0,
    }
}

/// Ledger entry for a run, checked against the party's caps from the agreement; the ledger
/// admits it by basic composition or by zCDP (with [`rho_cap`]), whichever still fits, counting
/// the charges of the current budget period ([`budget_period_start`]).
pub fn new_run(
    agreement: &Agreement,
    party: &str,
    role: &str,
    run_id: &str,
    actor: &str,
    req: &RunRequest,
    loss: PrivacyLoss,
) -> Result<NewRun> {
    let budget = agreement
        .terms
        .party(party)
        .context("party missing from agreement")?
        .budget;
    if loss.epsilon > budget.epsilon_per_query + 1e-12 {
        bail!(
            "{party}: this query costs ε = {:.4}, over the agreement's per-query cap of {}",
            loss.epsilon,
            budget.epsilon_per_query
        );
    }
    Ok(NewRun {
        run_id: run_id.to_string(),
        agreement_id: agreement.id().to_string(),
        role: role.to_string(),
        actor: actor.to_string(),
        params_json: serde_json::to_string(req)?,
        epsilon: loss.epsilon,
        delta: loss.delta,
        rho: loss.rho(),
        cap_epsilon: budget.epsilon_total,
        cap_delta: budget.delta_total,
        cap_rho: rho_cap(&budget)?,
        fingerprint: None,
        budget_since_ms: budget_period_start(agreement, crate::wire::now_ms()),
    })
}

/// Fingerprint of a query on this node's data: identical queries on unchanged data return the
/// stored answer instead of fresh noise (repeats must not average the noise away).
pub fn query_fingerprint(store: &Store, req: &RunRequest, agreement_id: &str) -> Result<String> {
    let v = serde_json::json!({
        "agreement": agreement_id,
        "request": req,
        "audience_version": store.audience_version()?,
    });
    Ok(crate::home::sha256_hex(v.to_string().as_bytes()))
}

/// Builds the cells of a report from the querier's counts.
pub fn cells(
    agreement: &Agreement,
    params: &RunParams,
    counts: &tandem_psi::CellCounts,
    q_labels: &[String],
    r_labels: &[String],
) -> Result<Vec<Cell>> {
    let threshold = agreement.terms.min_reporting_threshold as i64;
    let mut out = Vec::with_capacity(q_labels.len() * r_labels.len());
    for (ga, qa) in q_labels.iter().enumerate() {
        for (gb, rb) in r_labels.iter().enumerate() {
            let estimate = counts.get(ga as u32, gb as u32);
            let (ci_low, ci_high) = tandem_psi::accounting::interval(params, estimate, 0.05)?;
            out.push(Cell {
                querier_group: qa.clone(),
                responder_group: rb.clone(),
                estimate,
                ci_low,
                ci_high,
                below_threshold: threshold > 0 && estimate < threshold,
                truth: None,
            });
        }
    }
    Ok(out)
}

/// Maps a store refusal to the message an analyst sees.
pub fn explain(err: StoreError, party: &str) -> anyhow::Error {
    match err {
        StoreError::BudgetExceeded { .. } => anyhow!("refused by {party}: {err}"),
        other => anyhow!(other),
    }
}

/// Parses a hex run id.
pub fn parse_run_id(hex_str: &str) -> Result<[u8; 16]> {
    hex::decode(hex_str)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{hex_str:?} is not a 16-byte hex run id"))
}
