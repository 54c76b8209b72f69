//! A Tandem node as a library: its home directory, store access, the two roles of a run, the
//! one release path, the analyses, node-wire-v1, the HTTPS server and client, the people's API
//! and the compliance views. The `tandem` binary is a thin CLI over it.
//!
//! Modules, from the bottom up (each uses only modules above it):
//!
//! | module | what |
//! |---|---|
//! | [`error`] | [`NodeError`]: one error type, codes grouped by who is at fault, HTTP status |
//! | [`wire`] | node-wire-v1: envelope, frame, paths, run request/receipt, signed ledger heads |
//! | [`home`], [`tls`], [`client`] | node directory and keys; pinned TLS; HTTPS calls to the peer |
//! | [`budget`] | budget policy: per-query caps, zCDP ρ cap, budget periods, ledger entries |
//! | [`release`] | the one release path: charge → draw → release/abandon → audit |
//! | [`analysis`] | the [`analysis::Analysis`] trait, its registry, and one module per analysis |
//! | [`run`] | what both roles derive the same way from agreement and request |
//! | [`querier`], [`responder`] | the two roles of a run |
//! | [`agreements`], [`compliance`] | agreement life cycle; budgets and records of processing |
//! | [`state`], [`api`], [`openapi`], [`server`] | shared handler state; the people's API and its OpenAPI document; the HTTPS server |
//! | [`sums`] | value columns and `psi-sum-v1`: import bounds, holder state, decryption |
//! | [`maintenance`], [`demo`] | what `serve` does on its own; the two-node demo |
//! | [`v2`] | psi-ca-v2 under an agreement that selects it: parameters, ledger charges, the second round trip and the responder's state between its two |

#![forbid(unsafe_code)]

pub mod agreements;
pub mod analysis;
pub mod api;
pub mod budget;
pub mod client;
pub mod compliance;
pub mod demo;
pub mod error;
pub mod home;
pub mod maintenance;
pub mod model;
pub mod openapi;
pub mod querier;
pub mod release;
pub mod responder;
pub mod results;
pub mod run;
pub mod server;
pub mod state;
pub mod stream;
pub mod sums;
pub mod tls;
pub mod v2;
pub mod wire;

pub use error::{Code, Fault, NodeError};
pub use home::{Config, Home};
