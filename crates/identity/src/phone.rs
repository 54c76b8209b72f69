//! Phone numbers to E.164 with libphonenumber's rules and metadata (the `phonenumber` crate).
//!
//! Rules (normative text: `protocols/identifier-rules-v2.md`, "Phone"):
//! 1. Full-width forms (common in CJK data) are read as ASCII; surrounding whitespace is trimmed.
//! 2. Spreadsheet artefacts (`13800138000.0`, `1.38001E+10`) are rejected: they are a number
//!    that a spreadsheet reformatted, not a phone number, and reading their digits would make
//!    another person's number.
//! 3. Only digits, the separators space, `-`, `.`, `/`, `(`, `)` and one leading `+` are allowed
//!    (letters, so also vanity numbers and extensions, are rejected).
//! 4. `+…` is international, and so is a number that starts with the default region's
//!    international prefix (`00` in CN/GB/IT, `011` in US, `0011` in AU) or, in any region,
//!    with `00` (the prefix ITU-T recommends; no national number starts with it). Any other
//!    number is parsed by libphonenumber as dialled in the default region (trunk prefix
//!    dropped, the region's calling code recognised when written without `+`, Italian leading
//!    0 kept); without a default region it is rejected.
//! 5. The national significant number must have a possible length for its country
//!    (libphonenumber's `possibleLengths`); a number possible only locally (without its area
//!    code) is rejected.
//! 6. The result is E.164: `+`, country calling code, national significant number, and it
//!    must read back as itself (libphonenumber strips carrier codes from a few national
//!    numbers, e.g. Chinese `+86 1100000`, which then have no stable form and are rejected).

use phonenumber::metadata::DATABASE;
use phonenumber::{Metadata, Mode, ParseError, PhoneNumber};

use crate::Region;

/// Most digits E.164 allows, country code included.
const MAX_DIGITS: usize = 15;

/// Normalises a phone number to E.164, or returns why it is rejected.
pub(crate) fn normalise(raw: &str, region: Option<Region>) -> Result<String, String> {
    let text: String = raw.trim().chars().map(fold_full_width).collect();
    let text = text.trim();
    check_spreadsheet_artefact(text)?;
    let (international, digits) = digits_of(text)?;
    if digits.is_empty() {
        return Err("no digits".into());
    }
    let number = if international {
        parse_international(&digits)?
    } else if let Some(rest) = region
        .and_then(|r| r.metadata())
        .and_then(|meta| strip_international_prefix(meta, &digits))
        .or_else(|| digits.strip_prefix("00"))
    {
        parse_international(rest)?
    } else if let Some(region) = region {
        phonenumber::parse(Some(region.id()), &digits).map_err(parse_reason)?
    } else {
        return Err(
            "national number without country code; write it with + or set the node's default region"
                .into(),
        );
    };
    check_possible(&number)?;
    let e164 = number.format().mode(Mode::E164).to_string();
    // libphonenumber may read a number's own E.164 form differently (it strips carrier
    // selection codes from some national numbers): such a number has no stable form.
    if !international {
        let again = parse_international(&e164[1..])?;
        if again.format().mode(Mode::E164).to_string() != e164 {
            return Err("not a stable number: its E.164 form reads as another number".into());
        }
    }
    if e164.len() - 1 > MAX_DIGITS {
        return Err(format!(
            "{} digits, too long for E.164 (at most 15)",
            e164.len() - 1
        ));
    }
    Ok(e164)
}

/// Parses digits that start with the country calling code with the metadata of that code's
/// main region (as libphonenumber's Java original does), so that the trunk prefix stripped
/// after the country code is that of the number's own country.
fn parse_international(digits: &str) -> Result<PhoneNumber, String> {
    if digits.starts_with('0') {
        return Err("country code cannot start with 0".into());
    }
    let text = format!("+{digits}");
    // Country calling codes are prefix-free (ITU-T E.164), so the first 1-3 digits that name
    // one are the code.
    let main = (1..=3)
        .filter_map(|n| digits.get(..n)?.parse::<u16>().ok())
        .find(|code| DATABASE.region(code).is_some())
        .and_then(|code| Region::for_calling_code(code).ok());
    phonenumber::parse(main.map(|r| r.id()), &text).map_err(parse_reason)
}

/// The digits after the region's international (IDD) prefix, if `digits` starts with one and
/// something follows.
fn strip_international_prefix<'a>(meta: &Metadata, digits: &'a str) -> Option<&'a str> {
    let found = meta.international_prefix()?.find(digits)?;
    (found.start() == 0 && found.end() < digits.len()).then(|| &digits[found.end()..])
}

