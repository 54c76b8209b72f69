//! `psi-sum-v1`: differentially private intersection-sums over Ristretto255 (normative text:
//! `protocols/psi-sum-v1.md`).
//!
//! It runs after a `psi-ca-v1` run, whose querier A knows which of the responder B's points
//! matched which cell. B (the value holder) attaches an exponential-ElGamal ciphertext
//! `Enc(v) = (r·G, v·G + r·K)` of each point's value, under a fresh per-run key `K`, to its
//! points (`Enc(0)` on junk and injected points). A adds the matched ciphertexts per cell,
//! re-randomises and masks them, and asks B to decrypt one ciphertext per cell; B adds its
//! noise to each decryption and A removes the mask and solves a bounded discrete logarithm.
//! A learns, per cell, `Σ v + η` (and optionally `Σ v² + η'`); B learns nothing.
//!
//! The crate is sans-IO and takes its randomness from the caller:
//! [`ValueHolder::start`] makes the values message, [`SumQuerier::request`] turns it into the
//! decryption request, [`ValueHolder::decrypt`] answers it and [`SumQuerier::finish`] turns the
//! answer into [`CellSums`]. Moving bytes, persisting state and charging budgets
//! ([`accounting`]) are the caller's job.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounting;
mod dlog;
mod elgamal;
mod error;
mod holder;
mod message;
mod params;
mod querier;

pub use dlog::DiscreteLog;
pub use error::{PointRole, SumError};
pub use holder::ValueHolder;
pub use message::{MAGIC, MessageHeader, MessageType, VERSION, peek_header};
pub use params::{Limits, MAX_CELLS, MAX_SQUARED_BOUND, SumParams};
pub use querier::{CellSums, SumQuerier};

#[cfg(test)]
mod tests;
