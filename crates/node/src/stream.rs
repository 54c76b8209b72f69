//! The streamed psi-ca-v1 run over HTTPS (psi-ca-v1 §10, node-wire-v1 §streamed runs): the
//! querier opens the run with the query's head, sends the query's chunks one call each and asks
//! for the reply's chunks by index; a call lost with its connection is sent again with the same
//! frame and gets the same bytes back, and nothing is charged twice (the run is charged once,
//! when it opens). The responder keeps each open run's [`StreamResponder`] in memory only
//! ([`StreamRuns`]): a restarted node has none, and the run fails as a whole-message run would.
//!
//! Progress (records done, total, rate, ETA) is logged on both nodes and kept per run for
//! `GET /api/v1/runs/{id}` ([`progress`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_psi::stream::{ChunkFrame, StreamQuerier, StreamResponder};
use tandem_psi::{CellCounts, PsiError};
use tandem_store::AuditEvent;

use crate::budget::budget_view;
use crate::client::{CallError, Peer, Response};
use crate::error::{Code, NodeError, Result};
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::responder::{CheckedRun, check_run, opaque};
use crate::run::{audience_version, load_run_buckets};
use crate::wire::{Envelope, MAX_FRAME_JSON, Receipt, SignedHead, frame, now_ms, unframe};

/// Path that opens a streamed run: the [`crate::wire::RunOpening`] framed with query chunk 0.
pub const OPEN_PATH: &str = "/v1/psi/stream/open";
/// Path of a query chunk (the body is the chunk's frame, psi-ca-v1 §10.1).
pub const CHUNK_PATH: &str = "/v1/psi/chunk";
/// Path that asks for a reply chunk (the body is a [`ReplyChunkRequest`]).
pub const REPLY_CHUNK_PATH: &str = "/v1/psi/reply-chunk";

/// Signature kind of a request to `path`.
pub fn request_kind(path: &str) -> String {
    format!("request POST {path}")
}

/// Signature kind of the answer to a request to `path`.
pub fn response_kind(path: &str) -> String {
    format!("response POST {path}")
}

/// Seconds an open run may stay idle on the responder before it is dropped (and failed).
pub const IDLE_TTL: Duration = Duration::from_secs(300);
/// Seconds the answer of a finished run's last reply chunk is kept for a retry.
pub const FINISHED_TTL: Duration = Duration::from_secs(60);
/// Streamed runs one peer may hold open (not finished) on a responder at once.
pub const MAX_OPEN_PER_PEER: usize = 4;
/// Times the querier sends a call whose connection failed (the first try included).
pub const ATTEMPTS: u32 = 4;

/// The body of a reply-chunk request.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ReplyChunkRequest {
    /// Index of the reply chunk asked for (0 = the reply's head).
    pub index: u32,
}

/// The answer to a query chunk (the acknowledgement of psi-ca-v1 §10.2), and to the opening.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChunkAckJson {
    /// Index of the chunk acknowledged.
    pub index: u32,
    /// SHA-256 of its frame, hex.
    pub frame_sha256: String,
    /// Whether the whole query is in (the reply is then fixed and may be asked for).
    pub query_complete: bool,
}

/// A run's progress: records of the current message done and in all.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// The run (hex).
    pub run_id: String,
    /// `querier` or `responder`.
    pub role: String,
    /// `query` (the query's chunks travel), `reply` (the reply's), `done` or `failed`.
    pub phase: String,
    /// Records (points or values) of the current message handled so far.
    pub done: u64,
    /// Records of the current message in all (0 until its head is in).
    pub total: u64,
    /// Records of the current message handled per second since its phase began (`done` and
    /// `failed` keep the rate of the phase they end).
    pub rate_per_s: f64,
    /// Seconds left in the current phase at that rate (none before any record, and once the
    /// run is done or failed). The query's phase comes first, then the reply's, whose records
    /// (returned values and the responder's points) are about twice as many.
    pub eta_s: Option<f64>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

struct Tracked {
    progress: Progress,
    started: Instant,
    /// When the current phase began: the rate and ETA are the phase's own.
    phase_started: Instant,
    logged: Instant,
}

static PROGRESS: LazyLock<Mutex<HashMap<String, Tracked>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Runs tracked at once (the oldest are forgotten first).
const MAX_TRACKED: usize = 256;

