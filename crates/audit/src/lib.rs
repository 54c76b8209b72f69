//! `tandem-audit`: the tamper-evident audit log of a Tandem node.
//!
//! Every event ([`AuditEvent`]) becomes an [`Entry`] whose hash covers its seq, the previous
//! entry's hash and the event, so altering, inserting or deleting an entry breaks the chain.
//! The node periodically signs the head with its Ed25519 key ([`Checkpoint`]), which also makes
//! cutting entries off the end detectable and lets a third party check the log.
//! [`verify`] / [`verify_jsonl`] recompute everything and name the first entry that fails.
//!
//! The format is normative in `protocols/audit-log-v1.md`. This crate does no I/O except
//! writing exports and reading files handed to [`verify_jsonl`].

#![forbid(unsafe_code)]

mod canonical;
mod checkpoint;
mod entry;
mod export;
mod json_fields;
mod verify;

pub use canonical::canonical_json;
pub use checkpoint::{
    CHECKPOINT_DOMAIN, Checkpoint, CheckpointError, checkpoint_message, sign_checkpoint,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use entry::{
    AuditEvent, ENTRY_DOMAIN, Entry, GENESIS_PREV_HASH, entry_hash, entry_hash_input, next_entry,
    now_unix_ms,
};
pub use export::{
    CSV_HEADER, ExportFormat, ExportSummary, Exporter, export, format_utc_ms, verify_jsonl,
};
pub use verify::{Verifier, VerifyError, VerifyReport, verify};
