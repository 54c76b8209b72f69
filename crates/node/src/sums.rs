//! Value columns and `psi-sum-v1` in the node (issue 13): the bounds an import clamps to, the
//! holder's per-run state between its PSI reply and the decryption request, and both sides of the
//! decryption call. Spec: `protocols/psi-sum-v1.md`, wire: `protocols/node-wire-v1.md` §sums.

use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_store::Store;

use crate::error::{NodeError, Result};

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tandem_dp::PrivacyLoss;
use tandem_psi::{CellCounts, RunParams};
use tandem_store::AuditEvent;
use tandem_sum::{CellSums, DiscreteLog, SumParams, SumQuerier, ValueHolder};

use crate::analysis::{Analysis, Inputs};
use crate::budget::{EntryFor, budget_view, ledger_entry};
use crate::error::Code;
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::run::{Derived, active_agreement};
use crate::state::{Answer, NodeState, blocking};
use crate::wire::{Envelope, MAX_FRAME_JSON, RunRequest, SignedHead, frame, now_ms, unframe};

/// The bound `U` to import value column `column` under, from the agreements this node holds
/// (`[parties.values]` of this node's party, `protocols/agreement-v1.md` §2.3a). Errors (422
/// `invalid_query`): no agreement names the column for this node, or several name different
/// bounds (then give it as `--value COLUMN=U`).
pub fn import_bound(store: &Store, me: &str, column: &str) -> Result<u32> {
    let mut bounds = std::collections::BTreeSet::new();
    for stored in store.agreements()? {
        let Ok(agreement) = serde_json::from_str::<Agreement>(&stored.doc_json) else {
            continue;
        };
        if let Some(v) = agreement.terms.party(me).and_then(|p| p.values.get(column)) {
            bounds.insert(v.bound);
        }
    }
    let listed = || {
        bounds
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match bounds.len() {
        1 => Ok(bounds.into_iter().next().unwrap_or(1)),
        0 => Err(NodeError::invalid_query(format!(
            "no agreement of this node ({me}) lists the value column {column:?} under \
             [parties.values]; give its bound as --value {column}=U"
        ))),
        _ => Err(NodeError::invalid_query(format!(
            "this node's agreements give the value column {column:?} different bounds ({}); \
             choose one with --value {column}=U",
            listed()
        ))),
    }
}

/// Share of a value analysis's ε given to the sums (charged to the value holder, the responder);
/// the rest goes to the `psi-ca-v1` counts, split between the parties as the analysis says
/// (`protocols/psi-sum-v1.md` §6.1).
pub const SUM_SHARE: f64 = 0.5;
/// The value holder's decryption endpoint (`protocols/node-wire-v1.md` §sums).
pub const SUM_PATH: &str = "/v1/sum/decrypt";
/// Signature kind of a decryption request.
pub const SUM_REQUEST: &str = "request POST /v1/sum/decrypt";
/// Signature kind of a decryption reply.
pub const SUM_RESPONSE: &str = "response POST /v1/sum/decrypt";
/// Key in the responder's receipt JSON giving the length of the values message appended to its
/// PSI reply.
pub const VALUES_BYTES: &str = "psi_sum_values_bytes";
/// How long a value holder keeps a run's key waiting for the decryption request.
pub const HOLDER_TTL: Duration = Duration::from_secs(600);

/// What the value holder returns beside its decryption reply (the JSON part of the frame,
/// `protocols/node-wire-v1.md` §sums): what it charged for the sums and its ledger after the
/// charge, signed over the sums' ledger run id [`sum_run_id`], so the querier's view of the
/// holder's ledger stays current after a value run as after a count run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SumReceipt {
    /// ε/δ the holder charged for the sums.
    pub charged: PrivacyLoss,
    /// The holder's ledger after the charge, signed.
    pub head: SignedHead,
}

/// The ledger run id of a run's sums: the count run's id with `-sum` (both sides' ledgers and
/// the signed head name it).
pub fn sum_run_id(run_id: &str) -> String {
    format!("{run_id}-sum")
}