/// The progress of streamed run `run_id` on this process, if it is known (as querier, else as
/// responder: two nodes in one process, as in tests, track a run once per role).
pub fn progress(run_id: &str) -> Option<Progress> {
    let map = PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
    ["querier", "responder"]
        .iter()
        .find_map(|role| map.get(&format!("{run_id}/{role}")))
        .map(|t| t.progress.clone())
}

/// The progress of the run started last on this process in `role` (`querier` or
/// `responder`), for a progress display beside a run that does not know its id yet.
pub fn latest(role: &str) -> Option<Progress> {
    let map = PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
    map.values()
        .filter(|t| t.progress.role == role)
        .max_by_key(|t| t.started)
        .map(|t| t.progress.clone())
}

/// Records a run's progress, logging it every few seconds and at each phase's end.
fn report(run_id: &str, role: &str, phase: &str, done: u64, total: u64) {
    let key = format!("{run_id}/{role}");
    let mut map = PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
    if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
        let oldest = map
            .iter()
            .min_by_key(|(_, t)| t.started)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
    let now = Instant::now();
    let t = map.entry(key).or_insert_with(|| Tracked {
        progress: Progress {
            run_id: run_id.to_string(),
            role: role.to_string(),
            phase: String::new(),
            done: 0,
            total: 0,
            rate_per_s: 0.0,
            eta_s: None,
            elapsed_s: 0.0,
        },
        started: now,
        phase_started: now,
        logged: now,
    });
    let phase_changed = t.progress.phase != phase;
    // `done` and `failed` end the run: they keep the rate of the phase they end.
    let terminal = matches!(phase, "done" | "failed");
    if phase_changed && !terminal {
        t.phase_started = now;
    }
    let elapsed = now.duration_since(t.started).as_secs_f64();
    let in_phase = now.duration_since(t.phase_started).as_secs_f64();
    let rate = if terminal {
        t.progress.rate_per_s
    } else if in_phase > 0.0 {
        done as f64 / in_phase
    } else {
        0.0
    };
    t.progress.phase = phase.to_string();
    t.progress.done = done;
    t.progress.total = total;
    t.progress.elapsed_s = elapsed;
    t.progress.rate_per_s = rate;
    t.progress.eta_s = (!terminal && rate > 0.0).then(|| total.saturating_sub(done) as f64 / rate);
    if phase_changed || done == total || now.duration_since(t.logged) >= Duration::from_secs(5) {
        t.logged = now;
        tracing::info!(
            run = run_id,
            role,
            phase,
            done,
            total,
            rate_per_s = rate.round(),
            eta_s = t.progress.eta_s.map(f64::round),
            "streamed run progress"
        );
    }
}

/// An open run on the responder.
struct OpenRun {
    peer: String,
    agreement: Agreement,
    run: CheckedRun,
    /// The run's state, until the reply's last chunk is made.
    psi: Option<StreamResponder>,
    /// Until the reply is fixed: the charge, released (or abandoned) once.
    reservation: Option<Reservation>,
    /// The receipt, once the reply is fixed.
    receipt: Option<serde_json::Value>,
    /// Once the reply's last chunk was made: its index and answer, kept for a retry after the
    /// run's state (its secrets) is dropped.
    finished: Option<(u32, Vec<u8>)>,
    last_used: Instant,
}

impl OpenRun {
    fn psi_mut(&mut self) -> Result<&mut StreamResponder> {
        self.psi
            .as_mut()
            .ok_or_else(|| NodeError::new(Code::Conflict, "the run is finished"))
    }
}

/// The responder's open streamed runs, by run id (memory only; a restart loses them).
#[derive(Default)]
pub struct StreamRuns {
    runs: Mutex<HashMap<String, Arc<Mutex<OpenRun>>>>,
}

