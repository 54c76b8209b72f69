//! Canonical JSON (spec §2): object keys sorted by UTF-8 bytes, no insignificant whitespace.
//!
//! The ordering is done here, not by `serde_json::Map`, so the output does not depend on
//! whether some other crate in the build enables serde_json's `preserve_order` feature.

use serde_json::Value;

/// Serialises `value` canonically: keys sorted by their UTF-8 bytes, no whitespace, strings
/// escaped as serde_json does (`\"`, `\\`, `\b \f \n \r \t`, other controls as `\u00xx`,
/// everything else verbatim); integers exactly in decimal; other numbers as ECMAScript's
/// `Number.prototype.toString` prints them (RFC 8785 §3.2.2.3): see [`format_f64`].
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&format_f64(f));
            } else {
                // Unreachable without serde_json's arbitrary_precision; keep its text then.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(s, out),
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
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_value(v, out);
                }
            }
            out.push('}');
        }
    }
}

/// Formats a finite double as ECMAScript's `Number.prototype.toString` does (the RFC 8785
/// rule): the shortest digit string `d` that round-trips (closest to the exact value on ties),
/// with decimal exponent `n` such that the value is `0.d × 10^n`, laid out as
/// `ddd000` (k ≤ n ≤ 21), `dd.dd` (0 < n ≤ 21), `0.000ddd` (−6 < n ≤ 0), else
/// `d.ddde±x` with `x = n − 1`. Negative zero prints as `0`; non-finite values as `null`
/// (JSON has none; serde_json never builds them).
pub fn format_f64(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "5e300".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let k = digits.len() as i64;
    let n = exp + 1;
    let mut out = String::with_capacity(k as usize + 8);
    if x < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n - 1 < 0 { '-' } else { '+' });
        out.push_str(&(n - 1).abs().to_string());
    }
    out
}

fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_recursively_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, 2, {"y": null, "x": true}], "Z": false}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"Z":false,"z":[1,2,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn escapes_like_serde_json() {
        let s = "q\"b\\s/\u{1}\u{1f}\t\n\r\u{8}\u{c}\u{7f}é漢🙂";
        assert_eq!(
            canonical_json(&json!(s)),
            serde_json::to_string(s).unwrap_or_default()
        );
        assert_eq!(canonical_json(&json!("\u{1}")), "\"\\u0001\"");
    }

    #[test]
    fn numbers_follow_ecmascript() {
        let v = json!([
            0.1,
            1.0,
            -0.0,
            1e-7,
            1.5e300,
            123456789012345680000.0,
            0.001,
            -7,
            u64::MAX,
            i64::MIN
        ]);
        assert_eq!(
            canonical_json(&v),
            "[0.1,1,0,1e-7,1.5e+300,123456789012345680000,0.001,-7,18446744073709551615,-9223372036854775808]"
        );
    }

    /// Expected strings produced by node.js `String(x)` (and RFC 8785 appendix B).
    #[test]
    fn floats_match_javascript() {
        let cases: &[(f64, &str)] = &[
            (333_333_333.333_333_3, "333333333.3333333"),
            (1e30, "1e+30"),
            (4.50, "4.5"),
            (2e-3, "0.002"),
            (1e-27, "1e-27"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (-1.5e-7, "-1.5e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (9007199254740993.0, "9007199254740992"),
            (295147905179352830000.0, "295147905179352830000"),
            (0.30000000000000004, "0.30000000000000004"),
            (-123.456, "-123.456"),
        ];
        for (x, want) in cases {
            assert_eq!(format_f64(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn canonical_text_is_a_fixed_point() {
        let v = json!({"eps": 0.30000000000000004, "s": "ü\u{2028}", "n": [1e21, 2.5e-9]});
        let once = canonical_json(&v);
        let reparsed: Value = serde_json::from_str(&once).unwrap_or_default();
        assert_eq!(canonical_json(&reparsed), once);
    }
}
