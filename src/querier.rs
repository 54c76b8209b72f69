//! The querier's side of an overlap query: check it against the agreement and both parties'
//! caps, answer from the cache when the same query ran on unchanged data, otherwise charge this
//! node's ledger, send the first PSI message to the peer, verify its signed answer, finish and
//! record. Also the free preview of a query's cost and precision.

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::{OpenDpNoise, PrivacyLoss};
use tandem_psi::{Limits, RunParams};
use tandem_store::{AuditEvent, NewRun, Store};

use crate::home::Home;
use crate::ledger_head::{BudgetView, SignedHead, budget_view};
use crate::overlap::{
    OverlapQuery, OverlapReport, Receipt, RunOpening, RunRequest, active_agreement, bucket_labels,
    budget_period_start, cells, check_request, explain, load_buckets, new_run, query_fingerprint,
};

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
    /// Who asked (the result is released to them).
    actor: String,
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
    let delta = crate::overlap::run_delta(&agreement);
    let request = RunRequest {
        protocol: "psi-ca-v1".into(),
        join_key,
        querier_column: q.group_by.clone(),
        responder_column: q.peer_group_by.clone(),
        epsilon: q.epsilon,
        delta,
        identity_rules: tandem_identity::RULES_VERSION.to_string(),
    };
    check_request(&agreement, me, &peer, &request)?;
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
            tandem_psi::Querier::start(params.clone(), &items, &mut OpenDpNoise, &mut rand::rng())?;
        let head = SignedHead::sign(
            budget_view(&store, &agreement, me, loss)?,
            &id,
            &run.run_id,
            home_key,
        )?;
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
        actor: actor.to_string(),
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
        actor,
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
            // What an auditor asks of every release: which cells, how many shown only as
            // "< threshold", the output's hash and who received it.
            let below = report.cells.iter().filter(|c| c.below_threshold).count();
            let details = serde_json::json!({
                "run_id": run_hex,
                "cells": report.cells.len(),
                "cells_below_threshold": below,
                "threshold": report.threshold,
                "output_sha256": digest,
                "recipient": actor,
            });
            store.append_audit(
                AuditEvent::now(&actor, "result.released", details)
                    .with_agreement(&report.agreement_id),
            )?;
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
