//! psi-ca-v2 (`protocols/psi-ca-v2.md`) under an agreement whose `protocol` is `psi-ca-v2`:
//! the run's parameters, derived from the same request and grid as a v1 run, and what each
//! role charges to its ledger (spec §7) through [`crate::budget::ledger_entry`] — so the
//! per-query caps, the zCDP ρ cap and budget periods apply unchanged.
//!
//! The charges differ from v1 on both sides:
//! - the responder's cells are pure ε (δ = 0: central, unclamped discrete-Laplace noise added
//!   after counting); its bucket sizes cost `(ε_RB, δ_RB)` as in v1;
//! - the querier also pays for the seed matches the responder sees (`ε_QC, δ_QC`), besides its
//!   bucket sizes (v1 charged the querier only its bucket sizes).
//!
//! The run over HTTPS (`protocols/node-wire-v1.md` §psi-ca-v2): Msg1 → Msg2 on `/v1/psi/run`
//! (the querier's side in [`crate::querier`], the responder's in [`crate::responder`]),
//! Msg3 → Msg4 on `/v1/psi/v2/finish` (`v2::querier` and [`responder`], which keeps the
//! responder's state between the two).

use tandem_agreement::{Agreement, Protocol};
use tandem_dp::PrivacyLoss;
use tandem_psi_v2::RunParams;
use tandem_store::NewRun;

use crate::budget::{EntryFor, ledger_entry};
use crate::error::{Code, NodeError, Result};
use crate::run::Derived;
use crate::wire::RunRequest;

/// Whether `agreement` selects psi-ca-v2.
pub fn selected(agreement: &Agreement) -> bool {
    agreement.terms.protocol == Protocol::PsiCaV2
}

/// psi-ca-v2 parameters for a run both roles derived as `derived` (grid, analysis, and the
/// v1 parameters' agreement id, hash domain and run id) from `req`: the querier's share of
/// `req.epsilon` split [`tandem_psi_v2::QUERIER_CELL_SHARE`] to its seed matches, the
/// responder's [`tandem_psi_v2::CELL_SHARE`] to its central cell noise, each clamped
/// mechanism `req.delta / 2`. Errors carry `code` (the caller's role, as in
/// [`crate::run::derive`]).
pub fn params(derived: &Derived, req: &RunRequest, code: Code) -> Result<RunParams> {
    let split = derived.analysis.epsilon_split();
    let v1 = &derived.params;
    RunParams::for_epsilon(
        v1.agreement_id,
        v1.join_key.clone(),
        v1.run_id,
        v1.querier_buckets,
        v1.responder_buckets,
        req.epsilon * split.querier,
        req.epsilon * split.responder,
        req.delta,
    )
    .map_err(|e| NodeError::new(code, e.to_string()))
}

/// The psi-ca-v1-shaped parameters the analyses read their intervals from (`NoisedCells`), for
/// a v2 run with `v1`'s grid, hash domain and run id: the bucket-size noise is v2's (the querier
/// sees `|B_h| + J_B[h]` as in v1); the cells carry B's central discrete Laplace at `s_C`,
/// unclamped, written as a clamp of [`tandem_dp::ShiftedLaplace::MAX_OFFSET`] that no error
/// reaches (`P(|Z| > 2³¹) ≈ e^(−2³¹/s_C)`), so the closed-form intervals are those of the
/// unclamped law.
pub fn analysis_params(v1: &tandem_psi::RunParams, v2: &RunParams) -> tandem_psi::RunParams {
    tandem_psi::RunParams {
        querier_bucket_noise: v2.querier_bucket_noise,
        responder_bucket_noise: v2.responder_bucket_noise,
        cell_noise: tandem_dp::ShiftedLaplace {
            scale: v2.cell_scale,
            offset: tandem_dp::ShiftedLaplace::MAX_OFFSET,
        },
        ..v1.clone()
    }
}

/// A role's charge for one v2 run: `(ε, δ)` and the per-mechanism zCDP ρ (spec §7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Charge {
    /// `(ε, δ)` composed over the role's mechanisms.
    pub loss: PrivacyLoss,
    /// Σ ε²/2 over the role's mechanisms.
    pub rho: f64,
}

/// The querier's charge: `(ε_QB + ε_QC, δ_QB + δ_QC)`, ρ `ε_QB²/2 + ε_QC²/2`.
pub fn querier_charge(params: &RunParams) -> Result<Charge> {
    Ok(Charge {
        loss: tandem_psi_v2::querier_loss(params).map_err(internal)?,
        rho: tandem_psi_v2::querier_rho(params).map_err(internal)?,
    })
}

/// The responder's charge: `(ε_C + ε_RB, δ_RB)` (cells pure ε), ρ `ε_C²/2 + ε_RB²/2`.
pub fn responder_charge(params: &RunParams) -> Result<Charge> {
    Ok(Charge {
        loss: tandem_psi_v2::responder_loss(params).map_err(internal)?,
        rho: tandem_psi_v2::responder_rho(params).map_err(internal)?,
    })
}

/// The ledger entry of `role` (`querier` or `responder`) of `party` for a v2 run, checked
/// against the party's per-query cap by [`ledger_entry`] (403 `budget_exceeded`). Charge it
/// with [`crate::release::Reservation::charge`] before the role's first message leaves.
pub fn entry(agreement: &Agreement, params: &RunParams, mut e: EntryFor<'_>) -> Result<NewRun> {
    let charge = match e.role {
        "querier" => querier_charge(params)?,
        "responder" => responder_charge(params)?,
        other => return Err(NodeError::internal(format!("unknown role {other:?}"))),
    };
    e.rho = charge.rho;
    ledger_entry(agreement, e, charge.loss)
}

/// What the agreement stored as `doc_json` gives each party, for `agreement show`/`list` and
/// the API: `{"protocol": "psi-ca-v2", "threat_model": {"responder": …, "querier": …}}` (the
/// guarantee for a party's data when it answers, and when it asks). `Null` members when the
/// document does not parse.
pub fn protocol_summary(doc_json: &str) -> serde_json::Value {
    match serde_json::from_str::<Agreement>(doc_json) {
        Ok(a) => serde_json::json!({
            "protocol": a.terms.protocol.as_str(),
            "threat_model": a.terms.protocol.threat_model(),
        }),
        Err(_) => serde_json::json!({"protocol": null, "threat_model": null}),
    }
}

fn internal(e: tandem_psi_v2::PsiV2Error) -> NodeError {
    NodeError::internal(format!("psi-ca-v2 accounting: {e}"))
}

pub(crate) mod querier;
pub mod responder;

#[cfg(test)]
mod tests;
