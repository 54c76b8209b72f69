//! Phone numbers to E.164: `+` then 8–15 digits, country code first.

/// Fewest digits (country code included) accepted.
const MIN_DIGITS: usize = 8;
/// Most digits E.164 allows.
const MAX_DIGITS: usize = 15;

/// Normalises a phone number to `+<digits>`, or returns why it is rejected.
///
/// Spaces, dashes, dots and parentheses are dropped; full-width forms (common in CJK data) are
/// read as their ASCII equivalents. A leading `+` or `00` means the digits start with the
/// country code; in that form a `(0)` trunk marker (`+44 (0)20 …`) is dropped. Any other number
/// is national: it needs `default_country_code`, and loses one leading trunk `0` (for country
/// code 1, the leading `1` of an 11-digit national number).
pub(crate) fn normalise(raw: &str, default_country_code: Option<u16>) -> Result<String, String> {
    let text: String = raw.trim().chars().map(fold_full_width).collect();
    let international = text.strip_prefix('+').or_else(|| text.strip_prefix("00"));
    let full = match international {
        Some(body) => {
            // In international form `(0)` only marks the national trunk prefix: drop it.
            let digits = collect_digits(&body.replacen("(0)", "", 1))?;
            if digits.is_empty() {
                return Err("no digits".into());
            }
            if digits.starts_with('0') {
                return Err("country code cannot start with 0".into());
            }
            digits
        }
        None => {
            let digits = collect_digits(&text)?;
            if digits.is_empty() {
                return Err("no digits".into());
            }
            national_to_international(&digits, default_country_code)?
        }
    };
    match full.len() {
        n if n < MIN_DIGITS => Err(format!("{n} digits, too short for E.164")),
        n if n > MAX_DIGITS => Err(format!("{n} digits, too long for E.164 (at most 15)")),
        _ => Ok(format!("+{full}")),
    }
}

/// The digits of `body`, skipping separators and rejecting everything else.
fn collect_digits(body: &str) -> Result<String, String> {
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '-' | '.' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            '+' => return Err("'+' is only allowed at the start".into()),
            c if c.is_alphabetic() => return Err("letters are not allowed".into()),
            c => return Err(format!("unexpected character {c:?}")),
        }
    }
    Ok(digits)
}

/// Prefixes a national number with the default country code, dropping the trunk prefix.
fn national_to_international(
    national: &str,
    default_country_code: Option<u16>,
) -> Result<String, String> {
    let Some(code) = default_country_code else {
        return Err(
            "national number without country code; write it with + or 00, or set a default country code"
                .into(),
        );
    };
    if !(1..=999).contains(&code) {
        return Err(format!(
            "default country code {code} is not an E.164 country code (1-999)"
        ));
    }
    let trunk = if code == 1 && national.len() == 11 && national.starts_with('1') {
        '1'
    } else {
        '0'
    };
    let subscriber = national.strip_prefix(trunk).unwrap_or(national);
    Ok(format!("{code}{subscriber}"))
}

/// Maps full-width ASCII variants (U+FF01–U+FF5E) and the ideographic space to ASCII.
fn fold_full_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    fn ok(raw: &str, cc: Option<u16>) -> String {
        normalise(raw, cc).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    #[test]
    fn international_forms() {
        assert_eq!(ok("+1 (234) 567-8901", None), "+12345678901");
        assert_eq!(ok("001 234 567 8901", None), "+12345678901");
        assert_eq!(ok("+86 138-0013-8000", None), "+8613800138000");
        assert_eq!(ok("0086 138 0013 8000", Some(1)), "+8613800138000");
        assert_eq!(ok("+65 1234 5678", None), "+6512345678");
        assert_eq!(ok("+44 20.7946.0958", None), "+442079460958");
    }

    #[test]
    fn trunk_marker_in_international_form_is_dropped() {
        assert_eq!(ok("+44 (0)20 7946 0958", None), "+442079460958");
        assert_eq!(ok("0044 (0)20 7946 0958", None), "+442079460958");
    }

    #[test]
    fn national_forms_use_default_country_code() {
        assert_eq!(ok("138 0013 8000", Some(86)), "+8613800138000");
        assert_eq!(ok("010-6552-9988", Some(86)), "+861065529988");
        assert_eq!(ok("(02) 1234 5678", Some(61)), "+61212345678");
        assert_eq!(ok("(234) 567-8901", Some(1)), "+12345678901");
        assert_eq!(ok("1 (234) 567-8901", Some(1)), "+12345678901");
        assert_eq!(ok("(0)20 7946 0958", Some(44)), "+442079460958");
    }

    #[test]
    fn default_country_code_is_ignored_for_international_numbers() {
        assert_eq!(ok("+12345678901", Some(86)), "+12345678901");
    }

    #[test]
    fn full_width_digits_are_folded() {
        assert_eq!(ok("＋８６　１３８００１３８０００", None), "+8613800138000");
    }

    #[test]
    fn already_normalised_is_unchanged() {
        assert_eq!(ok("+8613800138000", None), "+8613800138000");
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases: [(&str, Option<u16>, &str); 12] = [
            ("+1234567", None, "7 digits, too short for E.164"),
            (
                "+1234567890123456",
                None,
                "16 digits, too long for E.164 (at most 15)",
            ),
            ("+1 234 CALL NOW", None, "letters are not allowed"),
            ("+1 234 567 8901 ext 12", None, "letters are not allowed"),
            ("+1 234#567 8901", None, "unexpected character '#'"),
            (
                "1+234 567 8901",
                Some(1),
                "'+' is only allowed at the start",
            ),
            ("++12345678901", None, "'+' is only allowed at the start"),
            ("", None, "no digits"),
            ("( - )", Some(86), "no digits"),
            ("+0 234 567 8901", None, "country code cannot start with 0"),
            ("000 234 567 8901", None, "country code cannot start with 0"),
            (
                "138 0013 8000",
                Some(1000),
                "default country code 1000 is not an E.164 country code (1-999)",
            ),
        ];
        for (raw, cc, reason) in cases {
            assert_eq!(normalise(raw, cc), Err(reason.to_owned()), "{raw:?}");
        }
    }

    #[test]
    fn national_number_without_default_is_rejected() {
        let err = normalise("138 0013 8000", None).unwrap_err();
        assert!(
            err.starts_with("national number without country code"),
            "{err}"
        );
        let err = normalise("138 0013 8000", Some(0)).unwrap_err();
        assert!(err.contains("not an E.164 country code"), "{err}");
    }
}
