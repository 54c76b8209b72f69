//! Property tests: formatting variants of one identifier give one digest, and normalising is
//! idempotent.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use tandem_identity::{IdKind, Normaliser};

/// Applies an upper/lower-case mask to ASCII text.
fn recase(text: &str, mask: &[bool]) -> String {
    text.chars()
        .zip(mask.iter().cycle())
        .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn padding() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![" ", "\t", "\n", "\r\n"]), 0..4)
        .prop_map(|parts| parts.concat())
}

fn domain() -> impl Strategy<Value = String> {
    (
        "[a-z0-9-]{1,12}",
        prop::sample::select(vec!["com", "cn", "co.uk", "io"]),
    )
        .prop_map(|(name, tld)| format!("{name}.{tld}"))
}

/// Digits split into groups joined by separators, one group maybe parenthesised.
fn formatted(digits: String) -> impl Strategy<Value = String> {
    let len = digits.len();
    (
        prop::collection::vec(1usize..5, 1..8),
        prop::collection::vec(
            prop::sample::select(vec!["", " ", "-", ".", "  ", " - "]),
            8,
        ),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(sizes, seps, paren_at, use_paren)| {
            let mut groups = Vec::new();
            let mut at = 0;
            for size in sizes.iter().cycle() {
                if at >= len {
                    break;
                }
                let end = (at + size).min(len);
                groups.push(digits[at..end].to_owned());
                at = end;
            }
            if use_paren {
                let i = paren_at.index(groups.len());
                // `(0)` alone is a trunk marker, so only wrap groups that are not exactly "0".
                if groups[i] != "0" {
                    groups[i] = format!("({})", groups[i]);
                }
            }
            let mut out = String::new();
            for (i, group) in groups.iter().enumerate() {
                if i > 0 {
                    out.push_str(seps[i % seps.len()]);
                }
                out.push_str(group);
            }
            out
        })
}

/// (country code, subscriber number) with 8..=15 digits in total.
fn phone_parts() -> impl Strategy<Value = (String, String)> {
    ("[1-9][0-9]{0,2}", "[1-9][0-9]{6,11}").prop_filter("E.164 length", |(cc, sub)| {
        (8..=15).contains(&(cc.len() + sub.len()))
    })
}

