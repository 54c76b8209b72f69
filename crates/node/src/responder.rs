//! The responder's side of a run, for any registered analysis: authenticate the querier's signed
//! message, check it against the agreement and this node's caps (refusals are audited), charge
//! the ledger (a [`Reservation`]), answer, and sign the receipt with this node's ledger head.
//! Transport-free: the server hands in the parsed envelope and the body.

use std::sync::Mutex;

use ed25519_dalek::Signature;
use tandem_agreement::Agreement;
use tandem_psi::{Limits, ParsedQuery, ResponderNoise};
use tandem_store::{AuditEvent, NewRun, Store};

use crate::budget::{EntryFor, budget_view, ledger_entry};
use crate::error::{Code, NodeError, Result};
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::run::{
    Derived, active_agreement, audience_version, derive, load_buckets, load_run_buckets,
};
use crate::state::FailedRuns;
use crate::wire::{
    AUDIENCE_VERSION_REQUEST, AudienceVersion, BUDGET_CHECK_REQUEST, Envelope, MAX_FRAME_JSON,
    PSI_REQUEST, Receipt, RunOpening, RunRequest, SignedHead, frame, now_ms, parse_run_id, unframe,
};

/// A run the responder has authenticated and checked against the agreement, not yet charged.
pub(crate) struct CheckedRun {
    pub(crate) agreement: Agreement,
    pub(crate) peer: String,
    pub(crate) request: RunRequest,
    pub(crate) derived: Derived,
    pub(crate) querier_head: SignedHead,
    /// The ledger entry to reserve (per-query cap already checked).
    pub(crate) ledger_entry: NewRun,
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

/// Answers a peer's audience-version check (signed, uncharged, cheap): this node's current
/// version of its audience for a join key of the agreement, so the peer can tell whether a
/// cached answer still holds for this node's data. It reveals how often this node changed that
/// audience, nothing about who is in it. Errors: those of [`precheck`], 401 `bad_signature`,
/// 400 `bad_request` (body), 403 `refused` (join key not in the agreement).
pub fn audience_version_check(
    home: &Home,
    env: &Envelope,
    sig: &Signature,
    body: &[u8],
) -> Result<Vec<u8>> {
    let me = home.config.name.as_str();
    let store = home.store()?;
    let (agreement, _, _) = authenticate(&store, me, env, AUDIENCE_VERSION_REQUEST, body, sig)?;
    let asked: AudienceVersion = serde_json::from_slice(body)
        .map_err(|e| NodeError::bad_request(format!("the request does not parse: {e}")))?;
    if !agreement.terms.join_keys.contains(&asked.join_key) {
        return Err(NodeError::refused(format!(
            "join key {:?} is not in the agreement",
            asked.join_key
        )));
    }
    let answer = AudienceVersion {
        audience_version: Some(audience_version(&store, &asked.join_key)?),
        join_key: asked.join_key,
    };
    Ok(serde_json::to_vec(&answer)?)
}

/// The active agreement named by a peer's signed call, the peer's name and its key, once the
/// sender is the agreement's other party and its signature over `body` as `kind` verifies.
/// Errors: 403 `refused` (no such active agreement, not the peer), 401 `bad_signature`, 400
/// `bad_request` (a stale or malformed envelope).
pub(crate) fn authenticate(
    store: &Store,
    me: &str,
    env: &Envelope,
    kind: &str,
    body: &[u8],
    sig: &Signature,
) -> Result<(Agreement, String, ed25519_dalek::VerifyingKey)> {
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
    env.verify(kind, body, sig, &peer_key, now_ms())?;
    Ok((agreement, peer, peer_key))
}

/// Charges a checked run to this node's ledger (its one admission rule) and audits the
/// querier's signed ledger head (`peer.ledger`). Errors: the ledger's refusal (403
/// `budget_exceeded`, naming the cap and what is left), store errors.
pub(crate) fn charge(
    store: &mut Store,
    run: &CheckedRun,
    env: &Envelope,
    me: &str,
) -> Result<Reservation> {
    let reservation = Reservation::charge(store, &run.ledger_entry, me)?;
    store.append_audit(
        AuditEvent::now(
            &run.ledger_entry.actor,
            "peer.ledger",
            serde_json::to_value(&run.querier_head)?,
        )
        .with_agreement(&env.agreement_id),
    )?;
    Ok(reservation)
}

/// All of a psi-ca-v1 run's noise, drawn from its public parameters before the query is read
/// (issue 9 item 5b: neither the draw nor its timing depends on the query or on our data). A
/// failed draw abandons the reservation (nothing left) and is an opaque internal error;
/// otherwise the reservation comes back with the noise.
pub(crate) fn draw_noise(
    store: &mut Store,
    run: &CheckedRun,
    reservation: Reservation,
) -> Result<(ResponderNoise, Reservation)> {
    match ResponderNoise::draw(&run.derived.params, &mut reservation.noise()) {
        Ok(n) => Ok((n, reservation)),
        Err(e) => {
            let e = NodeError::from(e);
            reservation.abandon(store, e.message(), Exposure::NothingLeft)?;
            Err(NodeError::internal(
                "the responder could not draw its noise",
            ))
        }
    }
}

/// The size bound on a peer's message, from this node's `max_message_bytes` (public).
pub(crate) fn peer_limits(home: &Home) -> Limits {
    Limits {
        max_points: home.config.max_message_bytes / 32,
    }
}

/// Answers a peer's budget pre-check (signed, uncharged, nothing reserved): whether this node's
/// ledger would admit the run the body describes (a [`RunRequest`]) now, with the same checks
/// and the same ledger entry as [`respond`] would make, and this node's ε left. The ledger is a
/// function of the queries this node was asked and made, never of its data. Errors: those of
/// [`precheck`], 401 `bad_signature`, 400 `bad_request` (body).
pub fn budget_check(home: &Home, env: &Envelope, sig: &Signature, body: &[u8]) -> Result<Vec<u8>> {
    let me = home.config.name.as_str();
    let store = home.store()?;
    let (agreement, peer, _) = authenticate(&store, me, env, BUDGET_CHECK_REQUEST, body, sig)?;
    let request: RunRequest = serde_json::from_slice(body)
        .map_err(|e| NodeError::bad_request(format!("the run request does not parse: {e}")))?;
    let run_id = parse_run_id(&env.run_id)?;
    let checked = (|| -> Result<(f64, tandem_store::BudgetStatus)> {
        let derived = derive(&agreement, &peer, me, &request, run_id, Code::Refused)?;
        let (loss, rho) = responder_charge(&derived)?;
        crate::budget::check_per_query_cap(
            &agreement,
            me,
            crate::sums::with_sum_loss(&derived, loss)?,
        )?;
        let entry = ledger_entry(
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
        )?;
        match store.would_admit(&entry) {
            Ok(status) => Ok((loss.epsilon, status)),
            Err(e @ tandem_store::StoreError::BudgetExceeded { .. }) => {
                let account = match &e {
                    tandem_store::StoreError::BudgetExceeded { account, .. } => account.clone(),
                    _ => None,
                };
                let refresh = crate::budget::refresh(&store, &entry, account.as_deref())?;
                let err = NodeError::from(e);
                let mut details = err.details().cloned().unwrap_or_default();
                details["party"] = serde_json::json!(me);
                details["period"] = serde_json::json!(refresh.period);
                details["refreshes_at"] = serde_json::json!(refresh.refreshes_at);
                details["epsilon_cost"] = serde_json::json!(loss.epsilon);
                Err(err.note(refresh.text).with_details(details))
            }
            Err(e) => Err(e.into()),
        }
    })();
    let answer = match checked {
        Ok((cost, status)) => crate::wire::BudgetCheck {
            party: me.to_string(),
            admits: true,
            epsilon_cost: cost,
            epsilon_left: status.left_epsilon,
            code: None,
            reason: None,
            details: None,
        },
        Err(e) => {
            let d = e.details().cloned();
            crate::wire::BudgetCheck {
                party: me.to_string(),
                admits: false,
                epsilon_cost: d
                    .as_ref()
                    .and_then(|d| d["epsilon_cost"].as_f64())
                    .unwrap_or_default(),
                epsilon_left: d
                    .as_ref()
                    .and_then(|d| d["left"].as_f64())
                    .unwrap_or_default(),
                code: Some(e.code_str().to_string()),
                reason: Some(e.message().to_string()),
                details: d,
            }
        }
    };
    Ok(serde_json::to_vec(&answer)?)
}

/// This node's charge as responder for a run, `(ε, δ)` and ρ, as the agreement's protocol
/// says: psi-ca-v1 §6, or psi-ca-v2 §7 (cells pure ε, bucket sizes as in v1). The run and the
/// uncharged budget pre-check use the same figures.
fn responder_charge(derived: &crate::run::Derived) -> Result<(tandem_dp::PrivacyLoss, f64)> {
    match &derived.v2 {
        Some(p) => {
            let c = crate::v2::responder_charge(p)?;
            Ok((c.loss, c.rho))
        }
        None => Ok((
            tandem_psi::accounting::responder_loss(&derived.params)?,
            tandem_psi::accounting::responder_rho(&derived.params)?,
        )),
    }
}

/// Authenticates the caller and checks the run against the agreement and the per-query cap;
/// returns the checked run and the PSI query (or, streamed, its first chunk) inside the body,
/// signed as `kind`.
pub(crate) fn check_run<'b>(
    home: &Home,
    store: &Store,
    env: &Envelope,
    sig: &Signature,
    body: &'b [u8],
    authenticated: &mut bool,
    kind: &str,
) -> Result<(CheckedRun, &'b [u8])> {
    let me = home.config.name.as_str();
    let (agreement, peer, peer_key) = authenticate(store, me, env, kind, body, sig)?;
    *authenticated = true;
    let (opening, query) = unframe(body, MAX_FRAME_JSON)?;
    let opening: RunOpening = serde_json::from_value(opening)
        .map_err(|e| NodeError::bad_request(format!("the run opening does not parse: {e}")))?;
    opening
        .querier_head
        .verify(&env.agreement_id, &env.run_id, &peer_key)?;
    let request = opening.request;
    let run_id = parse_run_id(&env.run_id)?;
    let derived = derive(&agreement, &peer, me, &request, run_id, Code::Refused)?;
    // A psi-ca-v2 peer with too many runs waiting for their Msg3 is turned away before
    // anything is charged.
    if derived.v2.is_some() {
        crate::v2::responder::check_room(&home.dir, &peer, home.config.limits.v2_pending_per_peer)?;
    }
    let (loss, rho) = responder_charge(&derived)?;
    // The per-query cap covers the run's counts and, for a value analysis, its sums.
    crate::budget::check_per_query_cap(&agreement, me, crate::sums::with_sum_loss(&derived, loss)?)
        .map_err(|e| NodeError::refused(e.message()))?;
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

/// The responder's side of a run: the envelope and body of the answer. A failure after the
/// sender's signature verified is counted against it in `failed_runs` (see
/// [`FailedRuns`]).
///
/// The order (spec §4.2): authenticate and check the request against the agreement (refusals
/// name only public terms, nothing charged); charge the ledger; draw all of this run's noise
/// from its public parameters; parse and fully validate the query (every limit from public
/// quantities); only then read the audience and answer. Every failure after the charge keeps
/// it and reaches the peer as an opaque code (`malformed`, `too_large`, `refused`) with no
/// number or name taken from this node's data; the detail goes to this node's log and audit
/// log (`run.failed`).
pub fn respond(
    home: &Home,
    env: Envelope,
    sig: &Signature,
    body: &[u8],
    failed_runs: &Mutex<FailedRuns>,
) -> Result<(Envelope, Vec<u8>)> {
    let mut authenticated = false;
    let sender = env.sender.clone();
    let outcome = respond_checked(home, env, sig, body, &mut authenticated);
    if outcome.is_err() && authenticated {
        failed_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&sender, now_ms());
    }
    outcome
}

