//! The responder's psi-ca-v2 state between its two round trips (`protocols/node-wire-v1.md`
//! §psi-ca-v2, `protocols/psi-ca-v2.md` §4): after Msg1 it keeps the sans-IO
//! [`tandem_psi_v2::Responder`] (`β`, `L1`, its list `P`), the cell noise it drew up front and
//! the run's charged [`Reservation`] in memory, keyed by (node directory, run id), for
//! `limits.v2_state_ttl_s`; the querier's Msg3 takes it **once** (a second Msg3 finds nothing and
//! is refused, audited); at most `limits.v2_pending_per_peer` runs per peer wait at once. A
//! restart forgets the state (the run then fails at the next start with its charge kept, as
//! every `started` run does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ed25519_dalek::Signature;
use tandem_dp::{CentralNoise, DpError, NoiseSource, ShiftedLaplace};
use tandem_store::{AuditEvent, Store};
use zeroize::Zeroizing;

use crate::error::{Code, NodeError, Result};
use crate::home::Home;
use crate::release::{Exposure, Reservation};
use crate::state::FailedRuns;
use crate::wire::{Envelope, PSI_V2_FINISH_REQUEST, now_ms};

/// A run waiting for its Msg3.
pub(crate) struct Pending {
    /// The sans-IO state after Msg2 (wiped on drop).
    pub responder: tandem_psi_v2::Responder,
    /// The `nA·nB` central cell draws, made before the query was read (wiped on drop).
    pub cell_noise: Zeroizing<Vec<i64>>,
    /// `s_C`, the scale the cell noise was drawn at.
    pub cell_scale: f64,
    /// The run's charge, ended by Msg3 (release or abandon) or by expiry (abandon).
    pub reservation: Reservation,
    /// When the state is wiped.
    pub expires: Instant,
    /// Agreement id (hex) the run is bound to.
    pub agreement_id: String,
    /// The querier.
    pub peer: String,
    /// The receipt sent with Msg2 (the result stored with the release).
    pub receipt_json: String,
    /// Cells of the run.
    pub cells: usize,
}

/// Keyed by the node's directory (several nodes may share a process: tests, `tandem demo`) and
/// the run id.
type Map = HashMap<(PathBuf, String), Pending>;

static PENDING: LazyLock<Mutex<Map>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn pending() -> MutexGuard<'static, Map> {
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a run's state waits for Msg3 on `home`.
pub(crate) fn ttl(home: &Home) -> Duration {
    Duration::from_secs(home.config.limits.v2_state_ttl_s)
}

/// Ends the expired runs of the node in `node` (its directory, whose store `store` is): their
/// state is wiped and their charge stands (Msg2 left). A failure to record that is logged (the
/// run stays `started` and fails at the next start, its charge kept).
pub(crate) fn sweep(store: &mut Store, node: &Path) {
    let now = Instant::now();
    let expired: Vec<(String, Pending)> = {
        let mut map = pending();
        let keys: Vec<(PathBuf, String)> = map
            .iter()
            .filter(|(k, p)| k.0 == node && p.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|p| (k.1, p)))
            .collect()
    };
    for (run_id, p) in expired {
        tracing::warn!(run = %run_id, peer = %p.peer, "psi-ca-v2: no Msg3 within the state's time to live");
        let ended = p.reservation.abandon(
            store,
            "psi-ca-v2: no Msg3 within limits.v2_state_ttl_s; the run's state was wiped",
            Exposure::MayHaveLeft,
        );
        if let Err(e) = ended {
            tracing::warn!(run = %run_id, error = %e, "could not record an expired psi-ca-v2 run");
        }
    }
}

/// Refuses a new run of `peer` (429 `too_many_requests`, before any charge) when `max` of its
/// runs already wait for their Msg3. Depends only on the peer's own requests.
pub(crate) fn check_room(node: &Path, peer: &str, max: usize) -> Result<()> {
    let waiting = pending()
        .iter()
        .filter(|(k, p)| k.0 == node && p.peer == peer)
        .count();
    if waiting >= max {
        return Err(NodeError::new(
            Code::TooManyRequests,
            format!(
                "{peer} already has {waiting} psi-ca-v2 runs waiting for their Msg3 \
                 (limits.v2_pending_per_peer = {max}); finish or let them expire first"
            ),
        ));
    }
    Ok(())
}

/// Keeps a run's state until its Msg3 or its expiry.
pub(crate) fn hold(node: &Path, run_id: &str, p: Pending) {
    pending().insert((node.to_path_buf(), run_id.to_string()), p);
}