impl StreamRuns {
    fn get(&self, run_id: &str) -> Option<Arc<Mutex<OpenRun>>> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .cloned()
    }

    fn remove(&self, run_id: &str) {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
    }

    /// Drops runs idle past [`IDLE_TTL`]; a run whose reply was not yet fixed is failed (its
    /// charge stands: the query's head may have been read).
    fn expire(&self, home: &Home) {
        let idle: Vec<Arc<Mutex<OpenRun>>> = {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            let old: Vec<String> = runs
                .iter()
                .filter(|(_, r)| {
                    r.try_lock()
                        .map(|r| {
                            let ttl = if r.finished.is_some() {
                                FINISHED_TTL
                            } else {
                                IDLE_TTL
                            };
                            r.last_used.elapsed() > ttl
                        })
                        .unwrap_or(false)
                })
                .map(|(k, _)| k.clone())
                .collect();
            old.iter().filter_map(|k| runs.remove(k)).collect()
        };
        for run in idle {
            let mut run = run.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(res) = run.reservation.take() {
                let id = res.run_id().to_string();
                tracing::warn!(run = %id, "a streamed run went idle and was dropped");
                report(&id, "responder", "failed", 0, 0);
                if let Ok(mut store) = home.store() {
                    let _ = res.abandon(
                        &mut store,
                        "streamed run idle past its time-to-live",
                        Exposure::MayHaveLeft,
                    );
                }
            }
        }
    }

    fn open_for(&self, peer: &str) -> usize {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|r| {
                r.try_lock()
                    .map(|r| r.peer == peer && r.finished.is_none())
                    .unwrap_or(true)
            })
            .count()
    }
}

/// Fails an open run after its charge: drops it, records the failure, and returns the opaque
/// error the peer gets.
fn fail(
    runs: &StreamRuns,
    home: &Home,
    run_id: &str,
    open: &mut OpenRun,
    reason: &str,
    code: Code,
) -> NodeError {
    runs.remove(run_id);
    report(run_id, "responder", "failed", 0, 0);
    tracing::warn!(run = run_id, peer = %open.peer, error = reason, "streamed run failed");
    if let Some(res) = open.reservation.take()
        && let Ok(mut store) = home.store()
        && let Err(e) = res.abandon(&mut store, reason, Exposure::MayHaveLeft)
    {
        tracing::warn!(run = run_id, error = %e, "could not record the failed run");
    }
    opaque(code)
}

fn psi_code(e: &PsiError) -> Code {
    match e {
        PsiError::TooLarge { .. } | PsiError::ReplyTooLarge => Code::TooLarge,
        _ => Code::Malformed,
    }
}

/// Opens a streamed run on the responder: the checks, charge and noise of a whole-message run
/// (spec §4.2 order), then query chunk 0 (the query's head, every size bound from public
/// quantities). The same opening sent again (a retry) is acknowledged again, charged once.
/// Errors: those of a whole-message run; 429 `too_many_requests` over
/// [`MAX_OPEN_PER_PEER`] open runs.
pub fn open(
    home: &Home,
    runs: &StreamRuns,
    env: Envelope,
    sig: &Signature,
    body: &[u8],
    authenticated: &mut bool,
) -> Result<ChunkAckJson> {
    runs.expire(home);
    let me = home.config.name.as_str();
    let mut store = home.store()?;
    let kind = request_kind(OPEN_PATH);
    let checked =
        check_run(home, &store, &env, sig, body, authenticated, &kind).and_then(|(run, chunk0)| {
            match run.derived.v2 {
                // Only psi-ca-v1 streams (§10); a v2 agreement's run is never run as v1.
                Some(_) => Err(NodeError::refused(
                    "this agreement selects psi-ca-v2, whose runs are not streamed",
                )),
                None => Ok((run, chunk0)),
            }
        });
    let (run, chunk0) = match checked {
        Ok(x) => x,
        Err(e) => {
            let event = AuditEvent::now(
                format!("peer:{}", env.sender),
                "query.refused",
                serde_json::json!({"run_id": env.run_id, "role": "responder", "reason": e.message(), "code": e.code_str()}),
            )
            .with_agreement(&env.agreement_id);
            store.append_audit(event)?;
            return Err(e);
        }
    };
    if let Some(existing) = runs.get(&env.run_id) {
        // A retry of the opening after its answer was lost: the same chunk 0 gets the same
        // acknowledgement; anything else is refused, and nothing is charged again.
        let mut open = existing.lock().unwrap_or_else(PoisonError::into_inner);
        if open.peer != env.sender {
            return Err(NodeError::new(Code::Replay, "the run id was used before"));
        }
        open.last_used = Instant::now();
        let ack = open
            .psi_mut()?
            .accept_query_chunk(chunk0)
            .map_err(|e| NodeError::new(Code::Conflict, format!("psi-ca-v1: {e}")))?;
        return Ok(ChunkAckJson {
            index: ack.index,
            frame_sha256: hex::encode(ack.frame_digest),
            query_complete: open.psi_mut()?.query_complete(),
        });
    }
    if runs.open_for(&run.peer) >= MAX_OPEN_PER_PEER {
        return Err(NodeError::new(
            Code::TooManyRequests,
            format!(
                "{} holds {MAX_OPEN_PER_PEER} streamed runs open on this node already",
                run.peer
            ),
        ));
    }
    let reply_c = ChunkFrame::parse(chunk0)
        .map(|f| f.chunk_records)
        .map_err(|e| NodeError::new(Code::Malformed, format!("psi-ca-v1: {e}")))?;
    let reservation = crate::responder::charge(&mut store, &run, &env, me)?;
    let (noise, reservation) = crate::responder::draw_noise(&mut store, &run, reservation)?;
    let limits = crate::responder::peer_limits(home);
    let started = StreamResponder::start(
        run.derived.params.clone(),
        noise,
        reply_c,
        limits,
        &mut rand::rng(),
    )
    .and_then(|mut psi| psi.accept_query_chunk(chunk0).map(|ack| (psi, ack)));
    let (psi, ack) = match started {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %run.peer, error = %e, "refused a malformed streamed query");
            reservation.abandon(
                &mut store,
                &format!("psi-ca-v1: {e}"),
                Exposure::MayHaveLeft,
            )?;
            return Err(opaque(psi_code(&e)));
        }
    };
    let (done, total) = psi.query_progress();
    report(&env.run_id, "responder", "query", done, total);
    let mut open = OpenRun {
        peer: run.peer.clone(),
        agreement: run.agreement.clone(),
        run,
        psi: Some(psi),
        reservation: Some(reservation),
        receipt: None,
        finished: None,
        last_used: Instant::now(),
    };
    let query_complete = open.psi_mut()?.query_complete();
    if query_complete {
        fix_reply(home, runs, &env.run_id, &mut open)?;
    }
    runs.runs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(env.run_id.clone(), Arc::new(Mutex::new(open)));
    Ok(ChunkAckJson {
        index: ack.index,
        frame_sha256: hex::encode(ack.frame_digest),
        query_complete,
    })
}

