//! The querier's side of a run, for any registered analysis: check the query against the
//! agreement and both parties' caps, answer from the cache when the same query ran on unchanged
//! data, otherwise charge this node's ledger (a [`Reservation`]), send the first PSI message to
//! the peer, verify its signed answer, finish and release. Also the free preview of a query's
//! cost and precision.

use std::path::Path;
use std::time::Instant;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::PrivacyLoss;
use tandem_psi::Limits;
use tandem_store::{AuditEvent, NewRun, Store};

use crate::analysis::{Analysis, NoisedCells, Query, Report, joined_columns};
use crate::budget::{EntryFor, budget_view, epsilon_left, ledger_entry, run_delta};
use crate::client::{CallError, Peer, Response};
use crate::error::{Code, NodeError, PeerAnswer, Result};
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::run::{Derived, active_agreement, derive, load_run_buckets, query_fingerprint};
use crate::wire::{
    AUDIENCE_VERSION_PATH, AUDIENCE_VERSION_REQUEST, AUDIENCE_VERSION_RESPONSE, AudienceVersion,
    BUDGET_CHECK_PATH, BUDGET_CHECK_REQUEST, BUDGET_CHECK_RESPONSE, BudgetCheck, BudgetView,
    Envelope, MAX_FRAME_JSON, PSI_PATH, PSI_REQUEST, PSI_RESPONSE, Receipt, RunOpening, RunRequest,
    SignedHead, frame, now_ms, unframe, verifying_key,
};

/// Runs the querier's side of `analysis` against the peer named in the agreement.
pub async fn run_query(
    home: &Home,
    analysis: &'static dyn Analysis,
    query: &Query,
    actor: &str,
) -> Result<Report> {
    let started = Instant::now();
    let (store_path, key, me) = (
        home.store_path(),
        home.key.clone(),
        home.config.name.clone(),
    );
    let (q, actor_s) = (query.clone(), actor.to_string());
    // Before this node charges itself: would the peer admit a fresh run? If not, nothing is
    // charged on either side.
    ensure_peer_admits(home, analysis, query, actor).await?;
    // Everything up to the first message runs off the async runtime (opendp is not Send).
    let chunk = stream_chunk_records(home);
    let cache = home.config.limits.hash_cache;
    let prepared = blocking(move || {
        prepare_query_with(&store_path, &key, &me, analysis, &q, &actor_s, chunk, cache)
    })
    .await?;
    let pending = match prepared {
        Prepared::Cached(report) => {
            // The cached answer holds only while the peer's audience is the one it used.
            if peer_audience_unchanged(home, &report).await? {
                return Ok(*report);
            }
            tracing::info!(
                run = %report.run_id,
                "the peer's audience changed since the cached answer: asking afresh"
            );
            // The audit trail says why the stored answer read above was not returned.
            let (store_path, run_id, agreement_id, who) = (
                home.store_path(),
                report.run_id.clone(),
                report.agreement_id.clone(),
                actor.to_string(),
            );
            blocking(move || {
                let event = AuditEvent::now(
                    who,
                    "result.stale",
                    serde_json::json!({"run_id": run_id, "reason": "the peer's audience version changed"}),
                )
                .with_agreement(&agreement_id);
                Store::open(&store_path)?.append_audit(event)?;
                Ok(())
            })
            .await?;
            let (store_path, key, me) = (
                home.store_path(),
                home.key.clone(),
                home.config.name.clone(),
            );
            let (mut q, actor_s) = (query.clone(), actor.to_string());
            q.fresh = true;
            ensure_peer_admits(home, analysis, &q, actor).await?;
            match blocking(move || {
                prepare_query_with(&store_path, &key, &me, analysis, &q, &actor_s, chunk, cache)
            })
            .await?
            {
                Prepared::Fresh(p) => p,
                Prepared::Cached(report) => return Ok(*report),
            }
        }
        Prepared::Fresh(p) => p,
    };
    let mut pending = pending;
    pending.peer_timeout = crate::home::Limits::secs(home.config.limits.peer_answer_timeout_s);
    pending.max_message_bytes = home.config.max_message_bytes;
    // From here on the run is charged and `started`: every error ends in `abandon`.
    let (peer, peer_key) = match peer_target(&pending.agreement, &pending.peer) {
        Ok(t) => t,
        Err(e) => {
            let store_path = home.store_path();
            return blocking(move || {
                let mut store = Store::open(&store_path)?;
                pending
                    .reservation
                    .abandon(&mut store, e.message(), Exposure::NothingLeft)?;
                Err(e)
            })
            .await;
        }
    };
    let limits = &home.config.limits;
    let mut pending = pending;
    if let Some(psi) = pending.stream.take() {
        let (agreement_id, run_hex) = (
            pending.agreement.id().to_string(),
            hex::encode(pending.run_id()),
        );
        let link = crate::stream::Link {
            peer: &peer,
            peer_name: &pending.peer,
            peer_key: &peer_key,
            key: &home.key,
            me: &home.config.name,
            agreement_id: &agreement_id,
            run_id: &run_hex,
            connect_timeout: crate::home::Limits::secs(limits.connect_timeout_s),
            answer_timeout: crate::home::Limits::secs(limits.peer_answer_timeout_s),
            max_response: home.config.max_message_bytes,
        };
        let streamed = crate::stream::exchange(&link, &pending.opening, psi).await;
        let store_path = home.store_path();
        return blocking(move || {
            complete_query(
                &store_path,
                pending,
                PeerReply::Streamed(streamed),
                &peer_key,
                started,
            )
        })
        .await;
    }
    let (body, headers) = pending.signed_request(&home.key);
    let call = peer
        .post_with(
            PSI_PATH,
            &headers,
            body,
            crate::home::Limits::secs(limits.connect_timeout_s),
            crate::home::Limits::secs(limits.peer_answer_timeout_s),
            home.config.max_message_bytes,
        )
        .await;
    let store_path = home.store_path();
    blocking(move || {
        complete_query(
            &store_path,
            pending,
            PeerReply::Whole(call),
            &peer_key,
            started,
        )
    })
    .await
}

/// The `C` of a streamed run from this node's configuration (`limits.stream_chunk_records`;
/// 0 sends whole messages).
fn stream_chunk_records(home: &Home) -> Option<u32> {
    match home.config.limits.stream_chunk_records {
        0 => None,
        c => Some(c),
    }
}