/// Noise drawn before the query was read, handed to the sans-IO responder when it asks: the
/// junk counts `J_B` for Msg2, the central cell draws for Msg4. A second request, or one for
/// another count, gets nothing (the crate then refuses with `BadNoiseDraws`).
pub(crate) struct Drawn {
    /// `J_B[h]` and the distribution they were drawn from.
    pub junk: Option<(ShiftedLaplace, Vec<u32>)>,
    /// `N_{g,h}` and their scale.
    pub cells: Option<(f64, Zeroizing<Vec<i64>>)>,
}

impl NoiseSource for Drawn {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        match self.junk.take() {
            Some((d, v)) if d == *dist && v.len() == count => Ok(v),
            _ => Err(DpError::InvalidParameter(
                "psi-ca-v2: no pre-drawn junk counts for this request".into(),
            )),
        }
    }
}

impl CentralNoise for Drawn {
    fn laplace(&mut self, scale: f64, count: usize) -> Result<Vec<i64>, DpError> {
        match self.cells.take() {
            Some((s, v)) if s == scale && v.len() == count => Ok(v.to_vec()),
            _ => Err(DpError::InvalidParameter(
                "psi-ca-v2: no pre-drawn cell noise for this request".into(),
            )),
        }
    }
}

/// `POST /v1/psi/v2/finish` (spec §4.4): authenticates the querier's Msg3, takes the run's
/// state (at most once), verifies every proof, counts, adds the noise drawn up front and
/// answers Msg4, through the one release path. Unknown, expired or already answered runs and
/// failed proofs reach the peer as opaque codes (`refused`, `malformed`); a failure after the
/// state was taken ends the run with its charge kept and counts against the peer in
/// `failed_runs`.
pub fn finish(
    home: &Home,
    env: Envelope,
    sig: &Signature,
    body: &[u8],
    failed_runs: &Mutex<FailedRuns>,
) -> Result<(Envelope, Vec<u8>)> {
    let me = home.config.name.as_str();
    let mut store = home.store()?;
    sweep(&mut store, &home.dir);
    let (_agreement, peer, _key) =
        crate::responder::authenticate(&store, me, &env, PSI_V2_FINISH_REQUEST, body, sig)?;
    let failed = |code: Code| {
        failed_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&peer, now_ms());
        crate::responder::opaque(code)
    };
    let taken = {
        let mut map = pending();
        let key = (home.dir.clone(), env.run_id.clone());
        match map.get(&key) {
            Some(p) if p.agreement_id == env.agreement_id && p.peer == peer => map.remove(&key),
            _ => None,
        }
    };
    let Some(run) = taken else {
        store.append_audit(
            AuditEvent::now(
                format!("peer:{peer}"),
                "query.refused",
                serde_json::json!({"run_id": env.run_id, "role": "responder", "protocol": "psi-ca-v2", "reason": "no psi-ca-v2 run awaiting Msg3 (unknown, expired or already answered)", "code": "refused"}),
            )
            .with_agreement(&env.agreement_id),
        )?;
        tracing::warn!(run = %env.run_id, peer = %peer, "refused a psi-ca-v2 Msg3: no run awaiting it");
        return Err(failed(Code::Refused));
    };
    let Pending {
        responder,
        cell_noise,
        cell_scale,
        reservation,
        receipt_json,
        cells,
        ..
    } = run;
    let mut noise = Drawn {
        junk: None,
        cells: Some((cell_scale, cell_noise)),
    };
    let actor = format!("peer:{peer}");
    match responder.finish(body, &mut rand::rng(), &mut noise) {
        Ok(msg4) => {
            reservation.release(
                &mut store,
                &receipt_json,
                &msg4,
                &actor,
                serde_json::json!({"cells": cells, "role": "responder", "protocol": "psi-ca-v2"}),
            )?;
            tracing::info!(run = %env.run_id, peer = %peer, cells, "answered a psi-ca-v2 run");
            Ok((
                Envelope {
                    agreement_id: env.agreement_id,
                    run_id: env.run_id,
                    sender: me.to_string(),
                    timestamp_ms: now_ms(),
                },
                msg4,
            ))
        }
        Err(e) => {
            tracing::warn!(run = %env.run_id, peer = %peer, error = %e, "refused a psi-ca-v2 Msg3");
            reservation.abandon(
                &mut store,
                &format!("psi-ca-v2 Msg3: {e}"),
                Exposure::MayHaveLeft,
            )?;
            let code = match e.peer_code() {
                "malformed" => Code::Malformed,
                _ => Code::Refused,
            };
            Err(failed(code))
        }
    }
}