/// Once the whole query is in: reads the audience, fixes the reply, signs the receipt and
/// releases the run (the one release path: its numbers are decided now).
fn fix_reply(home: &Home, runs: &StreamRuns, run_id: &str, open: &mut OpenRun) -> Result<()> {
    let me = home.config.name.as_str();
    let mut store = home.store()?;
    let request = open.run.request.clone();
    let cache = home.config.limits.hash_cache;
    let loaded = audience_version(&store, &request.join_key).and_then(|v| {
        load_run_buckets(
            &store,
            &open.agreement,
            me,
            &request.join_key,
            &request.responder_columns,
            cache.then_some(&open.run.derived.params),
        )
        .map(|b| (v, b))
    });
    let (version, mut buckets) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return Err(fail(runs, home, run_id, open, e.message(), Code::Refused));
        }
    };
    buckets.fill_cache_later(&home.store_path());
    if let Err(e) = open
        .psi_mut()?
        .finish_query(buckets.into_input(), &mut rand::rng())
    {
        let code = match e {
            PsiError::ReplyTooLarge => Code::TooLarge,
            _ => Code::Refused,
        };
        return Err(fail(
            runs,
            home,
            run_id,
            open,
            &format!("psi-ca-v1: {e}"),
            code,
        ));
    }
    // Everything the release needs, before the reservation is taken: a failure here fails the
    // run with its charge kept and an opaque code, as any failure after the audience was read.
    let prepared = (|| -> Result<(Receipt, Vec<u8>)> {
        let loss = open
            .reservation
            .as_ref()
            .ok_or_else(|| NodeError::internal("the streamed run was released twice"))?
            .loss();
        let agreement_id = open.agreement.id().to_string();
        let budget = budget_view(&store, &open.agreement, me, run_id, loss)?;
        let receipt = Receipt {
            charged: loss,
            head: SignedHead::sign(budget, &agreement_id, run_id, &home.key)?,
            audience_version: Some(version),
        };
        let head = open.psi_mut()?.reply_chunk(0).map_err(|e| {
            NodeError::internal(format!(
                "psi-ca-v1: the reply's head could not be made: {e}"
            ))
        })?;
        Ok((receipt, head))
    })();
    let (receipt, head) = match prepared {
        Ok(x) => x,
        Err(e) => return Err(fail(runs, home, run_id, open, e.message(), Code::Refused)),
    };
    let reservation = open
        .reservation
        .take()
        .ok_or_else(|| NodeError::internal("the streamed run was released twice"))?;
    let loss = reservation.loss();
    let receipt_json = serde_json::to_string(&receipt)?;
    let cells = open.run.derived.grid.len();
    reservation.release(
        &mut store,
        &receipt_json,
        &frame(&serde_json::to_value(&receipt)?, &head),
        &open.run.ledger_entry.actor,
        serde_json::json!({"cells": cells, "role": "responder", "streamed": true}),
    )?;
    tracing::info!(run = run_id, peer = %open.peer, epsilon = loss.epsilon, cells, "answered a streamed run");
    open.receipt = Some(serde_json::to_value(&receipt)?);
    let total = open.psi_mut()?.reply_records().unwrap_or_default();
    report(run_id, "responder", "reply", 0, total);
    Ok(())
}

