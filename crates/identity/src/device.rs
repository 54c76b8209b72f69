//! Mobile advertising ids (IDFA, GAID, OAID) as lower-case 8-4-4-4-12 UUID text.

/// Byte offsets of the hyphens in the 36-character hyphenated form.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// Normalises a device id, or returns why it is rejected.
///
/// Accepts 32 hex digits in any case, either bare or hyphenated as 8-4-4-4-12, optionally in
/// braces. The all-zero id (what iOS returns when the user opted out of tracking) is rejected.
pub(crate) fn normalise(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let inner = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
        (Some(rest), true) => rest.strip_suffix('}').unwrap_or(rest),
        (None, false) => trimmed,
        _ => return Err("unbalanced braces".into()),
    };
    if let Some(c) = inner
        .chars()
        .find(|c| !(c.is_ascii_hexdigit() || *c == '-'))
    {
        return Err(format!("unexpected character {c:?}"));
    }
    let hex: String = inner
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 32 {
        return Err(format!("expected 32 hex digits, found {}", hex.len()));
    }
    let hyphenated_right =
        inner.len() == 36 && HYPHENS.iter().all(|&i| inner.as_bytes()[i] == b'-');
    if inner.contains('-') && !hyphenated_right {
        return Err("hyphens must split the id as 8-4-4-4-12".into());
    }
    if hex.bytes().all(|b| b == b'0') {
        return Err("all-zero id (the user opted out of ad tracking)".into());
    }
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    const CANONICAL: &str = "4b61639e-47cc-4056-a16a-c8217e029462";

    #[test]
    fn accepted_spellings() {
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
    }

    #[test]
    fn rejections_name_their_reason() {
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
                "4b61639e-47cc-4056-a16a-c8217e02946",
                "expected 32 hex digits, found 31",
            ),
            ("af3802a465767e36", "expected 32 hex digits, found 16"),
            ("", "expected 32 hex digits, found 0"),
            (
                "4b61639e-47cc-4056-a16a-c8217e029462ff",
                "expected 32 hex digits, found 34",
            ),
            (
                "4b61639e47cc-4056-a16a-c8217e029462",
                "hyphens must split the id as 8-4-4-4-12",
            ),
            (
                "4b61-639e-47cc-4056-a16ac8217e029462",
                "hyphens must split the id as 8-4-4-4-12",
            ),
            (
                "4g61639e-47cc-4056-a16a-c8217e029462",
                "unexpected character 'g'",
            ),
            (
                "4b61639e 47cc 4056 a16a c8217e029462",
                "unexpected character ' '",
            ),
            ("{4b61639e-47cc-4056-a16a-c8217e029462", "unbalanced braces"),
            ("4b61639e-47cc-4056-a16a-c8217e029462}", "unbalanced braces"),
        ];
        for (raw, reason) in cases {
            assert_eq!(normalise(raw), Err(reason.to_owned()), "{raw:?}");
        }
    }
}