/// The agreement, peer and run request a fresh run of `q` would send, or `None` when a cached
/// answer would be returned first or the query is refused locally (the run itself then refuses
/// and audits it, before any charge).
fn fresh_plan(
    store_path: &Path,
    me: &str,
    analysis: &'static dyn Analysis,
    q: &Query,
) -> Result<Option<Plan>> {
    let store = Store::open(store_path)?;
    // Every local check first (the run repeats them, refusing and auditing).
    let Ok((p, _, entry)) = check_query(&store, me, analysis, q, "precheck") else {
        return Ok(None);
    };
    // This node's own budget first: a run it would refuse itself needs no question to the peer.
    if store.would_admit(&entry).is_err() {
        return Ok(None);
    }
    if !q.fresh {
        let fingerprint = fingerprint(&store, &p.request, &p.agreement, analysis, q)?;
        if store.cached_result(&fingerprint)?.is_some() {
            return Ok(None);
        }
    }
    Ok(Some(p))
}

/// Refuses, before this node charges anything, a fresh run of `q` that the peer says it would
/// refuse now (its signed budget pre-check, [`peer_budget`]): the error is the peer's code
/// (e.g. `budget_exceeded`) with its details (which cap, what is left), and says that nothing
/// was charged on either side. Audited here as `query.refused`. A pre-check that gets no signed
/// answer (peer unreachable, timing out, throttling, or a node without the endpoint) does not
/// decide: the run goes ahead and its own exchange meets the fault, with the charge rules of
/// [`crate::release::Exposure`].
async fn ensure_peer_admits(
    home: &Home,
    analysis: &'static dyn Analysis,
    q: &Query,
    actor: &str,
) -> Result<()> {
    let (store_path, me, q2) = (home.store_path(), home.config.name.clone(), q.clone());
    let Some(p) = blocking(move || fresh_plan(&store_path, &me, analysis, &q2)).await? else {
        return Ok(());
    };
    let check = match peer_budget(home, &p.agreement, &p.peer, &p.request).await {
        Ok(check) if !check.admits => check,
        Ok(_) => return Ok(()),
        Err(e) => {
            tracing::info!(peer = %p.peer, error = %e, "no answer to the budget pre-check; running without it");
            return Ok(());
        }
    };
    let code = check.code.clone();
    let reason = check.reason.clone().unwrap_or_default();
    let (store_path, agreement_id, who, peer) = (
        home.store_path(),
        p.agreement.id().to_string(),
        actor.to_string(),
        p.peer.clone(),
    );
    let details = serde_json::json!({
        "role": "querier", "reason": "the peer's budget pre-check refused the run",
        "code": code, "peer": peer, "peer_reason": reason, "query": q,
    });
    blocking(move || {
        let event = AuditEvent::now(who, "query.refused", details).with_agreement(&agreement_id);
        Store::open(&store_path)?.append_audit(event)?;
        Ok(())
    })
    .await?;
    let err = NodeError::peer_refused(
        PeerAnswer {
            peer: p.peer.clone(),
            status: 403,
            code: check.code.clone(),
        },
        format!(
            "{} would refuse this run (its budget pre-check): {reason}; nothing was charged on \
             either side",
            p.peer
        ),
    );
    Err(match check.details {
        Some(d) if d.is_object() => err.with_details(d),
        _ => err,
    })
}

/// Asks the peer (signed, uncharged, nothing reserved) whether it would admit `request` under
/// `agreement` now: `POST /v1/psi/budget-check`. Errors: the peer unreachable or refusing the
/// check (`peer_*`), a bad answer (`bad_peer_answer`).
pub async fn peer_budget(
    home: &Home,
    agreement: &Agreement,
    peer: &str,
    request: &RunRequest,
) -> Result<BudgetCheck> {
    let (target, peer_key) = peer_target(agreement, peer)?;
    let envelope = Envelope {
        agreement_id: agreement.id().to_string(),
        run_id: hex::encode(rand::random::<[u8; 16]>()),
        sender: home.config.name.clone(),
        timestamp_ms: now_ms(),
    };
    let body = serde_json::to_vec(request)?;
    let headers = envelope.sign(BUDGET_CHECK_REQUEST, &body, &home.key);
    let limits = &home.config.limits;
    let resp = target
        .post_with(
            BUDGET_CHECK_PATH,
            &headers,
            body,
            crate::home::Limits::secs(limits.connect_timeout_s),
            crate::home::Limits::secs(limits.peer_call_timeout_s.min(limits.peer_answer_timeout_s)),
            1 << 16,
        )
        .await
        .map_err(|e| match e {
            CallError::Unreachable { .. } => NodeError::new(Code::PeerUnreachable, e),
            CallError::AfterSend { .. } => NodeError::new(Code::PeerFailed, e),
        })?;
    if !resp.status.is_success() {
        let code = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string));
        let answer = PeerAnswer {
            peer: peer.to_string(),
            status: resp.status.as_u16(),
            code,
        };
        return Err(NodeError::peer_refused(
            answer,
            format!("{peer} answered {} to the budget pre-check", resp.status),
        ));
    }
    let bad = |e: NodeError| NodeError::bad_peer_answer(e.message());
    let (env, sig) = Envelope::from_headers(&resp.headers).map_err(bad)?;
    if env.run_id != envelope.run_id
        || env.agreement_id != envelope.agreement_id
        || env.sender != peer
    {
        return Err(NodeError::bad_peer_answer(
            "the peer's budget pre-check answer is bound to another request, agreement or sender",
        ));
    }
    env.verify(BUDGET_CHECK_RESPONSE, &resp.body, &sig, &peer_key, now_ms())
        .map_err(bad)?;
    serde_json::from_slice(&resp.body).map_err(|e| {
        NodeError::bad_peer_answer(format!("the budget pre-check answer does not parse: {e}"))
    })
}

/// [`preview`], with the peer's budget: its answer to a budget pre-check of the run
/// ([`Preview::responder_budget`]), so the preview warns of a run the peer would refuse. A
/// peer that cannot be reached leaves it out and says why
/// ([`Preview::responder_budget_unknown`]); nothing is charged either way.
pub async fn preview_with_peer(
    home: &Home,
    analysis: &'static dyn Analysis,
    q: &Query,
) -> Result<Preview> {
    let (store_path, me, q2) = (home.store_path(), home.config.name.clone(), q.clone());
    let (mut p, plan) = blocking(move || {
        let store = Store::open(&store_path)?;
        let p = preview(&store, &me, analysis, &q2)?;
        Ok((p, plan(&store, &me, analysis, &q2)?))
    })
    .await?;
    match peer_budget(home, &plan.agreement, &plan.peer, &plan.request).await {
        Ok(check) => p.responder_budget = Some(check),
        Err(e) => p.responder_budget_unknown = Some(e.message().to_string()),
    }
    Ok(p)
}