/// Checks a chunk call's envelope: signed by the run's peer with its agreement key.
fn verify_call(
    home: &Home,
    open: &OpenRun,
    env: &Envelope,
    sig: &Signature,
    body: &[u8],
    path: &str,
) -> Result<()> {
    let store = home.store()?;
    let (agreement, peer, _) = crate::responder::authenticate(
        &store,
        &home.config.name,
        env,
        &request_kind(path),
        body,
        sig,
    )?;
    if peer != open.peer || agreement.id() != open.agreement.id() {
        return Err(NodeError::refused(format!(
            "{} is not the peer of this run",
            env.sender
        )));
    }
    Ok(())
}

fn no_run(run_id: &str) -> NodeError {
    NodeError::not_found(format!(
        "no open streamed run {run_id} on this node (never opened, failed, expired, or the node restarted)"
    ))
}

/// Takes a query chunk of an open run and acknowledges it (a retry of an accepted chunk gets
/// the same acknowledgement). Errors: 404 `not_found` for a run not open here, 401
/// `bad_signature`, 409 `conflict` for a changed or out-of-order chunk (the run goes on),
/// opaque codes for a chunk that fails the run.
pub fn query_chunk(
    home: &Home,
    runs: &StreamRuns,
    env: &Envelope,
    sig: &Signature,
    body: &[u8],
) -> Result<ChunkAckJson> {
    let shared = runs.get(&env.run_id).ok_or_else(|| no_run(&env.run_id))?;
    let mut open = shared.lock().unwrap_or_else(PoisonError::into_inner);
    verify_call(home, &open, env, sig, body, CHUNK_PATH)?;
    open.last_used = Instant::now();
    let ack = match open.psi_mut()?.accept_query_chunk(body) {
        Ok(ack) => ack,
        Err(e @ (PsiError::ChunkConflict { .. } | PsiError::ChunkOutOfOrder { .. })) => {
            return Err(NodeError::new(Code::Conflict, format!("psi-ca-v1: {e}")));
        }
        Err(e) => {
            let reason = format!("psi-ca-v1: {e}");
            return Err(fail(
                runs,
                home,
                &env.run_id,
                &mut open,
                &reason,
                psi_code(&e),
            ));
        }
    };
    let (done, total) = open.psi_mut()?.query_progress();
    report(&env.run_id, "responder", "query", done, total);
    let query_complete = open.psi_mut()?.query_complete();
    if query_complete && open.receipt.is_none() {
        fix_reply(home, runs, &env.run_id, &mut open)?;
    }
    Ok(ChunkAckJson {
        index: ack.index,
        frame_sha256: hex::encode(ack.frame_digest),
        query_complete,
    })
}

