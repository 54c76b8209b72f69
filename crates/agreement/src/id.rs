//! The agreement id: a SHA-256 over the canonical terms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AgreementError;

/// Identifies one exact version of the terms: SHA-256 of `b"tandem-agreement-v1\n"` followed by
/// the canonical bytes. Shown and serialised as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct AgreementId(pub [u8; 32]);

impl fmt::Display for AgreementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for AgreementId {
    type Err = AgreementError;

    /// Parses 64 hex characters (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| {
            AgreementError::Parse(format!(
                "agreement id must be 64 hex characters, got {} characters",
                s.len()
            ))
        })?;
        Ok(AgreementId(bytes))
    }
}

impl Serialize for AgreementId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AgreementId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::AgreementId;

    #[test]
    fn hex_round_trip() {
        let id = AgreementId([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(32));
        assert_eq!(text.parse::<AgreementId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<AgreementId>().unwrap(), id);
    }

    #[test]
    fn serde_as_hex_string() {
        let id = AgreementId([7; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "07".repeat(32)));
        assert_eq!(serde_json::from_str::<AgreementId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<AgreementId>("\"07\"").is_err());
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "zz", &"0".repeat(63), &"0".repeat(66)] {
            assert!(bad.parse::<AgreementId>().is_err(), "{bad}");
        }
    }
}