/// Rejects numbers with a possible-length check against the number's country metadata.
fn check_possible(number: &PhoneNumber) -> Result<(), String> {
    let code = number.code().value();
    let national = number.national().to_string();
    let meta = number
        .country()
        .id()
        .and_then(|id| DATABASE.by_id(id.as_ref()))
        .or_else(|| DATABASE.by_code(&code).and_then(|m| m.into_iter().next()))
        .ok_or_else(|| format!("+{code} is not a country calling code"))?;
    let (lengths, local) = possible_lengths(meta);
    let len = national.len() as u16;
    if lengths.contains(&len) {
        return Ok(());
    }
    if local.contains(&len) {
        return Err(format!(
            "{len} digits after +{code} is a local number without its area code"
        ));
    }
    let expected = lengths
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let verdict = match (lengths.first(), lengths.last()) {
        (Some(min), _) if len < *min => "too short",
        (_, Some(max)) if len > *max => "too long",
        _ => "not a possible length",
    };
    Err(format!(
        "not a possible number: {len} digits after +{code} is {verdict} (possible: {expected})"
    ))
}

/// The possible lengths of national significant numbers of a region, and those possible only
/// for local dialling: the union over its number types (libphonenumber's metadata build derives
/// the general description's lengths the same way).
fn possible_lengths(meta: &Metadata) -> (Vec<u16>, Vec<u16>) {
    let d = meta.descriptors();
    let descriptors = [
        Some(d.general()),
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    let (mut lengths, mut local) = (Vec::new(), Vec::new());
    for desc in descriptors.into_iter().flatten() {
        lengths.extend_from_slice(desc.possible_length());
        local.extend_from_slice(desc.possible_local_length());
    }
    lengths.sort_unstable();
    lengths.dedup();
    local.sort_unstable();
    local.dedup();
    local.retain(|l| !lengths.contains(l));
    (lengths, local)
}

/// A reason for a libphonenumber parse error that never repeats the input.
fn parse_reason(e: ParseError) -> String {
    match e {
        ParseError::NoNumber => "not a phone number".into(),
        ParseError::InvalidCountryCode => "unknown country calling code".into(),
        ParseError::TooShortAfterIdd => "too short after the international prefix".into(),
        ParseError::TooShortNsn => "too short after the country code".into(),
        ParseError::TooLong => "too long for a phone number".into(),
        ParseError::MalformedInteger(_) => "not a phone number".into(),
    }
}

/// Rejects the two shapes a spreadsheet gives a phone number stored as a number: a decimal
/// part of zeros (`13800138000.0`) and scientific notation (`1.38001E+10`).
fn check_spreadsheet_artefact(text: &str) -> Result<(), String> {
    let body = text.strip_prefix('+').unwrap_or(text);
    if let Some((int, frac)) = body.split_once('.')
        && int.len() >= 6
        && int.bytes().all(|b| b.is_ascii_digit())
        && !frac.is_empty()
        && frac.bytes().all(|b| b == b'0')
    {
        return Err(
            "looks like a spreadsheet number (a decimal part .0): export the column as text".into(),
        );
    }
    if let Some((mantissa, exponent)) = body.split_once(['e', 'E'])
        && !mantissa.is_empty()
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && exponent
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Err(
            "looks like a spreadsheet number in scientific notation: export the column as text"
                .into(),
        );
    }
    Ok(())
}

