//! `psi-ca-v1`: grouped private-set-intersection cardinality with differential privacy over
//! Ristretto255 (normative text: `protocols/psi-ca-v1.md`).
//!
//! The querier A holds item digests in `nA` buckets, the responder B in `nB` buckets. A learns,
//! for every cell `(gA, gB)`, `|A_gA ∩ B_gB|` plus discrete-Laplace noise that B chose (B
//! injects dummy matches), and B's bucket sizes plus noise; B learns A's bucket sizes plus
//! noise that A chose. Nobody learns which items match.
//!
//! The crate is sans-IO: [`Querier::start`] makes the query bytes, [`respond`] turns them into
//! the reply bytes, [`Querier::finish`] turns the reply into [`CellCounts`]. Moving bytes,
//! persisting state and charging budgets ([`accounting`]) are the caller's job. It draws no
//! randomness of its own either: the caller passes a [`rand::CryptoRng`] (the node one seeded
//! from the OS; tests a seeded one, which reproduces a run byte for byte, spec §4.4) and a
//! noise source.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounting;
mod ec;
mod error;
mod hash;
mod input;
mod items;
mod message;
mod params;
mod querier;
mod responder;
pub mod stream;

pub use error::PsiError;
pub use items::{Items, hash_domain_id, hash_to_points};
pub use message::{MAGIC, MessageHeader, MessageType, VERSION, peek_header};
pub use params::{Limits, MAX_CELLS, RunParams};
pub use querier::{CellCounts, MatchLists, Querier, TRUNCATED_LEN};
pub use responder::{
    Owners, ParsedQuery, ResponderNoise, query_bucket_sizes, respond, respond_parsed,
    respond_with_owners,
};

#[cfg(test)]
mod tests;