/// Asks the peer (signed, uncharged) whether the audience version its signed receipt named for
/// the cached `report` is still current. A report without a version (from before versions)
/// counts as changed. Errors: the peer unreachable or refusing (`peer_*`), a bad answer
/// (`bad_peer_answer`): the cached answer cannot be confirmed, and nothing is charged.
async fn peer_audience_unchanged(home: &Home, report: &Report) -> Result<bool> {
    let Some(used) = report.responder_audience_version else {
        return Ok(false);
    };
    let (store_path, me, id) = (
        home.store_path(),
        home.config.name.clone(),
        report.agreement_id.clone(),
    );
    let (agreement, peer) = blocking(move || {
        let store = Store::open(&store_path)?;
        active_agreement(&store, &id, &me, Code::InvalidQuery)
    })
    .await?;
    let (target, peer_key) = peer_target(&agreement, &peer)?;
    let envelope = Envelope {
        agreement_id: report.agreement_id.clone(),
        run_id: report.run_id.clone(),
        sender: home.config.name.clone(),
        timestamp_ms: now_ms(),
    };
    let body = serde_json::to_vec(&AudienceVersion {
        join_key: report.join_key.clone(),
        audience_version: None,
    })?;
    let headers = envelope.sign(AUDIENCE_VERSION_REQUEST, &body, &home.key);
    let resp = target
        .post(
            AUDIENCE_VERSION_PATH,
            &headers,
            body,
            crate::home::Limits::secs(home.config.limits.peer_call_timeout_s),
            1 << 16,
        )
        .await
        .map_err(|e| match e {
            CallError::Unreachable { .. } => NodeError::new(Code::PeerUnreachable, e),
            CallError::AfterSend { .. } => NodeError::new(Code::PeerFailed, e),
        })?;
    if !resp.status.is_success() {
        let code = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string));
        let answer = PeerAnswer {
            peer: peer.clone(),
            status: resp.status.as_u16(),
            code,
        };
        return Err(NodeError::peer_refused(
            answer,
            format!(
                "{peer} answered {} to the audience-version check of a cached answer",
                resp.status
            ),
        ));
    }
    verify_answer(
        &resp,
        (&peer, &peer_key),
        (&report.run_id, &report.agreement_id),
        AUDIENCE_VERSION_RESPONSE,
        "audience-version answer",
    )?;
    let answer: AudienceVersion = serde_json::from_slice(&resp.body).map_err(|e| {
        NodeError::bad_peer_answer(format!("the audience-version answer does not parse: {e}"))
    })?;
    Ok(answer.join_key == report.join_key && answer.audience_version == Some(used))
}

/// The peer's address, TLS pin and signing key from the agreement.
pub(crate) fn peer_target(agreement: &Agreement, peer: &str) -> Result<(Peer, VerifyingKey)> {
    let party = agreement
        .terms
        .party(peer)
        .ok_or_else(|| NodeError::internal("peer missing from the agreement"))?;
    let target = Peer {
        url: party.url.clone(),
        cert_sha256: crate::wire::parse_fingerprint(&party.tls_cert_sha256)?,
    };
    Ok((target, verifying_key(&party.signing_key)?))
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::internal(format!("query task failed: {e}")))?
}

/// The querier's state between sending and finishing: the charged run and its PSI state.
pub struct PendingQuery {
    agreement: Agreement,
    peer: String,
    me: String,
    request: RunRequest,
    derived: Derived,
    reservation: Reservation,
    /// The PSI state machine (taken when the answer is read).
    querier: Option<Psi>,
    message: Vec<u8>,
    /// The streamed run's state (psi-ca-v1 §10), instead of `querier` and `message`.
    stream: Option<tandem_psi::stream::StreamQuerier>,
    opening: serde_json::Value,
    /// Who asked (the result is released to them).
    actor: String,
    /// The analyst's query (stored with the result).
    query: Query,
    /// This node's signing key (a value analysis signs a second call).
    key: SigningKey,
    /// This node's members counted in `other` for being outside the public value set (local).
    outside_value_set: u64,
    /// This node's exact bucket sizes (local).
    my_sizes: Vec<u64>,
    /// The query's options (for the derived figures).
    options: std::collections::BTreeMap<String, String>,
    /// How long to wait for a psi-ca-v2 Msg4 (`limits.peer_answer_timeout_s`).
    peer_timeout: std::time::Duration,
    /// The largest psi-ca-v2 Msg2 or Msg4 this node reads (`max_message_bytes`).
    max_message_bytes: usize,
}

/// The querier's protocol state of a run, as its agreement selects.
enum Psi {
    /// psi-ca-v1: one round trip.
    V1(tandem_psi::Querier),
    /// psi-ca-v2: Msg2 is answered with Msg3 on a second round trip.
    V2(tandem_psi_v2::Querier),
}

/// Both parties' charges for a run, as the agreement's protocol says: this node's `(ε, δ)` and
/// ρ, and the peer's `(ε, δ)` (with the sums of a value analysis).
struct Costs {
    querier: (PrivacyLoss, f64),
    responder: PrivacyLoss,
}

fn costs(d: &Derived) -> Result<Costs> {
    match &d.v2 {
        Some(p) => Ok(Costs {
            querier: {
                let c = crate::v2::querier_charge(p)?;
                (c.loss, c.rho)
            },
            responder: crate::v2::responder_charge(p)?.loss,
        }),
        None => Ok(Costs {
            querier: (
                tandem_psi::accounting::querier_loss(&d.params)?,
                tandem_psi::accounting::querier_rho(&d.params)?,
            ),
            responder: crate::sums::with_sum_loss(
                d,
                tandem_psi::accounting::responder_loss(&d.params)?,
            )?,
        }),
    }
}

/// The parameters the analyses read intervals from: the run's own under psi-ca-v1, their
/// v1-shaped view under psi-ca-v2 ([`crate::v2::analysis_params`]).
fn release_params(d: &Derived) -> tandem_psi::RunParams {
    match &d.v2 {
        Some(p) => crate::v2::analysis_params(&d.params, p),
        None => d.params.clone(),
    }
}

impl PendingQuery {
    /// The run id.
    pub fn run_id(&self) -> [u8; 16] {
        self.derived.params.run_id
    }

