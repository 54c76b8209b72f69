//! Property tests: formatting variants of one identifier give one digest, and normalising is
//! idempotent.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tandem_identity::{INVISIBLE, IdEncoding, IdKind, Normaliser, Region};
use unicode_normalization::UnicodeNormalization;

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

/// A numbering plan to spell numbers in: region, country code, international prefix, trunk
/// prefix, and a mobile (or fixed) number's leading digits and number of remaining digits.
#[derive(Clone, Copy, Debug)]
struct Plan {
    region: &'static str,
    cc: &'static str,
    idd: &'static str,
    trunk: &'static str,
    lead: &'static str,
    tail: usize,
}

/// Plans of the regions and a few more (leading digits from libphonenumber's examples).
const PLANS: &[Plan] = &[
    Plan {
        region: "CN",
        cc: "86",
        idd: "00",
        trunk: "0",
        lead: "138",
        tail: 8,
    },
    Plan {
        region: "CN",
        cc: "86",
        idd: "00",
        trunk: "0",
        lead: "10",
        tail: 8,
    },
    Plan {
        region: "US",
        cc: "1",
        idd: "011",
        trunk: "1",
        lead: "234",
        tail: 7,
    },
    Plan {
        region: "GB",
        cc: "44",
        idd: "00",
        trunk: "0",
        lead: "7911",
        tail: 6,
    },
    Plan {
        region: "GB",
        cc: "44",
        idd: "00",
        trunk: "0",
        lead: "20",
        tail: 8,
    },
    Plan {
        region: "IT",
        cc: "39",
        idd: "00",
        trunk: "",
        lead: "06",
        tail: 8,
    },
    Plan {
        region: "DE",
        cc: "49",
        idd: "00",
        trunk: "0",
        lead: "151",
        tail: 8,
    },
    Plan {
        region: "FR",
        cc: "33",
        idd: "00",
        trunk: "0",
        lead: "6",
        tail: 8,
    },
    Plan {
        region: "AU",
        cc: "61",
        idd: "0011",
        trunk: "0",
        lead: "4",
        tail: 8,
    },
    Plan {
        region: "JP",
        cc: "81",
        idd: "010",
        trunk: "0",
        lead: "90",
        tail: 8,
    },
];

/// (Unicode form, ASCII form) of internationalised domains.
const IDN_DOMAINS: &[(&str, &str)] = &[
    ("b\u{fc}cher.de", "xn--bcher-kva.de"),
    ("m\u{fc}nchen.de", "xn--mnchen-3ya.de"),
    ("caf\u{e9}.fr", "xn--caf-dma.fr"),
    ("\u{4e2d}\u{6587}.cn", "xn--fiq228c.cn"),
    ("example.com", "example.com"),
];

