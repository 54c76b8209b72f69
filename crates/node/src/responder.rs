//! The responder's side of a run, for any registered analysis: authenticate the querier's signed
//! message, check it against the agreement and this node's caps (refusals are audited), charge
//! the ledger (a [`Reservation`]), answer, and sign the receipt with this node's ledger head.
//! Transport-free: the server hands in the parsed envelope and the body.

use ed25519_dalek::Signature;
use tandem_agreement::Agreement;
use tandem_psi::Limits;
use tandem_store::{AuditEvent, NewRun, Store};

use crate::budget::{EntryFor, budget_view, ledger_entry};
use crate::error::{Code, NodeError, Result};
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::run::{Derived, active_agreement, derive, load_buckets};
use crate::wire::{
    Envelope, MAX_FRAME_JSON, PSI_REQUEST, Receipt, RunOpening, RunRequest, SignedHead, frame,
    now_ms, parse_run_id, unframe,
};

/// A run the responder has authenticated and checked against the agreement, not yet charged.
struct CheckedRun {
    agreement: Agreement,
    peer: String,
    request: RunRequest,
    derived: Derived,
    querier_head: SignedHead,
    /// The ledger entry to reserve (per-query cap already checked).
    ledger_entry: NewRun,
}

/// The header-only part of the checks, before a possibly large body is read: a fresh timestamp
/// and an active agreement naming the sender as this node's peer. Everything is checked again,
/// with the signature over the body, by [`respond`].
pub fn precheck(home: &Home, env: &Envelope) -> Result<()> {
    env.check_fresh(now_ms())?;
    let store = home.store()?;
    let (_, peer) = active_agreement(&store, &env.agreement_id, &home.config.name, Code::Refused)?;
    if env.sender != peer {
        return Err(NodeError::refused(format!(
            "{} is not the peer in this agreement",
            env.sender
        )));
    }
    Ok(())
}

/// Authenticates the caller and checks the run against the agreement and the per-query cap;
/// returns the checked run and the PSI query inside the body.
fn check_run<'b>(
    me: &str,
    store: &Store,
    env: &Envelope,
    sig: &Signature,
    body: &'b [u8],
) -> Result<(CheckedRun, &'b [u8])> {
    let (agreement, peer) = active_agreement(store, &env.agreement_id, me, Code::Refused)?;
    if env.sender != peer {
        return Err(NodeError::refused(format!(
            "{} is not the peer in this agreement",
            env.sender
        )));
    }
    let peer_key = agreement
        .terms
        .party(&peer)
        .ok_or_else(|| NodeError::refused("peer missing"))?
        .verifying_key()
        .map_err(NodeError::refused)?;
    env.verify(PSI_REQUEST, body, sig, &peer_key, now_ms())?;
    let (opening, query) = unframe(body, MAX_FRAME_JSON)?;
    let opening: RunOpening = serde_json::from_value(opening)
        .map_err(|e| NodeError::bad_request(format!("the run opening does not parse: {e}")))?;
    opening
        .querier_head
        .verify(&env.agreement_id, &env.run_id, &peer_key)?;
    let request = opening.request;
    let run_id = parse_run_id(&env.run_id)?;
    let derived = derive(&agreement, &peer, me, &request, run_id, Code::Refused)?;
    let loss = tandem_psi::accounting::responder_loss(&derived.params)?;
    // The per-query cap covers the run's counts and, for a value analysis, its sums.
    crate::budget::check_per_query_cap(&agreement, me, crate::sums::with_sum_loss(&derived, loss)?)
        .map_err(|e| NodeError::refused(e.message()))?;
    let rho = tandem_psi::accounting::responder_rho(&derived.params)?;
    let ledger_entry = ledger_entry(
        &agreement,
        EntryFor {
            party: me,
            role: "responder",
            run_id: &env.run_id,
            actor: &format!("peer:{peer}"),
            params_json: serde_json::to_string(&request)?,
            join_key: &request.join_key,
            rho,
        },
        loss,
    )
    .map_err(|e| NodeError::refused(e.message()))?;
    Ok((
        CheckedRun {
            agreement,
            peer,
            request,
            derived,
            querier_head: opening.querier_head,
            ledger_entry,
        },
        query,
    ))
}

