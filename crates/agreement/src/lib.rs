//! `tandem-agreement`: the signed agreement both nodes act under.
//!
//! Humans write the [`Terms`] in `agreement.toml` (see `examples/agreement.toml`); both parties
//! sign the canonical JSON of the terms with their node's ed25519 key; a node acts only when
//! [`Agreement::check_active`] passes. The [`AgreementId`] names one exact version of the terms.
//!
//! The format (terms, canonical bytes, id, signatures, life cycle) is specified normatively in
//! `protocols/agreement-v1.md`, whose test vector `tests/spec_vector.rs` checks.

#![forbid(unsafe_code)]

mod agreement;
mod error;
mod id;
mod terms;
mod time;
mod validate;

pub use agreement::Agreement;
pub use error::AgreementError;
pub use id::AgreementId;
pub use terms::{Budget, Party, Protocol, Terms, ThreatModel, ValueColumn};
pub use validate::{MAX_COLUMN_VALUES, MAX_SQUARED_VALUE_BOUND, MAX_VALUE_BOUND, OTHER_LABEL};

/// Lower-case hex of the 32 public-key bytes: how a node's signing key is written in the terms.
pub fn fingerprint(key: &ed25519_dalek::VerifyingKey) -> String {
    hex::encode(key.to_bytes())
}

/// Unix seconds of an RFC 3339 UTC timestamp (`Z` suffix), as agreements use.
pub fn parse_rfc3339(text: &str) -> Result<i64, AgreementError> {
    time::parse_rfc3339_utc(text).map_err(AgreementError::Parse)
}

/// Unix seconds as an RFC 3339 UTC timestamp, `YYYY-MM-DDTHH:MM:SSZ` (the form agreements use),
/// or `None` for an instant outside the years 0000–9999. [`parse_rfc3339`] reads it back.
pub fn format_rfc3339(unix_secs: i64) -> Option<String> {
    time::format_rfc3339_utc(unix_secs)
}
