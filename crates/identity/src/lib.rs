//! `tandem-identity`: turns a customer identifier into the 32 bytes that enter the
//! private-set-intersection protocol.
//!
//! Both nodes must apply exactly the same rules, or matching records hash differently and the
//! overlap silently shrinks. The rules are versioned as [`RULES_VERSION`]; the normative text is
//! `protocols/identifier-rules-v2.md`. They reproduce every published IAB Tech Lab UID2
//! normalisation and hashing vector (`tests/vectors.rs`) and give one form to spellings that
//! UID2 leaves apart:
//!
//! * **email** — NFC, invisible format characters removed, trim, lower-case, one `@`,
//!   non-empty local part, dotted domain in its UTS #46 Unicode form; for `gmail.com` and
//!   `googlemail.com` drop dots from the local part and anything from `+`.
//! * **phone** — libphonenumber's parsing (the `phonenumber` crate) with the node's default
//!   [`Region`], a possible-length check, E.164 (`+` and up to 15 digits).
//! * **device_id** — IDFA / GAID / OAID: a lower-case hyphenated UUID, or 16 or 64 lower-case
//!   hex digits (distinct forms, never converted into each other).
//!
//! A column may hold the identifier already normalised and hashed by a partner
//! ([`IdEncoding::Sha256`], hex or Base64): its digest is the decoded value, equal to the digest
//! of the raw identifier, so a hashed and a raw column of one kind join.
//!
//! The digest of a normalised identifier is SHA-256 (FIPS 180-4) over its UTF-8 bytes.

#![forbid(unsafe_code)]

mod device;
mod email;
mod kind;
mod phone;
mod prehashed;
mod region;

use sha2::{Digest, Sha256};

pub use email::INVISIBLE;
pub use kind::{IdEncoding, IdKind, ParseIdEncodingError, ParseIdKindError};
pub use region::{ParseRegionError, Region};

/// Version tag of the normalisation rules implemented here. Both nodes must report the same
/// one: it enters the PSI hash domain and the run request. `tandem-id-v1` (before NFC, invisible
/// characters, IDNA, libphonenumber and device-id forms) gives other digests for some
/// identifiers, so audiences imported under v1 must be imported again.
pub const RULES_VERSION: &str = "tandem-id-v2";

/// A raw identifier that the rules reject. `reason` never repeats the identifier itself, so the
/// error can be logged without leaking personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct IdError {
    /// The kind the identifier was parsed as.
    pub kind: IdKind,
    /// Why it was rejected, e.g. `letters are not allowed (nor vanity numbers or extensions)`.
    pub reason: String,
}

/// Applies the [`RULES_VERSION`] rules to raw identifiers.
#[derive(Clone, Debug, Default)]
pub struct Normaliser {
    /// Region whose dialling rules read phone numbers written without `+` (e.g. `CN`: `0086…`
    /// and `138…` are Chinese numbers). Without it such numbers are rejected, except that a
    /// leading `00` is read as the international prefix.
    pub default_region: Option<Region>,
}

impl Normaliser {
    /// A normaliser with `region` as the default phone region.
    pub fn with_region(region: Region) -> Self {
        Normaliser {
            default_region: Some(region),
        }
    }

    /// Normalised text of `raw` read as `kind`.
    pub fn normalise(&self, kind: IdKind, raw: &str) -> Result<String, IdError> {
        let result = match kind {
            IdKind::Email => email::normalise(raw),
            IdKind::Phone => phone::normalise(raw, self.default_region),
            IdKind::DeviceId => device::normalise(raw),
        };
        result.map_err(|reason| IdError { kind, reason })
    }

    /// The 32 bytes that enter the protocol for a raw identifier: SHA-256 of the normalised
    /// UTF-8 text.
    pub fn digest(&self, kind: IdKind, raw: &str) -> Result<[u8; 32], IdError> {
        let normalised = self.normalise(kind, raw)?;
        Ok(Sha256::digest(normalised.as_bytes()).into())
    }

    /// The 32 bytes that enter the protocol for a value written with `encoding`: for
    /// [`IdEncoding::Raw`] as [`Normaliser::digest`]; for [`IdEncoding::Sha256`] the decoded
    /// digest (64 hex characters in any case, or standard / URL-safe Base64 with or without
    /// padding), used as is — the partner is trusted to have applied these rules first.
    pub fn digest_encoded(
        &self,
        kind: IdKind,
        encoding: IdEncoding,
        raw: &str,
    ) -> Result<[u8; 32], IdError> {
        match encoding {
            IdEncoding::Raw => self.digest(kind, raw),
            IdEncoding::Sha256 => prehashed::decode(raw).map_err(|reason| IdError {
                kind,
                reason: format!("{reason} (SHA-256 of the normalised {kind})"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_names_kind_and_reason() {
        let err = Normaliser::default()
            .normalise(IdKind::Phone, "+1 234 CALL NOW")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "phone: letters are not allowed (nor vanity numbers or extensions)"
        );
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

    /// Issue 10: a hashed email column and a raw email column give one digest per person.
    #[test]
    fn sha256_encoding_is_not_rehashed_and_joins_the_raw_identifier() {
        let hex = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";
        let n = Normaliser::default();
        let hashed = n
            .digest_encoded(IdKind::Email, IdEncoding::Sha256, &hex.to_uppercase())
            .unwrap();
        assert_eq!(hex::encode(hashed), hex);
        assert_eq!(
            n.digest_encoded(IdKind::Email, IdEncoding::Raw, " User@Example.com")
                .unwrap(),
            hashed
        );
        let err = n
            .digest_encoded(IdKind::Phone, IdEncoding::Sha256, "+8613800138000")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "phone: expected 64 hex characters or Base64 of 32 bytes (SHA-256 of the normalised phone)"
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