/// Makes reply chunk `index` of an open run: its frame, framed with the run's receipt. Asked
/// again, the same bytes (nothing drawn, nothing charged). Errors: 404 `not_found`, 401
/// `bad_signature`, 409 `conflict` before the reply is fixed or past its last chunk.
pub fn reply_chunk(
    home: &Home,
    runs: &StreamRuns,
    env: &Envelope,
    sig: &Signature,
    body: &[u8],
) -> Result<Vec<u8>> {
    let shared = runs.get(&env.run_id).ok_or_else(|| no_run(&env.run_id))?;
    let mut open = shared.lock().unwrap_or_else(PoisonError::into_inner);
    verify_call(home, &open, env, sig, body, REPLY_CHUNK_PATH)?;
    open.last_used = Instant::now();
    let asked: ReplyChunkRequest = serde_json::from_slice(body)
        .map_err(|e| NodeError::bad_request(format!("the request does not parse: {e}")))?;
    if let Some((last, answer)) = &open.finished {
        return if asked.index == *last {
            Ok(answer.clone())
        } else {
            Err(NodeError::new(
                Code::Conflict,
                "the run is finished: only its last reply chunk can be asked again",
            ))
        };
    }
    let receipt = open
        .receipt
        .clone()
        .ok_or_else(|| NodeError::new(Code::Conflict, "the query is not complete"))?;
    let chunk = open
        .psi
        .as_ref()
        .ok_or_else(|| NodeError::internal("the run's state is gone"))?
        .reply_chunk(asked.index)
        .map_err(|e| NodeError::new(Code::Conflict, format!("psi-ca-v1: {e}")))?;
    let psi = open
        .psi
        .as_ref()
        .ok_or_else(|| NodeError::internal("the run's state is gone"))?;
    let chunks = psi.reply_chunks().unwrap_or_default();
    let total = psi.reply_records().unwrap_or_default();
    let c = u64::from(ChunkFrame::parse(&chunk).map_or(1, |f| f.chunk_records));
    let last = u64::from(asked.index) + 1 >= chunks;
    let done = if last {
        total
    } else {
        (u64::from(asked.index) * c).min(total)
    };
    report(
        &env.run_id,
        "responder",
        if last { "done" } else { "reply" },
        done,
        total,
    );
    let answer = frame(&receipt, &chunk);
    if last {
        // The querier asks in order: nothing but this chunk can be asked again. The run's
        // state, its secrets with it, is dropped now (wiped, §8.6).
        open.psi = None;
        open.finished = Some((asked.index, answer.clone()));
    }
    Ok(answer)
}

/// How the querier reaches the peer for a streamed run.
pub(crate) struct Link<'a> {
    pub(crate) peer: &'a Peer,
    pub(crate) peer_name: &'a str,
    pub(crate) peer_key: &'a VerifyingKey,
    pub(crate) key: &'a SigningKey,
    pub(crate) me: &'a str,
    pub(crate) agreement_id: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) connect_timeout: Duration,
    pub(crate) answer_timeout: Duration,
    pub(crate) max_response: usize,
}