/// What a value analysis sums: the responder's value column, its bound `U` and squares flag
/// from the agreement, and the ε and δ the sums spend.
#[derive(Clone, Debug, PartialEq)]
pub struct SumPlan {
    /// The value column (of the responder).
    pub column: String,
    /// Its unit, from the agreement.
    pub unit: String,
    /// `U`.
    pub bound: u32,
    /// Whether sums of squares are released too.
    pub squares: bool,
    /// ε of the sums (`SUM_SHARE` of the request's ε).
    pub epsilon: f64,
    /// δ of the sums (the run's δ).
    pub delta: f64,
}

/// The sums a request asks for, checked against the agreement: at most one value column, the
/// responder's, listed under its `[parties.values]`. `None` for a count analysis.
pub fn plan(
    agreement: &Agreement,
    responder: &str,
    analysis: &dyn Analysis,
    inputs: &Inputs,
    req: &RunRequest,
) -> Result<Option<SumPlan>> {
    if !inputs.querier_values.is_empty() {
        return Err(NodeError::invalid_query(format!(
            "{} reads the querier's value columns; psi-sum-v1 sums the responder's only",
            analysis.name()
        )));
    }
    let column = match inputs.responder_values.as_slice() {
        [] => return Ok(None),
        [c] if c.is_empty() => {
            return Err(NodeError::invalid_query(format!(
                "{} sums one of the peer's value columns: name it with --peer-value",
                analysis.name()
            )));
        }
        [c] => c,
        _ => {
            return Err(NodeError::invalid_query(
                "one value column per run (psi-sum-v1 sums one column)",
            ));
        }
    };
    let value = agreement.value_column(responder, column)?;
    Ok(Some(SumPlan {
        column: column.clone(),
        unit: value.unit.clone(),
        bound: value.bound,
        squares: value.squares,
        epsilon: req.epsilon * SUM_SHARE,
        delta: req.delta,
    }))
}

/// The `psi-sum-v1` parameters of a run, as both sides derive them (spec §2).
fn sum_params(plan: &SumPlan, psi: &RunParams, psi_reply: &[u8]) -> Result<SumParams> {
    let cells = u32::try_from(u64::from(psi.querier_buckets) * u64::from(psi.responder_buckets))
        .map_err(|_| NodeError::invalid_query("too many cells"))?;
    SumParams::for_epsilon(
        psi.agreement_id,
        psi.run_id,
        Sha256::digest(psi_reply).into(),
        plan.column.clone(),
        cells,
        plan.bound,
        plan.squares,
        plan.epsilon,
        plan.delta,
    )
    .map_err(|e| {
        NodeError::invalid_query(format!(
            "psi-sum-v1 parameters for {:?} (U = {}{}, sums' ε {}): {e}; a smaller U (a coarser \
             unit{}) or a larger ε fits",
            plan.column,
            plan.bound,
            if plan.squares { ", with squares" } else { "" },
            plan.epsilon,
            if plan.squares {
                "; the squares' noise grows with U²"
            } else {
                ""
            },
        ))
    })
}

/// Zero sums (and squares when `plan` has them) of every cell under the run's parameters: what
/// [`crate::analysis::check_options`] derives figures from before anything is charged.
pub fn placeholder(plan: &SumPlan, psi: &RunParams) -> Result<(SumParams, CellSums)> {
    let params = sum_params(plan, psi, &[])?;
    let zeros = vec![0; params.cells as usize];
    let squares = plan.squares.then(|| zeros.clone());
    Ok((
        params,
        CellSums {
            sums: zeros,
            squares,
        },
    ))
}

/// The holder's loss for the sums of a run and its zCDP ρ (`ε²/2` per mechanism).
fn holder_cost(params: &SumParams) -> Result<(PrivacyLoss, f64)> {
    let loss = tandem_sum::accounting::holder_loss(params)
        .map_err(|e| NodeError::internal(format!("psi-sum-v1 accounting: {e}")))?;
    let mut rho = 0.0;
    let sum_eps = params
        .sum_noise
        .epsilon(params.value_bound)
        .map_err(|e| NodeError::internal(e.to_string()))?;
    rho += sum_eps * sum_eps / 2.0;
    if let Some(dist) = &params.square_noise {
        let u2 = params.value_bound.saturating_mul(params.value_bound);
        let e = dist
            .epsilon(u2)
            .map_err(|e| NodeError::internal(e.to_string()))?;
        rho += e * e / 2.0;
    }
    Ok((loss, rho))
}