/// The responder's side of a run: the envelope and body of the answer.
pub fn respond(
    home: &Home,
    env: Envelope,
    sig: &Signature,
    body: &[u8],
) -> Result<(Envelope, Vec<u8>)> {
    let me = home.config.name.as_str();
    let mut store = home.store()?;
    let (run, query) = match check_run(me, &store, &env, sig, body) {
        Ok(checked) => checked,
        Err(e) => {
            // Refusals before any charge are recorded too (the store records its own).
            let event = AuditEvent::now(
                format!("peer:{}", env.sender),
                "query.refused",
                serde_json::json!({"run_id": env.run_id, "role": "responder", "reason": e.message(), "code": e.code_str()}),
            )
            .with_agreement(&env.agreement_id);
            store.append_audit(event)?;
            tracing::warn!(run = %env.run_id, sender = %env.sender, reason = %e, "refused a run");
            return Err(e);
        }
    };
    let actor = run.ledger_entry.actor.clone();
    let reservation = Reservation::charge(&mut store, &run.ledger_entry, me)?;
    store.append_audit(
        AuditEvent::now(
            &actor,
            "peer.ledger",
            serde_json::to_value(&run.querier_head)?,
        )
        .with_agreement(&env.agreement_id),
    )?;
    // Reading the audience: a failure here (a column we did not import, say) depends on our
    // data, so the peer gets an opaque code, the detail stays in our log and audit entry, and
    // the charge stands (spec §4.2).
    let buckets = match load_buckets(
        &store,
        &run.agreement,
        me,
        &run.request.join_key,
        run.request.responder_column.as_deref(),
    ) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e.message(), "run failed reading the audience");
            reservation.abandon(&mut store, e.message(), Exposure::MayHaveLeft)?;
            return Err(NodeError::new(
                Code::Refused,
                "the responder could not answer this run; the reason stays in its log",
            ));
        }
    };
    if let Some(column) = &run.request.responder_column
        && buckets.outside_value_set > 0
    {
        // Local only: the operator learns why `other` is large; the peer never sees it.
        tracing::info!(
            column = %column,
            members = buckets.outside_value_set,
            "members with a value outside the agreement's set are counted in `other`"
        );
    }
    let limits = Limits {
        max_points: home.config.max_message_bytes / 32,
    };
    let answer = tandem_psi::respond_with_owners(
        &run.derived.params,
        &buckets.items,
        query,
        &limits,
        &mut reservation.noise(),
        &mut rand::rng(),
    );
    let (reply, owners) = match answer {
        Ok(r) => r,
        Err(e) => {
            // The query itself was refused; nothing computed from our data left the node.
            let e = NodeError::from(e);
            reservation.abandon(&mut store, e.message(), Exposure::NothingLeft)?;
            return Err(e);
        }
    };
    let loss = reservation.loss();
    let budget = budget_view(&store, &run.agreement, me, &env.run_id, loss)?;
    let receipt = Receipt {
        charged: loss,
        head: SignedHead::sign(budget, &env.agreement_id, &env.run_id, &home.key)?,
    };
    // A value analysis attaches psi-sum-v1's values message (node-wire-v1 §sums).
    let mut receipt_json = serde_json::to_value(&receipt)?;
    let mut reply = reply;
    if let Some(plan) = &run.derived.sum {
        let started = crate::sums::start_holder(
            &store,
            me,
            &run.peer,
            &env.run_id,
            &run.request.join_key,
            &run.derived,
            plan,
            &buckets.items,
            &reply,
            &owners,
        );
        match started {
            Ok(values) => {
                receipt_json[crate::sums::VALUES_BYTES] = serde_json::json!(values.len());
                reply.extend_from_slice(&values);
            }
            Err(e) => {
                tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e.message(), "run failed reading or encrypting values");
                reservation.abandon(&mut store, e.message(), Exposure::MayHaveLeft)?;
                return Err(NodeError::new(
                    Code::Refused,
                    "the responder could not answer this run; the reason stays in its log",
                ));
            }
        }
    }
    let payload = frame(&receipt_json, &reply);
    let receipt_json = serde_json::to_string(&receipt)?;
    let cells = run.derived.grid.len();
    reservation.release(
        &mut store,
        &receipt_json,
        &payload,
        &actor,
        serde_json::json!({"cells": cells, "role": "responder"}),
    )?;
    tracing::info!(
        run = %env.run_id,
        peer = %run.peer,
        epsilon = loss.epsilon,
        cells,
        "answered a run"
    );
    let out = Envelope {
        agreement_id: env.agreement_id,
        run_id: env.run_id,
        sender: me.to_string(),
        timestamp_ms: now_ms(),
    };
    Ok((out, payload))
}