    /// The psi-ca-v2 state machine of this run (`None` under psi-ca-v1 or once the answer was
    /// read): for a caller that drives the second round trip itself (tests, tools).
    pub fn v2_querier(&mut self) -> Option<&mut tandem_psi_v2::Querier> {
        match self.querier.as_mut() {
            Some(Psi::V2(q)) => Some(q),
            _ => None,
        }
    }

    /// The body of the first message (frame of the [`RunOpening`] and the PSI query) and its
    /// signed envelope headers, as sent now.
    pub fn signed_request(&self, key: &SigningKey) -> (Vec<u8>, Vec<(&'static str, String)>) {
        let envelope = Envelope {
            agreement_id: self.agreement.id().to_string(),
            run_id: hex::encode(self.run_id()),
            sender: self.me.clone(),
            timestamp_ms: now_ms(),
        };
        let body = frame(&self.opening, &self.message);
        let headers = envelope.sign(PSI_REQUEST, &body, key);
        (body, headers)
    }
}

/// A prepared query: the stored answer, or a charged run ready to send.
pub enum Prepared {
    /// An identical query on unchanged data was answered before (nothing spent).
    Cached(Box<Report>),
    /// A charged run.
    Fresh(Box<PendingQuery>),
}

/// A query checked against the agreement.
struct Plan {
    agreement: Agreement,
    peer: String,
    request: RunRequest,
}

fn plan(store: &Store, me: &str, analysis: &dyn Analysis, q: &Query) -> Result<Plan> {
    // The operator may name the agreement by a unique prefix (the short id reports print).
    let id = crate::agreements::resolve_id(store, &q.agreement_id)?;
    let (agreement, peer) = active_agreement(store, &id, me, Code::InvalidQuery)?;
    let join_key = match &q.join_key {
        Some(k) => k.clone(),
        None => agreement
            .terms
            .join_keys
            .first()
            .cloned()
            .ok_or_else(|| NodeError::invalid_query("the agreement names no join key"))?,
    };
    let request = RunRequest {
        // The agreement names the protocol; a run never falls back to another.
        protocol: agreement.terms.protocol.as_str().into(),
        analysis: analysis.name().into(),
        join_key,
        querier_columns: q.group_by.clone(),
        responder_columns: q.peer_group_by.clone(),
        epsilon: q.epsilon,
        delta: run_delta(&agreement),
        identity_rules: tandem_identity::RULES_VERSION.to_string(),
        responder_value: q.peer_value.clone(),
    };
    Ok(Plan {
        agreement,
        peer,
        request,
    })
}

/// What a query would cost and how precise it would be, without running it (free).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    /// The analysis.
    pub analysis: String,
    /// The stored answer would be returned (no cost).
    pub cached: bool,
    /// Cells in the answer (`querier_buckets × responder_buckets`).
    pub cells: usize,
    /// This node's buckets: the cross product of its group-by columns' labels.
    #[serde(default)]
    pub querier_buckets: usize,
    /// The peer's buckets, likewise.
    #[serde(default)]
    pub responder_buckets: usize,
    /// ε / δ this node would spend.
    #[schema(schema_with = crate::openapi::privacy_loss)]
    pub querier_cost: PrivacyLoss,
    /// ε / δ the peer would spend.
    #[schema(schema_with = crate::openapi::privacy_loss)]
    pub responder_cost: PrivacyLoss,
    /// Expected 95% half-width of every cell's count, in persons.
    pub half_width_95: u64,
    /// A value analysis: the 95% half-width of every cell's released sum, in the value column's
    /// unit ([`Preview::value_unit`]); known before the run from the bound `U` and the sums' ε
    /// alone (psi-sum-v1 §6). The counts' half-width above is not the value's. Absent for a
    /// count analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_half_width_95: Option<u64>,
    /// The value column's unit (with [`Preview::value_half_width_95`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_unit: Option<String>,
    /// This node's ε left before the query: under the agreement, or under the node-wide cap
    /// (`[limits.node_budget]`) when that leaves less.
    pub querier_epsilon_left: f64,
    /// About how many queries like this one this node's budget still allows
    /// ([`crate::budget::queries_left`]); `None` when it costs nothing.
    #[serde(default)]
    pub querier_queries_left: Option<u64>,
    /// The peer's per-query ε cap from the agreement.
    pub responder_per_query_cap: f64,
    /// The peer's answer to a budget pre-check of this run (signed, uncharged): whether it would
    /// admit it now and its ε left ([`preview_with_peer`]; absent from a local-only preview).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_budget: Option<BudgetCheck>,
    /// Why the peer's budget is not shown (it could not be asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_budget_unknown: Option<String>,
}

