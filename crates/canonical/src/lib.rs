//! `tandem-canonical`: the one canonical JSON form of Tandem, RFC 8785 (JSON Canonicalization
//! Scheme, JCS).
//!
//! Audit-log entry hashes and checkpoints (`protocols/audit-log-v1.md` §2) and agreement ids and
//! signatures (`protocols/agreement-v1.md` §3) are computed over the bytes
//! [`to_canonical_string`] writes:
//!
//! * no insignificant whitespace;
//! * object members sorted by key, comparing the keys' UTF-8 bytes (RFC 8785 compares UTF-16 code
//!   units; the two orders differ only for keys that mix characters U+E000–U+FFFF with characters
//!   above U+FFFF);
//! * strings as RFC 8785 §3.2.2.2: `"`, `\`, and the controls below U+0020 escaped (`\b`, `\f`,
//!   `\n`, `\r`, `\t`, otherwise `\u00xx` in lower-case hex), every other character verbatim;
//! * integers (numbers serde_json holds as `u64` or `i64`) in plain decimal, exactly (RFC 8785
//!   would first convert integers above 2^53 to doubles);
//! * every other number as ECMAScript's `Number.prototype.toString` writes the double
//!   (RFC 8785 §3.2.2.3): see [`format_f64`].
//!
//! The writer never delegates to `serde_json`'s printer, so the bytes cannot change with a
//! `serde_json` upgrade, nor when some crate in the build enables its `preserve_order` feature.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Why a value has no canonical form.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// NaN or an infinity was given to [`format_f64`]. JSON has no such numbers and RFC 8785
    /// §3.2.2.3 requires an error; a `serde_json::Value` never holds one.
    #[error("{0} is not a finite number; JSON has no NaN or infinities")]
    NonFiniteNumber(f64),
    /// A JSON number that is neither a 64-bit integer nor within the range of a double (e.g.
    /// `1e400`), written as serde_json holds it. serde_json only builds such a number when its
    /// `arbitrary_precision` feature is enabled somewhere in the build.
    #[error("the number {0} is not a 64-bit integer and outside the range of a double")]
    NumberOutOfRange(String),
}

