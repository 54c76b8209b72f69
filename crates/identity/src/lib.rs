//! `tandem-identity`: turns a raw customer identifier into the 32 bytes that enter the
//! private-set-intersection protocol.
//!
//! Both nodes must apply exactly the same rules, or matching records hash differently and the
//! overlap silently shrinks. The rules are versioned as [`RULES_VERSION`] and reproduce the
//! published IAB Tech Lab UID2 normalisation (its test vectors are in `tests/vectors.rs`):
//!
//! * **email** — trim, lower-case, one `@`, non-empty local part, dotted domain; for
//!   `gmail.com` drop dots from the local part and anything from `+` (UID2). The same is done
//!   for `googlemail.com`, whose dots Google Customer Match also removes; UID2 itself applies
//!   the rule to `gmail.com` only. The domain is kept as written: neither UID2 nor Google
//!   rewrites `googlemail.com` to `gmail.com`.
//! * **phone** — E.164, `+` followed by 8–15 digits (UID2 requires at least 10, so short
//!   numbers accepted here would not map to a UID2).
//! * **device_id** — IDFA / GAID / OAID as a lower-case hyphenated UUID.
//! * **sha256** — a digest already normalised and hashed by a partner, given as hex or Base64
//!   (UID2 `email_hash` / `phone_hash` values are accepted as they are).
//!
//! The digest of a normalised identifier is SHA-256 over its UTF-8 bytes; a `sha256` identifier
//! is decoded and used as is.

mod device;
mod email;
mod kind;
mod phone;
mod prehashed;

use sha2::{Digest, Sha256};

pub use kind::{IdKind, ParseIdKindError};

/// Version tag of the normalisation rules implemented here. Both nodes must report the same one.
pub const RULES_VERSION: &str = "tandem-id-v1";

/// A raw identifier that the rules reject. `reason` never repeats the identifier itself, so the
/// error can be logged without leaking personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct IdError {
    /// The kind the identifier was parsed as.
    pub kind: IdKind,
    /// Why it was rejected, e.g. `7 digits, too short for E.164`.
    pub reason: String,
}

/// Applies the [`RULES_VERSION`] rules to raw identifiers.
#[derive(Clone, Debug, Default)]
pub struct Normaliser {
    /// Country calling code for phone numbers written in national form (without `+` or `00`),
    /// e.g. `Some(86)` or `Some(1)`. Without it such numbers are rejected.
    pub default_country_code: Option<u16>,
}

impl Normaliser {
    /// Normalised text of `raw` read as `kind`; for [`IdKind::Sha256`] the lower-case hex digest.
    pub fn normalise(&self, kind: IdKind, raw: &str) -> Result<String, IdError> {
        let result = match kind {
            IdKind::Email => email::normalise(raw),
            IdKind::Phone => phone::normalise(raw, self.default_country_code),
            IdKind::DeviceId => device::normalise(raw),
            IdKind::Sha256 => prehashed::decode(raw).map(hex::encode),
        };
        result.map_err(|reason| IdError { kind, reason })
    }

    /// The 32 bytes that enter the protocol: SHA-256 of the normalised UTF-8 text, or for
    /// [`IdKind::Sha256`] the decoded digest as is (no re-hashing).
    pub fn digest(&self, kind: IdKind, raw: &str) -> Result<[u8; 32], IdError> {
        match kind {
            IdKind::Sha256 => prehashed::decode(raw).map_err(|reason| IdError { kind, reason }),
            _ => {
                let normalised = self.normalise(kind, raw)?;
                Ok(Sha256::digest(normalised.as_bytes()).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_names_kind_and_reason() {
        let err = Normaliser::default()
            .normalise(IdKind::Phone, "+1234567")
            .unwrap_err();
        assert_eq!(err.to_string(), "phone: 7 digits, too short for E.164");
        assert_eq!(err.kind, IdKind::Phone);
    }

    #[test]
    fn digest_is_sha256_of_normalised_text() {
        let n = Normaliser::default();
        let text = n.normalise(IdKind::Email, " User@Example.com ").unwrap();
        let expected: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        assert_eq!(
            n.digest(IdKind::Email, " User@Example.com ").unwrap(),
            expected
        );
    }

    #[test]
    fn sha256_kind_is_not_rehashed() {
        let hex = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";
        let n = Normaliser::default();
        assert_eq!(hex::encode(n.digest(IdKind::Sha256, hex).unwrap()), hex);
        assert_eq!(
            n.normalise(IdKind::Sha256, &hex.to_uppercase()).unwrap(),
            hex
        );
    }

    #[test]
    fn errors_do_not_echo_the_identifier() {
        let n = Normaliser::default();
        let err = n
            .normalise(IdKind::Email, "secret.person@nodot")
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!err.to_string().contains("nodot"), "{err}");
    }
}
