//! `psi-ca-v2`: grouped private-set-intersection cardinality in which the responder counts and
//! adds central discrete-Laplace noise, and the querier proves a correct shuffle-and-
//! exponentiation of the responder's list (normative text: `protocols/psi-ca-v2.md`).
//!
//! The responder B's cells are ε-DP (δ = 0) against **any** querier; the querier A's segment
//! counts are DP against a semi-honest B only ("who asks, risks"); no output integrity.
//!
//! Sans-IO: [`Querier::start`] makes Msg1; [`Responder::receive_query`] validates it from public
//! quantities only and keeps `β` and `L1`; [`Responder::list`] reads B's items and makes Msg2;
//! [`Querier::evaluate`] makes Msg3 (the evaluation and its proofs); [`Responder::finish`]
//! verifies every proof, counts, adds the noise and makes Msg4; [`Querier::finish`] gives the
//! [`CellCounts`]. Randomness (`rand::CryptoRng`) and noise ([`tandem_dp::NoiseSource`],
//! [`tandem_dp::CentralNoise`]) are injected by the caller, who also moves the bytes and
//! charges the budgets ([`responder_loss`], [`querier_loss`]) before anything leaves.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod hash;
mod params;
mod querier;
mod responder;
mod shuffle;
mod wire;

pub use error::PsiV2Error;
pub use params::{
    CELL_SHARE, Limits, MAX_CELLS, QUERIER_CELL_SHARE, RunParams, cell_loss, querier_loss,
    querier_rho, responder_loss, responder_rho,
};
pub use querier::{CellCounts, Querier};
pub use responder::{Responder, TRUNCATED_LEN, query_bucket_sizes};
pub use shuffle::proof_len;
pub use wire::{MAGIC, MSG1, MSG2, MSG3, MSG4, VERSION};

#[cfg(test)]
mod tests;
