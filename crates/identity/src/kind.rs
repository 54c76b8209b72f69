//! The kinds of identifier a join key can be.

use std::fmt;
use std::str::FromStr;

/// Kind of raw identifier; selects the normalisation rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    /// E-mail address.
    Email,
    /// Phone number (normalised to E.164).
    Phone,
    /// Mobile advertising id: IDFA, GAID or OAID.
    DeviceId,
    /// SHA-256 digest already normalised and hashed by a partner.
    Sha256,
}

impl IdKind {
    /// The name used in agreements and on the command line: `email`, `phone`, `device_id`,
    /// `sha256`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::Phone => "phone",
            IdKind::DeviceId => "device_id",
            IdKind::Sha256 => "sha256",
        }
    }

    /// Every kind, in declaration order.
    pub fn all() -> &'static [IdKind] {
        &[
            IdKind::Email,
            IdKind::Phone,
            IdKind::DeviceId,
            IdKind::Sha256,
        ]
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not the name of an [`IdKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identifier kind {given:?}; accepted kinds: email, phone, device_id, sha256")]
pub struct ParseIdKindError {
    /// The string that was given.
    pub given: String,
}

impl FromStr for IdKind {
    type Err = ParseIdKindError;

    /// Parses the exact names returned by [`IdKind::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdKind::all()
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| ParseIdKindError {
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
        assert_eq!(IdKind::all().len(), 4);
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
