//! The kinds of identifier a join key can be.

use std::fmt;
use std::str::FromStr;

/// Kind of identifier: the join key, and the normalisation rules. How a column writes it
/// (raw, or already hashed by a partner) is its [`IdEncoding`], not a kind of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    /// E-mail address.
    Email,
    /// Phone number (normalised to E.164).
    Phone,
    /// Mobile advertising id: IDFA, GAID or OAID.
    DeviceId,
}

impl IdKind {
    /// The name used in agreements and on the command line: `email`, `phone`, `device_id`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::Phone => "phone",
            IdKind::DeviceId => "device_id",
        }
    }

    /// Every kind, in declaration order.
    pub fn all() -> &'static [IdKind] {
        &[IdKind::Email, IdKind::Phone, IdKind::DeviceId]
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not the name of an [`IdKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdKindError {
    /// Not a kind at all.
    #[error("unknown identifier kind {given:?}; accepted kinds: email, phone, device_id")]
    Unknown {
        /// The string that was given.
        given: String,
    },
    /// `sha256`, a kind in rules v1: a digest is an encoding of an identifier, not a kind.
    #[error(
        "\"sha256\" is no longer an identifier kind: name the identifier that was hashed and its encoding, e.g. --id-kind email --id-encoding sha256"
    )]
    Sha256,
}

/// How a column writes its identifiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IdEncoding {
    /// The identifier as people write it; normalised, then hashed with SHA-256.
    #[default]
    Raw,
    /// SHA-256 of the normalised identifier (the UID2 / EUID `email_hash` / `phone_hash`
    /// convention), as 64 hex characters or Base64 of 32 bytes; used as is.
    Sha256,
}

impl IdEncoding {
    /// The name used on the command line: `raw` or `sha256`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdEncoding::Raw => "raw",
            IdEncoding::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for IdEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not the name of an [`IdEncoding`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identifier encoding {given:?}; accepted: raw, sha256 (hex or Base64)")]
pub struct ParseIdEncodingError {
    /// The string that was given.
    pub given: String,
}

impl FromStr for IdEncoding {
    type Err = ParseIdEncodingError;

    /// Parses `raw` or `sha256`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(IdEncoding::Raw),
            "sha256" => Ok(IdEncoding::Sha256),
            _ => Err(ParseIdEncodingError {
                given: s.to_owned(),
            }),
        }
    }
}

impl FromStr for IdKind {
    type Err = ParseIdKindError;

    /// Parses the exact names returned by [`IdKind::as_str`]; `sha256` gets an error that
    /// says to use `--id-encoding sha256` instead.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "sha256" {
            return Err(ParseIdKindError::Sha256);
        }
        IdKind::all()
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| ParseIdKindError::Unknown {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in IdKind::all() {
            assert_eq!(kind.as_str().parse::<IdKind>().unwrap(), *kind);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(IdKind::all().len(), 3);
        for enc in [IdEncoding::Raw, IdEncoding::Sha256] {
            assert_eq!(enc.as_str().parse::<IdEncoding>().unwrap(), enc);
        }
        assert!("base64".parse::<IdEncoding>().is_err());
    }

    #[test]
    fn sha256_kind_says_what_to_use_instead() {
        let text = "sha256".parse::<IdKind>().unwrap_err().to_string();
        assert!(
            text.contains("--id-kind email --id-encoding sha256"),
            "{text}"
        );
    }

    #[test]
    fn unknown_names_are_rejected_with_the_accepted_list() {
        for bad in ["", "Email", "device-id", "sha-256", "mail"] {
            let err = bad.parse::<IdKind>().unwrap_err();
            let text = err.to_string();
            for kind in IdKind::all() {
                assert!(text.contains(kind.as_str()), "{text}");
            }
        }
    }
}