/// Previews a query of `analysis`: cost and interval, no budget spent.
pub fn preview(store: &Store, me: &str, analysis: &dyn Analysis, q: &Query) -> Result<Preview> {
    let p = plan(store, me, analysis, q)?;
    let d = derive(
        &p.agreement,
        me,
        &p.peer,
        &p.request,
        [0; 16],
        Code::InvalidQuery,
    )?;
    crate::analysis::check_options(analysis, &d.grid, &d.params, d.sum.as_ref(), &q.options)?;
    let fingerprint = fingerprint(store, &p.request, &p.agreement, analysis, q)?;
    let costs = costs(&d)?;
    let querier_cost = crate::budget::as_charged(costs.querier.0);
    let responder_cost = crate::budget::as_charged(costs.responder);
    // The same per-query caps the run checks, so a preview never says "fine" to a query that
    // would be refused.
    crate::budget::check_per_query_cap(&p.agreement, me, querier_cost)?;
    crate::budget::check_per_query_cap(&p.agreement, &p.peer, responder_cost)?;
    // The protocol's own ρ (psi-ca-v2 charges the querier for its dummies too), as the run
    // charges it, so "about N more" matches the report's after the run.
    let querier_rho = costs.querier.1;
    let mut querier_epsilon_left = epsilon_left(store, &p.agreement, me)?;
    let mut querier_queries_left = crate::budget::queries_left(
        &crate::budget::status(store, &p.agreement, me)?,
        querier_cost,
        querier_rho,
    );
    // The node-wide cap (`[limits.node_budget]`) refuses a run the agreement admits: what is
    // left is the smaller of the two.
    if let Some((_, node)) = store.node_cap_status()? {
        querier_epsilon_left = querier_epsilon_left.min(node.left_epsilon);
        let node_left = crate::budget::queries_left(&node, querier_cost, querier_rho);
        querier_queries_left = match (querier_queries_left, node_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let alpha = 1.0 - crate::analysis::CONFIDENCE;
    let value = d
        .sum
        .as_ref()
        .map(|plan| -> Result<(u64, String)> {
            let (params, _) = crate::sums::placeholder(plan, &release_params(&d))?;
            let h = params
                .sum_noise
                .half_width(alpha)
                .map_err(|e| NodeError::internal(e.to_string()))?;
            Ok((h, plan.unit.clone()))
        })
        .transpose()?;
    Ok(Preview {
        analysis: analysis.name().to_string(),
        cached: !q.fresh && store.cached_result(&fingerprint)?.is_some(),
        cells: d.grid.len(),
        querier_buckets: d.grid.querier.len(),
        responder_buckets: d.grid.responder.len(),
        querier_cost,
        responder_cost,
        half_width_95: release_params(&d).cell_noise.half_width(alpha)?,
        value_half_width_95: value.as_ref().map(|v| v.0),
        value_unit: value.map(|v| v.1),
        querier_epsilon_left,
        querier_queries_left,
        responder_per_query_cap: p
            .agreement
            .terms
            .party(&p.peer)
            .map(|p| p.budget.epsilon_per_query)
            .unwrap_or_default(),
        responder_budget: None,
        responder_budget_unknown: None,
    })
}

/// Checks, answers from the cache, or charges this node's ledger and makes the first message.
pub fn prepare_query(
    store_path: &Path,
    key: &SigningKey,
    me: &str,
    analysis: &'static dyn Analysis,
    q: &Query,
    actor: &str,
) -> Result<Prepared> {
    prepare_query_with(store_path, key, me, analysis, q, actor, None, true)
}

/// [`prepare_query`], streamed in chunks of `stream_chunk_records` records (psi-ca-v1 §10) when
/// given and the run counts only (a value analysis sends whole messages); from the store's hash
/// cache when `hash_cache` (`[limits] hash_cache`) and the run counts with psi-ca-v1.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's inputs and two node settings"
)]
pub fn prepare_query_with(
    store_path: &Path,
    key: &SigningKey,
    me: &str,
    analysis: &'static dyn Analysis,
    q: &Query,
    actor: &str,
    stream_chunk_records: Option<u32>,
    hash_cache: bool,
) -> Result<Prepared> {
    let mut store = Store::open(store_path)?;
    let (plan, derived, entry) = match check_query(&store, me, analysis, q, actor) {
        Ok(x) => x,
        Err(e) => {
            // Refusals before any charge are recorded too (the store records its own).
            let event = AuditEvent::now(
                actor,
                "query.refused",
                serde_json::json!({"role": "querier", "reason": e.message(), "code": e.code_str(), "query": q}),
            )
            .with_agreement(
                crate::agreements::resolve_id(&store, &q.agreement_id)
                    .unwrap_or_else(|_| q.agreement_id.clone()),
            );
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
    let fingerprint = entry.fingerprint.clone().unwrap_or_default();
    if !q.fresh
        && let Some(cached) = store.cached_result(&fingerprint)?
    {
        let mut report: Report = serde_json::from_str(&cached.result_json).map_err(|e| {
            NodeError::new(
                Code::CorruptData,
                format!("cached result does not parse: {e}"),
            )
        })?;
        // Other local options (ROAS's spend): the stored run's figures derived anew, nothing
        // released or charged.
        let rederived = report.options != q.options;
        if rederived {
            report.details = crate::analysis::rederive(
                analysis,
                &report,
                &derived.grid,
                &release_params(&derived),
                derived.sum.as_ref(),
                &q.options,
            )?;
            report.options = q.options.clone();
        }
        let details = serde_json::json!({"run_id": cached.run_id, "cached": true, "output_sha256": cached.output_sha256, "derived_anew_with": rederived.then_some(&q.options)});
        store.append_audit(AuditEvent::now(actor, "result.read", details).with_agreement(&id))?;
        report.cached = true;
        for b in [&mut report.querier_budget, &mut report.responder_budget] {
            b.epsilon_spent = 0.0;
            b.delta_spent = 0.0;
        }
        store_result(&mut store, &report, q, actor);
        return Ok(Prepared::Cached(Box::new(report)));
    }
    let reservation = Reservation::charge(&mut store, &entry, me)?;
    let started = (|| -> Result<_> {
        let cache = hash_cache && derived.v2.is_none() && derived.sum.is_none();
        let mut buckets = load_run_buckets(
            &store,
            &agreement,
            me,
            &request.join_key,
            &request.querier_columns,
            cache.then_some(&derived.params),
        )?;
        let my_sizes: Vec<u64> = buckets.items.iter().map(|b| b.len() as u64).collect();
        let outside_value_set = buckets.outside_value_set;
        let (querier, message, stream) = match (&derived.v2, stream_chunk_records) {
            (Some(params), _) => {
                let (q, m) = tandem_psi_v2::Querier::start(
                    params.clone(),
                    &buckets.items,
                    &mut rand::rng(),
                    &mut reservation.noise(),
                )
                .map_err(|e| NodeError::internal(format!("psi-ca-v2: {e}")))?;
                (Some(Psi::V2(q)), m, None)
            }
            (None, Some(c)) if derived.sum.is_none() => {
                buckets.fill_cache_later(store_path);
                let s = tandem_psi::stream::StreamQuerier::start(
                    derived.params.clone(),
                    buckets.into_input(),
                    c,
                    Limits::default(),
                    &mut reservation.noise(),
                    &mut rand::rng(),
                )?;
                (None, Vec::new(), Some(s))
            }
            (None, _) => {
                let (q, m) = tandem_psi::Querier::start(
                    derived.params.clone(),
                    buckets.input(),
                    &mut reservation.noise(),
                    &mut rand::rng(),
                )?;
                buckets.fill_cache_later(store_path);
                (Some(Psi::V1(q)), m, None)
            }
        };
        let head = SignedHead::sign(
            budget_view(
                &store,
                &agreement,
                me,
                reservation.run_id(),
                reservation.loss(),
            )?,
            &id,
            reservation.run_id(),
            key,
        )?;
        let opening = serde_json::to_value(RunOpening {
            request: request.clone(),
            querier_head: head,
        })?;
        Ok((
            querier,
            message,
            stream,
            opening,
            outside_value_set,
            my_sizes,
        ))
    })();
    let (querier, message, stream, opening, outside_value_set, my_sizes) = match started {
        Ok(x) => x,
        Err(e) => {
            reservation.abandon(&mut store, e.message(), Exposure::NothingLeft)?;
            return Err(e);
        }
    };
    Ok(Prepared::Fresh(Box::new(PendingQuery {
        agreement,
        peer,
        me: me.to_string(),
        request,
        derived,
        reservation,
        querier,
        message,
        stream,
        opening,
        actor: actor.to_string(),
        query: q.clone(),
        key: key.clone(),
        outside_value_set,
        my_sizes,
        options: q.options.clone(),
        peer_timeout: crate::home::Limits::secs(
            crate::home::Limits::default().peer_answer_timeout_s,
        ),
        max_message_bytes: 1 << 26,
    })))
}

/// Checks a query against the agreement and both parties' per-query caps, and prepares its
/// ledger entry (with a fresh run id and the cache fingerprint).
fn check_query(
    store: &Store,
    me: &str,
    analysis: &'static dyn Analysis,
    q: &Query,
    actor: &str,
) -> Result<(Plan, Derived, NewRun)> {
    let plan = plan(store, me, analysis, q)?;
    let fingerprint = fingerprint(store, &plan.request, &plan.agreement, analysis, q)?;
    let run_id: [u8; 16] = rand::random();
    let derived = derive(
        &plan.agreement,
        me,
        &plan.peer,
        &plan.request,
        run_id,
        Code::InvalidQuery,
    )?;
    crate::analysis::check_options(
        analysis,
        &derived.grid,
        &derived.params,
        derived.sum.as_ref(),
        &q.options,
    )?;
    let Costs {
        querier: (loss, rho),
        responder: peer_loss,
    } = costs(&derived)?;
    // The peer must be able to afford its side under its per-query cap before we spend ours.
    crate::budget::check_per_query_cap(&plan.agreement, &plan.peer, peer_loss)?;
    let mut entry = ledger_entry(
        &plan.agreement,
        EntryFor {
            party: me,
            role: "querier",
            run_id: &hex::encode(run_id),
            actor,
            params_json: serde_json::to_string(&plan.request)?,
            join_key: &plan.request.join_key,
            rho,
        },
        loss,
    )?;
    entry.fingerprint = Some(fingerprint);
    Ok((plan, derived, entry))
}

/// Checks a peer's signed answer to a call of run `run_id` (hex) under `agreement_id`: its
/// envelope names that run, that agreement and `peer` as sender, and `peer_key`'s signature over
/// the body as `kind` verifies. Returns the envelope. Errors: `bad_peer_answer` ("the peer's
/// {what} is bound to another run, agreement or sender", or the envelope's own error).
pub(crate) fn verify_answer(
    resp: &Response,
    (peer, peer_key): (&str, &VerifyingKey),
    (run_id, agreement_id): (&str, &str),
    kind: &str,
    what: &str,
) -> Result<Envelope> {
    let bad = |e: NodeError| NodeError::bad_peer_answer(e.message());
    let (env, sig) = Envelope::from_headers(&resp.headers).map_err(bad)?;
    if env.run_id != run_id || env.agreement_id != agreement_id || env.sender != peer {
        return Err(NodeError::bad_peer_answer(format!(
            "the peer's {what} is bound to another run, agreement or sender"
        )));
    }
    env.verify(kind, &resp.body, &sig, peer_key, now_ms())
        .map_err(bad)?;
    Ok(env)
}

/// The error for a peer's refusal (an HTTP error status): its code and details passed through.
pub(crate) fn refused_answer(peer: &str, resp: &Response) -> NodeError {
    let body = serde_json::from_slice::<serde_json::Value>(&resp.body).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|v| v[name].as_str().map(str::to_string))
    };
    let msg = field("error").unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
    let answer = PeerAnswer {
        peer: peer.to_string(),
        status: resp.status.as_u16(),
        code: field("code"),
    };
    let refused =
        NodeError::peer_refused(answer, format!("{peer} answered {}: {msg}", resp.status));
    // The peer's details (which cap and what is left, both clocks) are passed through.
    match body.as_ref().map(|v| &v["details"]) {
        Some(d) if d.is_object() => refused.with_details(d.clone()),
        _ => refused,
    }
}

