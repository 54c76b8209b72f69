//! Published normalisation and hashing vectors.
//!
//! Source: IAB Tech Lab UID2 documentation, "Normalization and Encoding"
//! (uid2docs, docs/getting-started/gs-normalization-encoding.md): the email hash encoding table,
//! the phone hash encoding table, "Normalization Examples for Email", and the phone
//! normalisation examples.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use tandem_identity::{IdEncoding, IdKind, Normaliser};

/// (raw inputs, normalised, SHA-256 hex, SHA-256 Base64) for emails.
const EMAIL_VECTORS: &[(&[&str], &str, &str, &str)] = &[
    (
        &["user@example.com"],
        "user@example.com",
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
    ),
    (
        &["MyEmail@example.com", "MYEMAIL@example.com"],
        "myemail@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        &["My.Email@example.com"],
        "my.email@example.com",
        "e22b53bc6f871274f3a62ab37a3caed7214fc14d676215a96a242fcfada1c81f",
        "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8=",
    ),
    (
        &["JANESAOIRSE@example.com", "JaneSaoirse@example.com"],
        "janesaoirse@example.com",
        "d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d",
        "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20=",
    ),
    (
        &["jane.saoirse@example.com", "Jane.Saoirse@example.com"],
        "jane.saoirse@example.com",
        "b196432c7b989a2ca91c83799957c515da53e6c13abf20b78fea94f117e90bf8",
        "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g=",
    ),
    (
        &["JaneSaoirse+Work@example.com"],
        "janesaoirse+work@example.com",
        "28aaee4815230cd3b4ebd88c515226550666e91ac019929e3adac3f66c288180",
        "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA=",
    ),
    (
        &[
            "JANE.SAOIRSE@gmail.com",
            "Jane.Saoirse@gmail.com",
            "JaneSaoirse+Work@gmail.com",
            "JANESaoirse@gmail.com",
        ],
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
];

#[test]
fn uid2_email_vectors() {
    let n = Normaliser::default();
    for (raws, normalised, hex_digest, b64_digest) in EMAIL_VECTORS {
        for raw in *raws {
            assert_eq!(n.normalise(IdKind::Email, raw).unwrap(), *normalised);
            let digest = n.digest(IdKind::Email, raw).unwrap();
            assert_eq!(hex::encode(digest), *hex_digest, "{raw}");
            assert_eq!(STANDARD.encode(digest), *b64_digest, "{raw}");
            // A partner that sends the UID2 hash (hex or Base64) matches the raw identifier.
            for encoded in [hex_digest, b64_digest] {
                let given = n.digest_encoded(IdKind::Email, IdEncoding::Sha256, encoded);
                assert_eq!(given.unwrap(), digest);
            }
        }
    }
}

#[test]
fn uid2_unnormalised_counter_example() {
    // UID2 shows that hashing `JANESaoirse@gmail.com` without normalising gives a different
    // value; our digest must be the normalised one.
    let unnormalised: [u8; 32] = Sha256::digest(b"JANESaoirse@gmail.com").into();
    assert_eq!(
        STANDARD.encode(unnormalised),
        "VpLXEp5N1bj/V1WzjgZsC+FfuYdntAOywSVIO00FD/E="
    );
    let ours = Normaliser::default()
        .digest(IdKind::Email, "JANESaoirse@gmail.com")
        .unwrap();
    assert_ne!(ours, unnormalised);
    assert_eq!(
        STANDARD.encode(ours),
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8="
    );
}

#[test]
fn uid2_phone_vector() {
    let n = Normaliser::default();
    let digest = n.digest(IdKind::Phone, "+12345678901").unwrap();
    assert_eq!(
        hex::encode(digest),
        "10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee"
    );
    assert_eq!(
        STANDARD.encode(digest),
        "EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4="
    );
    for encoded in [
        "10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee",
        "EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4=",
    ] {
        let given = n.digest_encoded(IdKind::Phone, IdEncoding::Sha256, encoded);
        assert_eq!(given.unwrap(), digest);
    }
}

#[test]
fn uid2_phone_normalisation_examples() {
    let us = Normaliser::with_region("US".parse().unwrap());
    assert_eq!(
        us.normalise(IdKind::Phone, "1 (234) 567-8901").unwrap(),
        "+12345678901"
    );
    assert_eq!(
        us.digest(IdKind::Phone, "1 (234) 567-8901").unwrap(),
        us.digest(IdKind::Phone, "+12345678901").unwrap()
    );
    let au = Normaliser::with_region("AU".parse().unwrap());
    assert_eq!(
        au.normalise(IdKind::Phone, "(02) 1234 5678").unwrap(),
        "+61212345678"
    );
    assert_eq!(
        Normaliser::default()
            .normalise(IdKind::Phone, "+65 1234 5678")
            .unwrap(),
        "+6512345678"
    );
}

/// SHA-256 hex of the E.164 text, computed independently of the normaliser.
fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Issue 10's phone examples: (default region, raw, E.164, SHA-256 hex of the E.164 text).
const ISSUE_PHONES: &[(&str, &str, &str, &str)] = &[
    (
        "CN",
        "8613800138000",
        "+8613800138000",
        "ec61f3c620a98bdead8c1f1f0ae747abd1b62a0c2dba4fd4bc22cf0d1d8653e5",
    ),
    (
        "CN",
        "0086 138 0013 8000",
        "+8613800138000",
        "ec61f3c620a98bdead8c1f1f0ae747abd1b62a0c2dba4fd4bc22cf0d1d8653e5",
    ),
    (
        "US",
        "011 44 20 7946 0958",
        "+442079460958",
        "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d",
    ),
    (
        "UK",
        "+44 07911 123456",
        "+447911123456",
        "20b18ac9de7b3aad174961827d8e451c410af9aedfd1d699927f4b29b81aa1fa",
    ),
    (
        "IT",
        "06 1234 5678",
        "+390612345678",
        "37b702607839d6dc5fc81d95b52e550e336413bf7ae2e04cafeca79f066ea44b",
    ),
];

#[test]
fn issue_10_phone_examples_have_their_digests() {
    for (region, raw, e164, hex_digest) in ISSUE_PHONES {
        let n = Normaliser::with_region(region.parse().unwrap());
        assert_eq!(n.normalise(IdKind::Phone, raw).unwrap(), *e164, "{raw}");
        let digest = hex::encode(n.digest(IdKind::Phone, raw).unwrap());
        assert_eq!(digest, sha256_hex(e164), "{raw}");
        assert_eq!(digest, *hex_digest, "{raw}");
    }
    let cn = Normaliser::with_region("CN".parse().unwrap());
    let err = cn.digest(IdKind::Phone, "13800138000.0").unwrap_err();
    assert!(err.reason.contains("spreadsheet"), "{err}");
}

/// Issue 10's email examples: (spellings of one address, normalised, SHA-256 hex).
const ISSUE_EMAILS: &[(&[&str], &str, &str)] = &[
    (
        &["j\u{fc}rgen@example.de", "ju\u{308}rgen@example.de"],
        "j\u{fc}rgen@example.de",
        "433d93962222da2479d57daad934c3373a92df0b72b4d95b308aeace385bc445",
    ),
    (
        &[
            "jane@example.com",
            "jane\u{200b}@example.com",
            "\u{feff}jane@example.com",
        ],
        "jane@example.com",
        "8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d",
    ),
    (
        &["jane@b\u{fc}cher.de", "jane@xn--bcher-kva.de"],
        "jane@b\u{fc}cher.de",
        "dce7dbc78b5c3f71d4bdc46b933ac53ff22d93ad90ad85668eb8b0166cdceee8",
    ),
];

#[test]
fn issue_10_email_examples_have_their_digests() {
    let n = Normaliser::default();
    for (raws, normalised, hex_digest) in ISSUE_EMAILS {
        for raw in *raws {
            assert_eq!(
                n.normalise(IdKind::Email, raw).unwrap(),
                *normalised,
                "{raw:?}"
            );
            let digest = hex::encode(n.digest(IdKind::Email, raw).unwrap());
            assert_eq!(digest, sha256_hex(normalised), "{raw:?}");
            assert_eq!(digest, *hex_digest, "{raw:?}");
        }
    }
}

/// Normalising and hashing rates per kind, for the import budget (≈ 200k rows/s). Release build:
/// `cargo test --release -p tandem-identity --test vectors -- --ignored --nocapture rates`
#[test]
#[ignore]
fn normalise_rates() {
    let n = Normaliser::with_region("CN".parse().unwrap());
    let count = 200_000u32;
    for (kind, make) in [
        (
            IdKind::Email,
            (|i| format!(" User.{i}@Example.com ")) as fn(u32) -> String,
        ),
        (IdKind::Email, |i| format!("jürgen{i}@bücher.de")),
        (IdKind::Phone, |i| {
            format!("138 {:04} {:04}", i / 10_000, i % 10_000)
        }),
        (IdKind::Phone, |i| format!("+44 7911 {:06}", i)),
        (IdKind::DeviceId, |i| {
            format!("4b61639e-47cc-4056-a16a-c8217e{:06x}", i)
        }),
    ] {
        let inputs: Vec<String> = (0..count).map(make).collect();
        let t = std::time::Instant::now();
        for raw in &inputs {
            n.digest(kind, raw).unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{kind} {:?}…: {:.0} per second",
            &inputs[0],
            f64::from(count) / secs
        );
    }
}
