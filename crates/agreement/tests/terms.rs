//! Parsing, canonical form and id of the terms.

mod common;

use common::*;
use tandem_agreement::{AgreementError, Terms};

#[test]
fn example_is_a_template_that_fails_until_keys_are_filled_in() {
    let raw: Terms = toml::from_str(EXAMPLE).unwrap();
    let err = raw.validate().unwrap_err().to_string();
    assert!(
        err.contains("signing_key is the all-zero placeholder"),
        "{err}"
    );
    assert!(
        err.contains("tls_cert_sha256 is the all-zero placeholder"),
        "{err}"
    );
    assert!(matches!(
        Terms::from_toml(EXAMPLE),
        Err(AgreementError::Invalid(_))
    ));
}

#[test]
fn example_with_keys_parses() {
    let t = terms();
    assert_eq!(t.version, 1);
    assert_eq!(t.join_keys, ["email", "phone"]);
    assert_eq!(t.min_reporting_threshold, 50);
    assert_eq!(t.retention_days, 90);
    assert_eq!(t.expires_at, "2027-06-30T00:00:00Z");
    assert_eq!(t.expires_at_unix().unwrap(), 1_814_313_600);
    assert_eq!(t.transfer_mechanism, None);
    assert_eq!(
        t.impact_assessment.as_deref(),
        Some("PIA-2026-014 (filed 2026-10-02)")
    );
    let acme = t.party("acme").unwrap();
    assert_eq!(acme.url, "https://127.0.0.1:7401");
    assert_eq!(acme.region, "CN");
    assert_eq!(acme.columns["age_band"], ["18-24", "25-34", "35-44", "45+"]);
    assert_eq!(acme.columns["region"], ["north", "south", "east", "west"]);
    assert_eq!(acme.budget.delta_per_query, 1e-9);
    let shopx = t.party("shopx").unwrap();
    assert_eq!(shopx.columns["tier"], ["bronze", "silver", "gold"]);
    assert_eq!(t.peer_of("acme").unwrap().name, "shopx");
    assert_eq!(t.peer_of("shopx").unwrap().name, "acme");
    assert!(t.peer_of("nobody").is_none());
    assert!(t.party("nobody").is_none());
    assert_eq!(acme.verifying_key().unwrap(), acme_key().verifying_key());
    assert_eq!(acme.tls_cert_digest().unwrap().len(), 32);
}

#[test]
fn defaults_apply_when_fields_are_left_out() {
    let text = example_toml()
        .replace("min_reporting_threshold = 50", "")
        .replace("retention_days = 90", "");
    let t = Terms::from_toml(&text).unwrap();
    assert_eq!(t.min_reporting_threshold, 0);
    assert_eq!(t.retention_days, 365);
}

#[test]
fn unknown_fields_are_rejected() {
    let text = example_toml().replace("retention_days = 90", "retention_day = 90");
    let err = Terms::from_toml(&text).unwrap_err();
    assert!(matches!(err, AgreementError::Parse(_)), "{err}");
    assert!(err.to_string().contains("retention_day"), "{err}");
}

#[test]
fn toml_round_trip() {
    let t = terms();
    let text = toml::to_string(&t).unwrap();
    let back = Terms::from_toml(&text).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.id(), t.id());
    assert_eq!(back.canonical_bytes(), t.canonical_bytes());
}

#[test]
fn json_round_trip_keeps_the_id() {
    let t = terms();
    let back: Terms = serde_json::from_str(&serde_json::to_string_pretty(&t).unwrap()).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.id(), t.id());
}