/// The peer's answer to a run: the whole reply of one call, or a streamed run's receipt and
/// counts (psi-ca-v1 §10).
enum PeerReply {
    Whole(std::result::Result<Response, CallError>),
    Streamed(Result<(Receipt, tandem_psi::CellCounts)>),
}

/// Checks the peer's answer and finishes the PSI run: the report without this node's budget.
fn read_answer(
    store: &mut Store,
    p: &mut PendingQuery,
    answer: PeerReply,
    peer_key: &VerifyingKey,
    started: Instant,
) -> Result<Report> {
    let call = match answer {
        PeerReply::Whole(call) => call,
        PeerReply::Streamed(streamed) => {
            let (receipt, counts) = streamed?;
            let (agreement_id, run_hex) = (p.agreement.id().to_string(), hex::encode(p.run_id()));
            receipt
                .head
                .verify(&agreement_id, &run_hex, peer_key)
                .map_err(|e| NodeError::bad_peer_answer(e.message()))?;
            store.append_audit(
                AuditEvent::now(
                    format!("peer:{}", p.peer),
                    "peer.ledger",
                    serde_json::to_value(&receipt.head)?,
                )
                .with_agreement(&agreement_id),
            )?;
            let budget = receipt.head.budget.clone();
            return build_report(p, &receipt, &counts, None, budget, started);
        }
    };
    let querier = p
        .querier
        .take()
        .ok_or_else(|| NodeError::internal("the run's answer was read twice"))?;
    let (agreement, peer) = (&p.agreement, &p.peer);
    let run_hex = hex::encode(p.run_id());
    let resp = call.map_err(|e| match e {
        CallError::Unreachable { .. } => NodeError::new(Code::PeerUnreachable, e),
        CallError::AfterSend { .. } => NodeError::new(Code::PeerFailed, e),
    })?;
    if !resp.status.is_success() {
        return Err(refused_answer(peer, &resp));
    }
    let env = verify_answer(
        &resp,
        (peer, peer_key),
        (&run_hex, &agreement.id().to_string()),
        PSI_RESPONSE,
        "answer",
    )?;
    let bad = |e: NodeError| NodeError::bad_peer_answer(e.message());
    let (receipt, reply) = unframe(&resp.body, MAX_FRAME_JSON).map_err(bad)?;
    let (reply, values) = crate::sums::split_reply(&receipt, reply, p.derived.sum.is_some())?;
    let receipt: Receipt = serde_json::from_value(receipt)
        .map_err(|e| NodeError::bad_peer_answer(format!("peer receipt does not parse: {e}")))?;
    receipt
        .head
        .verify(&env.agreement_id, &env.run_id, peer_key)
        .map_err(bad)?;
    store.append_audit(
        AuditEvent::now(
            format!("peer:{peer}"),
            "peer.ledger",
            serde_json::to_value(&receipt.head)?,
        )
        .with_agreement(&env.agreement_id),
    )?;
    let mut responder_budget = receipt.head.budget.clone();
    let (counts, sums) = match (querier, &p.derived.sum, values) {
        (Psi::V2(q), None, None) => {
            let call = crate::v2::querier::FinishCall {
                agreement,
                peer,
                me: &p.me,
                key: &p.key,
                run_id: p.run_id(),
                timeout: p.peer_timeout,
                max_message_bytes: p.max_message_bytes,
            };
            (crate::v2::querier::finish(q, reply, &call, peer_key)?, None)
        }
        (Psi::V2(_), _, _) => {
            return Err(NodeError::internal(
                "psi-ca-v2 runs count analyses only (no sums)",
            ));
        }
        (Psi::V1(querier), Some(plan), Some(values)) => {
            let (counts, lists) = querier
                .finish_with_matches(reply, &Limits::default())
                .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v1: {e}")))?;
            let sums = crate::sums::query_sums(
                &crate::sums::SumCall {
                    agreement,
                    peer,
                    me: &p.me,
                    key: &p.key,
                    run_id: p.run_id(),
                    psi: &p.derived.params,
                    plan,
                    psi_reply: reply,
                    values,
                    lists: &lists,
                    counts: &counts,
                },
                peer_key,
            )?;
            let (params, sums, sum_receipt) = sums;
            store.append_audit(
                AuditEvent::now(
                    format!("peer:{peer}"),
                    "peer.ledger",
                    serde_json::to_value(&sum_receipt.head)?,
                )
                .with_agreement(&env.agreement_id),
            )?;
            // The report shows the holder's ledger after both charges, and what it spent on
            // the run in all (counts and sums).
            let count_spent = (responder_budget.epsilon_spent, responder_budget.delta_spent);
            responder_budget = BudgetView {
                epsilon_spent: count_spent.0 + sum_receipt.head.budget.epsilon_spent,
                delta_spent: count_spent.1 + sum_receipt.head.budget.delta_spent,
                ..sum_receipt.head.budget
            };
            (counts, Some((params, sums)))
        }
        (Psi::V1(querier), _, _) => (
            querier
                .finish(reply, &Limits::default())
                .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v1: {e}")))?,
            None,
        ),
    };
    build_report(
        p,
        &receipt,
        &counts,
        sums.as_ref(),
        responder_budget,
        started,
    )
}

