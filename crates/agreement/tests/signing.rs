//! Signing, verification, activity and buckets.

mod common;

use common::*;
use ed25519_dalek::{Signer, SigningKey};
use tandem_agreement::{Agreement, AgreementError, fingerprint};

const EXPIRES: i64 = 1_814_313_600; // 2027-06-30T00:00:00Z

#[test]
fn both_signatures_make_it_active() {
    let agreement = signed();
    assert!(agreement.is_fully_signed());
    agreement.verify_signatures().unwrap();
    agreement.check_active(EXPIRES - 1).unwrap();
    assert_eq!(agreement.signatures.len(), 2);
    assert!(agreement.signatures.values().all(|s| s.len() == 128));
    assert_eq!(agreement.id(), agreement.terms.id());
}

#[test]
fn signatures_survive_json_round_trip() {
    let agreement = signed();
    let json = serde_json::to_string(&agreement).unwrap();
    let back: Agreement = serde_json::from_str(&json).unwrap();
    assert_eq!(back, agreement);
    assert_eq!(back.id(), agreement.id());
    back.check_active(EXPIRES - 1).unwrap();
}

#[test]
fn one_signature_is_not_enough() {
    let mut agreement = Agreement::new(terms());
    assert!(!agreement.is_fully_signed());
    agreement.sign("acme", &acme_key()).unwrap();
    agreement.verify_signatures().unwrap();
    assert!(!agreement.is_fully_signed());
    match agreement.check_active(0) {
        Err(AgreementError::NotSigned { party }) => assert_eq!(party, "shopx"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn expiry() {
    let agreement = signed();
    agreement.check_active(EXPIRES - 1).unwrap();
    for now in [EXPIRES, EXPIRES + 1, i64::MAX] {
        match agreement.check_active(now) {
            Err(AgreementError::Expired { expires_at }) => {
                assert_eq!(expires_at, "2027-06-30T00:00:00Z");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn tampered_terms_break_both_signatures() {
    let mut agreement = signed();
    agreement.terms.parties[0].budget.epsilon_total = 100.0;
    assert!(matches!(
        agreement.verify_signatures(),
        Err(AgreementError::BadSignature { .. })
    ));
    assert!(!agreement.is_fully_signed());
    assert!(matches!(
        agreement.check_active(0),
        Err(AgreementError::BadSignature { .. })
    ));
}

#[test]
fn wrong_key_cannot_sign() {
    let mut agreement = Agreement::new(terms());
    let err = agreement.sign("acme", &shopx_key()).unwrap_err();
    assert!(matches!(err, AgreementError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("not party acme's signing_key"),
        "{err}"
    );
    assert!(agreement.signatures.is_empty());
}

#[test]
fn signature_made_with_another_key_is_bad() {
    let mut agreement = signed();
    let intruder = SigningKey::from_bytes(&[9; 32]);
    let mut message = b"tandem-agreement-v1\n".to_vec();
    message.extend(agreement.terms.canonical_bytes());
    let forged = intruder.sign(&message);
    agreement
        .signatures
        .insert("shopx".into(), hex::encode(forged.to_bytes()));
    match agreement.verify_signatures() {
        Err(AgreementError::BadSignature { party }) => assert_eq!(party, "shopx"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn signature_is_over_domain_tag_and_canonical_bytes() {
    let agreement = signed();
    let mut message = b"tandem-agreement-v1\n".to_vec();
    message.extend(agreement.terms.canonical_bytes());
    let expected = acme_key().sign(&message);
    assert_eq!(
        agreement.signatures["acme"],
        hex::encode(expected.to_bytes())
    );
}

#[test]
fn swapped_signatures_are_bad() {
    let mut agreement = signed();
    let acme = agreement.signatures["acme"].clone();
    let shopx = agreement.signatures["shopx"].clone();
    agreement.signatures.insert("acme".into(), shopx);
    agreement.signatures.insert("shopx".into(), acme);
    assert!(matches!(
        agreement.verify_signatures(),
        Err(AgreementError::BadSignature { .. })
    ));
}

#[test]
fn malformed_signature_text_is_bad() {
    for text in ["", "zz", &"00".repeat(64), &"ab".repeat(63)] {
        let mut agreement = signed();
        agreement.signatures.insert("acme".into(), text.to_owned());
        assert!(
            matches!(
                agreement.verify_signatures(),
                Err(AgreementError::BadSignature { .. })
            ),
            "{text:?}"
        );
    }
}

#[test]
fn signature_for_a_stranger_is_rejected() {
    let mut agreement = signed();
    agreement
        .signatures
        .insert("mallory".into(), "00".repeat(64));
    assert!(matches!(
        agreement.verify_signatures(),
        Err(AgreementError::UnknownParty(name)) if name == "mallory"
    ));
    assert!(!agreement.is_fully_signed());
    let mut fresh = Agreement::new(terms());
    assert!(matches!(
        fresh.sign("mallory", &acme_key()),
        Err(AgreementError::UnknownParty(_))
    ));
}

#[test]
fn invalid_terms_cannot_be_signed() {
    let mut t = terms();
    t.purpose.clear();
    let mut agreement = Agreement::new(t);
    assert!(matches!(
        agreement.sign("acme", &acme_key()),
        Err(AgreementError::Invalid(_))
    ));
}

#[test]
fn resigning_replaces_the_signature() {
    let mut agreement = signed();
    agreement.sign("acme", &acme_key()).unwrap();
    assert_eq!(agreement.signatures.len(), 2);
    assert!(agreement.is_fully_signed());
}

#[test]
fn keys_from_rand_sign_and_verify() {
    let key = SigningKey::generate(&mut rand::rng());
    let mut t = terms();
    t.parties[0].signing_key = fingerprint(&key.verifying_key());
    let mut agreement = Agreement::new(t);
    agreement.sign("acme", &key).unwrap();
    agreement.sign("shopx", &shopx_key()).unwrap();
    agreement.check_active(0).unwrap();
}

#[test]
fn fingerprint_is_hex_of_public_key() {
    let key = acme_key().verifying_key();
    assert_eq!(fingerprint(&key), hex::encode(key.to_bytes()));
    assert_eq!(fingerprint(&key).len(), 64);
}

#[test]
fn buckets() {
    let agreement = signed();
    let cases = [
        ("acme", "age_band", Some("18-24"), 0),
        ("acme", "age_band", Some("45+"), 3),
        ("acme", "age_band", Some(" 25-34 "), 1),
        ("acme", "age_band", Some("65+"), 4),
        ("acme", "age_band", Some(""), 4),
        ("acme", "age_band", None, 4),
        ("acme", "region", Some("west"), 3),
        ("acme", "region", Some("West"), 4),
        ("shopx", "tier", Some("gold"), 2),
        ("shopx", "tier", Some("other"), 3),
        ("shopx", "tier", None, 3),
    ];
    for (party, column, value, index) in cases {
        assert_eq!(
            agreement.bucket_of(party, column, value).unwrap(),
            index,
            "{party}.{column}={value:?}"
        );
    }
    assert_eq!(
        agreement.bucket_labels("shopx", "tier").unwrap(),
        ["bronze", "silver", "gold", "other"]
    );
    assert_eq!(
        agreement.bucket_labels("acme", "age_band").unwrap(),
        ["18-24", "25-34", "35-44", "45+", "other"]
    );
}

#[test]
fn bucket_errors() {
    let agreement = signed();
    assert!(matches!(
        agreement.bucket_of("mallory", "tier", None),
        Err(AgreementError::UnknownParty(_))
    ));
    // Columns belong to a party: acme has no `tier`.
    match agreement.bucket_of("acme", "tier", Some("gold")) {
        Err(AgreementError::UnknownColumn {
            party,
            column,
            known,
        }) => {
            assert_eq!((party.as_str(), column.as_str()), ("acme", "tier"));
            // The refusal names the columns acme may be grouped by (public terms, not data).
            assert_eq!(known, ["age_band", "region"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        agreement.bucket_labels("shopx", "age_band"),
        Err(AgreementError::UnknownColumn { .. })
    ));
    let refusal = agreement.bucket_labels("acme", "agee_band").unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "party acme has no column \"agee_band\" in the agreement; its columns are: age_band, region"
    );
}
