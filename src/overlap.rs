//! The overlap query: the querier's side (load, bucket, start PSI, call the peer, finish, record)
//! and the responder's side (authenticate, check the agreement and budget, answer). Both sides
//! charge their own ledger *before* anything they compute leaves the node.

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::{OpenDpNoise, PrivacyLoss};
use tandem_psi::{Limits, RunParams};
use tandem_store::{AuditEvent, NewRun, Store, StoreError};

use crate::home::Home;

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
    /// Ignore a cached answer and spend budget on a fresh run.
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
        Ok(RunParams::for_epsilon(
            agreement.id().0,
            &self.join_key,
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

/// A party's ledger after a run, signed with its node key, so that each side keeps offline
/// evidence of what the other charged (stored in its audit log as `peer.ledger`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedHead {
    /// The ledger view.
    pub budget: BudgetView,
    /// Hex ed25519 signature over [`SignedHead::signing_bytes`].
    pub signature: String,
}

impl SignedHead {
    /// `"tandem-ledger-head-v1" LF agreement LF run LF json(budget)`.
    fn signing_bytes(budget: &BudgetView, agreement: &str, run: &str) -> Vec<u8> {
        let json = serde_json::to_string(budget).unwrap_or_default();
        format!("tandem-ledger-head-v1\n{agreement}\n{run}\n{json}").into_bytes()
    }

    /// Signs `budget` for one run.
    pub fn sign(
        budget: BudgetView,
        agreement: &str,
        run: &str,
        key: &ed25519_dalek::SigningKey,
    ) -> SignedHead {
        use ed25519_dalek::Signer;
        let signature = hex::encode(
            key.sign(&Self::signing_bytes(&budget, agreement, run))
                .to_bytes(),
        );
        SignedHead { budget, signature }
    }

    /// Verifies the signature with the party's key.
    pub fn verify(
        &self,
        agreement: &str,
        run: &str,
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<()> {
        use ed25519_dalek::Verifier;
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("ledger head signature is not 64 hex bytes")?;
        key.verify(
            &Self::signing_bytes(&self.budget, agreement, run),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| anyhow!("the ledger head of {} does not verify", self.budget.party))
    }
}

/// One side's budget, as shown in a report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BudgetView {
    /// Party name.
    pub party: String,
    /// ε charged for this run.
    pub epsilon_spent: f64,
    /// δ charged for this run.
    pub delta_spent: f64,
    /// ε spent so far under the agreement (in the current budget period, when the agreement
    /// refreshes budgets), this run included.
    pub epsilon_total_spent: f64,
    /// ε left under the agreement (in the current budget period, when it refreshes).
    pub epsilon_left: f64,
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

/// Checks the columns against the agreement (minimum necessity: only listed columns, only
/// their public value sets).
pub fn check_columns(
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

/// The party's budget view after a run.
pub fn budget_view(
    store: &Store,
    agreement: &Agreement,
    party: &str,
    charged: PrivacyLoss,
) -> Result<BudgetView> {
    let budget = agreement
        .terms
        .party(party)
        .context("party missing from agreement")?
        .budget;
    let status = store.budget(
        &agreement.id().to_string(),
        budget.epsilon_total,
        budget.delta_total,
        budget_period_start(agreement, crate::wire::now_ms()),
    )?;
    Ok(BudgetView {
        party: party.to_string(),
        epsilon_spent: charged.epsilon,
        delta_spent: charged.delta,
        epsilon_total_spent: status.spent_epsilon,
        epsilon_left: status.left_epsilon,
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

/// Runs the querier's side of an overlap query against the peer named in the agreement.
pub async fn run_query(home: &Home, query: &OverlapQuery, actor: &str) -> Result<OverlapReport> {
    let started = std::time::Instant::now();
    let me = home.config.name.clone();
    let store_path = home.store_path();
    let q = query.clone();
    let actor_s = actor.to_string();
    let me2 = me.clone();
    // Everything up to the first message runs off the async runtime (opendp is not Send).
    let key = home.key.clone();
    let prepared =
        tokio::task::spawn_blocking(move || prepare_query(&store_path, &key, &me2, &q, &actor_s))
            .await
            .context("query task panicked")??;
    let prepared = match prepared {
        Prepared::Cached(report) => return Ok(*report),
        Prepared::Fresh(p) => p,
    };
    let peer_party = prepared
        .agreement
        .terms
        .party(&prepared.peer)
        .context("peer missing")?
        .clone();
    let peer = crate::client::Peer {
        url: peer_party.url.clone(),
        cert_sha256: crate::tls::parse_fingerprint(&peer_party.tls_cert_sha256)?,
    };
    let envelope = crate::wire::Envelope {
        agreement_id: prepared.agreement.id().to_string(),
        run_id: hex::encode(prepared.run_id),
        sender: me.clone(),
        timestamp_ms: crate::wire::now_ms(),
    };
    let body = crate::wire::frame(&prepared.opening, &prepared.message);
    let headers = envelope.sign(crate::server::PSI_REQUEST, &body, &home.key);
    let call = peer
        .post(
            crate::server::PSI_PATH,
            &headers,
            body,
            std::time::Duration::from_secs(1800),
            home.config.max_message_bytes,
        )
        .await;
    let store_path = home.store_path();
    let peer_key = crate::wire::verifying_key(&peer_party.signing_key)?;
    tokio::task::spawn_blocking(move || {
        complete_query(&store_path, prepared, call, &peer_key, started)
    })
    .await
    .context("query task panicked")?
}

/// The querier's state between sending and finishing.
pub(crate) struct PendingQuery {
    agreement: Agreement,
    peer: String,
    pub(crate) run_id: [u8; 16],
    pub(crate) request: RunRequest,
    params: RunParams,
    querier: tandem_psi::Querier,
    pub(crate) message: Vec<u8>,
    /// The JSON sent beside the first message ([`RunOpening`]).
    pub(crate) opening: serde_json::Value,
    loss: PrivacyLoss,
}

pub(crate) enum Prepared {
    Cached(Box<OverlapReport>),
    Fresh(Box<PendingQuery>),
}

/// A query checked against the agreement, before any run id or noise exists.
struct Plan {
    agreement: Agreement,
    peer: String,
    request: RunRequest,
}

fn plan(store: &Store, me: &str, q: &OverlapQuery) -> Result<Plan> {
    let (agreement, peer) = active_agreement(store, &q.agreement_id, me)?;
    let join_key = match &q.join_key {
        Some(k) => k.clone(),
        None => agreement
            .terms
            .join_keys
            .first()
            .cloned()
            .context("agreement names no join key")?,
    };
    let delta = agreement
        .terms
        .parties
        .iter()
        .map(|p| p.budget.delta_per_query)
        .fold(f64::INFINITY, f64::min);
    let request = RunRequest {
        protocol: "psi-ca-v1".into(),
        join_key,
        querier_column: q.group_by.clone(),
        responder_column: q.peer_group_by.clone(),
        epsilon: q.epsilon,
        delta,
    };
    check_columns(&agreement, me, &peer, &request)?;
    Ok(Plan {
        agreement,
        peer,
        request,
    })
}

/// What a query would cost and how precise it would be, without running it (free).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Preview {
    /// The stored answer would be returned (no cost).
    pub cached: bool,
    /// Cells in the answer.
    pub cells: usize,
    /// ε / δ this node would spend.
    pub querier_cost: PrivacyLoss,
    /// ε / δ the peer would spend.
    pub responder_cost: PrivacyLoss,
    /// Expected 95% half-width of every cell.
    pub half_width_95: u64,
    /// This node's ε left before the query.
    pub querier_epsilon_left: f64,
    /// The peer's per-query ε cap from the agreement.
    pub responder_per_query_cap: f64,
}

/// Previews a query: cost and interval, no budget spent.
pub fn preview(store: &Store, me: &str, q: &OverlapQuery) -> Result<Preview> {
    let p = plan(store, me, q)?;
    let params = p.request.params(&p.agreement, [0; 16], me, &p.peer)?;
    let fingerprint = query_fingerprint(store, &p.request, &p.agreement.id().to_string())?;
    let own = p.agreement.terms.party(me).context("party missing")?.budget;
    let status = store.budget(
        &p.agreement.id().to_string(),
        own.epsilon_total,
        own.delta_total,
        budget_period_start(&p.agreement, crate::wire::now_ms()),
    )?;
    Ok(Preview {
        cached: !q.fresh && store.cached_result(&fingerprint)?.is_some(),
        cells: (params.querier_buckets * params.responder_buckets) as usize,
        querier_cost: tandem_psi::accounting::querier_loss(&params)?,
        responder_cost: tandem_psi::accounting::responder_loss(&params)?,
        half_width_95: params.cell_noise.half_width(0.05)?,
        querier_epsilon_left: status.left_epsilon,
        responder_per_query_cap: p
            .agreement
            .terms
            .party(&p.peer)
            .context("peer missing")?
            .budget
            .epsilon_per_query,
    })
}

pub(crate) fn prepare_query(
    store_path: &std::path::Path,
    home_key: &ed25519_dalek::SigningKey,
    me: &str,
    q: &OverlapQuery,
    actor: &str,
) -> Result<Prepared> {
    let mut store = Store::open(store_path)?;
    let checked = check_query(&store, me, q, actor);
    let (plan, params, run) = match checked {
        Ok(x) => x,
        Err(e) => {
            // Refusals before any charge are recorded too (the store records its own).
            let event = AuditEvent::now(
                actor,
                "query.refused",
                serde_json::json!({"role": "querier", "reason": format!("{e:#}"), "query": q}),
            )
            .with_agreement(&q.agreement_id);
            store.append_audit(event)?;
            return Err(e);
        }
    };
    let Plan {
        agreement,
        peer,
        request,
    } = plan;
    let id = agreement.id().to_string();
    let fingerprint = run.fingerprint.clone().unwrap_or_default();
    if !q.fresh
        && let Some(cached) = store.cached_result(&fingerprint)?
    {
        let mut report: OverlapReport =
            serde_json::from_str(&cached.result_json).context("cached result does not parse")?;
        let details = serde_json::json!({"run_id": cached.run_id, "cached": true, "output_sha256": cached.output_sha256});
        store.append_audit(AuditEvent::now(actor, "result.read", details).with_agreement(&id))?;
        report.cached = true;
        for b in [&mut report.querier_budget, &mut report.responder_budget] {
            b.epsilon_spent = 0.0;
            b.delta_spent = 0.0;
        }
        return Ok(Prepared::Cached(Box::new(report)));
    }
    let loss = PrivacyLoss {
        epsilon: run.epsilon,
        delta: run.delta,
    };
    store.begin_run(&run).map_err(|e| explain(e, me))?;
    let started = (|| -> Result<_> {
        let items = load_buckets(
            &store,
            &agreement,
            me,
            &request.join_key,
            request.querier_column.as_deref(),
        )?;
        let (querier, message) =
            tandem_psi::Querier::start(params.clone(), &items, &mut OpenDpNoise)?;
        let head = SignedHead::sign(
            budget_view(&store, &agreement, me, loss)?,
            &id,
            &run.run_id,
            home_key,
        );
        let opening = serde_json::to_value(RunOpening {
            request: request.clone(),
            querier_head: head,
        })?;
        Ok((querier, message, opening))
    })();
    let (querier, message, opening) = match started {
        Ok(x) => x,
        Err(e) => {
            store.fail_run(&run.run_id, &format!("{e:#}"), false)?;
            return Err(e);
        }
    };
    Ok(Prepared::Fresh(Box::new(PendingQuery {
        agreement,
        peer,
        run_id: params.run_id,
        request,
        params,
        querier,
        message,
        opening,
        loss,
    })))
}

/// Checks a query against the agreement and both parties' per-query caps, and prepares its
/// ledger entry (with a fresh run id and the cache fingerprint).
fn check_query(
    store: &Store,
    me: &str,
    q: &OverlapQuery,
    actor: &str,
) -> Result<(Plan, RunParams, NewRun)> {
    let plan = plan(store, me, q)?;
    let fingerprint = query_fingerprint(store, &plan.request, &plan.agreement.id().to_string())?;
    let run_id: [u8; 16] = rand::random();
    let params = plan
        .request
        .params(&plan.agreement, run_id, me, &plan.peer)?;
    let loss = tandem_psi::accounting::querier_loss(&params)?;
    // The peer must be able to afford its side under its per-query cap before we spend ours.
    let peer_loss = tandem_psi::accounting::responder_loss(&params)?;
    let peer_budget = plan
        .agreement
        .terms
        .party(&plan.peer)
        .context("peer missing")?
        .budget;
    if peer_loss.epsilon > peer_budget.epsilon_per_query + 1e-12 {
        bail!(
            "{} would spend ε = {:.4} on this query, over its per-query cap of {} in the agreement",
            plan.peer,
            peer_loss.epsilon,
            peer_budget.epsilon_per_query
        );
    }
    let mut run = new_run(
        &plan.agreement,
        me,
        "querier",
        &hex::encode(run_id),
        actor,
        &plan.request,
        loss,
    )?;
    run.fingerprint = Some(fingerprint);
    Ok((plan, params, run))
}

fn complete_query(
    store_path: &std::path::Path,
    p: Box<PendingQuery>,
    call: Result<crate::client::Response, crate::client::CallError>,
    peer_key: &ed25519_dalek::VerifyingKey,
    started: std::time::Instant,
) -> Result<OverlapReport> {
    let mut store = Store::open(store_path)?;
    let PendingQuery {
        agreement,
        peer,
        run_id,
        request,
        params,
        querier,
        loss,
        ..
    } = *p;
    let run_hex = hex::encode(run_id);
    let me = agreement
        .terms
        .peer_of(&peer)
        .context("querier missing")?
        .name
        .clone();
    let outcome = (|| -> Result<OverlapReport> {
        let resp = call.map_err(|e| anyhow!(e))?;
        if !resp.status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&resp.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
            bail!("{} answered {}: {msg}", peer, resp.status);
        }
        let (env, sig) = crate::wire::Envelope::from_headers(&resp.headers)?;
        if env.run_id != run_hex
            || env.agreement_id != agreement.id().to_string()
            || env.sender != peer
        {
            bail!("the peer's answer is bound to another run, agreement or sender");
        }
        env.verify(
            crate::server::PSI_RESPONSE,
            &resp.body,
            &sig,
            peer_key,
            crate::wire::now_ms(),
        )?;
        let (receipt, reply) = crate::wire::unframe(&resp.body, 1 << 20)?;
        let receipt: Receipt =
            serde_json::from_value(receipt).context("peer receipt does not parse")?;
        receipt
            .head
            .verify(&env.agreement_id, &env.run_id, peer_key)?;
        store.append_audit(
            AuditEvent::now(
                format!("peer:{peer}"),
                "peer.ledger",
                serde_json::to_value(&receipt.head)?,
            )
            .with_agreement(&env.agreement_id),
        )?;
        let counts = querier.finish(reply, &Limits::default())?;
        let q_labels = bucket_labels(&agreement, &me, request.querier_column.as_deref())?;
        let r_labels = bucket_labels(&agreement, &peer, request.responder_column.as_deref())?;
        Ok(OverlapReport {
            agreement_id: agreement.id().to_string(),
            purpose: agreement.terms.purpose.clone(),
            run_id: run_hex.clone(),
            cached: false,
            querier: me.clone(),
            responder: peer.clone(),
            join_key: request.join_key.clone(),
            querier_column: request.querier_column.clone(),
            responder_column: request.responder_column.clone(),
            epsilon: request.epsilon,
            confidence: 0.95,
            threshold: agreement.terms.min_reporting_threshold,
            cells: cells(&agreement, &params, &counts, &q_labels, &r_labels)?,
            querier_budget: BudgetView::default(),
            responder_budget: receipt.head.budget,
            wall_s: started.elapsed().as_secs_f64(),
        })
    })();
    match outcome {
        Ok(mut report) => {
            report.querier_budget = budget_view(&store, &agreement, &me, loss)?;
            let json = serde_json::to_string(&report)?;
            let digest = crate::home::sha256_hex(json.as_bytes());
            store.finish_run(&run_hex, &json, &digest)?;
            Ok(report)
        }
        Err(e) => {
            // Our first message carries our noised bucket sizes: once it may have reached the
            // peer, the charge stands.
            let sent = !matches!(
                e.downcast_ref::<crate::client::CallError>(),
                Some(crate::client::CallError::Unreachable { .. })
            );
            store.fail_run(&run_hex, &format!("{e:#}"), sent)?;
            Err(e)
        }
    }
}

/// Parses a hex run id.
pub fn parse_run_id(hex_str: &str) -> Result<[u8; 16]> {
    hex::decode(hex_str)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{hex_str:?} is not a 16-byte hex run id"))
}