/// The report of a finished run, without this node's budget.
fn build_report(
    p: &PendingQuery,
    receipt: &Receipt,
    counts: &tandem_psi::CellCounts,
    sums: Option<&(tandem_sum::SumParams, tandem_sum::CellSums)>,
    responder_budget: BudgetView,
    started: Instant,
) -> Result<Report> {
    let (agreement, peer) = (&p.agreement, &p.peer);
    let run_hex = hex::encode(p.run_id());
    let params = release_params(&p.derived);
    let noised = NoisedCells {
        grid: &p.derived.grid,
        params: &params,
        counts,
        threshold: agreement.terms.min_reporting_threshold,
        my_sizes: &p.my_sizes,
        sums: sums.map(|(params, sums)| (params, sums)),
    };
    let analysis = p.derived.analysis;
    Ok(Report {
        analysis: p.derived.analysis.name().to_string(),
        protocol: p.request.protocol.clone(),
        agreement_id: agreement.id().to_string(),
        purpose: agreement.terms.purpose.clone(),
        run_id: run_hex,
        cached: false,
        querier: p.me.clone(),
        responder: peer.clone(),
        join_key: p.request.join_key.clone(),
        querier_column: joined_columns(&p.request.querier_columns),
        responder_column: joined_columns(&p.request.responder_columns),
        querier_columns: p.request.querier_columns.clone(),
        responder_columns: p.request.responder_columns.clone(),
        epsilon: p.request.epsilon,
        confidence: crate::analysis::CONFIDENCE,
        threshold: agreement.terms.min_reporting_threshold,
        cells: p.derived.analysis.outputs(&noised)?,
        querier_budget: BudgetView::default(),
        responder_budget,
        answered_at: tandem_agreement::format_rfc3339(now_ms() / 1000),
        responder_audience_version: receipt.audience_version,
        querier_internal: true,
        note: crate::analysis::QUERIER_INTERNAL_NOTE.to_string(),
        querier_outside_value_set: joined_columns(&p.request.querier_columns)
            .map(|c| (c, p.outside_value_set)),
        overlap_rates: if p.derived.analysis.name() == crate::analysis::overlap::Overlap.name() {
            Some(crate::analysis::overlap::rates(&noised, &p.my_sizes)?)
        } else {
            None
        },
        wall_s: started.elapsed().as_secs_f64(),
        options: p.options.clone(),
        details: analysis.derived(&noised, &p.options)?,
    })
}

/// The cache fingerprint of a query: the run's (`query_fingerprint`), plus the options when
/// there are any, so that a repeat with other options (another arm as the test arm) is not
/// answered with figures derived for the first ones. The analysis's
/// [`Analysis::local_options`] are left out: a repeat differing only in them is answered from
/// the stored run, derived anew ([`crate::analysis::rederive`]).
fn fingerprint(
    store: &Store,
    request: &RunRequest,
    agreement: &Agreement,
    analysis: &dyn Analysis,
    q: &Query,
) -> Result<String> {
    let base = query_fingerprint(store, request, &agreement.id().to_string())?;
    let local = analysis.local_options();
    let options: std::collections::BTreeMap<&String, &String> = q
        .options
        .iter()
        .filter(|(k, _)| !local.contains(&k.as_str()))
        .collect();
    if options.is_empty() {
        return Ok(base);
    }
    let v = serde_json::json!({"run": base, "options": options});
    Ok(crate::home::sha256_hex(v.to_string().as_bytes()))
}

