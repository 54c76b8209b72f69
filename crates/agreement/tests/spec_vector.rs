//! Checks the test vector of `protocols/agreement-v1.md` §10, read from the markdown itself.

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use tandem_agreement::{Agreement, AgreementError, Terms, fingerprint, parse_rfc3339};

const SPEC: &str = include_str!("../../../protocols/agreement-v1.md");

/// Fenced blocks whose info string has a `tv:` word, keyed by that word. Content is the lines
/// joined by LF without the final LF.
fn vector_blocks() -> HashMap<String, String> {
    let mut blocks = HashMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in SPEC.lines() {
        match current.take() {
            None => {
                if let Some(info) = line.strip_prefix("```")
                    && let Some(tag) = info.split_whitespace().find(|w| w.starts_with("tv:"))
                {
                    current = Some((tag.to_string(), Vec::new()));
                }
            }
            Some((tag, lines)) if line == "```" => {
                assert!(
                    blocks.insert(tag.clone(), lines.join("\n")).is_none(),
                    "duplicate {tag}"
                );
            }
            Some((tag, mut lines)) => {
                lines.push(line);
                current = Some((tag, lines));
            }
        }
    }
    assert!(current.is_none(), "unterminated block in the spec");
    blocks
}

fn block<'a>(b: &'a HashMap<String, String>, tag: &str) -> &'a str {
    b.get(tag)
        .unwrap_or_else(|| panic!("spec has no block {tag}"))
}

fn secret_key(b: &HashMap<String, String>, tag: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(block(b, tag), &mut seed).unwrap();
    SigningKey::from_bytes(&seed)
}

/// The vector's terms, signed by both parties with the spec's secret keys.
fn signed_vector(b: &HashMap<String, String>) -> Agreement {
    let terms = Terms::from_toml(block(b, "tv:terms")).unwrap();
    let mut agreement = Agreement::new(terms);
    agreement
        .sign("alpha", &secret_key(b, "tv:alpha-secret-key"))
        .unwrap();
    agreement
        .sign("beta", &secret_key(b, "tv:beta-secret-key"))
        .unwrap();
    agreement
}

#[test]
fn canonical_bytes_and_id() {
    let b = vector_blocks();
    let terms = Terms::from_toml(block(&b, "tv:terms")).unwrap();
    assert_eq!(terms.min_reporting_threshold, 0);
    assert_eq!(terms.retention_days, 365);
    assert_eq!(
        String::from_utf8(terms.canonical_bytes()).unwrap(),
        block(&b, "tv:canonical")
    );
    assert_eq!(terms.id().to_string(), block(&b, "tv:id"));
    // The id recomputed from the spec's bytes, independently of `Terms::id`.
    let mut preimage = b"tandem-agreement-v1\n".to_vec();
    preimage.extend_from_slice(block(&b, "tv:canonical").as_bytes());
    assert_eq!(hex::encode(Sha256::digest(&preimage)), block(&b, "tv:id"));
    // The canonical bytes are themselves JSON of the same terms.
    let back: Terms = serde_json::from_str(block(&b, "tv:canonical")).unwrap();
    assert_eq!(back, terms);
}

#[test]
fn secret_keys_match_the_signing_keys() {
    let b = vector_blocks();
    let terms = Terms::from_toml(block(&b, "tv:terms")).unwrap();
    for party in ["alpha", "beta"] {
        let key = secret_key(&b, &format!("tv:{party}-secret-key"));
        assert_eq!(
            fingerprint(&key.verifying_key()),
            terms.party(party).unwrap().signing_key,
            "{party}"
        );
    }
}

#[test]
fn signatures() {
    let b = vector_blocks();
    let agreement = signed_vector(&b);
    for party in ["alpha", "beta"] {
        let expected = block(&b, &format!("tv:{party}-signature"));
        assert_eq!(agreement.signatures[party], expected, "{party}");
        // Ed25519 over the domain tag and the spec's canonical bytes, without `Agreement`.
        let mut message = b"tandem-agreement-v1\n".to_vec();
        message.extend_from_slice(block(&b, "tv:canonical").as_bytes());
        let key = secret_key(&b, &format!("tv:{party}-secret-key"));
        assert_eq!(hex::encode(key.sign(&message).to_bytes()), expected);
    }
}

