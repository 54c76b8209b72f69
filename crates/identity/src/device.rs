//! Mobile advertising ids (IDFA, GAID, OAID) in three documented, distinct forms.
//!
//! * **UUID** (IDFA, GAID, Huawei OAID): lower-case hyphenated 8-4-4-4-12. Accepted
//!   hyphenated (optionally in braces), or as 32 bare hex digits only when those carry the
//!   RFC 9562 variant (`8`–`b` at digit 17) and a version `1`–`8` (digit 13): advertising ids
//!   are random (version 4) UUIDs, and a bare 32-digit value without those bits (an MD5, say)
//!   is not one, so it is rejected instead of reshaped.
//! * **16 hex digits** (OAIDs of several Android vendors): lower-case, kept as 16 digits.
//! * **64 hex digits** (OAIDs of other vendors): lower-case, kept as 64 digits.
//!
//! Forms are never converted into each other, so distinct forms give distinct digests. An
//! id of all zeros (what a device returns when the user limits ad tracking) is rejected.

/// Byte offsets of the hyphens in the 36-character hyphenated form.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// The forms named in every rejection.
const EXPECTED: &str = "expected a UUID (8-4-4-4-12), 16 or 64 hex digits";

/// Normalises a device id, or returns why it is rejected.
pub(crate) fn normalise(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let (inner, braced) = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
        (Some(rest), true) => (rest.strip_suffix('}').unwrap_or(rest), true),
        (None, false) => (trimmed, false),
        _ => return Err("unbalanced braces".into()),
    };
    if let Some(c) = inner
        .chars()
        .find(|c| !(c.is_ascii_hexdigit() || *c == '-'))
    {
        return Err(format!("unexpected character {c:?}; {EXPECTED}"));
    }
    let hex = inner.to_ascii_lowercase();
    if hex.bytes().all(|b| b == b'0' || b == b'-') && !hex.is_empty() {
        return Err("all-zero id (the user opted out of ad tracking)".into());
    }
    if inner.contains('-') {
        let hyphenated_right =
            inner.len() == 36 && HYPHENS.iter().all(|&i| inner.as_bytes()[i] == b'-');
        let digits = hex.bytes().filter(|b| *b != b'-').count();
        if !hyphenated_right || digits != 32 {
            return Err(format!(
                "hyphens must split a UUID as 8-4-4-4-12; {EXPECTED}"
            ));
        }
        return Ok(hex);
    }
    match hex.len() {
        32 if looks_like_uuid(&hex) => Ok(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )),
        32 => Err(format!(
            "32 hex digits without the version and variant of a UUID (an MD5?); {EXPECTED}"
        )),
        16 | 64 if !braced => Ok(hex),
        16 | 64 => Err(format!("only a UUID may be written in braces; {EXPECTED}")),
        n => Err(format!("{n} hex digits; {EXPECTED}")),
    }
}

/// Whether 32 lower-case hex digits carry an RFC 9562 version (1–8) and variant (10xx).
fn looks_like_uuid(hex: &str) -> bool {
    let b = hex.as_bytes();
    matches!(b[12], b'1'..=b'8') && matches!(b[16], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::normalise;

    const CANONICAL: &str = "4b61639e-47cc-4056-a16a-c8217e029462";

    #[test]
    fn uuid_spellings() {
        for raw in [
            CANONICAL,
            "4B61639E-47CC-4056-A16A-C8217E029462",
            "4b61639e47cc4056a16ac8217e029462",
            "4B61639E47CC4056A16AC8217E029462",
            "{4B61639E-47CC-4056-A16A-C8217E029462}",
            "{4b61639e47cc4056a16ac8217e029462}",
            "  4b61639e-47cc-4056-a16a-c8217e029462\n",
        ] {
            assert_eq!(normalise(raw).unwrap(), CANONICAL, "{raw:?}");
        }
        // Hyphenated text is a UUID whatever its version bits.
        assert_eq!(
            normalise("0123ABCD-0123-0123-0123-0123456789AB").unwrap(),
            "0123abcd-0123-0123-0123-0123456789ab"
        );
    }

    /// Issue 10: OAIDs of 16 and 64 hex digits are accepted and kept in their own form.
    #[test]
    fn oaid_16_and_64_hex_digits_keep_their_form() {
        assert_eq!(normalise("AF3802A465767E36").unwrap(), "af3802a465767e36");
        let long = "a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f";
        assert_eq!(normalise(&long.to_uppercase()).unwrap(), long);
    }

    /// Issue 10: a 32-digit value that is not a UUID (an MD5) is not reshaped into one.
    #[test]
    fn md5_is_not_reshaped_into_a_uuid() {
        // MD5 of the empty string: its 13th digit 'b' is no UUID version.
        let err = normalise("d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert_eq!(
            err,
            "32 hex digits without the version and variant of a UUID (an MD5?); expected a UUID (8-4-4-4-12), 16 or 64 hex digits"
        );
    }

    #[test]
    fn rejections_name_their_reason_and_the_expected_forms() {
        let cases = [
            (
                "00000000-0000-0000-0000-000000000000",
                "all-zero id (the user opted out of ad tracking)",
            ),
            (
                "00000000000000000000000000000000",
                "all-zero id (the user opted out of ad tracking)",
            ),
            (
                "0000000000000000",
                "all-zero id (the user opted out of ad tracking)",
            ),
            (
                "4b61639e-47cc-4056-a16a-c8217e02946",
                "hyphens must split a UUID as 8-4-4-4-12; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "af3802a465767e3",
                "15 hex digits; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "",
                "0 hex digits; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "4b61639e47cc4056a16ac8217e029462ff",
                "34 hex digits; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "4b61639e47cc-4056-a16a-c8217e029462",
                "hyphens must split a UUID as 8-4-4-4-12; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "4g61639e-47cc-4056-a16a-c8217e029462",
                "unexpected character 'g'; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "4b61639e 47cc 4056 a16a c8217e029462",
                "unexpected character ' '; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            (
                "{af3802a465767e36}",
                "only a UUID may be written in braces; expected a UUID (8-4-4-4-12), 16 or 64 hex digits",
            ),
            ("{4b61639e-47cc-4056-a16a-c8217e029462", "unbalanced braces"),
            ("4b61639e-47cc-4056-a16a-c8217e029462}", "unbalanced braces"),
        ];
        for (raw, reason) in cases {
            assert_eq!(normalise(raw), Err(reason.to_owned()), "{raw:?}");
        }
    }
}
