//! The querier's side of a run, for any registered analysis: check the query against the
//! agreement and both parties' caps, answer from the cache when the same query ran on unchanged
//! data, otherwise charge this node's ledger (a [`Reservation`]), send the first PSI message to
//! the peer, verify its signed answer, finish and release. Also the free preview of a query's
//! cost and precision.

use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::PrivacyLoss;
use tandem_psi::Limits;
use tandem_store::{AuditEvent, NewRun, Store};

use crate::analysis::{Analysis, NoisedCells, Query, Report};
use crate::budget::{EntryFor, budget_view, epsilon_left, ledger_entry, run_delta};
use crate::client::{CallError, Peer, Response};
use crate::error::{Code, NodeError, PeerAnswer, Result};
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::run::{Derived, active_agreement, derive, load_buckets, query_fingerprint};
use crate::wire::{
    BudgetView, Envelope, MAX_FRAME_JSON, PROTOCOL, PSI_PATH, PSI_REQUEST, PSI_RESPONSE, Receipt,
    RunOpening, RunRequest, SignedHead, frame, now_ms, unframe, verifying_key,
};

/// How long the querier waits for the responder's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1800);

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
    // Everything up to the first message runs off the async runtime (opendp is not Send).
    let prepared =
        blocking(move || prepare_query(&store_path, &key, &me, analysis, &q, &actor_s)).await?;
    let pending = match prepared {
        Prepared::Cached(report) => return Ok(*report),
        Prepared::Fresh(p) => p,
    };
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
    let (body, headers) = pending.signed_request(&home.key);
    let call = peer
        .post(
            PSI_PATH,
            &headers,
            body,
            ANSWER_TIMEOUT,
            home.config.max_message_bytes,
        )
        .await;
    let store_path = home.store_path();
    blocking(move || complete_query(&store_path, pending, call, &peer_key, started)).await
}

/// The peer's address, TLS pin and signing key from the agreement.
fn peer_target(agreement: &Agreement, peer: &str) -> Result<(Peer, VerifyingKey)> {
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
    querier: Option<tandem_psi::Querier>,
    message: Vec<u8>,
    opening: serde_json::Value,
    /// Who asked (the result is released to them).
    actor: String,
    /// This node's signing key (a value analysis signs a second call).
    key: SigningKey,
    /// This node's members counted in `other` for being outside the public value set (local).
    outside_value_set: u64,
}