/// Writes `value` in canonical form (see the crate documentation).
///
/// The result is a fixed point: parsing it and writing it again gives the same text.
///
/// # Errors
/// [`CanonicalError::NumberOutOfRange`] for a number outside the range of a double, which
/// serde_json can only hold with its `arbitrary_precision` feature.
pub fn to_canonical_string(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(128);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Formats a double as ECMAScript's `Number.prototype.toString` does (RFC 8785 §3.2.2.3).
///
/// Let `d` be the shortest decimal digit string (length `k`, no trailing zeros) that parses back
/// to `x`; of several such strings the one closest to `x`, and of two equally close the one
/// whose last digit is even. Let `n` be such that `|x| = 0.d × 10^n`. After a `-` for negative
/// `x`, the text is `ddd000` (`k ≤ n ≤ 21`), `dd.ddd` (`0 < n ≤ 21`), `0.000ddd` (`−6 < n ≤ 0`),
/// and otherwise `d.ddde±x` with `x = n − 1` (the `.` only when `k > 1`). Zero, including
/// negative zero, is `0`.
///
/// # Errors
/// [`CanonicalError::NonFiniteNumber`] for NaN and the infinities.
pub fn format_f64(x: f64) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(24);
    write_f64(x, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: &Number, out: &mut String) -> Result<(), CanonicalError> {
    // Writing to a `String` cannot fail.
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        write_f64(f, out)?;
    } else {
        return Err(CanonicalError::NumberOutOfRange(n.to_string()));
    }
    Ok(())
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

/// [`format_f64`], appending to `out`.
fn write_f64(x: f64, out: &mut String) -> Result<(), CanonicalError> {
    if !x.is_finite() {
        return Err(CanonicalError::NonFiniteNumber(x));
    }
    if x == 0.0 {
        out.push('0');
        return Ok(());
    }
    if x < 0.0 {
        out.push('-');
    }
    let (digits, n) = shortest_digits(x.abs());
    let digits = digits.as_str();
    let k = digits.len() as i64;
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
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
    Ok(())
}

/// The shortest digits `d₁…d_k` (no trailing zeros) and exponent `n` with `0.d₁…d_k × 10^n`
/// parsing back to `x` (finite, > 0); of several such strings of that length, the one closest to
/// `x`, and of two equally close, the one whose last digit is even.
fn shortest_digits(x: f64) -> (String, i64) {
    // `{:e}` prints the shortest digits that parse back to `x`, `d[.ddd]e[-]x`, but breaks an
    // exact tie between two of them upwards (`1424953923781206.25` gives `…206.3`, ECMAScript
    // `…206.2`). Printing `x` correctly rounded (ties to even) to that many digits gives the
    // closest candidate, which is the answer whenever it parses back to `x` (it may not next to
    // a power of two, where the gap below `x` is half the gap above; then the candidate `{:e}`
    // found is the only one of that length).
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
    use super::*;
    use serde_json::json;

    fn canonical(value: &Value) -> String {
        to_canonical_string(value).expect("canonical form")
    }

    fn f64_text(x: f64) -> String {
        format_f64(x).expect("finite")
    }

    #[test]
    fn sorts_keys_recursively_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, 2, {"y": null, "x": true}], "Z": false}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"Z":false,"z":[1,2,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn sorted_compact_and_escaped() {
        let value = json!({"b": [1, 2.0, 1e-9, 0.05], "a": {"z": null, "y": "q\"\n"}, "é": true});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"y":"q\"\n","z":null},"b":[1,2,1e-9,0.05],"é":true}"#
        );
    }

    #[test]
    fn keys_sort_by_utf8_bytes() {
        let value = json!({"b": 1, "B": 2, "é": 3, "z": 4, "\u{1F600}": 5, "\u{FF21}": 6, "": 7});
        assert_eq!(
            canonical(&value),
            "{\"\":7,\"B\":2,\"b\":1,\"z\":4,\"é\":3,\"Ａ\":6,\"😀\":5}"
        );
    }

    /// The sorting example of RFC 8785 §3.2.3. JCS compares UTF-16 code units and puts U+1F600
    /// (surrogates D83D DE00) before U+FB33; by UTF-8 bytes it comes after. This is the one
    /// documented difference in key order.
    #[test]
    fn rfc8785_sorting_example_by_utf8_bytes() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).expect("example parses");
        let text = canonical(&value);
        let order = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Hebrew Letter Dalet With Dagesh",
            "Emoji: Grinning Face",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|name| text.find(name).expect("member present"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    /// The example of RFC 8785 §3.2.4, byte for byte.
    #[test]
    fn rfc8785_example() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let value: Value = serde_json::from_str(input).expect("example parses");
        assert_eq!(
            canonical(&value),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn escapes_like_serde_json() {
        let s = "q\"b\\s/\u{1}\u{1f}\t\n\r\u{8}\u{c}\u{7f}é漢🙂";
        assert_eq!(
            canonical(&json!(s)),
            serde_json::to_string(s).unwrap_or_default()
        );
        assert_eq!(canonical(&json!("\u{1}")), "\"\\u0001\"");
    }

    #[test]
    fn strings_escape_only_quote_backslash_and_controls() {
        let value = json!("a\"b\\c/\u{7f}\u{1}\u{1f}\u{8}\u{c}\n\r\té中\u{2028}😀");
        assert_eq!(
            canonical(&value),
            "\"a\\\"b\\\\c/\u{7f}\\u0001\\u001f\\b\\f\\n\\r\\té中\u{2028}😀\""
        );
    }

    #[test]
    fn integers_are_plain_decimal() {
        let value = json!([0, u64::MAX, i64::MIN, -1]);
        assert_eq!(
            canonical(&value),
            "[0,18446744073709551615,-9223372036854775808,-1]"
        );
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
            canonical(&v),
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
            assert_eq!(f64_text(*x), *want, "{x:e}");
        }
    }

    /// RFC 8785 appendix B: IEEE-754 bit patterns and their canonical text (checked against
    /// node.js `String(x)`).
    #[test]
    fn rfc8785_appendix_b() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            // An exact tie between `…206.2` and `…206.3`: the even last digit wins.
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            assert_eq!(f64_text(f64::from_bits(*bits)), *want, "{bits:016x}");
        }
        for bits in [
            0x7fffffffffffffff_u64,
            0x7ff0000000000000,
            0xfff0000000000000,
        ] {
            assert!(matches!(
                format_f64(f64::from_bits(bits)),
                Err(CanonicalError::NonFiniteNumber(_))
            ));
        }
    }

    #[test]
    fn float_layout() {
        let cases: [(f64, &str); 30] = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-2.0, "-2"),
            (10.0, "10"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456.789, "123456.789"),
            (1e-4, "0.0001"),
            (1.5e-5, "0.000015"),
            (1e-5, "0.00001"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (1e-9, "1e-9"),
            (2.5e-10, "2.5e-10"),
            (1e15, "1000000000000000"),
            (9007199254740992.0, "9007199254740992"),
            // Exact ties between two shortest candidates go to the even last digit:
            // 1737101158653059.25 and 1737101158653059.75.
            (6_948_404_634_612_237.0 / 4.0, "1737101158653059.2"),
            (6_948_404_634_612_239.0 / 4.0, "1737101158653059.8"),
            (1e16, "10000000000000000"),
            (2.5e16, "25000000000000000"),
            (1.2345678901234567e19, "12345678901234567000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1.25e300, "1.25e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-5e-324, "-5e-324"),
        ];
        for (x, expected) in cases {
            let out = f64_text(x);
            assert_eq!(out, expected, "{x:e}");
            // The text parses back to the same double (negative zero to zero).
            let back = out.parse::<f64>().expect("parses");
            assert!(
                back.to_bits() == x.to_bits() || (x == 0.0 && back == 0.0),
                "{out}"
            );
        }
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                format_f64(x),
                Err(CanonicalError::NonFiniteNumber(_))
            ));
        }
    }

    #[test]
    fn canonical_text_is_a_fixed_point() {
        let v =
            json!({"eps": 0.30000000000000004, "s": "ü\u{2028}", "n": [1e21, 2.5e-9, 1e20, 2.0]});
        let once = canonical(&v);
        let reparsed: Value = serde_json::from_str(&once).unwrap_or_default();
        assert_eq!(canonical(&reparsed), once);
    }
}
