//! Every validation rule, each with the reason it reports.

mod common;

use common::*;
use tandem_agreement::{AgreementError, MAX_COLUMN_VALUES, Terms};

fn reason(terms: &Terms) -> String {
    match terms.validate() {
        Err(AgreementError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn assert_rejects(what: &str, edit: impl FnOnce(&mut Terms), expected: &str) {
    let mut t = terms();
    edit(&mut t);
    let got = reason(&t);
    assert!(
        got.contains(expected),
        "{what}: expected {expected:?} in {got:?}"
    );
}

#[test]
fn fixture_is_valid() {
    terms().validate().unwrap();
}

#[test]
fn header_rules() {
    assert_rejects("version", |t| t.version = 2, "version must be 1, found 2");
    assert_rejects("purpose", |t| t.purpose = "  ".into(), "purpose is empty");
    assert_rejects(
        "legal_basis",
        |t| t.legal_basis.clear(),
        "legal_basis is empty",
    );
    assert_rejects(
        "expires_at format",
        |t| t.expires_at = "2027-06-30".into(),
        "expires_at: \"2027-06-30\" is not an RFC 3339 UTC time",
    );
    assert_rejects(
        "expires_at offset",
        |t| t.expires_at = "2027-06-30T08:00:00+08:00".into(),
        "is not an RFC 3339 UTC time",
    );
    assert_rejects(
        "expires_at date",
        |t| t.expires_at = "2027-02-30T00:00:00Z".into(),
        "not a valid calendar time",
    );
    assert_rejects(
        "join_keys empty",
        |t| t.join_keys.clear(),
        "join_keys is empty",
    );
    assert_rejects(
        "join_keys kind",
        |t| t.join_keys.push("Email".into()),
        "join_keys: unknown identifier kind \"Email\"; accepted kinds: email, phone, device_id",
    );
    assert_rejects(
        "join_keys duplicate",
        |t| t.join_keys.push("phone".into()),
        "join_keys lists \"phone\" twice",
    );
    assert_rejects(
        "retention_days",
        |t| t.retention_days = 0,
        "retention_days must be at least 1",
    );
    assert_rejects(
        "budget_refresh_days",
        |t| t.budget_refresh_days = Some(0),
        "budget_refresh_days must be at least 1",
    );
    assert_rejects(
        "transfer_mechanism blank",
        |t| t.transfer_mechanism = Some(" ".into()),
        "transfer_mechanism is empty",
    );
    assert_rejects(
        "impact_assessment blank",
        |t| t.impact_assessment = Some(" \t".into()),
        "impact_assessment is empty: name the assessment (PIPL Art. 55) or leave it out",
    );
    assert_rejects(
        "impact_assessment empty",
        |t| t.impact_assessment = Some(String::new()),
        "impact_assessment is empty",
    );
}

#[test]
fn impact_assessment_is_optional() {
    let mut t = terms();
    assert!(t.impact_assessment.is_some());
    t.impact_assessment = None;
    t.validate().unwrap();
}

#[test]
fn budget_refresh_days_is_optional() {
    let mut t = terms();
    assert_eq!(t.budget_refresh_days, None);
    t.validate().unwrap();
    for days in [1, 30, u32::MAX] {
        t.budget_refresh_days = Some(days);
        t.validate().unwrap();
    }
}

#[test]
fn party_count_and_distinctness() {
    assert_rejects(
        "one party",
        |t| {
            t.parties.pop();
        },
        "exactly 2 parties are required, found 1",
    );
    assert_rejects(
        "three parties",
        |t| {
            let mut third = t.parties[1].clone();
            third.name = "third".into();
            t.parties.push(third);
        },
        "exactly 2 parties are required, found 3",
    );
    assert_rejects(
        "same name",
        |t| t.parties[1].name = "acme".into(),
        "both parties are named \"acme\"",
    );
    assert_rejects(
        "same key",
        |t| t.parties[1].signing_key = t.parties[0].signing_key.clone(),
        "both parties have the same signing_key",
    );
    assert_rejects(
        "same cert",
        |t| t.parties[1].tls_cert_sha256 = t.parties[0].tls_cert_sha256.clone(),
        "both parties have the same tls_cert_sha256",
    );
}

#[test]
fn cross_border_needs_a_transfer_mechanism() {
    assert_rejects(
        "regions differ",
        |t| t.parties[1].region = "EU".into(),
        "cross-border transfer between CN and EU needs a transfer_mechanism (PIPL Art. 38",
    );
    let mut t = terms();
    t.parties[1].region = "EU".into();
    t.transfer_mechanism = Some("CAC standard contract, filed 2026-05-01; EU SCCs".into());
    t.validate().unwrap();
}

#[test]
fn party_name_rules() {
    for bad in ["", "Acme", "ac me", "acme!", &"a".repeat(65)] {
        let bad = bad.to_owned();
        assert_rejects(
            "name",
            move |t| t.parties[0].name = bad,
            "name must match [a-z0-9_-]{1,64}",
        );
    }
    let mut t = terms();
    t.parties[0].name = "a-z_0-9".into();
    t.validate().unwrap();
}

#[test]
fn url_rules() {
    for bad in [
        "http://127.0.0.1:7401",
        "https://127.0.0.1",
        "https://:7401",
        "https://127.0.0.1:0",
        "https://127.0.0.1:65536",
        "https://127.0.0.1:7401/",
        "https://127.0.0.1:7401/path",
        "https://user@host:7401",
        "https://host:+7401",
        "https://[]:7401",
        "127.0.0.1:7401",
    ] {
        let bad = bad.to_owned();
        assert_rejects(
            "url",
            move |t| t.parties[0].url = bad,
            "must look like https://host:port",
        );
    }
    for good in [
        "https://node.acme.cn:443",
        "https://[::1]:7401",
        "https://localhost:7401",
    ] {
        let mut t = terms();
        t.parties[0].url = good.into();
        t.validate().unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn key_and_certificate_rules() {
    assert_rejects(
        "key length",
        |t| t.parties[0].signing_key.pop().map(|_| ()).unwrap_or(()),
        "signing_key must be 64 lower-case hex characters",
    );
    assert_rejects(
        "key case",
        |t| t.parties[0].signing_key = t.parties[0].signing_key.to_uppercase(),
        "signing_key must be 64 lower-case hex characters",
    );
    assert_rejects(
        "key placeholder",
        |t| t.parties[0].signing_key = PLACEHOLDER.into(),
        "signing_key is the all-zero placeholder",
    );
    // The identity point (a small-order, "weak" key) would accept forged signatures.
    let identity = format!("01{}", "00".repeat(31));
    assert_rejects(
        "weak key",
        move |t| t.parties[0].signing_key = identity,
        "signing_key is not a usable ed25519 public key",
    );
    assert_rejects(
        "cert length",
        |t| t.parties[1].tls_cert_sha256 = "abcd".into(),
        "tls_cert_sha256 must be 64 lower-case hex characters",
    );
    assert_rejects(
        "cert placeholder",
        |t| t.parties[1].tls_cert_sha256 = PLACEHOLDER.into(),
        "tls_cert_sha256 is the all-zero placeholder",
    );
}

#[test]
fn region_rules() {
    for bad in ["", "cn", " CN", "C N", "1CN", "ABCDEFGHIJKLMNOPQ"] {
        let bad = bad.to_owned();
        assert_rejects(
            "region",
            move |t| {
                t.parties[0].region = bad.clone();
                t.parties[1].region = bad;
            },
            "region must be an upper-case code like CN, EU or US-CA",
        );
    }
}

#[test]
fn column_rules() {
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("tier", vec![], "column \"tier\": value set is empty"),
        (
            "tier",
            vec!["gold".into(), "gold".into()],
            "column \"tier\": value \"gold\" is listed twice",
        ),
        (
            "tier",
            vec!["gold".into(), "Other".into()],
            "value \"Other\" is reserved for values outside the set",
        ),
        (
            "tier",
            vec!["".into()],
            "value \"\" is empty or has surrounding whitespace",
        ),
        (
            "tier",
            vec![" gold".into()],
            "value \" gold\" is empty or has surrounding whitespace",
        ),
        (
            "tier",
            (0..=MAX_COLUMN_VALUES).map(|i| i.to_string()).collect(),
            "1025 values, at most 1024 allowed",
        ),
        (
            "bad column",
            vec!["a".into()],
            "name must match [A-Za-z0-9_.-]{1,64}",
        ),
        ("", vec!["a".into()], "name must match [A-Za-z0-9_.-]{1,64}"),
    ];
    for (column, values, expected) in cases {
        assert_rejects(
            column,
            move |t| {
                t.parties[1].columns.insert(column.into(), values);
            },
            expected,
        );
    }
    // A party may have no group-by columns at all.
    let mut t = terms();
    t.parties[1].columns.clear();
    t.validate().unwrap();
}

#[test]
fn budget_rules() {
    type Edit = fn(&mut Terms);
    let cases: [(Edit, &str); 9] = [
        (
            |t| t.parties[0].budget.epsilon_per_query = 0.0,
            "epsilon_per_query must be a finite number > 0",
        ),
        (
            |t| t.parties[0].budget.epsilon_per_query = -1.0,
            "epsilon_per_query must be a finite number > 0",
        ),
        (
            |t| t.parties[0].budget.epsilon_per_query = f64::NAN,
            "epsilon_per_query must be a finite number > 0",
        ),
        (
            |t| t.parties[0].budget.epsilon_total = 0.5,
            "epsilon_total must be finite and at least epsilon_per_query (1)",
        ),
        (
            |t| t.parties[0].budget.epsilon_total = f64::INFINITY,
            "epsilon_total must be finite",
        ),
        (
            |t| t.parties[0].budget.delta_per_query = -1e-9,
            "delta_per_query must be in (0, 1)",
        ),
        (
            |t| t.parties[0].budget.delta_per_query = 1.0,
            "delta_per_query must be in (0, 1)",
        ),
        (
            |t| t.parties[0].budget.delta_total = 1e-10,
            "delta_total must be in (0, 1) and at least delta_per_query",
        ),
        (
            |t| t.parties[0].budget.delta_total = 1.0,
            "delta_total must be in (0, 1)",
        ),
    ];
    for (edit, expected) in cases {
        assert_rejects("budget", edit, expected);
    }
}

/// Issue 9 item 4: an agreement with δ = 0 could be signed but never run (every query failed
/// with an opendp-level message); it is refused when it is made, with the reason.
#[test]
fn a_zero_delta_agreement_is_refused_with_the_reason() {
    let mut t = terms();
    t.parties[0].budget.delta_per_query = 0.0;
    let got = reason(&t);
    assert!(
        got.contains("delta_per_query must be in (0, 1), found 0") && got.contains("cannot run"),
        "{got}"
    );
    t.parties[0].budget.delta_total = 0.0;
    let got = reason(&t);
    assert!(got.contains("delta_per_query must be in (0, 1)"), "{got}");
    let mut t = terms();
    t.parties[1].budget.delta_total = 0.0;
    t.parties[1].budget.delta_per_query = 0.0;
    assert!(reason(&t).contains("delta_per_query must be in (0, 1)"));
}

#[test]
fn all_problems_are_reported_together() {
    let mut t = terms();
    t.version = 3;
    t.purpose.clear();
    t.parties[0].budget.epsilon_per_query = 0.0;
    let got = reason(&t);
    assert!(got.contains("version must be 1"), "{got}");
    assert!(got.contains("purpose is empty"), "{got}");
    assert!(
        got.contains("party \"acme\": budget: epsilon_per_query"),
        "{got}"
    );
    assert_eq!(got.matches("; ").count(), 2, "{got}");
}
