//! E-mail normalisation: UID2's rules, with Unicode made to have one form per address.
//!
//! Steps (normative text: `protocols/identifier-rules-v2.md`, "Email"):
//! 1. Unicode NFC (UAX #15), so precomposed and decomposed spellings are one address.
//! 2. Invisible format characters ([`INVISIBLE`]) are removed: they are never part of an
//!    address a person typed, only of one copied from a web page or a spreadsheet.
//! 3. Trim whitespace; reject whitespace or control characters inside.
//! 4. Lower-case (full Unicode lower-casing; UID2 lower-cases A–Z only, which gives the same
//!    result on every ASCII address and so on every UID2 vector).
//! 5. Exactly one `@`, non-empty local part, a domain with a dot and no empty label.
//! 6. The domain is processed with UTS #46 (non-transitional, `idna` crate) and written in its
//!    Unicode form: `bücher.de` and `xn--bcher-kva.de` are one domain (`bücher.de`).
//! 7. For `gmail.com` and `googlemail.com` drop dots from the local part and anything from
//!    the first `+` (UID2 for `gmail.com`; Google Customer Match for `googlemail.com`). The
//!    domain is kept as written: neither UID2 nor Google rewrites `googlemail.com`.

use idna::uts46::{AsciiDenyList, Hyphens, Uts46};
use unicode_normalization::UnicodeNormalization;

/// Domains whose local part ignores dots and `+tag` suffixes.
const GMAIL_DOMAINS: [&str; 2] = ["gmail.com", "googlemail.com"];

/// Invisible format characters removed before anything else but NFC: soft hyphen, Mongolian
/// vowel separator, zero-width space / non-joiner / joiner, left-to-right and right-to-left
/// marks, bidirectional embeddings, overrides and isolates, word joiner and invisible
/// operators, and the zero-width no-break space (a BOM at the start of a cell).
pub const INVISIBLE: &[char] = &[
    '\u{00AD}', '\u{180E}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{202A}',
    '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2060}', '\u{2061}', '\u{2062}', '\u{2063}',
    '\u{2064}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{FEFF}',
];

/// Normalises an e-mail address, or returns why it is rejected.
pub(crate) fn normalise(raw: &str) -> Result<String, String> {
    let visible: String = raw.nfc().filter(|c| !INVISIBLE.contains(c)).collect();
    let trimmed = visible.trim();
    if trimmed.is_empty() {
        return Err("empty".into());
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err("whitespace inside the address".into());
    }
    if trimmed.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    let lower: String = trimmed.to_lowercase().nfc().collect();
    let Some((local, domain)) = lower.split_once('@') else {
        return Err("missing @".into());
    };
    if domain.contains('@') {
        return Err("more than one @".into());
    }
    if local.is_empty() {
        return Err("empty local part".into());
    }
    if domain.is_empty() {
        return Err("empty domain".into());
    }
    if !domain.contains('.') {
        return Err("domain has no dot".into());
    }
    if domain.split('.').any(str::is_empty) {
        return Err("domain has an empty label".into());
    }
    let domain = domain_unicode_form(domain)?;
    let local = if GMAIL_DOMAINS.contains(&domain.as_str()) {
        let before_tag = local.split('+').next().unwrap_or_default();
        before_tag.replace('.', "")
    } else {
        local.to_owned()
    };
    if local.is_empty() {
        return Err("empty local part".into());
    }
    Ok(format!("{local}@{domain}"))
}