#[test]
fn signed_agreement_json_and_activity() {
    let b = vector_blocks();
    let parsed: Agreement = serde_json::from_str(block(&b, "tv:agreement")).unwrap();
    assert_eq!(parsed, signed_vector(&b));
    assert_eq!(parsed.id().to_string(), block(&b, "tv:id"));
    let expires = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    assert_eq!(expires, 1_893_456_000);
    parsed.check_active(expires - 1).unwrap();
    assert!(matches!(
        parsed.check_active(expires),
        Err(AgreementError::Expired { .. })
    ));
    // What a node sends parses back to the same agreement.
    let compact = serde_json::to_string(&parsed).unwrap();
    assert!(
        compact.starts_with(r#"{"terms":{"version":1,"#),
        "{compact}"
    );
    let again: Agreement = serde_json::from_str(&compact).unwrap();
    assert_eq!(again, parsed);
}

#[test]
fn negative_checks() {
    let b = vector_blocks();
    let text = block(&b, "tv:agreement");
    let now = 1_893_455_999;

    let tampered = text.replacen("\"epsilon_total\": 12.5", "\"epsilon_total\": 12.6", 1);
    assert_ne!(tampered, text);
    let tampered: Agreement = serde_json::from_str(&tampered).unwrap();
    assert!(matches!(
        tampered.check_active(now),
        Err(AgreementError::BadSignature { .. })
    ));

    let mut unsigned: Agreement = serde_json::from_str(text).unwrap();
    unsigned.signatures.remove("beta");
    match unsigned.check_active(now) {
        Err(e @ AgreementError::NotSigned { .. }) => {
            assert_eq!(e.to_string(), "beta has not signed the agreement");
        }
        other => panic!("{other:?}"),
    }

    let mut swapped: Agreement = serde_json::from_str(text).unwrap();
    let alpha = swapped.signatures["alpha"].clone();
    let beta = swapped.signatures["beta"].clone();
    swapped.signatures.insert("alpha".into(), beta);
    swapped.signatures.insert("beta".into(), alpha);
    assert!(matches!(
        swapped.check_active(now),
        Err(AgreementError::BadSignature { .. })
    ));

    let mut without: Agreement = serde_json::from_str(text).unwrap();
    without.terms.impact_assessment = None;
    assert_ne!(without.id().to_string(), block(&b, "tv:id"));
    assert!(matches!(
        without.check_active(now),
        Err(AgreementError::BadSignature { .. })
    ));
}

#[test]
fn buckets() {
    let b = vector_blocks();
    let agreement = signed_vector(&b);
    let spec: serde_json::Value = serde_json::from_str(block(&b, "tv:buckets")).unwrap();
    let labels: Vec<String> = serde_json::from_value(spec["labels"].clone()).unwrap();
    assert_eq!(agreement.bucket_labels("alpha", "tier").unwrap(), labels);
    let cases: Vec<(Option<String>, u32)> = serde_json::from_value(spec["cases"].clone()).unwrap();
    assert!(!cases.is_empty());
    for (value, expected) in cases {
        assert_eq!(
            agreement
                .bucket_of("alpha", "tier", value.as_deref())
                .unwrap(),
            expected,
            "{value:?}"
        );
    }
    assert!(matches!(
        agreement.bucket_of("beta", "tier", Some("gold")),
        Err(AgreementError::UnknownColumn { .. })
    ));
}

#[test]
fn floats() {
    let b = vector_blocks();
    let mut terms = Terms::from_toml(block(&b, "tv:terms")).unwrap();
    let mut count = 0;
    for line in block(&b, "tv:floats").lines() {
        let (input, expected) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let x: f64 = input.parse().unwrap();
        // alpha's budget comes first in the canonical bytes and `epsilon_total` is its last key.
        terms.parties[0].budget.epsilon_total = x;
        let text = String::from_utf8(terms.canonical_bytes()).unwrap();
        let start = text.find("\"epsilon_total\":").unwrap() + "\"epsilon_total\":".len();
        let end = start + text[start..].find('}').unwrap();
        assert_eq!(&text[start..end], expected, "{input}");
        // The text parses back to the same binary64, except that RFC 8785 writes -0.0 as `0`.
        let back = expected.parse::<f64>().unwrap();
        assert!(
            back.to_bits() == x.to_bits() || (x == 0.0 && back.to_bits() == 0),
            "{expected}"
        );
        count += 1;
    }
    assert!(count >= 20, "{count} float cases");
}