#[test]
fn canonical_bytes_are_sorted_compact_json() {
    let t = terms();
    let text = String::from_utf8(t.canonical_bytes()).unwrap();
    assert!(
        text.starts_with(
            r#"{"expires_at":"2027-06-30T00:00:00Z","impact_assessment":"PIA-2026-014 (filed 2026-10-02)","join_keys":["email","phone"],"legal_basis":"#
        ),
        "{text}"
    );
    // RFC 8785 floats: `1.0` and `10.0` are written `1` and `10`.
    assert!(text.contains(r#""budget":{"delta_per_query":1e-9,"delta_total":1e-7,"epsilon_per_query":1,"epsilon_total":10}"#), "{text}");
    assert!(text.contains(r#""columns":{"age_band":["18-24","25-34","35-44","45+"],"region":["north","south","east","west"]}"#), "{text}");
    assert!(
        !text.contains("transfer_mechanism"),
        "absent option is left out: {text}"
    );
    assert!(
        !text.contains('\n') && !text.contains("\": ") && !text.contains(", \""),
        "{text}"
    );
    assert!(
        text.ends_with(r#""retention_days":90,"version":1}"#),
        "{text}"
    );
    // Re-parsing the canonical JSON gives the same terms.
    let back: Terms = serde_json::from_slice(&t.canonical_bytes()).unwrap();
    assert_eq!(back, t);
}

#[test]
fn id_is_sha256_of_domain_tag_and_canonical_bytes() {
    use sha2::{Digest, Sha256};
    let t = terms();
    let mut preimage = b"tandem-agreement-v1\n".to_vec();
    preimage.extend(t.canonical_bytes());
    assert_eq!(t.id().0, <[u8; 32]>::from(Sha256::digest(&preimage)));
    assert_eq!(
        t.id()
            .to_string()
            .parse::<tandem_agreement::AgreementId>()
            .unwrap(),
        t.id()
    );
}

#[test]
fn id_changes_with_every_field() {
    let base = terms();
    type Edit = fn(&mut Terms);
    let edits: Vec<(&str, Edit)> = vec![
        ("version", |t| t.version = 2),
        ("purpose", |t| t.purpose.push('.')),
        ("legal_basis", |t| t.legal_basis.push('.')),
        ("expires_at", |t| {
            t.expires_at = "2027-06-30T00:00:01Z".into();
        }),
        ("join_keys order", |t| t.join_keys.reverse()),
        ("join_keys", |t| t.join_keys.push("device_id".into())),
        ("min_reporting_threshold", |t| {
            t.min_reporting_threshold += 1;
        }),
        ("retention_days", |t| t.retention_days += 1),
        ("transfer_mechanism", |t| {
            t.transfer_mechanism = Some("SCC".into());
        }),
        ("impact_assessment", |t| {
            t.impact_assessment = Some("PIA-2026-015".into());
        }),
        ("impact_assessment removed", |t| t.impact_assessment = None),
        ("budget_refresh_days", |t| t.budget_refresh_days = Some(30)),
        ("parties order", |t| t.parties.reverse()),
        ("name", |t| t.parties[0].name = "acme2".into()),
        ("url", |t| {
            t.parties[0].url = "https://127.0.0.1:7409".into();
        }),
        ("signing_key", |t| {
            t.parties[0].signing_key = "ab".repeat(32);
        }),
        ("tls_cert_sha256", |t| {
            t.parties[1].tls_cert_sha256 = "cd".repeat(32);
        }),
        ("region", |t| t.parties[1].region = "EU".into()),
        ("column added", |t| {
            t.parties[1]
                .columns
                .insert("city".into(), vec!["sh".into()]);
        }),
        ("column value order", |t| {
            if let Some(v) = t.parties[1].columns.get_mut("tier") {
                v.swap(0, 1);
            }
        }),
        ("column value", |t| {
            if let Some(v) = t.parties[1].columns.get_mut("tier") {
                v.push("platinum".into());
            }
        }),
        ("epsilon_per_query", |t| {
            t.parties[0].budget.epsilon_per_query = 0.5;
        }),
        ("epsilon_total", |t| {
            t.parties[0].budget.epsilon_total = 10.5;
        }),
        ("delta_per_query", |t| {
            t.parties[1].budget.delta_per_query = 2e-9;
        }),
        ("delta_total", |t| t.parties[1].budget.delta_total = 2e-7),
    ];
    let mut seen = std::collections::BTreeSet::from([base.id()]);
    for (what, edit) in edits {
        let mut t = base.clone();
        edit(&mut t);
        assert!(seen.insert(t.id()), "changing {what} did not change the id");
    }
}

/// Id of the example (with the fixture keys) without `impact_assessment`: terms that leave the
/// field out must keep the bytes they had before it existed.
///
/// Re-pinned when the canonical form moved to RFC 8785 floats (`1.0` → `1`, `10.0` → `10`),
/// before any deployment: the id under the earlier serde_json-style floats was `d4151ec3…`.
/// This value was reproduced independently (Python RFC 8785 writer + `sha256sum`).
const EXAMPLE_ID_WITHOUT_IMPACT_ASSESSMENT: &str =
    "3e56b4f46666de557afece21b81aeee35fc022412f55382b735f321931c28c47";

/// The example with its `impact_assessment` line taken out.
fn example_without_impact_assessment() -> String {
    let text = example_toml();
    let line = "impact_assessment = \"PIA-2026-014 (filed 2026-10-02)\"\n";
    assert!(
        text.contains(line),
        "the example names an impact assessment"
    );
    text.replace(line, "")
}

#[test]
fn absent_impact_assessment_keeps_the_earlier_id() {
    let t = Terms::from_toml(&example_without_impact_assessment()).unwrap();
    assert_eq!(t.impact_assessment, None);
    assert_eq!(t.id().to_string(), EXAMPLE_ID_WITHOUT_IMPACT_ASSESSMENT);
    let text = String::from_utf8(t.canonical_bytes()).unwrap();
    assert!(!text.contains("impact_assessment"), "{text}");
    // An explicit JSON null reads as absent and gives the same id.
    let mut value = serde_json::to_value(&t).unwrap();
    value["impact_assessment"] = serde_json::Value::Null;
    let from_null: Terms = serde_json::from_value(value).unwrap();
    assert_eq!(from_null.id(), t.id());
}

#[test]
fn impact_assessment_is_signed_when_present() {
    let without = Terms::from_toml(&example_without_impact_assessment()).unwrap();
    let with = terms();
    assert_ne!(with.id(), without.id());
    // The only difference in the canonical bytes is the member, at its sorted place.
    let with_text = String::from_utf8(with.canonical_bytes()).unwrap();
    let without_text = String::from_utf8(without.canonical_bytes()).unwrap();
    assert_eq!(
        with_text.replace(
            r#""impact_assessment":"PIA-2026-014 (filed 2026-10-02)","#,
            ""
        ),
        without_text
    );
    let mut edited = with.clone();
    edited.impact_assessment = Some("PIA-2026-014 (filed 2026-10-03)".into());
    assert_ne!(edited.id(), with.id());
}

#[test]
fn budget_refresh_days_is_off_by_default_and_keeps_the_id() {
    let t = terms();
    assert_eq!(t.budget_refresh_days, None);
    let text = String::from_utf8(t.canonical_bytes()).unwrap();
    assert!(!text.contains("budget_refresh_days"), "{text}");
    // The example without its impact assessment still has the id pinned before either field.
    let without = Terms::from_toml(&example_without_impact_assessment()).unwrap();
    assert_eq!(without.budget_refresh_days, None);
    assert_eq!(
        without.id().to_string(),
        EXAMPLE_ID_WITHOUT_IMPACT_ASSESSMENT
    );
    // An explicit JSON null reads as absent and gives the same id.
    let mut value = serde_json::to_value(&t).unwrap();
    value["budget_refresh_days"] = serde_json::Value::Null;
    let from_null: Terms = serde_json::from_value(value).unwrap();
    assert_eq!(from_null.id(), t.id());
}

#[test]
fn budget_refresh_days_is_signed_when_present() {
    let without = terms();
    let with = Terms::from_toml(
        &example_toml().replace("# budget_refresh_days = 30", "budget_refresh_days = 30"),
    )
    .unwrap();
    assert_eq!(with.budget_refresh_days, Some(30));
    assert_ne!(with.id(), without.id());
    // The only difference in the canonical bytes is the member, at its sorted place (first).
    let with_text = String::from_utf8(with.canonical_bytes()).unwrap();
    let without_text = String::from_utf8(without.canonical_bytes()).unwrap();
    assert!(
        with_text.starts_with(r#"{"budget_refresh_days":30,"#),
        "{with_text}"
    );
    assert_eq!(
        with_text.replace(r#""budget_refresh_days":30,"#, ""),
        without_text
    );
    let mut edited = with.clone();
    edited.budget_refresh_days = Some(31);
    assert_ne!(edited.id(), with.id());
}

#[test]
fn budget_refresh_days_must_be_a_whole_number_of_days() {
    for bad in ["-1", "1.5", "\"30\"", "4294967296"] {
        let text = example_toml().replace(
            "# budget_refresh_days = 30",
            &format!("budget_refresh_days = {bad}"),
        );
        assert!(
            matches!(Terms::from_toml(&text), Err(AgreementError::Parse(_))),
            "{bad}"
        );
    }
}

#[test]
fn expires_at_unix_reports_parse_errors() {
    let mut t = terms();
    t.expires_at = "30/06/2027".into();
    assert!(matches!(t.expires_at_unix(), Err(AgreementError::Parse(_))));
}

#[test]
fn toml_syntax_errors_are_parse_errors() {
    assert!(matches!(
        Terms::from_toml("version = "),
        Err(AgreementError::Parse(_))
    ));
    assert!(matches!(
        Terms::from_toml("version = 1"),
        Err(AgreementError::Parse(_))
    ));
}

/// Issue 13: a party's value columns (unit and clamping bound `U`) parse, change the id, and
/// are checked; terms without them keep their id (the field is left out of the canonical bytes
/// when empty).
#[test]
fn value_columns_parse_validate_and_leave_old_ids_alone() {
    let old = terms();
    assert!(old.parties.iter().all(|p| p.values.is_empty()));
    assert!(
        !String::from_utf8(old.canonical_bytes())
            .unwrap()
            .contains("values")
    );
    let with = |line: &str| {
        example_toml().replace(
            "[[parties]]\nname = \"shopx\"",
            &format!("[[parties]]\nname = \"shopx\"\n{line}"),
        )
    };
    let text = with("values = { revenue_cents = { unit = \"cents\", bound = 100000 } }");
    let t = Terms::from_toml(&text).unwrap();
    let v = &t.party("shopx").unwrap().values["revenue_cents"];
    assert_eq!(
        (v.unit.as_str(), v.bound, v.squares),
        ("cents", 100_000, false)
    );
    assert_ne!(t.id(), old.id());
    assert!(
        String::from_utf8(t.canonical_bytes())
            .unwrap()
            .contains(r#""values":{"revenue_cents":{"bound":100000,"unit":"cents"}}"#)
    );
    let refused = |line: &str, why: &str| {
        let err = Terms::from_toml(&with(line)).unwrap_err().to_string();
        assert!(err.contains(why), "{line}: {err}");
    };
    refused(
        "values = { r = { unit = \"cents\", bound = 0 } }",
        "bound must be in 1..=16777216",
    );
    refused(
        "values = { r = { unit = \"cents\", bound = 16777217 } }",
        "bound must be in",
    );
    refused(
        "values = { r = { unit = \"cents\", bound = 70000, squares = true } }",
        "above 65535",
    );
    refused(
        "values = { r = { unit = \"\", bound = 5 } }",
        "unit must match",
    );
    refused(
        "values = { tier = { unit = \"x\", bound = 5 } }",
        "both a group-by column and a value column",
    );
    refused(
        "values = { r = { unit = \"x\", bound = 5, cap = 1 } }",
        "unknown field",
    );
    let sq = Terms::from_toml(&with(
        "values = { r = { unit = \"x\", bound = 65535, squares = true } }",
    ))
    .unwrap();
    assert!(sq.party("shopx").unwrap().values["r"].squares);
}

#[test]
fn protocol_is_v1_by_default_and_keeps_the_id() {
    let t = terms();
    assert_eq!(t.protocol, tandem_agreement::Protocol::PsiCaV1);
    let text = String::from_utf8(t.canonical_bytes()).unwrap();
    assert!(!text.contains("protocol"), "{text}");
    // An old v1 agreement's id is unchanged, and writing v1 explicitly gives the same id.
    let without = Terms::from_toml(&example_without_impact_assessment()).unwrap();
    assert_eq!(
        without.id().to_string(),
        EXAMPLE_ID_WITHOUT_IMPACT_ASSESSMENT
    );
    let explicit = Terms::from_toml(&format!(
        "protocol = \"psi-ca-v1\"\n{}",
        example_without_impact_assessment()
    ))
    .unwrap();
    assert_eq!(explicit.id(), without.id());
}

#[test]
fn protocol_v2_is_signed_and_unknown_protocols_are_refused() {
    let v1 = terms();
    let v2 = Terms::from_toml(&format!("protocol = \"psi-ca-v2\"\n{}", example_toml())).unwrap();
    assert_eq!(v2.protocol, tandem_agreement::Protocol::PsiCaV2);
    assert_ne!(v2.id(), v1.id());
    let text = String::from_utf8(v2.canonical_bytes()).unwrap();
    assert!(text.contains("\"protocol\":\"psi-ca-v2\""), "{text}");
    let err = Terms::from_toml(&format!("protocol = \"psi-ca-v3\"\n{}", example_toml()));
    assert!(err.is_err());
    assert_ne!(
        v2.protocol.threat_model(),
        v1.protocol.threat_model(),
        "each protocol states its own threat model"
    );
}