/// `loss` (the responder's count loss) composed with the sums' loss of a value analysis: what
/// the responder's per-query cap must cover.
pub fn with_sum_loss(derived: &Derived, loss: PrivacyLoss) -> Result<PrivacyLoss> {
    match &derived.sum {
        None => Ok(loss),
        Some(plan) => {
            let (sums, _) = holder_cost(&sum_params(plan, &derived.params, &[])?)?;
            Ok(loss.compose(sums))
        }
    }
}

/// A value holder's run waiting for its decryption request.
struct HeldRun {
    holder: ValueHolder,
    expires: Instant,
    agreement_id: String,
    peer: String,
    join_key: String,
    column: String,
}

/// Held runs by (node name, run id): in memory only, so a restart forgets them (the querier's
/// request is then refused and its run fails).
static HELD: LazyLock<Mutex<HashMap<(String, String), HeldRun>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn held() -> std::sync::MutexGuard<'static, HashMap<(String, String), HeldRun>> {
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Holder side, after its PSI reply (spec §4.1): reads this node's values of the plan's column,
/// puts each point's value in reply order (0 for junk and injected points), encrypts them under a
/// fresh key kept in memory for [`HOLDER_TTL`], and returns the values message. Errors stay
/// local (the caller answers the peer with an opaque refusal).
#[allow(clippy::too_many_arguments)]
pub fn start_holder(
    store: &Store,
    me: &str,
    peer: &str,
    run_id: &str,
    join_key: &str,
    derived: &Derived,
    plan: &SumPlan,
    items: &[Vec<[u8; 32]>],
    psi_reply: &[u8],
    owners: &[Option<(u32, usize)>],
) -> Result<Vec<u8>> {
    let kind: tandem_identity::IdKind = join_key
        .parse()
        .map_err(|e| NodeError::invalid_query(format!("{e}")))?;
    let stored = store.member_values("default", kind, &plan.column)?;
    if stored.bound > plan.bound {
        return Err(NodeError::invalid_query(format!(
            "value column {:?} was imported under bound {} but the agreement sets U = {}: \
             re-import it with --value {}={}",
            plan.column, stored.bound, plan.bound, plan.column, plan.bound
        )));
    }
    let values = holder_values(owners, items, &stored.values);
    let params = sum_params(plan, &derived.params, psi_reply)?;
    let (holder, msg) = ValueHolder::start(
        params,
        &values,
        &tandem_sum::Limits::default(),
        &mut rand::rng(),
    )
    .map_err(|e| NodeError::internal(format!("psi-sum-v1: {e}")))?;
    let mut map = held();
    let now = Instant::now();
    map.retain(|_, h| h.expires > now);
    map.insert(
        (me.to_string(), run_id.to_string()),
        HeldRun {
            holder,
            expires: now + HOLDER_TTL,
            agreement_id: derived
                .params
                .agreement_id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            peer: peer.to_string(),
            join_key: join_key.to_string(),
            column: plan.column.clone(),
        },
    );
    Ok(msg)
}

/// The value of every responder point in reply order (psi-sum-v1 §4.1 step 2): the member's
/// stored value for a real item, 0 for junk and injected points (and for a member without one).
fn holder_values(
    owners: &[Option<(u32, usize)>],
    items: &[Vec<[u8; 32]>],
    values: &HashMap<[u8; 32], u32>,
) -> Vec<u32> {
    owners
        .iter()
        .map(|o| {
            o.and_then(|(g, i)| items.get(g as usize)?.get(i))
                .and_then(|d| values.get(d).copied())
                .unwrap_or(0)
        })
        .collect()
}

