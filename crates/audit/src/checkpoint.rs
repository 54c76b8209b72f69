//! Signed checkpoints over the head of the chain (spec §4).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::canonical::canonical_json;
use crate::entry::object;
use crate::json_fields::{FieldError, Fields, parse_hex32};

/// Domain-separation prefix of the message a checkpoint signs.
pub const CHECKPOINT_DOMAIN: &[u8] = b"tandem-audit-checkpoint-v1\n";

/// A node's Ed25519 signature over the log head: "entries 0..=seq hash to head_hash".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Last entry covered.
    pub seq: u64,
    /// Hash of entry `seq`.
    pub head_hash: [u8; 32],
    /// When the checkpoint was signed, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// Signer's Ed25519 public key, 64 lower-case hex digits.
    pub node_key: String,
    /// Ed25519 signature over [`checkpoint_message`], 128 lower-case hex digits.
    pub signature: String,
}

/// Why a checkpoint's signature does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint was signed by another key than the one expected.
    #[error("signed by key {found}, expected {expected}")]
    WrongKey {
        /// Key named in the checkpoint.
        found: String,
        /// Key the verifier trusts.
        expected: String,
    },
    /// `node_key` is not a valid Ed25519 public key.
    #[error("node_key is not a valid Ed25519 public key: {0}")]
    BadKey(String),
    /// `signature` is not 64 bytes of hex, or does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
}

/// The bytes a checkpoint signs: [`CHECKPOINT_DOMAIN`] followed by the canonical JSON of
/// `{"at_unix_ms", "head_hash", "node_key", "seq"}`.
pub fn checkpoint_message(
    seq: u64,
    head_hash: &[u8; 32],
    at_unix_ms: i64,
    node_key_hex: &str,
) -> Vec<u8> {
    let body = canonical_json(&json!({
        "at_unix_ms": at_unix_ms,
        "head_hash": hex::encode(head_hash),
        "node_key": node_key_hex,
        "seq": seq,
    }));
    let mut msg = CHECKPOINT_DOMAIN.to_vec();
    msg.extend_from_slice(body.as_bytes());
    msg
}

/// Signs the head `(seq, head_hash)` with the node key.
pub fn sign_checkpoint(
    key: &SigningKey,
    seq: u64,
    head_hash: [u8; 32],
    at_unix_ms: i64,
) -> Checkpoint {
    let node_key = hex::encode(key.verifying_key().as_bytes());
    let signature = key.sign(&checkpoint_message(seq, &head_hash, at_unix_ms, &node_key));
    Checkpoint {
        seq,
        head_hash,
        at_unix_ms,
        node_key,
        signature: hex::encode(signature.to_bytes()),
    }
}

impl Checkpoint {
    /// Checks the signature (strict Ed25519) and, when `expected` is given, that the checkpoint
    /// was signed by that key. Does not look at the log: [`crate::verify`] does that.
    pub fn verify_signature(&self, expected: Option<&VerifyingKey>) -> Result<(), CheckpointError> {
        if let Some(key) = expected {
            let expected_hex = hex::encode(key.as_bytes());
            if expected_hex != self.node_key {
                return Err(CheckpointError::WrongKey {
                    found: self.node_key.clone(),
                    expected: expected_hex,
                });
            }
        }
        let key_bytes = parse_hex32(&self.node_key).map_err(CheckpointError::BadKey)?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|e| CheckpointError::BadKey(e.to_string()))?;
        let mut sig = [0u8; 64];
        if self.signature.len() != 128 || self.signature.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(CheckpointError::BadSignature(
                "expected 128 lower-case hex digits".into(),
            ));
        }
        hex::decode_to_slice(&self.signature, &mut sig)
            .map_err(|e| CheckpointError::BadSignature(e.to_string()))?;
        let msg = checkpoint_message(self.seq, &self.head_hash, self.at_unix_ms, &self.node_key);
        key.verify_strict(&msg, &Signature::from_bytes(&sig))
            .map_err(|e| CheckpointError::BadSignature(e.to_string()))
    }

    /// The checkpoint as its JSON-lines export object (spec §5.1), `"type": "checkpoint"` included.
    pub fn to_json_value(&self) -> Value {
        json!({
            "type": "checkpoint",
            "seq": self.seq,
            "head_hash": hex::encode(self.head_hash),
            "at_unix_ms": self.at_unix_ms,
            "node_key": self.node_key,
            "signature": self.signature,
        })
    }

    /// Parses the object written by [`Checkpoint::to_json_value`]; unknown keys are rejected.
    pub fn from_json_value(value: Value) -> Result<Checkpoint, String> {
        Self::from_object(object(value)?).map_err(|e| e.to_string())
    }

    pub(crate) fn from_object(map: Map<String, Value>) -> Result<Checkpoint, FieldError> {
        let mut f = Fields::new(map);
        f.expect_type("checkpoint")?;
        let cp = Checkpoint {
            seq: f.u64("seq")?,
            head_hash: f.hash32("head_hash")?,
            at_unix_ms: f.i64("at_unix_ms")?,
            node_key: f.string("node_key")?,
            signature: f.string("signature")?,
        };
        f.finish()?;
        Ok(cp)
    }
}

impl Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Checkpoint::from_json_value(Value::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn signs_and_verifies() {
        let cp = sign_checkpoint(&key(1), 7, [9; 32], 1_700_000_000_000);
        assert_eq!(cp.verify_signature(None), Ok(()));
        assert_eq!(cp.verify_signature(Some(&key(1).verifying_key())), Ok(()));
        assert!(matches!(
            cp.verify_signature(Some(&key(2).verifying_key())),
            Err(CheckpointError::WrongKey { .. })
        ));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let cp = sign_checkpoint(&key(1), 7, [9; 32], 1_700_000_000_000);
        let mut changed = vec![cp.clone(); 3];
        changed[0].seq = 8;
        changed[1].head_hash[31] ^= 1;
        changed[2].at_unix_ms += 1;
        for c in changed {
            assert!(matches!(
                c.verify_signature(None),
                Err(CheckpointError::BadSignature(_))
            ));
        }
        let mut other_key = cp.clone();
        other_key.node_key = hex::encode(key(2).verifying_key().as_bytes());
        assert!(other_key.verify_signature(None).is_err());
    }

    #[test]
    fn json_round_trip() {
        let cp = sign_checkpoint(&key(1), 7, [9; 32], 5);
        assert_eq!(Checkpoint::from_json_value(cp.to_json_value()), Ok(cp));
    }
}
