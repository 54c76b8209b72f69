//! Canonical JSON (spec §2): the shared Tandem writer, `tandem_canonical` (RFC 8785 with keys
//! sorted by UTF-8 bytes and 64-bit integers kept exact).

use serde_json::Value;

/// The canonical text of `value` (spec §2), as [`tandem_canonical::to_canonical_string`] writes
/// it: keys sorted by their UTF-8 bytes, no whitespace, RFC 8785 strings and numbers.
///
/// Infallible in this workspace: the only value without a canonical form is a number outside
/// the range of a double, which serde_json builds only with its `arbitrary_precision` feature
/// (not enabled here; a parsed `1e400` is a parse error). Should it ever occur, the text is
/// serde_json's own compact form of the value, which still covers every byte of it.
pub fn canonical_json(value: &Value) -> String {
    tandem_canonical::to_canonical_string(value).unwrap_or_else(|_| value.to_string())
}