/// The opaque error a peer gets for a run that failed after the charge.
pub(crate) fn opaque(code: Code) -> NodeError {
    let what = match code {
        Code::Malformed => "the query is malformed",
        Code::TooLarge => "the run is over the responder's size limit",
        _ => "the responder could not answer this run",
    };
    NodeError::new(
        code,
        format!("{what}; the reason stays in the responder's log and the charge stands"),
    )
}

fn respond_checked(
    home: &Home,
    env: Envelope,
    sig: &Signature,
    body: &[u8],
    authenticated: &mut bool,
) -> Result<(Envelope, Vec<u8>)> {
    let me = home.config.name.as_str();
    let mut store = home.store()?;
    crate::v2::responder::sweep(&mut store, &home.dir);
    let (run, query) = match check_run(home, &store, &env, sig, body, authenticated, PSI_REQUEST) {
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
    let reservation = charge(&mut store, &run, &env, me)?;
    if let Some(params) = run.derived.v2.clone() {
        return respond_v2(home, &mut store, env, run, params, reservation, query);
    }
    // All of the run's noise, from its public parameters, before the query is read (issue 9
    // item 5b): neither its draw nor its timing depends on the query or on our data.
    let (noise, reservation) = draw_noise(&mut store, &run, reservation)?;
    let limits = peer_limits(home);
    // The whole query is validated before our audience is read: a malformed or oversized query
    // costs the same whatever we hold, and the limit comes from public quantities only.
    let parsed = match ParsedQuery::parse(&run.derived.params, query, &limits, &mut rand::rng()) {
        Ok(p) => p,
        Err(e) => {
            let code = match e {
                tandem_psi::PsiError::TooLarge { .. } => Code::TooLarge,
                _ => Code::Malformed,
            };
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e, "refused a malformed query");
            reservation.abandon(
                &mut store,
                &format!("psi-ca-v1: {e}"),
                Exposure::MayHaveLeft,
            )?;
            return Err(opaque(code));
        }
    };
    // Reading the audience: a failure here (a column we did not import, say) depends on our
    // data, so the peer gets an opaque code, the detail stays in our log and audit entry, and
    // the charge stands (spec §4.2).
    // The version is read before the members: a change in between makes it older than the
    // data, so the querier's cache check sees a change and asks afresh (never the reverse).
    // psi-sum-v1 looks values up by digest: a value analysis reads digests.
    let cache = home.config.limits.hash_cache && run.derived.sum.is_none();
    let loaded = audience_version(&store, &run.request.join_key).and_then(|v| {
        load_run_buckets(
            &store,
            &run.agreement,
            me,
            &run.request.join_key,
            &run.request.responder_columns,
            cache.then_some(&run.derived.params),
        )
        .map(|b| (v, b))
    });
    let (version, mut buckets) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e.message(), "run failed reading the audience");
            reservation.abandon(&mut store, e.message(), Exposure::MayHaveLeft)?;
            return Err(opaque(Code::Refused));
        }
    };
    if let Some(column) = crate::analysis::joined_columns(&run.request.responder_columns)
        && buckets.outside_value_set > 0
    {
        // Local only: the operator learns why `other` is large; the peer never sees it.
        tracing::info!(
            column = %column,
            members = buckets.outside_value_set,
            "members with a value outside the agreement's set are counted in `other`"
        );
    }
    let answer =
        tandem_psi::respond_parsed(parsed, buckets.input(), noise, &limits, &mut rand::rng());
    buckets.fill_cache_later(&home.store_path());
    let (reply, owners) = match answer {
        Ok(r) => r,
        Err(e) => {
            // Everything here depends on our data (its size, a duplicate digest): the charge
            // stands and the peer learns no number.
            let code = match e {
                tandem_psi::PsiError::ReplyTooLarge => Code::TooLarge,
                _ => Code::Refused,
            };
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e, "run failed answering");
            reservation.abandon(
                &mut store,
                &format!("psi-ca-v1: {e}"),
                Exposure::MayHaveLeft,
            )?;
            return Err(opaque(code));
        }
    };
    let loss = reservation.loss();
    let budget = budget_view(&store, &run.agreement, me, &env.run_id, loss)?;
    let receipt = Receipt {
        charged: loss,
        head: SignedHead::sign(budget, &env.agreement_id, &env.run_id, &home.key)?,
        audience_version: Some(version),
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
                return Err(opaque(Code::Refused));
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
        &run.ledger_entry.actor,
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

/// psi-ca-v2's first round trip on the responder (spec §4.2, §4.3), after the charge: all of
/// the run's noise from its public parameters (the junk counts `J_B` and the `nA·nB` central
/// cell draws), then Msg1 validated from public quantities only, then the audience read and
/// Msg2 made; the state waits for Msg3 ([`crate::v2::responder`]). Failures keep the charge
/// and reach the peer as opaque codes, as in v1.
fn respond_v2(
    home: &Home,
    store: &mut Store,
    env: Envelope,
    run: CheckedRun,
    params: tandem_psi_v2::RunParams,
    reservation: Reservation,
    msg1: &[u8],
) -> Result<(Envelope, Vec<u8>)> {
    use tandem_dp::{CentralNoise, NoiseSource};
    let me = home.config.name.as_str();
    let cells = run.derived.grid.len();
    let drawn = {
        let mut noise = reservation.noise();
        noise
            .shifted(
                &params.responder_bucket_noise,
                params.responder_buckets as usize,
            )
            .and_then(|junk| Ok((junk, noise.laplace(params.cell_scale, cells)?)))
    };
    let (junk, cell_noise) = match drawn {
        Ok(x) => x,
        Err(e) => {
            reservation.abandon(store, &e.to_string(), Exposure::NothingLeft)?;
            return Err(NodeError::internal(
                "the responder could not draw its noise",
            ));
        }
    };
    let limits = tandem_psi_v2::Limits {
        max_points: home.config.max_message_bytes / 32,
    };
    let received =
        tandem_psi_v2::Responder::receive_query(params.clone(), msg1, &limits, &mut rand::rng());
    let mut state = match received {
        Ok(s) => s,
        Err(e) => {
            let code = match (&e, e.peer_code()) {
                (tandem_psi_v2::PsiV2Error::TooLarge { .. }, _) => Code::TooLarge,
                (_, "malformed") => Code::Malformed,
                _ => Code::Refused,
            };
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e, "refused a psi-ca-v2 Msg1");
            reservation.abandon(
                store,
                &format!("psi-ca-v2 Msg1: {e}"),
                Exposure::MayHaveLeft,
            )?;
            return Err(opaque(code));
        }
    };
    // As in v1: the version before the members, failures opaque (they depend on our data).
    let loaded = audience_version(store, &run.request.join_key).and_then(|v| {
        load_buckets(
            store,
            &run.agreement,
            me,
            &run.request.join_key,
            &run.request.responder_columns,
        )
        .map(|b| (v, b))
    });
    let (version, buckets) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e.message(), "run failed reading the audience");
            reservation.abandon(store, e.message(), Exposure::MayHaveLeft)?;
            return Err(opaque(Code::Refused));
        }
    };
    let mut drawn = crate::v2::responder::Drawn {
        junk: Some((params.responder_bucket_noise, junk)),
        cells: None,
    };
    let msg2 = match state.list(&buckets.items, &mut rand::rng(), &mut drawn) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e, "psi-ca-v2 run failed listing");
            reservation.abandon(
                store,
                &format!("psi-ca-v2 Msg2: {e}"),
                Exposure::MayHaveLeft,
            )?;
            return Err(opaque(Code::Refused));
        }
    };
    let loss = reservation.loss();
    let budget = budget_view(store, &run.agreement, me, &env.run_id, loss)?;
    let receipt = Receipt {
        charged: loss,
        head: SignedHead::sign(budget, &env.agreement_id, &env.run_id, &home.key)?,
        audience_version: Some(version),
    };
    let payload = frame(&serde_json::to_value(&receipt)?, &msg2);
    // Msg2 carries this node's noised bucket sizes: from here on the charge stands whatever
    // becomes of the run (spec §7); the audit log says what left and when.
    store.append_audit(
        AuditEvent::now(
            format!("peer:{}", run.peer),
            "message.sent",
            serde_json::json!({"run_id": env.run_id, "protocol": "psi-ca-v2", "message": "Msg2", "bytes": payload.len(), "sha256": crate::home::sha256_hex(&payload)}),
        )
        .with_agreement(&env.agreement_id),
    )?;
    crate::v2::responder::hold(
        &home.dir,
        &env.run_id,
        crate::v2::responder::Pending {
            responder: state,
            cell_noise: zeroize::Zeroizing::new(cell_noise),
            cell_scale: params.cell_scale,
            reservation,
            expires: std::time::Instant::now() + crate::v2::responder::ttl(home),
            agreement_id: env.agreement_id.clone(),
            peer: run.peer.clone(),
            receipt_json: serde_json::to_string(&receipt)?,
            cells,
        },
    );
    tracing::info!(run = %env.run_id, peer = %run.peer, cells, "psi-ca-v2: sent Msg2, waiting for Msg3");
    let out = Envelope {
        agreement_id: env.agreement_id,
        run_id: env.run_id,
        sender: me.to_string(),
        timestamp_ms: now_ms(),
    };
    Ok((out, payload))
}