/// The number of responder points in a PSI reply, from the querier's view of it: every responder
/// bucket holds its noised size plus `2T` injected points per querier bucket (psi-ca-v1 §4.2).
fn expected_points(psi: &RunParams, counts: &CellCounts) -> u64 {
    let minimum = 2 * u64::from(psi.cell_noise.offset) * u64::from(psi.querier_buckets);
    counts
        .responder_bucket_sizes_noised
        .iter()
        .map(|&n| n + minimum)
        .sum()
}

/// Querier side: splits the responder's answer into its PSI reply and, for a value analysis, the
/// values message whose length the receipt JSON gives under [`VALUES_BYTES`] (502
/// `bad_peer_answer` if it is missing or too long).
pub fn split_reply<'b>(
    receipt: &serde_json::Value,
    payload: &'b [u8],
    sums: bool,
) -> Result<(&'b [u8], Option<&'b [u8]>)> {
    if !sums {
        return Ok((payload, None));
    }
    let n = receipt[VALUES_BYTES]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= payload.len())
        .ok_or_else(|| {
            NodeError::bad_peer_answer("the peer's answer carries no psi-sum-v1 values message")
        })?;
    let (reply, values) = payload.split_at(payload.len() - n);
    Ok((reply, Some(values)))
}

/// What the querier's side of the sums needs from its run.
pub struct SumCall<'a> {
    /// The agreement.
    pub agreement: &'a Agreement,
    /// The peer (value holder).
    pub peer: &'a str,
    /// This node.
    pub me: &'a str,
    /// This node's signing key.
    pub key: &'a SigningKey,
    /// The run id.
    pub run_id: [u8; 16],
    /// The PSI run's parameters.
    pub psi: &'a RunParams,
    /// The sums to ask for.
    pub plan: &'a SumPlan,
    /// The responder's PSI reply.
    pub psi_reply: &'a [u8],
    /// Its values message.
    pub values: &'a [u8],
    /// The matched responder points of every cell.
    pub lists: &'a [Vec<usize>],
    /// The run's noised counts.
    pub counts: &'a CellCounts,
}

/// Querier side (spec §4.2, §4.4): builds the decryption request from the values message and the
/// match lists, sends it signed to the holder's [`SUM_PATH`], verifies the signed reply and the
/// holder's signed ledger head (502 `bad_peer_answer` otherwise) and solves the sums. Runs on a
/// blocking thread of the Tokio runtime (it blocks on the call).
pub fn query_sums(
    c: &SumCall<'_>,
    peer_key: &VerifyingKey,
) -> Result<(SumParams, CellSums, SumReceipt)> {
    let params = sum_params(c.plan, c.psi, c.psi_reply)?;
    let expected = expected_points(c.psi, c.counts);
    let bad = |e: tandem_sum::SumError| NodeError::bad_peer_answer(format!("psi-sum-v1: {e}"));
    let (querier, request) = SumQuerier::request(
        params.clone(),
        c.values,
        usize::try_from(expected).unwrap_or(usize::MAX),
        c.lists,
        &tandem_sum::Limits::default(),
        &mut rand::rng(),
    )
    .map_err(bad)?;
    let (target, _) = crate::querier::peer_target(c.agreement, c.peer)?;
    let run_hex = hex::encode(c.run_id);
    let agreement_id = c.agreement.id().to_string();
    let env = Envelope {
        agreement_id: agreement_id.clone(),
        run_id: run_hex.clone(),
        sender: c.me.to_string(),
        timestamp_ms: now_ms(),
    };
    let headers = env.sign(SUM_REQUEST, &request, c.key);
    let max = 64 + 96 * params.cells as usize + 4 + MAX_FRAME_JSON;
    let resp = tokio::runtime::Handle::current()
        .block_on(target.post(SUM_PATH, &headers, request, HOLDER_TTL, max))
        .map_err(|e| NodeError::new(Code::PeerFailed, e))?;
    if !resp.status.is_success() {
        return Err(crate::querier::refused_answer(c.peer, &resp));
    }
    crate::querier::verify_answer(
        &resp,
        (c.peer, peer_key),
        (&run_hex, &agreement_id),
        SUM_RESPONSE,
        "decryption reply",
    )?;
    let (receipt, reply) =
        unframe(&resp.body, MAX_FRAME_JSON).map_err(|e| NodeError::bad_peer_answer(e.message()))?;
    let receipt: SumReceipt = serde_json::from_value(receipt).map_err(|e| {
        NodeError::bad_peer_answer(format!("the peer's sum receipt does not parse: {e}"))
    })?;
    receipt
        .head
        .verify(&agreement_id, &sum_run_id(&run_hex), peer_key)
        .map_err(|e| NodeError::bad_peer_answer(e.message()))?;
    let dlog = DiscreteLog::cached(DiscreteLog::DEFAULT_BABY_BITS).map_err(bad)?;
    let sums = querier.finish(reply, &dlog).map_err(bad)?;
    Ok((params, sums, receipt))
}