/// Whether the text starts with `+`, and its digits, skipping separators and rejecting
/// everything else.
fn digits_of(text: &str) -> Result<(bool, String), String> {
    let (international, body) = match text.strip_prefix('+') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '-' | '.' | '/' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            '+' => return Err("'+' is only allowed at the start".into()),
            c if c.is_alphabetic() => {
                return Err("letters are not allowed (nor vanity numbers or extensions)".into());
            }
            c => return Err(format!("unexpected character {c:?}")),
        }
    }
    Ok((international, digits))
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
    use crate::Region;

    fn region(r: &str) -> Option<Region> {
        Some(r.parse().unwrap())
    }

    fn ok(raw: &str, r: Option<Region>) -> String {
        normalise(raw, r).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    /// The examples of issue 10, each with the E.164 form that is right.
    #[test]
    fn issue_examples() {
        assert_eq!(ok("8613800138000", region("CN")), "+8613800138000");
        assert_eq!(ok("0086 138 0013 8000", region("CN")), "+8613800138000");
        assert_eq!(ok("011 44 20 7946 0958", region("US")), "+442079460958");
        assert_eq!(ok("+44 07911 123456", region("UK")), "+447911123456");
        assert_eq!(ok("+44 07911 123456", region("GB")), "+447911123456");
        assert_eq!(ok("+44 07911 123456", None), "+447911123456");
        assert_eq!(ok("06 1234 5678", region("IT")), "+390612345678");
        assert_eq!(
            normalise("13800138000.0", region("CN")),
            Err(
                "looks like a spreadsheet number (a decimal part .0): export the column as text"
                    .into()
            )
        );
    }

    #[test]
    fn international_forms() {
        assert_eq!(ok("+1 (234) 567-8901", None), "+12345678901");
        assert_eq!(ok("001 234 567 8901", None), "+12345678901");
        assert_eq!(ok("+86 138-0013-8000", None), "+8613800138000");
        assert_eq!(ok("0086 138 0013 8000", region("US")), "+8613800138000");
        assert_eq!(ok("+65 1234 5678", None), "+6512345678");
        assert_eq!(ok("+44 20.7946.0958", None), "+442079460958");
        assert_eq!(ok("+39 06 1234 5678", region("US")), "+390612345678");
    }

    #[test]
    fn other_countries_keep_their_own_trunk_rules() {
        // A US default must not strip a US trunk `1` from a UK or Singapore number.
        assert_eq!(ok("+44 1234 567890", region("US")), "+441234567890");
        assert_eq!(ok("+65 1234 5678", region("US")), "+6512345678");
    }

    #[test]
    fn trunk_marker_in_international_form_is_dropped() {
        assert_eq!(ok("+44 (0)20 7946 0958", None), "+442079460958");
        assert_eq!(ok("0044 (0)20 7946 0958", None), "+442079460958");
        assert_eq!(ok("0044 (0)20 7946 0958", region("GB")), "+442079460958");
    }

    #[test]
    fn national_forms_use_default_region() {
        assert_eq!(ok("138 0013 8000", region("CN")), "+8613800138000");
        assert_eq!(ok("010-6552-9988", region("CN")), "+861065529988");
        assert_eq!(ok("(02) 1234 5678", region("AU")), "+61212345678");
        assert_eq!(ok("(234) 567-8901", region("US")), "+12345678901");
        assert_eq!(ok("1 (234) 567-8901", region("US")), "+12345678901");
        assert_eq!(ok("(0)20 7946 0958", region("GB")), "+442079460958");
        assert_eq!(ok("07911 123456", region("GB")), "+447911123456");
    }

    #[test]
    fn default_region_is_ignored_for_international_numbers() {
        assert_eq!(ok("+12345678901", region("CN")), "+12345678901");
    }

    #[test]
    fn full_width_digits_are_folded() {
        assert_eq!(ok("＋８６　１３８００１３８０００", None), "+8613800138000");
    }

    #[test]
    fn already_normalised_is_unchanged() {
        assert_eq!(ok("+8613800138000", None), "+8613800138000");
        assert_eq!(ok("+390612345678", region("CN")), "+390612345678");
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases: &[(&str, Option<Region>, &str)] = &[
            (
                "+1234567",
                None,
                "not a possible number: 6 digits after +1 is too short (possible: 10)",
            ),
            (
                "+1234567890123456",
                None,
                "not a possible number: 15 digits after +1 is too long (possible: 10)",
            ),
            (
                "+1 234 CALL NOW",
                None,
                "letters are not allowed (nor vanity numbers or extensions)",
            ),
            (
                "+1 234 567 8901 ext 12",
                None,
                "letters are not allowed (nor vanity numbers or extensions)",
            ),
            ("+1 234#567 8901", None, "unexpected character '#'"),
            (
                "1+234 567 8901",
                region("US"),
                "'+' is only allowed at the start",
            ),
            ("++12345678901", None, "'+' is only allowed at the start"),
            ("", None, "no digits"),
            ("( - )", region("CN"), "no digits"),
            ("+0 234 567 8901", None, "country code cannot start with 0"),
            ("000 234 567 8901", None, "country code cannot start with 0"),
            (
                "1.38001E+10",
                region("CN"),
                "looks like a spreadsheet number in scientific notation: export the column as text",
            ),
            (
                "+8613800138000.00",
                None,
                "looks like a spreadsheet number (a decimal part .0): export the column as text",
            ),
            (
                "+86 1380013800012",
                None,
                "not a possible number: 13 digits after +86 is too long (possible: 7, 8, 9, 10, 11, 12)",
            ),
        ];
        for (raw, r, reason) in cases {
            assert_eq!(normalise(raw, *r), Err((*reason).to_owned()), "{raw:?}");
        }
    }

    #[test]
    fn national_number_without_default_is_rejected() {
        let err = normalise("138 0013 8000", None).unwrap_err();
        assert!(
            err.starts_with("national number without country code"),
            "{err}"
        );
    }
}