fn complete_query(
    store_path: &Path,
    mut p: Box<PendingQuery>,
    call: PeerReply,
    peer_key: &VerifyingKey,
    started: Instant,
) -> Result<Report> {
    let mut store = Store::open(store_path)?;
    let outcome = read_answer(&mut store, &mut p, call, peer_key, started);
    let PendingQuery {
        agreement,
        peer,
        me,
        reservation,
        actor,
        query,
        ..
    } = *p;
    match outcome {
        Ok(mut report) => {
            report.querier_budget = budget_view(
                &store,
                &agreement,
                &me,
                reservation.run_id(),
                reservation.loss(),
            )?;
            let json = serde_json::to_string(&report)?;
            // What an auditor asks of every release: which cells, how many shown only as
            // "< threshold", the output's hash and who received it.
            let below = report.cells.iter().filter(|c| c.below_threshold).count();
            let details = serde_json::json!({
                "cells": report.cells.len(),
                "cells_below_threshold": below,
                "threshold": report.threshold,
            });
            reservation.release(&mut store, &json, json.as_bytes(), &actor, details)?;
            store_result(&mut store, &report, &query, &actor);
            Ok(report)
        }
        Err(e) => {
            let reservation_summary = ChargeSummary {
                run_id: reservation.run_id().to_string(),
                loss: reservation.loss(),
                peer,
            };
            // Our first message carries our noised bucket sizes: once it may have reached the
            // peer, the charge stands.
            let exposure = if e.code() == Code::PeerUnreachable {
                Exposure::NothingLeft
            } else {
                Exposure::MayHaveLeft
            };
            tracing::warn!(
                run = reservation.run_id(),
                code = e.code_str(),
                error = %e,
                "run failed"
            );
            reservation.abandon(&mut store, e.message(), exposure)?;
            Err(explain_charge(e, &reservation_summary, exposure))
        }
    }
}

/// Keeps a report for `tandem results` (its release is already recorded): a failure to store
/// it is logged, not returned, so the analyst still gets the numbers the budget paid for.
fn store_result(store: &mut Store, report: &Report, query: &Query, actor: &str) {
    if let Err(e) = crate::results::save(store, report, query, actor) {
        tracing::warn!(run = %report.run_id, error = %e, "could not store the result");
    }
}

/// This node's charge for a failed run, for the error's explanation.
struct ChargeSummary {
    run_id: String,
    loss: PrivacyLoss,
    peer: String,
}

/// Says in a failed run's error what became of this node's own charge: it stands once the first
/// message may have reached the peer (it carries this node's noised bucket sizes), else it is
/// released. Also under `details.querier_charge`: `run_id`, `epsilon`, `delta`, `stands`.
fn explain_charge(e: NodeError, charge: &ChargeSummary, exposure: Exposure) -> NodeError {
    let ChargeSummary { run_id, loss, peer } = charge;
    let stands = exposure == Exposure::MayHaveLeft;
    let note = if stands {
        format!(
            "this node's own charge for run {run_id} (ε {}, δ {:e}) stands: its first message, \
             with this node's noised bucket sizes, may have reached {peer}",
            loss.epsilon, loss.delta
        )
    } else {
        format!(
            "this node's own charge for run {run_id} (ε {}, δ {:e}) was released: nothing \
             reached {peer}",
            loss.epsilon, loss.delta
        )
    };
    e.note(note).with_detail(
        "querier_charge",
        serde_json::json!({
            "run_id": run_id,
            "epsilon": loss.epsilon,
            "delta": loss.delta,
            "stands": stands,
        }),
    )
}

/// The cell noise `(scale, T)` a run of `q` would carry (as its preview derives it): what a
/// model fitted from the run's cells assumes (`protocols/model-v1.md` §3). Free.
pub fn cell_noise(
    store: &Store,
    me: &str,
    analysis: &dyn Analysis,
    q: &Query,
) -> Result<tandem_dp::ShiftedLaplace> {
    let p = plan(store, me, analysis, q)?;
    let d = derive(
        &p.agreement,
        me,
        &p.peer,
        &p.request,
        [0; 16],
        Code::InvalidQuery,
    )?;
    Ok(release_params(&d).cell_noise)
}

#[cfg(test)]
mod tests {
    use tandem_testkit::{AgreementBuilder, PartySpec, store_active};

    use super::*;
    use crate::analysis::overlap::Overlap;

    /// Two columns of 1024 values each make 1025 × 1025 = 1 050 625 buckets on acme's side, over
    /// psi-ca-v1's 2²⁰ = 1 048 576 cells: the preview and the run refuse it as the caller's
    /// error, naming both numbers, and nothing reaches the ledger.
    #[test]
    fn too_many_cells_are_refused_before_a_charge() {
        let dir = tempfile::tempdir().expect("temp dir");
        let values: Vec<String> = (0..1024).map(|i| format!("v{i}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let (k1, k2) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let agreement = AgreementBuilder::new()
            .party(
                PartySpec::seeded("acme", 1)
                    .column("a", &values)
                    .column("b", &values)
                    .column("c", &values[..2]),
            )
            .party(PartySpec::seeded("shopx", 2).column("d", &values))
            .signed(&[("acme", &k1), ("shopx", &k2)]);
        let mut store = Store::open(dir.path()).expect("store");
        store_active(&mut store, &agreement);
        let query = |group_by: &[&str], peer: &[&str]| Query {
            agreement_id: agreement.id().to_string(),
            join_key: None,
            group_by: group_by.iter().map(|c| c.to_string()).collect(),
            peer_group_by: peer.iter().map(|c| c.to_string()).collect(),
            peer_value: None,
            epsilon: 1.0,
            fresh: true,
            options: Default::default(),
        };
        for (q, numbers) in [
            (query(&["a", "b"], &[]), ["1050625", "1048576"]),
            (query(&["a", "c"], &["d"]), ["3151875", "1048576"]),
        ] {
            let e = preview(&store, "acme", &Overlap, &q).expect_err("preview refuses");
            assert_eq!(e.code_str(), "invalid_query", "{e}");
            let e = prepare_query(dir.path(), &k1, "acme", &Overlap, &q, "test")
                .err()
                .expect("run refuses");
            assert_eq!(e.code_str(), "invalid_query", "{e}");
            for n in numbers {
                assert!(e.message().contains(n), "{n} missing: {e}");
            }
        }
        assert!(store.runs(None).expect("runs").is_empty());
        // Within the limit the preview counts the cells: (1024 + 1) × (2 + 1) × 1.
        let p = preview(&store, "acme", &Overlap, &query(&["b", "c"], &[])).expect("preview");
        assert_eq!(
            (p.cells, p.querier_buckets, p.responder_buckets),
            (3075, 3075, 1)
        );
    }
}
