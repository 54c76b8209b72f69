//! Canonical JSON: the exact bytes both parties sign.
//!
//! Objects have their keys sorted by byte order, there is no whitespace, strings are escaped as
//! `serde_json` escapes them, integers are printed in decimal and floats as `serde_json` prints
//! them (shortest text that parses back to the same `f64`, e.g. `2.0`, `1e-9`, `0.05`). Keys are
//! sorted here rather than relying on `serde_json::Map` being a `BTreeMap`, so the bytes do not
//! depend on whether some crate in the build enables serde_json's `preserve_order`.

use serde_json::Value;

/// Writes `value` as canonical JSON.
pub(crate) fn to_canonical_json(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(value, &mut out);
    out.into_bytes()
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            out.push_str(&value.to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_canonical_json;
    use serde_json::json;

    #[test]
    fn sorted_compact_and_escaped() {
        let value = json!({"b": [1, 2.0, 1e-9, 0.05], "a": {"z": null, "y": "q\"\n"}, "é": true});
        let text = String::from_utf8(to_canonical_json(&value)).unwrap();
        assert_eq!(
            text,
            r#"{"a":{"y":"q\"\n","z":null},"b":[1,2.0,1e-9,0.05],"é":true}"#
        );
    }
}