impl PendingQuery {
    /// The run id.
    pub fn run_id(&self) -> [u8; 16] {
        self.derived.params.run_id
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
    let (agreement, peer) = active_agreement(store, &q.agreement_id, me, Code::InvalidQuery)?;
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
        protocol: PROTOCOL.into(),
        analysis: analysis.name().into(),
        join_key,
        querier_column: q.group_by.clone(),
        responder_column: q.peer_group_by.clone(),
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Preview {
    /// The analysis.
    pub analysis: String,
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
    let fingerprint = query_fingerprint(store, &p.request, &p.agreement.id().to_string())?;
    let querier_cost = tandem_psi::accounting::querier_loss(&d.params)?;
    let responder_cost =
        crate::sums::with_sum_loss(&d, tandem_psi::accounting::responder_loss(&d.params)?)?;
    // The same per-query caps the run checks, so a preview never says "fine" to a query that
    // would be refused.
    crate::budget::check_per_query_cap(&p.agreement, me, querier_cost)?;
    crate::budget::check_per_query_cap(&p.agreement, &p.peer, responder_cost)?;
    Ok(Preview {
        analysis: analysis.name().to_string(),
        cached: !q.fresh && store.cached_result(&fingerprint)?.is_some(),
        cells: d.grid.len(),
        querier_cost,
        responder_cost,
        half_width_95: d
            .params
            .cell_noise
            .half_width(1.0 - crate::analysis::CONFIDENCE)?,
        querier_epsilon_left: epsilon_left(store, &p.agreement, me)?,
        responder_per_query_cap: p
            .agreement
            .terms
            .party(&p.peer)
            .map(|p| p.budget.epsilon_per_query)
            .unwrap_or_default(),
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
        let details = serde_json::json!({"run_id": cached.run_id, "cached": true, "output_sha256": cached.output_sha256});
        store.append_audit(AuditEvent::now(actor, "result.read", details).with_agreement(&id))?;
        report.cached = true;
        for b in [&mut report.querier_budget, &mut report.responder_budget] {
            b.epsilon_spent = 0.0;
            b.delta_spent = 0.0;
        }
        return Ok(Prepared::Cached(Box::new(report)));
    }
    let reservation = Reservation::charge(&mut store, &entry, me)?;
    let started = (|| -> Result<_> {
        let buckets = load_buckets(
            &store,
            &agreement,
            me,
            &request.join_key,
            request.querier_column.as_deref(),
        )?;
        let (querier, message) = tandem_psi::Querier::start(
            derived.params.clone(),
            &buckets.items,
            &mut reservation.noise(),
            &mut rand::rng(),
        )?;
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
        Ok((querier, message, opening, buckets.outside_value_set))
    })();
    let (querier, message, opening, outside_value_set) = match started {
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
        querier: Some(querier),
        message,
        opening,
        actor: actor.to_string(),
        key: key.clone(),
        outside_value_set,
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
    let fingerprint = query_fingerprint(store, &plan.request, &plan.agreement.id().to_string())?;
    let run_id: [u8; 16] = rand::random();
    let derived = derive(
        &plan.agreement,
        me,
        &plan.peer,
        &plan.request,
        run_id,
        Code::InvalidQuery,
    )?;
    let loss = tandem_psi::accounting::querier_loss(&derived.params)?;
    let rho = tandem_psi::accounting::querier_rho(&derived.params)?;
    // The peer must be able to afford its side under its per-query cap before we spend ours.
    let peer_loss = crate::sums::with_sum_loss(
        &derived,
        tandem_psi::accounting::responder_loss(&derived.params)?,
    )?;
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

/// Checks the peer's answer and finishes the PSI run: the report without this node's budget.
fn read_answer(
    store: &mut Store,
    p: &mut PendingQuery,
    call: std::result::Result<Response, CallError>,
    peer_key: &VerifyingKey,
    started: Instant,
) -> Result<Report> {
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
        let body = serde_json::from_slice::<serde_json::Value>(&resp.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|v| v[name].as_str().map(str::to_string))
        };
        let msg =
            field("error").unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
        let answer = PeerAnswer {
            peer: peer.clone(),
            status: resp.status.as_u16(),
            code: field("code"),
        };
        let refused =
            NodeError::peer_refused(answer, format!("{peer} answered {}: {msg}", resp.status));
        // The peer's details (which cap and what is left, both clocks) are passed through.
        return Err(match body.as_ref().map(|v| &v["details"]) {
            Some(d) if d.is_object() => refused.with_details(d.clone()),
            _ => refused,
        });
    }
    let (env, sig) = Envelope::from_headers(&resp.headers)
        .map_err(|e| NodeError::bad_peer_answer(e.message()))?;
    if env.run_id != run_hex
        || env.agreement_id != agreement.id().to_string()
        || &env.sender != peer
    {
        return Err(NodeError::bad_peer_answer(
            "the peer's answer is bound to another run, agreement or sender",
        ));
    }
    let bad = |e: NodeError| NodeError::bad_peer_answer(e.message());
    env.verify(PSI_RESPONSE, &resp.body, &sig, peer_key, now_ms())
        .map_err(bad)?;
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
    let (counts, sums) = match (&p.derived.sum, values) {
        (Some(plan), Some(values)) => {
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
            (counts, Some(sums))
        }
        _ => (
            querier
                .finish(reply, &Limits::default())
                .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v1: {e}")))?,
            None,
        ),
    };
    let noised = NoisedCells {
        grid: &p.derived.grid,
        params: &p.derived.params,
        counts: &counts,
        threshold: agreement.terms.min_reporting_threshold,
        sums: sums.as_ref().map(|(params, sums)| (params, sums)),
    };
    Ok(Report {
        analysis: p.derived.analysis.name().to_string(),
        agreement_id: agreement.id().to_string(),
        purpose: agreement.terms.purpose.clone(),
        run_id: run_hex,
        cached: false,
        querier: p.me.clone(),
        responder: peer.clone(),
        join_key: p.request.join_key.clone(),
        querier_column: p.request.querier_column.clone(),
        responder_column: p.request.responder_column.clone(),
        epsilon: p.request.epsilon,
        confidence: crate::analysis::CONFIDENCE,
        threshold: agreement.terms.min_reporting_threshold,
        cells: p.derived.analysis.outputs(&noised)?,
        querier_budget: BudgetView::default(),
        responder_budget: receipt.head.budget,
        querier_outside_value_set: p
            .request
            .querier_column
            .as_ref()
            .map(|c| (c.clone(), p.outside_value_set)),
        wall_s: started.elapsed().as_secs_f64(),
    })
}

fn complete_query(
    store_path: &Path,
    mut p: Box<PendingQuery>,
    call: std::result::Result<Response, CallError>,
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