/// UTS #46 processing of a domain (mapping, NFC, Punycode decoding, validity), Unicode form.
fn domain_unicode_form(domain: &str) -> Result<String, String> {
    let (unicode, result) =
        Uts46::new().to_unicode(domain.as_bytes(), AsciiDenyList::URL, Hyphens::Allow);
    match result {
        Ok(()) if !unicode.split('.').any(str::is_empty) => Ok(unicode.into_owned()),
        _ => Err("domain is not a valid internationalised domain name (UTS #46)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn trims_and_lower_cases() {
        assert_eq!(
            normalise("  MyEmail@Example.COM\t\n").unwrap(),
            "myemail@example.com"
        );
    }

    #[test]
    fn keeps_dots_and_tags_outside_gmail() {
        assert_eq!(
            normalise("Jane.Saoirse+Work@example.com").unwrap(),
            "jane.saoirse+work@example.com"
        );
        assert_eq!(
            normalise("jane.doe@gmail.co.uk").unwrap(),
            "jane.doe@gmail.co.uk"
        );
        assert_eq!(
            normalise("jane.doe@mail.gmail.com").unwrap(),
            "jane.doe@mail.gmail.com"
        );
    }

    #[test]
    fn gmail_drops_dots_and_tag() {
        for raw in [
            "JANE.SAOIRSE@gmail.com",
            "Jane.Saoirse@gmail.com",
            "JaneSaoirse+Work@gmail.com",
            "j.a.n.e.saoirse+a+b.c@GMAIL.COM",
            "JaneSaoirse@GMAIL.com",
        ] {
            assert_eq!(normalise(raw).unwrap(), "janesaoirse@gmail.com", "{raw}");
        }
    }

    #[test]
    fn googlemail_gets_gmail_rules_but_keeps_its_domain() {
        assert_eq!(
            normalise("Jane.Saoirse+x@GoogleMail.com").unwrap(),
            "janesaoirse@googlemail.com"
        );
    }

    #[test]
    fn non_ascii_is_lower_cased_and_kept() {
        assert_eq!(normalise("ÅSA@Exämple.se").unwrap(), "åsa@exämple.se");
    }

    /// Issue 10: `jürgen@example.de` precomposed and decomposed are one person.
    #[test]
    fn nfc_and_nfd_are_one_address() {
        let nfc = "j\u{00FC}rgen@example.de";
        let nfd = "ju\u{0308}rgen@example.de";
        assert_eq!(normalise(nfc).unwrap(), nfc);
        assert_eq!(normalise(nfd).unwrap(), nfc);
        assert_eq!(normalise("JU\u{0308}RGEN@EXAMPLE.DE").unwrap(), nfc);
    }

    /// Issue 10: a U+200B inside, a leading BOM, a soft hyphen, bidi marks are removed.
    #[test]
    fn invisible_format_characters_are_removed() {
        for raw in [
            "jane\u{200B}@example.com",
            "\u{FEFF}jane@example.com",
            "ja\u{00AD}ne@example.com",
            "\u{200E}jane@example.com\u{200F}",
            "\u{202A}jane@exam\u{2060}ple.com\u{202C}",
            "jane@example.com\u{200D}",
        ] {
            assert_eq!(normalise(raw).unwrap(), "jane@example.com", "{raw:?}");
        }
    }

    /// Issue 10: `jane@bücher.de` and `jane@xn--bcher-kva.de` are the same address.
    #[test]
    fn idn_domains_have_one_form() {
        for raw in [
            "jane@bücher.de",
            "jane@xn--bcher-kva.de",
            "Jane@XN--BCHER-KVA.DE",
            "jane@BÜCHER.de",
            "jane@bu\u{0308}cher.de",
        ] {
            assert_eq!(normalise(raw).unwrap(), "jane@bücher.de", "{raw}");
        }
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("\u{200B}", "empty"),
            ("user.example.com", "missing @"),
            ("a@b@example.com", "more than one @"),
            ("@example.com", "empty local part"),
            ("user@", "empty domain"),
            ("user@localhost", "domain has no dot"),
            ("user@example..com", "domain has an empty label"),
            ("user@.example.com", "domain has an empty label"),
            ("user@example.com.", "domain has an empty label"),
            ("us er@example.com", "whitespace inside the address"),
            ("user@exam\tple.com", "whitespace inside the address"),
            (
                "user\u{0}@example.com",
                "control characters are not allowed",
            ),
            ("+tag@gmail.com", "empty local part"),
            ("...@gmail.com", "empty local part"),
            (
                "user@xn--zz.com",
                "domain is not a valid internationalised domain name (UTS #46)",
            ),
            (
                "user@exa%mple.com",
                "domain is not a valid internationalised domain name (UTS #46)",
            ),
        ];
        for (raw, reason) in cases {
            assert_eq!(normalise(raw), Err(reason.to_owned()), "{raw:?}");
        }
    }
}