proptest! {
    #[test]
    fn email_case_and_padding_do_not_change_digest(
        local in "[a-z0-9][a-z0-9._+-]{0,20}",
        domain in domain(),
        mask in prop::collection::vec(any::<bool>(), 1..40),
        before in padding(),
        after in padding(),
    ) {
        let n = Normaliser::default();
        let base = format!("{local}@{domain}");
        let variant = format!("{before}{}{after}", recase(&base, &mask));
        prop_assert_eq!(n.digest(IdKind::Email, &variant)?, n.digest(IdKind::Email, &base)?);
    }

    #[test]
    fn gmail_dot_and_tag_variants_share_a_digest(
        local in "[a-z0-9]{1,20}",
        dots in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        tag in prop::option::of("[a-z0-9.+_-]{0,10}"),
        domain in prop::sample::select(vec!["gmail.com", "googlemail.com"]),
        mask in prop::collection::vec(any::<bool>(), 1..40),
    ) {
        let n = Normaliser::default();
        let mut dotted: Vec<char> = local.chars().collect();
        for at in dots {
            dotted.insert(at.index(dotted.len() + 1), '.');
        }
        let mut variant: String = dotted.into_iter().collect();
        if let Some(tag) = tag {
            variant.push('+');
            variant.push_str(&tag);
        }
        let variant = recase(&format!("{variant}@{domain}"), &mask);
        let base = format!("{local}@{domain}");
        prop_assert_eq!(n.normalise(IdKind::Email, &variant)?, base.clone());
        prop_assert_eq!(n.digest(IdKind::Email, &variant)?, n.digest(IdKind::Email, &base)?);
    }

    #[test]
    fn phone_plus_and_00_prefixes_share_a_digest(
        (cc, sub) in phone_parts(),
        prefix in prop::sample::select(vec!["+", "00", "+ ", "00 "]),
    ) {
        let n = Normaliser::default();
        let canonical = format!("+{cc}{sub}");
        let plain = format!("{prefix}{cc}{sub}");
        prop_assert_eq!(n.normalise(IdKind::Phone, &plain)?, canonical.clone());
        prop_assert_eq!(n.digest(IdKind::Phone, &plain)?, n.digest(IdKind::Phone, &canonical)?);
    }

    #[test]
    fn phone_separators_and_parentheses_do_not_change_digest(
        ((cc, sub), text) in phone_parts().prop_flat_map(|(cc, sub)| {
            let digits = format!("{cc}{sub}");
            (Just((cc, sub)), formatted(digits))
        }),
        prefix in prop::sample::select(vec!["+", "00", "+ ", "00 "]),
        before in padding(),
    ) {
        let n = Normaliser::default();
        let canonical = format!("+{cc}{sub}");
        let variant = format!("{before}{prefix}{text}");
        prop_assert_eq!(n.normalise(IdKind::Phone, &variant)?, canonical.clone());
        prop_assert_eq!(n.digest(IdKind::Phone, &variant)?, n.digest(IdKind::Phone, &canonical)?);
    }

    #[test]
    fn national_phone_with_default_country_code(
        (cc, sub) in phone_parts().prop_filter("NANP has its own trunk rule", |(cc, _)| cc != "1"),
    ) {
        let Ok(code) = cc.parse::<u16>() else { return Err(TestCaseError::fail("cc")) };
        let n = Normaliser { default_country_code: Some(code) };
        let national = format!("0{sub}");
        prop_assert_eq!(n.normalise(IdKind::Phone, &national)?, format!("+{cc}{sub}"));
    }

    #[test]
    fn prehashed_hex_and_base64_spellings_agree(bytes in any::<[u8; 32]>()) {
        let n = Normaliser::default();
        let hex_lower = hex::encode(bytes);
        let spellings = [
            hex_lower.clone(),
            hex_lower.to_uppercase(),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
        ];
        for text in &spellings {
            prop_assert_eq!(n.digest(IdKind::Sha256, text)?, bytes);
            prop_assert_eq!(n.normalise(IdKind::Sha256, text)?, hex_lower.clone());
        }
    }

    #[test]
    fn device_id_spellings_agree(bytes in any::<[u8; 16]>(), mask in prop::collection::vec(any::<bool>(), 1..40), braces in any::<bool>()) {
        prop_assume!(bytes != [0u8; 16]);
        let n = Normaliser::default();
        let bare = hex::encode(bytes);
        let hyphenated = format!("{}-{}-{}-{}-{}", &bare[..8], &bare[8..12], &bare[12..16], &bare[16..20], &bare[20..]);
        let mut variant = recase(&hyphenated, &mask);
        if braces {
            variant = format!("{{{variant}}}");
        }
        prop_assert_eq!(n.normalise(IdKind::DeviceId, &variant)?, hyphenated.clone());
        prop_assert_eq!(n.digest(IdKind::DeviceId, &bare)?, n.digest(IdKind::DeviceId, &variant)?);
    }

    #[test]
    fn normalise_is_idempotent_on_arbitrary_text(raw in "\\PC{0,40}", kind in prop::sample::select(IdKind::all().to_vec())) {
        let n = Normaliser { default_country_code: Some(86) };
        if let Ok(once) = n.normalise(kind, &raw) {
            prop_assert_eq!(n.normalise(kind, &once)?, once.clone());
        }
    }

    #[test]
    fn normalise_is_idempotent_on_valid_identifiers(
        email in ("\\PC{1,12}", domain()).prop_map(|(l, d)| format!("{}@{d}", l.replace(['@', ' '], "x"))),
        gmail in "[A-Za-z0-9.+]{1,20}".prop_map(|l| format!("x{l}@GMail.com")),
        (cc, sub) in phone_parts(),
        device in any::<[u8; 16]>(),
    ) {
        let n = Normaliser { default_country_code: Some(86) };
        for (kind, raw) in [
            (IdKind::Email, email),
            (IdKind::Email, gmail),
            (IdKind::Phone, format!("00{cc} {sub}")),
            (IdKind::Phone, format!("0{sub}")),
            (IdKind::DeviceId, hex::encode(device)),
        ] {
            if let Ok(once) = n.normalise(kind, &raw) {
                prop_assert_eq!(n.normalise(kind, &once)?, once.clone());
            }
        }
    }
}
