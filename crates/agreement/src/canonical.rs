//! Canonical JSON: the exact bytes both parties sign (`protocols/agreement-v1.md` §3).
//!
//! Objects have their members sorted by the UTF-8 bytes of their keys and there is no
//! whitespace. Strings escape only `"`, `\` and the control characters below U+0020 (`\b`, `\f`,
//! `\n`, `\r`, `\t`, otherwise `\u00xx` in lower-case hex); everything else is written as its
//! UTF-8 bytes. Integers are plain decimal. Floats are the shortest digit string that parses back
//! to the same `f64`, laid out by the decimal exponent: `0.0`, `1.0`, `0.5`, `0.00001`,
//! `1000000000000000.0`, `1e-6`, `1e-9`, `1e+16`, `1.25e+300`.
//!
//! The writer does not delegate to `serde_json`'s printer for strings or floats, so the bytes (and
//! with them every agreement id) cannot change when a `serde_json` upgrade changes its float
//! formatting, nor when some crate in the build enables its `preserve_order` feature. The layout
//! matches what `serde_json` 1.0.154 prints, so ids computed before this writer existed are kept.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Writes `value` as canonical JSON.
pub(crate) fn to_canonical_json(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(value, &mut out);
    out.into_bytes()
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
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
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_number(n: &Number, out: &mut String) {
    // Writing to a `String` cannot fail.
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        write_f64(f, out);
    } else {
        // Only reachable with serde_json's `arbitrary_precision`, which this crate does not use.
        out.push_str(&n.to_string());
    }
}

/// A JSON string: `"`, `\` and C0 controls escaped, everything else verbatim.
fn write_string(s: &str, out: &mut String) {
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
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite `f64`: the shortest round-trip digits `d₁d₂…d_k` with the value `0.d₁…d_k × 10^n`,
/// written as `ddd.0` / `d.dd` when `0 < n ≤ 16`, as `0.000ddd` when `-5 < n ≤ 0`, and as
/// `d.ddde±x` (`x = n − 1`) otherwise. Zero is `0.0` or `-0.0`. A non-finite value (which the
/// terms never hold: serialising them gives `null`) is written `null`.
pub(crate) fn write_f64(x: f64, out: &mut String) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    let (digits, n) = shortest_digits(x.abs());
    let digits = digits.as_str();
    let k = digits.len() as i64;
    if 0 < n && n <= 16 {
        if k <= n {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', (n - k) as usize));
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(n as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    } else if -5 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n - 1 < 0 { '-' } else { '+' });
        let _ = write!(out, "{}", (n - 1).abs());
    }
}

/// The shortest digits `d₁…d_k` (no trailing zeros) and exponent `n` with `0.d₁…d_k × 10^n`
/// parsing back to `x` (finite, > 0); of several such strings of that length, the one closest to
/// `x`, and of two equally close, the one whose last digit is even.
fn shortest_digits(x: f64) -> (String, i64) {
    // `{:e}` prints the shortest digits that parse back to `x`, `d[.ddd]e[-]x`, but breaks an
    // exact tie between two of them upwards. Printing `x` correctly rounded (ties to even) to
    // that many digits gives the closest candidate, which is the answer whenever it parses back
    // to `x` (it may not next to a power of two, where the gap below `x` is half the gap above).
    let shortest = format!("{x:e}");
    let length = split_scientific(&shortest).0.len();
    let rounded = format!("{:.*e}", length.saturating_sub(1), x);
    let chosen = if rounded
        .parse::<f64>()
        .is_ok_and(|r| r.to_bits() == x.to_bits())
    {
        rounded
    } else {
        shortest
    };
    split_scientific(&chosen)
}

/// Splits Rust's `d[.ddd]e[-]x` into the digits without trailing zeros and `x + 1`.
fn split_scientific(text: &str) -> (String, i64) {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_owned(), exponent.parse::<i64>().unwrap_or(0) + 1)
}

#[cfg(test)]
mod tests {
    use super::{to_canonical_json, write_f64};
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

    #[test]
    fn keys_sort_by_utf8_bytes() {
        let value = json!({"b": 1, "B": 2, "é": 3, "z": 4, "\u{1F600}": 5, "\u{FF21}": 6, "": 7});
        let text = String::from_utf8(to_canonical_json(&value)).unwrap();
        assert_eq!(
            text,
            "{\"\":7,\"B\":2,\"b\":1,\"z\":4,\"é\":3,\"Ａ\":6,\"😀\":5}"
        );
    }

    #[test]
    fn strings_escape_only_quote_backslash_and_controls() {
        let value = json!("a\"b\\c/\u{7f}\u{1}\u{1f}\u{8}\u{c}\n\r\té中\u{2028}😀");
        let text = String::from_utf8(to_canonical_json(&value)).unwrap();
        assert_eq!(
            text,
            "\"a\\\"b\\\\c/\u{7f}\\u0001\\u001f\\b\\f\\n\\r\\té中\u{2028}😀\""
        );
    }

    #[test]
    fn integers_are_plain_decimal() {
        let value = json!([0, u64::MAX, i64::MIN, -1]);
        let text = String::from_utf8(to_canonical_json(&value)).unwrap();
        assert_eq!(text, "[0,18446744073709551615,-9223372036854775808,-1]");
    }

    #[test]
    fn float_layout() {
        let cases: [(f64, &str); 26] = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (10.0, "10.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456.789, "123456.789"),
            (1e-4, "0.0001"),
            (1.5e-5, "0.000015"),
            (1e-5, "0.00001"),
            (1e-6, "1e-6"),
            (1e-7, "1e-7"),
            (1e-9, "1e-9"),
            (2.5e-10, "2.5e-10"),
            (1e15, "1000000000000000.0"),
            (9007199254740992.0, "9007199254740992.0"),
            // Exact ties between two shortest candidates go to the even last digit:
            // 1737101158653059.25 and 1737101158653059.75.
            (6_948_404_634_612_237.0 / 4.0, "1737101158653059.2"),
            (6_948_404_634_612_239.0 / 4.0, "1737101158653059.8"),
            (1e16, "1e+16"),
            (2.5e16, "2.5e+16"),
            (1e21, "1e+21"),
            (1.25e300, "1.25e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (x, expected) in cases {
            let mut out = String::new();
            write_f64(x, &mut out);
            assert_eq!(out, expected, "{x:e}");
            assert_eq!(out.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{out}");
        }
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut out = String::new();
            write_f64(x, &mut out);
            assert_eq!(out, "null");
        }
    }
}