/// `POST /v1/sum/decrypt`: the value holder's decryption endpoint.
pub async fn decrypt_handler(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (env, sig) = Envelope::from_headers(&headers)?;
    let st = state.clone();
    let (env, payload) = blocking(move || decrypt(&st.home, env, &sig, &body)).await?;
    let sig_headers = env.sign(SUM_RESPONSE, &payload, &state.home.key);
    let mut resp = payload.into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// Holder side (spec §4.3): authenticates the request, takes the run's held key (at most one
/// decryption per run), charges the sums' loss to this node's ledger **before** decrypting (the
/// one release path), decrypts with noise and releases the reply; refusals and failures are
/// audited here and reach the peer as opaque `refused`.
pub fn decrypt(
    home: &Home,
    env: Envelope,
    sig: &Signature,
    body: &[u8],
) -> Result<(Envelope, Vec<u8>)> {
    let me = home.config.name.as_str();
    let mut store = home.store()?;
    let (agreement, peer) = active_agreement(&store, &env.agreement_id, me, Code::Refused)?;
    if env.sender != peer {
        return Err(NodeError::refused(format!(
            "{} is not the peer in this agreement",
            env.sender
        )));
    }
    let peer_key = crate::wire::verifying_key(
        &agreement
            .terms
            .party(&peer)
            .ok_or_else(|| NodeError::refused("peer missing"))?
            .signing_key,
    )?;
    env.verify(SUM_REQUEST, body, sig, &peer_key, now_ms())?;
    let opaque = || {
        NodeError::new(
            Code::Refused,
            "the value holder could not answer this decryption request; the reason stays in its log",
        )
    };
    let taken = held().remove(&(me.to_string(), env.run_id.clone()));
    let run = match taken {
        Some(h)
            if h.expires > Instant::now()
                && h.agreement_id == env.agreement_id
                && h.peer == peer =>
        {
            h
        }
        _ => {
            store.append_audit(
                AuditEvent::now(
                    format!("peer:{peer}"),
                    "query.refused",
                    serde_json::json!({"run_id": env.run_id, "role": "value_holder", "reason": "no run awaiting decryption (unknown, expired or already decrypted)", "code": "refused"}),
                )
                .with_agreement(&env.agreement_id),
            )?;
            return Err(opaque());
        }
    };
    let (loss, rho) = holder_cost(run.holder.params())?;
    let actor = format!("peer:{peer}");
    let sum_run_id = sum_run_id(&env.run_id);
    let entry = ledger_entry(
        &agreement,
        EntryFor {
            party: me,
            role: "responder",
            run_id: &sum_run_id,
            actor: &actor,
            params_json: serde_json::json!({"protocol": "psi-sum-v1", "column": run.column, "run_id": env.run_id}).to_string(),
            join_key: &run.join_key,
            rho,
        },
        loss,
    )
    .map_err(|e| NodeError::refused(e.message()))?;
    let reservation = Reservation::charge(&mut store, &entry, me)?;
    let cells = run.holder.params().cells;
    let reply = match run.holder.decrypt(body, &mut reservation.noise()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %peer, error = %e, "refused a decryption request");
            reservation.abandon(&mut store, &e.to_string(), Exposure::NothingLeft)?;
            return Err(opaque());
        }
    };
    reservation.release(
        &mut store,
        &serde_json::json!({"protocol": "psi-sum-v1", "cells": cells}).to_string(),
        &reply,
        &actor,
        serde_json::json!({"role": "value_holder", "protocol": "psi-sum-v1", "column": run.column, "cells": cells}),
    )?;
    tracing::info!(run = %env.run_id, peer = %peer, epsilon = loss.epsilon, cells, "decrypted a run's sums");
    let budget = budget_view(&store, &agreement, me, &sum_run_id, loss)?;
    let receipt = SumReceipt {
        charged: loss,
        head: SignedHead::sign(budget, &env.agreement_id, &sum_run_id, &home.key)?,
    };
    Ok((
        Envelope {
            agreement_id: env.agreement_id,
            run_id: env.run_id,
            sender: me.to_string(),
            timestamp_ms: now_ms(),
        },
        frame(&serde_json::to_value(&receipt)?, &reply),
    ))
}