fn cn() -> Region {
    Region::for_calling_code(86).unwrap_or_else(|e| panic!("{e}"))
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
    fn phone_separators_and_parentheses_do_not_change_digest(
        (canonical, text) in prop::sample::select(PLANS.to_vec()).prop_flat_map(|plan| {
            (Just(plan), prop::collection::vec(0u8..10, plan.tail))
        }).prop_flat_map(|(plan, tail)| {
            let tail: String = tail.iter().map(|d| char::from(b'0' + d)).collect();
            let digits = format!("{}{}{tail}", plan.cc, plan.lead);
            (Just(format!("+{digits}")), formatted(digits))
        }),
        prefix in prop::sample::select(vec!["+", "00", "+ ", "00 "]),
        before in padding(),
    ) {
        let n = Normaliser::default();
        let variant = format!("{before}{prefix}{text}");
        prop_assert_eq!(n.normalise(IdKind::Phone, &variant)?, canonical.clone());
        prop_assert_eq!(n.digest(IdKind::Phone, &variant)?, n.digest(IdKind::Phone, &canonical)?);
    }

    /// Issue 10: one number written nationally, internationally, with the trunk prefix, and
    /// with the default region's international prefix gives one digest.
    #[test]
    fn phone_spellings_of_one_number_share_a_digest(
        (plan, tail) in prop::sample::select(PLANS.to_vec()).prop_flat_map(|plan| {
            (Just(plan), prop::collection::vec(0u8..10, plan.tail))
        }),
        spelling in 0usize..6,
        sep in prop::sample::select(vec!["", " ", "-", ".", " - "]),
        before in padding(),
    ) {
        let tail: String = tail.iter().map(|d| char::from(b'0' + d)).collect();
        let nsn = format!("{}{tail}", plan.lead);
        let canonical = format!("+{}{nsn}", plan.cc);
        let n = Normaliser::with_region(plan.region.parse::<Region>().map_err(|e| TestCaseError::fail(e.to_string()))?);
        let (head, rest) = nsn.split_at(plan.lead.len());
        let grouped = format!("{head}{sep}{rest}");
        let text = match spelling {
            0 => format!("+{}{sep}{grouped}", plan.cc),
            1 => format!("{}{sep}{}{sep}{grouped}", plan.idd, plan.cc),
            2 => format!("{}{grouped}", plan.trunk),
            3 => format!("+{} ({}){grouped}", plan.cc, plan.trunk),
            4 => format!("{}{sep}{}{sep}{}{grouped}", plan.idd, plan.cc, plan.trunk),
            _ => format!("+{}{sep}{}{grouped}", plan.cc, plan.trunk),
        };
        // A trunk prefix after the country code (`+44 (0)20 …`) is written only where it is `0`.
        prop_assume!(plan.trunk == "0" || !matches!(spelling, 3 | 5));
        let variant = format!("{before}{text}");
        prop_assert_eq!(n.normalise(IdKind::Phone, &variant)?, canonical.clone());
        let expected: [u8; 32] = Sha256::digest(canonical.as_bytes()).into();
        prop_assert_eq!(n.digest(IdKind::Phone, &variant)?, expected);
    }

    /// Issue 10: case, whitespace, NFC/NFD, invisible characters and IDN forms of one address
    /// give one digest.
    #[test]
    fn email_spellings_of_one_address_share_a_digest(
        local in "[a-z0-9][a-z0-9._-]{0,12}",
        accent in prop::option::of(prop::sample::select(vec!["ü", "é", "ø", "å"])),
        (unicode_domain, ascii_domain) in prop::sample::select(IDN_DOMAINS.to_vec()),
        use_ascii_domain in any::<bool>(),
        decompose in any::<bool>(),
        upper in any::<bool>(),
        mask in prop::collection::vec(any::<bool>(), 1..40),
        invisible in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(INVISIBLE.to_vec())), 0..4),
        before in padding(),
        after in padding(),
    ) {
        let n = Normaliser::default();
        let local = format!("{local}{}", accent.unwrap_or(""));
        let base = format!("{local}@{unicode_domain}");
        let domain = if use_ascii_domain { ascii_domain } else { unicode_domain };
        let mut variant = format!("{local}@{domain}");
        if upper {
            variant = variant.to_uppercase();
        }
        variant = recase(&variant, &mask);
        if decompose {
            variant = variant.nfd().collect();
        }
        let mut chars: Vec<char> = variant.chars().collect();
        for (at, c) in invisible {
            chars.insert(at.index(chars.len() + 1), c);
        }
        let variant = format!("{before}{}{after}", chars.into_iter().collect::<String>());
        prop_assert_eq!(n.normalise(IdKind::Email, &variant)?, base.clone());
        let expected: [u8; 32] = Sha256::digest(base.as_bytes()).into();
        prop_assert_eq!(n.digest(IdKind::Email, &variant)?, expected);
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
            prop_assert_eq!(n.digest_encoded(IdKind::Email, IdEncoding::Sha256, text)?, bytes);
        }
    }

    #[test]
    fn device_id_spellings_agree(mut bytes in any::<[u8; 16]>(), mask in prop::collection::vec(any::<bool>(), 1..40), braces in any::<bool>()) {
        // A version-4, RFC 9562-variant UUID, as advertising ids are.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
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
        let n = Normaliser::with_region(cn());
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
        let n = Normaliser::with_region(cn());
        for (kind, raw) in [
            (IdKind::Email, email),
            (IdKind::Email, gmail),
            (IdKind::Phone, format!("00{cc} {sub}")),
            (IdKind::Phone, format!("0{sub}")),
            (IdKind::Email, format!("x{}@B\u{fc}cher.de", hex::encode(device))),
            (IdKind::DeviceId, hex::encode(device)),
        ] {
            if let Ok(once) = n.normalise(kind, &raw) {
                prop_assert_eq!(n.normalise(kind, &once)?, once.clone());
            }
        }
    }
}
