//! Audit events, chained entries and the entry hash (spec §3).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_json;
use crate::json_fields::{FieldError, Fields};

/// Domain-separation prefix hashed in front of every entry's canonical JSON.
pub const ENTRY_DOMAIN: &[u8] = b"tandem-audit-v1\n";

/// `prev_hash` of the first entry (seq 0): 32 zero bytes.
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// One thing that happened on a node, before it is placed in the chain.
///
/// `details` carries counts, parameters, ε/δ, reasons and output hashes — never customer
/// identifiers, raw or hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Wall-clock time in milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    /// Principal that caused the event, e.g. `cli:admin`, `token:alice(analyst)`, `peer:shopx`, `node`.
    pub actor: String,
    /// Dotted action name, e.g. `query.asked`, `run.finished`, `budget.charged`.
    pub action: String,
    /// Agreement the event happened under, if any.
    pub agreement_id: Option<String>,
    /// Structured, identifier-free details.
    pub details: Value,
}

impl AuditEvent {
    /// An event stamped with the current time and no agreement.
    pub fn now(actor: impl Into<String>, action: impl Into<String>, details: Value) -> Self {
        AuditEvent {
            at_unix_ms: now_unix_ms(),
            actor: actor.into(),
            action: action.into(),
            agreement_id: None,
            details,
        }
    }

    /// The same event attributed to `agreement_id`.
    pub fn with_agreement(mut self, agreement_id: impl Into<String>) -> Self {
        self.agreement_id = Some(agreement_id.into());
        self
    }

    /// The event as the JSON object that is hashed (spec §3.1).
    pub fn to_json_value(&self) -> Value {
        json!({
            "at_unix_ms": self.at_unix_ms,
            "actor": self.actor,
            "action": self.action,
            "agreement_id": self.agreement_id,
            "details": self.details,
        })
    }

    pub(crate) fn from_fields(mut f: Fields) -> Result<Self, FieldError> {
        let event = AuditEvent {
            at_unix_ms: f.i64("at_unix_ms")?,
            actor: f.string("actor")?,
            action: f.string("action")?,
            agreement_id: f.opt_string("agreement_id")?,
            details: f.take("details")?,
        };
        f.finish()?;
        Ok(event)
    }
}

/// Milliseconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An event placed in the hash chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the log, starting at 0 and increasing by one.
    pub seq: u64,
    /// Hash of the entry at `seq - 1`, or [`GENESIS_PREV_HASH`] for seq 0.
    pub prev_hash: [u8; 32],
    /// What happened.
    pub event: AuditEvent,
    /// [`entry_hash`] of `(seq, prev_hash, event)`.
    pub hash: [u8; 32],
}

/// The bytes hashed for an entry: [`ENTRY_DOMAIN`] followed by the canonical JSON of
/// `{"event": …, "prev_hash": hex, "seq": n}` (spec §3.2).
pub fn entry_hash_input(seq: u64, prev_hash: &[u8; 32], event: &AuditEvent) -> Vec<u8> {
    let body = canonical_json(&json!({
        "event": event.to_json_value(),
        "prev_hash": hex::encode(prev_hash),
        "seq": seq,
    }));
    let mut input = Vec::with_capacity(ENTRY_DOMAIN.len() + body.len());
    input.extend_from_slice(ENTRY_DOMAIN);
    input.extend_from_slice(body.as_bytes());
    input
}

/// SHA-256 of [`entry_hash_input`].
pub fn entry_hash(seq: u64, prev_hash: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    Sha256::digest(entry_hash_input(seq, prev_hash, event)).into()
}

/// Chains `event` after `prev` (or as the genesis entry when `prev` is `None`).
///
/// # Panics
/// Never in practice: only if `prev.seq == u64::MAX`.
pub fn next_entry(prev: Option<&Entry>, event: AuditEvent) -> Entry {
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash),
        None => (0, GENESIS_PREV_HASH),
    };
    let hash = entry_hash(seq, &prev_hash, &event);
    Entry {
        seq,
        prev_hash,
        event,
        hash,
    }
}

impl Entry {
    /// True when `hash` matches the entry's contents.
    pub fn hash_is_valid(&self) -> bool {
        entry_hash(self.seq, &self.prev_hash, &self.event) == self.hash
    }

    /// The entry as its JSON-lines export object (spec §5.1), `"type": "entry"` included.
    pub fn to_json_value(&self) -> Value {
        json!({
            "type": "entry",
            "seq": self.seq,
            "prev_hash": hex::encode(self.prev_hash),
            "hash": hex::encode(self.hash),
            "event": self.event.to_json_value(),
        })
    }

    /// Parses the object written by [`Entry::to_json_value`]; unknown keys are rejected.
    /// The hash is taken as written, not checked: use [`crate::verify`] for that.
    pub fn from_json_value(value: Value) -> Result<Entry, String> {
        Self::from_object(object(value)?).map_err(|e| e.to_string())
    }

    pub(crate) fn from_object(map: Map<String, Value>) -> Result<Entry, FieldError> {
        let mut f = Fields::new(map);
        f.expect_type("entry")?;
        let seq = f.u64("seq")?;
        let prev_hash = f.hash32("prev_hash")?;
        let hash = f.hash32("hash")?;
        let event = AuditEvent::from_fields(Fields::new(f.object("event")?))?;
        f.finish()?;
        Ok(Entry {
            seq,
            prev_hash,
            event,
            hash,
        })
    }
}

pub(crate) fn object(value: Value) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "expected a JSON object, found {}",
            kind_name(&other)
        )),
    }
}

pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Entry::from_json_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            at_unix_ms: 1_700_000_000_000 + n,
            actor: "node".into(),
            action: "test".into(),
            agreement_id: None,
            details: json!({"n": n}),
        }
    }

    #[test]
    fn chain_links_and_starts_at_zero() {
        let a = next_entry(None, event(0));
        let b = next_entry(Some(&a), event(1));
        assert_eq!((a.seq, a.prev_hash), (0, GENESIS_PREV_HASH));
        assert_eq!((b.seq, b.prev_hash), (1, a.hash));
        assert!(a.hash_is_valid() && b.hash_is_valid());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = next_entry(None, event(0));
        let mut variants = vec![base.clone(); 6];
        variants[0].seq = 1;
        variants[1].prev_hash[0] ^= 1;
        variants[2].event.at_unix_ms += 1;
        variants[3].event.actor.push('x');
        variants[4].event.agreement_id = Some(String::new());
        variants[5].event.details = json!({"n": 1});
        for v in variants {
            assert!(!v.hash_is_valid(), "{v:?}");
        }
    }

    #[test]
    fn json_round_trip_and_unknown_keys_rejected() {
        let e = next_entry(None, event(3).with_agreement("ag-1"));
        let v = e.to_json_value();
        assert_eq!(Entry::from_json_value(v.clone()), Ok(e.clone()));
        let back: Entry = serde_json::from_str(&serde_json::to_string(&e).unwrap_or_default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back, e);
        let mut extra = v;
        extra["note"] = json!("hidden");
        assert!(Entry::from_json_value(extra).is_err());
    }
}