#[cfg(test)]
mod tests {
    use tandem_psi::{Limits, Querier, RunParams};
    use tandem_testkit::noise::NoNoise;

    use super::*;

    /// The node's glue between psi-ca-v1 and psi-sum-v1 without noise: the holder's values in
    /// reply order (from the responder's owners), the querier's match lists and its count of the
    /// responder's points give the exact planted sums per cell, injected matches adding 0.
    #[test]
    fn exact_sums_through_the_psi_hooks_without_noise() {
        let digest = |i: u32| {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_le_bytes());
            d[31] = 7;
            d
        };
        // A: 0..600 in 2 buckets (i % 2); B: 300..900 in 3 buckets (i % 3), value i % 1001.
        let mut a = vec![Vec::new(); 2];
        (0..600).for_each(|i| a[(i % 2) as usize].push(digest(i)));
        let mut b = vec![Vec::new(); 3];
        let mut stored = HashMap::new();
        for i in 300..900u32 {
            b[(i % 3) as usize].push(digest(i));
            stored.insert(digest(i), i % 1001);
        }
        let mut truth = vec![0i64; 6];
        for i in 300..600u32 {
            truth[(i % 2 * 3 + i % 3) as usize] += i64::from(i % 1001);
        }
        let psi = RunParams::for_epsilon([3; 32], "email/x", [4; 16], 2, 3, 0.25, 1.0, 1e-9)
            .expect("psi params");
        let mut rng = rand::rng();
        let (querier, query) =
            Querier::start(psi.clone(), &a, &mut NoNoise, &mut rng).expect("query");
        let (reply, owners) = tandem_psi::respond_with_owners(
            &psi,
            &b,
            &query,
            &Limits::default(),
            &mut NoNoise,
            &mut rng,
        )
        .expect("reply");
        let (counts, lists) = querier
            .finish_with_matches(&reply, &Limits::default())
            .expect("finish");
        assert_eq!(expected_points(&psi, &counts), owners.len() as u64);

        let plan = SumPlan {
            column: "revenue_cents".into(),
            unit: "cents".into(),
            bound: 1000,
            squares: true,
            epsilon: 1.0,
            delta: 1e-9,
        };
        let params = sum_params(&plan, &psi, &reply).expect("sum params");
        let values = holder_values(&owners, &b, &stored);
        let limits = tandem_sum::Limits::default();
        let (holder, msg) =
            ValueHolder::start(params.clone(), &values, &limits, &mut rng).expect("values");
        let (sq, request) = SumQuerier::request(
            params,
            &msg,
            expected_points(&psi, &counts) as usize,
            &lists,
            &limits,
            &mut rng,
        )
        .expect("request");
        let answer = holder.decrypt(&request, &mut NoNoise).expect("decrypt");
        let dlog = DiscreteLog::cached(DiscreteLog::DEFAULT_BABY_BITS).expect("table");
        let sums = sq.finish(&answer, &dlog).expect("sums");
        assert_eq!(sums.sums, truth);
        let squares: Vec<i64> = {
            let mut s = vec![0i64; 6];
            for i in 300..600u32 {
                s[(i % 2 * 3 + i % 3) as usize] += i64::from(i % 1001).pow(2);
            }
            s
        };
        assert_eq!(sums.squares, Some(squares));
    }
}
