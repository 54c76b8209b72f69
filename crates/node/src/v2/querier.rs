//! The querier's second psi-ca-v2 round trip (`protocols/node-wire-v1.md` §psi-ca-v2): Msg2 in,
//! Msg3 (evaluation and shuffle proofs) signed to the responder's [`PSI_V2_FINISH_PATH`], its
//! signed Msg4 verified and read into the cell counts the analyses take.

use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use tandem_agreement::Agreement;

use crate::error::{Code, NodeError, Result};
use crate::wire::{
    Envelope, PSI_V2_FINISH_PATH, PSI_V2_FINISH_REQUEST, PSI_V2_FINISH_RESPONSE, now_ms,
};

/// What the second round trip needs from the run.
pub(crate) struct FinishCall<'a> {
    /// The agreement.
    pub agreement: &'a Agreement,
    /// The responder.
    pub peer: &'a str,
    /// This node.
    pub me: &'a str,
    /// This node's signing key.
    pub key: &'a SigningKey,
    /// The run id.
    pub run_id: [u8; 16],
    /// How long to wait for Msg4 (the responder verifies every proof first).
    pub timeout: Duration,
    /// The largest Msg2 and Msg4 this node reads, bytes.
    pub max_message_bytes: usize,
}

/// Answers Msg2 with Msg3, sends it, verifies the signed Msg4 and returns the counts as the
/// analyses read them (estimates `R − K^A`, B's noised bucket sizes). Runs on a blocking thread
/// of the Tokio runtime (it blocks on the call). Errors: 502 `bad_peer_answer` (a Msg2 or Msg4
/// that does not parse or is bound to another run), `peer_failed`, or the peer's refusal; Msg1
/// has left by then, so the caller's charge stands.
pub(crate) fn finish(
    mut querier: tandem_psi_v2::Querier,
    msg2: &[u8],
    c: &FinishCall<'_>,
    peer_key: &VerifyingKey,
) -> Result<tandem_psi::CellCounts> {
    let limits = tandem_psi_v2::Limits {
        max_points: c.max_message_bytes / 32,
    };
    let msg3 = querier
        .evaluate(msg2, &limits, &mut rand::rng())
        .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v2 Msg2: {e}")))?;
    let counts = send_msg3(msg3, c, peer_key)?;
    let cells = querier
        .finish(&counts)
        .map_err(|e| NodeError::bad_peer_answer(format!("psi-ca-v2 Msg4: {e}")))?;
    Ok(tandem_psi::CellCounts {
        querier_buckets: cells.querier_buckets,
        responder_buckets: cells.responder_buckets,
        noised: cells.estimates,
        responder_bucket_sizes_noised: cells.responder_bucket_sizes,
    })
}

/// Sends Msg3 signed to the responder and returns its verified Msg4.
fn send_msg3(msg3: Vec<u8>, c: &FinishCall<'_>, peer_key: &VerifyingKey) -> Result<Vec<u8>> {
    let (target, _) = crate::querier::peer_target(c.agreement, c.peer)?;
    let run_hex = hex::encode(c.run_id);
    let agreement_id = c.agreement.id().to_string();
    let env = Envelope {
        agreement_id: agreement_id.clone(),
        run_id: run_hex.clone(),
        sender: c.me.to_string(),
        timestamp_ms: now_ms(),
    };
    let headers = env.sign(PSI_V2_FINISH_REQUEST, &msg3, c.key);
    let resp = tokio::runtime::Handle::current()
        .block_on(target.post(
            PSI_V2_FINISH_PATH,
            &headers,
            msg3,
            c.timeout,
            c.max_message_bytes,
        ))
        // Msg1 has left: an unreachable peer now is a failed run, not "nothing sent".
        .map_err(|e| NodeError::new(Code::PeerFailed, e))?;
    if !resp.status.is_success() {
        return Err(crate::querier::refused_answer(c.peer, &resp));
    }
    crate::querier::verify_answer(
        &resp,
        (c.peer, peer_key),
        (&run_hex, &agreement_id),
        PSI_V2_FINISH_RESPONSE,
        "Msg4",
    )?;
    Ok(resp.body.to_vec())
}
