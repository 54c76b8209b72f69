//! The responder's side of a run: authenticate the querier's signed message, check it against
//! the agreement and this node's caps (refusals are audited), charge the ledger, answer, and
//! sign the receipt with this node's ledger head.

use axum::http::{HeaderMap, StatusCode};
use tandem_agreement::Agreement;
use tandem_dp::OpenDpNoise;
use tandem_psi::Limits;
use tandem_store::{AuditEvent, Store};

use crate::ledger_head::{SignedHead, budget_view};
use crate::overlap::{Receipt, RunRequest};
use crate::server::{ApiError, NodeState, PSI_REQUEST, bad_request, forbidden};
use crate::wire::{self, Envelope};

/// A run the responder has authenticated and checked against the agreement, not yet charged.
struct CheckedRun {
    agreement: Agreement,
    peer: String,
    request: RunRequest,
    params: tandem_psi::RunParams,
    loss: tandem_dp::PrivacyLoss,
    querier_head: SignedHead,
    /// The ledger entry to reserve (per-query cap already checked).
    ledger_entry: tandem_store::NewRun,
}

/// Authenticates the caller and checks the run against the agreement and the per-query cap;
/// returns the checked run and the PSI query inside the body.
fn check_run<'b>(
    state: &NodeState,
    store: &Store,
    env: &Envelope,
    sig: &ed25519_dalek::Signature,
    body: &'b [u8],
) -> Result<(CheckedRun, &'b [u8]), ApiError> {
    let (agreement, peer) = crate::overlap::active_agreement(store, &env.agreement_id, &state.name)
        .map_err(forbidden)?;
    if env.sender != peer {
        return Err(forbidden(format!(
            "{} is not the peer in this agreement",
            env.sender
        )));
    }
    let peer_key = agreement
        .terms
        .party(&peer)
        .ok_or_else(|| forbidden("peer missing"))?
        .verifying_key()
        .map_err(forbidden)?;
    env.verify(PSI_REQUEST, body, sig, &peer_key, wire::now_ms())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e))?;
    let (opening, query) = wire::unframe(body, 1 << 20).map_err(bad_request)?;
    let opening: crate::overlap::RunOpening =
        serde_json::from_value(opening).map_err(bad_request)?;
    opening
        .querier_head
        .verify(&env.agreement_id, &env.run_id, &peer_key)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e))?;
    let request = opening.request;
    crate::overlap::check_request(&agreement, &peer, &state.name, &request).map_err(forbidden)?;
    let run_id = crate::overlap::parse_run_id(&env.run_id).map_err(bad_request)?;
    let params = request
        .params(&agreement, run_id, &peer, &state.name)
        .map_err(bad_request)?;
    let loss = tandem_psi::accounting::responder_loss(&params).map_err(bad_request)?;
    let ledger_entry = crate::overlap::new_run(
        &agreement,
        &state.name,
        "responder",
        &env.run_id,
        &format!("peer:{peer}"),
        &request,
        loss,
    )
    .map_err(forbidden)?;
    Ok((
        CheckedRun {
            agreement,
            peer,
            request,
            params,
            loss,
            querier_head: opening.querier_head,
            ledger_entry,
        },
        query,
    ))
}

/// The responder's side of a run.
pub fn respond(
    state: &NodeState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Envelope, Vec<u8>), ApiError> {
    let mut store = Store::open(&state.store_path)?;
    let (env, sig) = Envelope::from_headers(headers).map_err(bad_request)?;
    let (run, query) = match check_run(state, &store, &env, &sig, body) {
        Ok(checked) => checked,
        Err(e) => {
            // Refusals before any charge are recorded too (the store records its own).
            let event = AuditEvent::now(
                format!("peer:{}", env.sender),
                "query.refused",
                serde_json::json!({"run_id": env.run_id, "role": "responder", "reason": e.message}),
            )
            .with_agreement(&env.agreement_id);
            store.append_audit(event)?;
            tracing::warn!(run = %env.run_id, sender = %env.sender, reason = %e.message, "refused a run");
            return Err(e);
        }
    };
    let actor = run.ledger_entry.actor.clone();
    store.begin_run(&run.ledger_entry)?;
    store.append_audit(
        AuditEvent::now(
            &actor,
            "peer.ledger",
            serde_json::to_value(&run.querier_head).map_err(bad_request)?,
        )
        .with_agreement(&env.agreement_id),
    )?;
    let answer = (|| -> anyhow::Result<Vec<u8>> {
        let items = crate::overlap::load_buckets(
            &store,
            &run.agreement,
            &state.name,
            &run.request.join_key,
            run.request.responder_column.as_deref(),
        )?;
        let limits = Limits {
            max_points: state.home.config.max_message_bytes / 32,
        };
        Ok(tandem_psi::respond(
            &run.params,
            &items,
            query,
            &limits,
            &mut OpenDpNoise,
            &mut rand::rng(),
        )?)
    })();
    let reply = match answer {
        Ok(r) => r,
        Err(e) => {
            // Nothing computed from our data left the node: release the reservation.
            store.fail_run(&env.run_id, &format!("{e:#}"), false)?;
            return Err(bad_request(e));
        }
    };
    let budget = budget_view(&store, &run.agreement, &state.name, run.loss).map_err(bad_request)?;
    let receipt = Receipt {
        charged: run.loss,
        head: SignedHead::sign(budget, &env.agreement_id, &env.run_id, &state.home.key)
            .map_err(bad_request)?,
    };
    let payload = wire::frame(
        &serde_json::to_value(&receipt).map_err(bad_request)?,
        &reply,
    );
    let receipt_json = serde_json::to_string(&receipt).map_err(bad_request)?;
    store.finish_run(
        &env.run_id,
        &receipt_json,
        &crate::home::sha256_hex(&payload),
    )?;
    tracing::info!(
        run = %env.run_id,
        peer = %run.peer,
        epsilon = run.loss.epsilon,
        cells = run.params.querier_buckets * run.params.responder_buckets,
        "answered a run"
    );
    let out = Envelope {
        agreement_id: env.agreement_id,
        run_id: env.run_id,
        sender: state.name.clone(),
        timestamp_ms: wire::now_ms(),
    };
    Ok((out, payload))
}