impl Link<'_> {
    /// Sends `body` to `path`, signed, sending it again (same body, fresh envelope) after a
    /// connection that failed (refused, closed, reset), up to [`ATTEMPTS`] times with a
    /// doubling pause; returns the answer. A refusal (an HTTP error) is not retried, nor a call
    /// that ran out its time (a slow or stalled peer is not a cut connection, and retrying it
    /// would multiply the run's timeouts).
    async fn call(&self, path: &str, body: Vec<u8>) -> std::result::Result<Response, CallError> {
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1;
        // Whether an earlier try may have reached the peer: a later failure to connect then
        // does not mean that nothing was sent.
        let mut reached = false;
        loop {
            let env = Envelope {
                agreement_id: self.agreement_id.to_string(),
                run_id: self.run_id.to_string(),
                sender: self.me.to_string(),
                timestamp_ms: now_ms(),
            };
            let headers = env.sign(&request_kind(path), &body, self.key);
            let tried = Instant::now();
            let sent = self
                .peer
                .post_with(
                    path,
                    &headers,
                    body.clone(),
                    self.connect_timeout,
                    self.answer_timeout,
                    self.max_response,
                )
                .await;
            match sent {
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < ATTEMPTS && tried.elapsed() < self.time_for(&e) => {
                    reached |= matches!(e, CallError::AfterSend { .. });
                    tracing::warn!(run = self.run_id, path, attempt, error = %e, "a streamed call failed; sending it again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(CallError::Unreachable { url, reason }) if reached => {
                    return Err(CallError::AfterSend { url, reason });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The time a call has before it fails as `e` for want of time.
    fn time_for(&self, e: &CallError) -> Duration {
        match e {
            CallError::Unreachable { .. } => self.connect_timeout,
            CallError::AfterSend { .. } => self.answer_timeout,
        }
    }

    /// A verified answer's body, or the error it carries.
    fn check(&self, path: &str, resp: Response) -> Result<Vec<u8>> {
        if !resp.status.is_success() {
            return Err(crate::querier::refused_answer(self.peer_name, &resp));
        }
        crate::querier::verify_answer(
            &resp,
            (self.peer_name, self.peer_key),
            (self.run_id, self.agreement_id),
            &response_kind(path),
            "answer",
        )?;
        Ok(resp.body.to_vec())
    }
}

/// A failed call: `peer_unreachable` only when it is the opening and nothing was sent (then
/// nothing of the run left this node), `peer_failed` otherwise.
fn call_error(e: CallError, opening: bool) -> NodeError {
    match e {
        CallError::Unreachable { .. } if opening => NodeError::new(Code::PeerUnreachable, e),
        _ => NodeError::new(Code::PeerFailed, e),
    }
}

async fn on_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::internal(format!("query task failed: {e}")))
}

/// The querier's side of a streamed exchange: opens the run with `opening` and query chunk 0,
/// sends the other query chunks, asks for the reply's chunks and counts; returns the peer's
/// receipt and the cell counts. Errors: `peer_unreachable` (the opening never reached the
/// peer), `peer_failed`, the peer's refusals, `bad_peer_answer`; the run's progress then says
/// `failed` (records done kept, no ETA).
pub(crate) async fn exchange(
    link: &Link<'_>,
    opening: &serde_json::Value,
    psi: StreamQuerier,
) -> Result<(Receipt, CellCounts)> {
    let out = exchange_chunks(link, opening, psi).await;
    if out.is_err() {
        mark_failed(link.run_id, "querier");
    }
    out
}

/// Marks a tracked run's progress `failed`: its records done stay, its ETA goes.
fn mark_failed(run_id: &str, role: &str) {
    let mut map = PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(t) = map.get_mut(&format!("{run_id}/{role}")) {
        t.progress.phase = "failed".to_string();
        t.progress.eta_s = None;
    }
}

async fn exchange_chunks(
    link: &Link<'_>,
    opening: &serde_json::Value,
    psi: StreamQuerier,
) -> Result<(Receipt, CellCounts)> {
    let psi = Arc::new(Mutex::new(psi));
    let chunks = psi
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .query_chunks();
    let points = psi
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .query_points();
    let mut query_complete = false;
    for index in 0..chunks {
        let index = u32::try_from(index).map_err(NodeError::internal)?;
        let chunk = on_pool({
            let psi = psi.clone();
            move || {
                psi.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .query_chunk(index)
                    .map_err(|e| NodeError::internal(format!("psi-ca-v1: {e}")))
            }
        })
        .await
        .and_then(|r| r)?;
        let c = u64::from(ChunkFrame::parse(&chunk).map_or(1, |f| f.chunk_records));
        let (path, body) = if index == 0 {
            (OPEN_PATH, frame(opening, &chunk))
        } else {
            (CHUNK_PATH, chunk)
        };
        let resp = link
            .call(path, body)
            .await
            .map_err(|e| call_error(e, index == 0))?;
        let body = link.check(path, resp)?;
        let ack: ChunkAckJson = serde_json::from_slice(&body)
            .map_err(|e| NodeError::bad_peer_answer(format!("bad acknowledgement: {e}")))?;
        if ack.index != index {
            return Err(NodeError::bad_peer_answer(
                "the acknowledgement names another chunk",
            ));
        }
        query_complete = ack.query_complete;
        report(
            link.run_id,
            "querier",
            "query",
            (u64::from(index) * c).min(points),
            points,
        );
    }
    if !query_complete {
        return Err(NodeError::bad_peer_answer(
            "the peer did not take the whole query",
        ));
    }
    let mut receipt: Option<serde_json::Value> = None;
    let mut index: u32 = 0;
    loop {
        let body = serde_json::to_vec(&ReplyChunkRequest { index }).map_err(NodeError::internal)?;
        let resp = link
            .call(REPLY_CHUNK_PATH, body)
            .await
            .map_err(|e| call_error(e, false))?;
        let body = link.check(REPLY_CHUNK_PATH, resp)?;
        let (r, chunk) =
            unframe(&body, MAX_FRAME_JSON).map_err(|e| NodeError::bad_peer_answer(e.message()))?;
        if receipt.as_ref().is_some_and(|old| old != &r) {
            return Err(NodeError::bad_peer_answer(
                "the peer's receipt changed during the run",
            ));
        }
        receipt = Some(r);
        let chunk = chunk.to_vec();
        let (done, total, complete) = on_pool({
            let psi = psi.clone();
            move || {
                let mut q = psi.lock().unwrap_or_else(PoisonError::into_inner);
                q.accept_reply_chunk(&chunk)
                    .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v1: {e}")))?;
                let (done, total) = q.reply_progress();
                Ok::<_, NodeError>((done, total, q.reply_complete()))
            }
        })
        .await
        .and_then(|r| r)?;
        report(
            link.run_id,
            "querier",
            if complete { "done" } else { "reply" },
            done,
            total,
        );
        if complete {
            break;
        }
        index = index
            .checked_add(1)
            .ok_or_else(|| NodeError::bad_peer_answer("too many reply chunks"))?;
    }
    let psi = Arc::try_unwrap(psi)
        .map_err(|_| NodeError::internal("the run's state is still in use"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let counts = psi
        .finish()
        .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v1: {e}")))?;
    let receipt: Receipt = serde_json::from_value(receipt.unwrap_or_default())
        .map_err(|e| NodeError::bad_peer_answer(format!("peer receipt does not parse: {e}")))?;
    Ok((receipt, counts))
}

/// Signs an answer to `path` and makes it the HTTP response.
fn signed_response(
    state: &crate::state::NodeState,
    env: &Envelope,
    path: &str,
    payload: Vec<u8>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let out = Envelope {
        agreement_id: env.agreement_id.clone(),
        run_id: env.run_id.clone(),
        sender: state.name.clone(),
        timestamp_ms: now_ms(),
    };
    let sig_headers = out.sign(&response_kind(path), &payload, &state.home.key);
    let mut resp = payload.into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// `POST /v1/psi/stream/open` (node-wire-v1 §streamed runs).
pub async fn open_handler(
    axum::extract::State(state): axum::extract::State<Arc<crate::state::NodeState>>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> crate::state::Answer {
    let (env, sig) = Envelope::from_headers(&headers)?;
    let throttled = state
        .failed_runs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .check(&env.sender, now_ms());
    if let Some(retry_after_s) = throttled {
        return Err(NodeError::new(
            Code::TooManyRequests,
            format!(
                "too many failed runs from {} in the last hour; retry in {retry_after_s} s",
                env.sender
            ),
        )
        .with_details(serde_json::json!({"retry_after_s": retry_after_s}))
        .into());
    }
    let _slot = state
        .run_slots
        .acquire()
        .await
        .map_err(|e| NodeError::new(Code::Unavailable, format!("shutting down: {e}")))?;
    let (st, e) = (state.clone(), env.clone());
    let ack = crate::state::blocking(move || {
        let sender = e.sender.clone();
        let mut authenticated = false;
        let out = open(&st.home, &st.streams, e, &sig, &body, &mut authenticated);
        if let Err(err) = &out
            && authenticated
            && err.code() != Code::Conflict
        {
            st.failed_runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(&sender, now_ms());
        }
        out
    })
    .await?;
    Ok(signed_response(
        &state,
        &env,
        OPEN_PATH,
        serde_json::to_vec(&ack).map_err(NodeError::from)?,
    ))
}

/// `POST /v1/psi/chunk` (node-wire-v1 §streamed runs).
pub async fn chunk_handler(
    axum::extract::State(state): axum::extract::State<Arc<crate::state::NodeState>>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> crate::state::Answer {
    in_run_slot(state, headers, CHUNK_PATH, move |st, e, sig| {
        let ack = query_chunk(&st.home, &st.streams, e, sig, &body)?;
        serde_json::to_vec(&ack).map_err(NodeError::from)
    })
    .await
}

/// `POST /v1/psi/reply-chunk` (node-wire-v1 §streamed runs).
pub async fn reply_chunk_handler(
    axum::extract::State(state): axum::extract::State<Arc<crate::state::NodeState>>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> crate::state::Answer {
    in_run_slot(state, headers, REPLY_CHUNK_PATH, move |st, e, sig| {
        reply_chunk(&st.home, &st.streams, e, sig, &body)
    })
    .await
}

/// A chunk call: its envelope from `headers`, one of the node's run slots while `answer` runs
/// on the blocking pool, and the answer signed as `path`'s response.
async fn in_run_slot(
    state: Arc<crate::state::NodeState>,
    headers: http::HeaderMap,
    path: &'static str,
    answer: impl FnOnce(&crate::state::NodeState, &Envelope, &Signature) -> Result<Vec<u8>>
    + Send
    + 'static,
) -> crate::state::Answer {
    let (env, sig) = Envelope::from_headers(&headers)?;
    let _slot = state
        .run_slots
        .acquire()
        .await
        .map_err(|e| NodeError::new(Code::Unavailable, format!("shutting down: {e}")))?;
    let (st, e) = (state.clone(), env.clone());
    let payload = crate::state::blocking(move || answer(&st, &e, &sig)).await?;
    Ok(signed_response(&state, &env, path, payload))
}
