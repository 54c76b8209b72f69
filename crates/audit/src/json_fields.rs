//! Strict extraction of fields from a parsed JSON object: every key must be consumed.

use std::fmt;

use serde_json::{Map, Value};

use crate::entry::kind_name;

/// Why a JSON object did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError(String);

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object whose fields are taken one by one; [`Fields::finish`] rejects leftovers.
pub(crate) struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Fields { map }
    }

    pub(crate) fn take(&mut self, key: &'static str) -> Result<Value, FieldError> {
        self.map
            .remove(key)
            .ok_or_else(|| FieldError(format!("missing field {key:?}")))
    }

    fn wrong(key: &str, expected: &str, found: &Value) -> FieldError {
        FieldError(format!(
            "field {key:?}: expected {expected}, found {}",
            kind_name(found)
        ))
    }

    pub(crate) fn expect_type(&mut self, tag: &'static str) -> Result<(), FieldError> {
        match self.take("type")? {
            Value::String(s) if s == tag => Ok(()),
            other => Err(FieldError(format!(
                "field \"type\": expected {tag:?}, found {other}"
            ))),
        }
    }

    pub(crate) fn u64(&mut self, key: &'static str) -> Result<u64, FieldError> {
        let v = self.take(key)?;
        v.as_u64()
            .ok_or_else(|| Self::wrong(key, "an unsigned integer", &v))
    }

    pub(crate) fn i64(&mut self, key: &'static str) -> Result<i64, FieldError> {
        let v = self.take(key)?;
        v.as_i64().ok_or_else(|| Self::wrong(key, "an integer", &v))
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Result<String, FieldError> {
        match self.take(key)? {
            Value::String(s) => Ok(s),
            other => Err(Self::wrong(key, "a string", &other)),
        }
    }

    pub(crate) fn opt_string(&mut self, key: &'static str) -> Result<Option<String>, FieldError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(Self::wrong(key, "a string or null", &other)),
        }
    }

    pub(crate) fn object(&mut self, key: &'static str) -> Result<Map<String, Value>, FieldError> {
        match self.take(key)? {
            Value::Object(m) => Ok(m),
            other => Err(Self::wrong(key, "an object", &other)),
        }
    }

    pub(crate) fn hash32(&mut self, key: &'static str) -> Result<[u8; 32], FieldError> {
        let s = self.string(key)?;
        parse_hex32(&s).map_err(|reason| FieldError(format!("field {key:?}: {reason}")))
    }

    pub(crate) fn finish(self) -> Result<(), FieldError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(FieldError(format!("unexpected field {k:?}"))),
        }
    }
}

/// Parses 64 lower-case hex digits.
pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("expected 64 lower-case hex digits".into());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| format!("bad hex: {e}"))?;
    Ok(out)
}
